"""Losses: the C-SWM contrastive hinge energy over multi-step rollouts, gate sparsity and reconstruction.

Energy of a pair of latent states (Kipf et al. 2020): ``d(z, z') = 0.5 / sigma^2 * sum_k ||z_k - z'_k||^2``.

The positive term pulls each predicted state onto the encoding of the true next state. The negative term pushes a
negative state ``z~`` at least ``hinge`` away from the **target** ``z_{t+1}``, as in the paper's equation. (The
reference implementation compares ``z~`` with ``z_t`` instead, tkipf/c-swm#3; we follow the paper because the
evaluation ranks predictions against encoded *next* states, which is the separation this term enforces.)
"""

from __future__ import annotations

import torch
from torch import Tensor

NEGATIVES = ("batch", "episode", "both")


def energy(a: Tensor, b: Tensor, sigma: float, slot_mask: Tensor | None = None) -> Tensor:
    """``0.5 / sigma^2 * sum ||a - b||^2`` over slots and features; a, b (..., K, D) -> (...)."""
    sq = (a - b).pow(2).sum(-1)  # (..., K)
    if slot_mask is not None:
        sq = sq * slot_mask
    return 0.5 / sigma**2 * sq.sum(-1)


def contrastive_loss(
    pred: Tensor,
    target: Tensor,
    *,
    hinge: float = 1.0,
    sigma: float = 0.5,
    negatives: str = "batch",
    slot_mask: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """Multi-step C-SWM loss.

    ``pred`` (B, H, K, D) are the states predicted 1..H steps ahead; ``target`` (B, H+1, K, D) the encoded true
    states at 0..H. Negatives come from other samples of the batch at the same step (``"batch"``, C-SWM) or from
    other steps of the same episode window (``"episode"``, Biza et al. 2021: harder, same scene), or the mean of
    the two hinge terms (``"both"``: static per-episode features alone cannot separate the episode negatives).
    Returns the total and its parts, each averaged over samples and steps."""
    if negatives not in NEGATIVES:
        raise ValueError(f"negatives must be one of {NEGATIVES}, got {negatives!r}")
    b, h = pred.shape[:2]
    nxt = target[:, 1:]  # (B, H, K, D)
    pos = energy(pred, nxt, sigma, None if slot_mask is None else slot_mask[:, None]).mean()
    if negatives == "both":
        kw = dict(hinge=hinge, sigma=sigma, slot_mask=slot_mask, generator=generator)
        neg = 0.5 * (
            contrastive_loss(pred, target, negatives="batch", **kw)["negative"]
            + contrastive_loss(pred, target, negatives="episode", **kw)["negative"]
        )
        return {"loss": pos + neg, "positive": pos, "negative": neg}
    if negatives == "batch":
        perm = torch.randperm(b, generator=generator, device=pred.device)
        neg_states = nxt[perm]  # (B, H, K, D)
        neg_mask = None if slot_mask is None else (slot_mask & slot_mask[perm])[:, None]
    else:
        if h < 1:
            raise ValueError("episode negatives need a window of at least 2 states")
        shift = torch.randint(1, h + 1, (b, h), generator=generator, device=pred.device)
        idx = (torch.arange(1, h + 1, device=pred.device)[None] + shift) % (h + 1)  # (B, H), never the step itself
        neg_states = target[torch.arange(b, device=pred.device)[:, None], idx]
        neg_mask = None if slot_mask is None else slot_mask[:, None]
    neg = torch.relu(hinge - energy(neg_states, nxt, sigma, neg_mask)).mean()
    return {"loss": pos + neg, "positive": pos, "negative": neg}


def foreground_weights(frames: Tensor, strength: float) -> Tensor:
    """Per-pixel weights ``1 + strength * min(1, sum_c |x_c - m_c|)`` with m the frame's median colour, mean 1.

    ``frames`` (..., C, H, W) in [0, 1] -> (..., 1, H, W). Small objects on a plain background cover a few percent of
    the pixels, so a plain squared error is met early by drawing the background alone, and slot attention's decoder
    then never separates the objects (measured on 5-ball springs: decoder FG-ARI 0.000 after 1,000 autoencoder
    steps). The weights come from the image alone (no masks): pixels unlike the frame's dominant colour count up to
    ``1 + strength`` times as much."""
    if strength < 0:
        raise ValueError(f"strength must be non-negative, got {strength}")
    median = frames.flatten(-2).median(dim=-1).values[..., None, None]  # (..., C, 1, 1)
    w = 1 + strength * (frames - median).abs().sum(-3, keepdim=True).clamp(max=1)  # (..., 1, H, W)
    return w / w.mean()
