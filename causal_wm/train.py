"""Training: contrastive (C-SWM) multi-step rollouts, optional reconstruction, resumable run directories.

A run directory holds ``config.yaml`` (the resolved config), ``metrics.jsonl`` (one JSON line per logged step),
``tensorboard/`` events and ``checkpoints/last.pt`` = ``{model, optimizer, step, config, rng}``. ``--resume``
restores all of it, so an interrupted run ends with the same weights and metrics as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from causal_wm.config import dump_yaml, to_dict
from causal_wm.data import validate
from causal_wm.errors import TrainError, check_stop
from causal_wm.losses import NEGATIVES, contrastive_loss, foreground_weights
from causal_wm.model import ENCODERS, WorldModel, config_from_dict
from causal_wm.runtime import PRECISIONS, native_bf16, training_autocast
from causal_wm.transition import action_sparsity_penalty, edge_kl, sparsity_penalty

CHECKPOINT = "checkpoints/last.pt"


@dataclass(frozen=True)
class TrainConfig:
    """How ``causal-wm train`` trains a world model. Written to ``config.yaml`` in the run directory."""

    data: str = ""
    """Training dataset (HDF5)."""
    encoder: str = "cnn"
    """Slot encoder: cnn, slots or state."""
    seed: int = 0
    """Seed of parameters, data order and negatives."""
    steps: int = 2500
    """Optimisation steps (about 8 minutes for the cnn encoder on 2 CPU cores at the default sizes)."""
    batch_size: int = 64
    """Windows per step."""
    lr: float = 1e-3
    """Adam learning rate (peak)."""
    lr_schedule: str = "cosine"
    """constant, or cosine: linear warm-up over the first 2% of steps, then cosine decay to 0."""
    rollout_steps: int = 5
    """H: the transition is unrolled H steps and every step is scored against the encoded true state."""
    hinge: float = 1.0
    """Margin of the negative energy."""
    sigma: float = 0.5
    """Energy scale: d = 0.5 / sigma^2 * ||z - z'||^2."""
    negatives: str = "batch"
    """Negative states: batch (other episodes, C-SWM) or episode (other steps of the same episode)."""
    sparsity: float = 0.0
    """Weight of the mean edge gate (encourages a sparse learned graph); with ``graph_context``, of the KL divergence
    of the inferred edge probabilities from Bernoulli(edge_prior) (NRI's prior term). With an action node it also
    weighs the mean action-node gate."""
    edge_prior: float = 0.3
    """Prior edge probability of the inferred graph (models with ``graph_context``)."""
    recon_weight: float = 1.0
    """Weight of the reconstruction loss (with a decoder)."""
    recon_foreground: float = 0.0
    """Image decoders: weigh each pixel's squared error by ``1 + recon_foreground * min(1, |x - m|_1)``, m the frame's
    median colour, normalised to mean 1 (`losses.foreground_weights`). 0 is the plain mean squared error."""
    dynamics_beta: float = 1.0
    """Where the dynamics loss of a state or keypoint decoder turns from squared to linear (Huber's beta), in robust
    units of one step's change. 1 keeps collisions from dominating the smooth interactions; a large value (e.g.
    1e4, a mean squared error) weighs every velocity jump in full."""
    teacher_forcing: bool = False
    """State decoder: score the dynamics loss on one-step predictions from each encoded true state of the window
    (one more transition pass) instead of on the steps of the free rollout, whose targets no longer fit its state
    once a step went wrong. The contrastive and reconstruction losses still score the free rollout."""
    graph_overlap: bool = False
    """Models with ``graph_context`` and a state decoder: infer each window's graph from all of its observations,
    the steps it predicts included, and score the dynamics loss on one-step predictions from every observation of
    the window (NRI's setting: the graph is a bottleneck over the trajectory it reconstructs). Off, the graph is
    inferred from the W observations before the rollout only."""
    pretrain_steps: int = 0
    """With a decoder: the first ``pretrain_steps`` of ``steps`` optimise the reconstruction loss alone (no contrastive,
    sparsity or dynamics terms), so that the encoder finds the objects before the dynamics pull on its slots, as
    object-centric world models train their slot model first (SlotFormer, Wu et al. 2023)."""
    freeze_encoder: bool = False
    """With ``pretrain_steps``: after them the encoder is held fixed (it encodes without gradients), so the dynamics
    train the transition and the decoder only and cannot pull the slots away from the objects the reconstruction
    found."""
    threads: int = 2
    """torch CPU threads (results are reproducible for a fixed thread count)."""
    precision: str = "fp32"
    """fp32, or bf16: the forward pass of each step under bfloat16 autocast (convolutions and matrix products in
    bfloat16; weights, optimizer, losses, slots, Δz and the state decoder in float32; `causal_wm.runtime`). Faster on
    CPUs with AVX512-BF16 or AMX and on GPUs with bfloat16; elsewhere emulated and slower."""
    log_every: int = 50
    """Steps between metrics.jsonl lines."""
    checkpoint_every: int = 500
    """Steps between checkpoints."""
    model: dict[str, Any] = field(default_factory=dict)
    """ModelConfig fields; num_slots defaults to the dataset's maximum object count."""

    def __post_init__(self):
        if self.encoder not in ENCODERS:
            raise TrainError(f"unknown encoder {self.encoder!r}; choose one of {', '.join(ENCODERS)}")
        if self.lr_schedule not in ("constant", "cosine"):
            raise TrainError(f"lr_schedule must be constant or cosine, got {self.lr_schedule!r}")
        if self.negatives not in NEGATIVES:
            raise TrainError(f"--negatives must be one of {', '.join(NEGATIVES)}")
        if min(self.steps, self.batch_size, self.rollout_steps, self.log_every, self.checkpoint_every) < 1:
            raise TrainError("steps, batch size, rollout steps, log and checkpoint intervals must be positive")
        if not 0 <= self.pretrain_steps < self.steps:
            raise TrainError(f"pretrain_steps must lie in [0, steps = {self.steps}), got {self.pretrain_steps}")
        if not self.dynamics_beta > 0:
            raise TrainError(f"dynamics_beta must be positive, got {self.dynamics_beta}")
        if self.lr <= 0 or self.sigma <= 0 or self.hinge < 0 or self.sparsity < 0 or self.recon_foreground < 0:
            raise TrainError("lr and sigma must be positive; hinge, sparsity and recon_foreground non-negative")
        if not 0 < self.edge_prior < 1:
            raise TrainError(f"edge_prior must lie in (0, 1), got {self.edge_prior}")
        if self.precision not in PRECISIONS:
            raise TrainError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


class EpisodeArrays:
    """A training set held in memory (uint8 frames stay uint8) with vectorised window sampling."""

    def __init__(self, path: str, *, images: bool, episodes: slice | None = None):
        info = validate(path)
        self.info = info
        if images and not info.has_images:
            raise TrainError(f"{path} has no images ('obs'): it is a state-only file; use --encoder state")
        sel = episodes or slice(None)
        with h5py.File(path, "r") as f:
            self.states = f["states"][sel]  # (E, T, N, F) float32
            # A state-only file from another simulator may have no actions: every step is then a no-op.
            self.has_actions = "actions" in f
            if self.has_actions and f["actions"].ndim != 2:
                raise TrainError(f"{path}: 'actions' must be (E, T-1) integer actions, got shape {f['actions'].shape}")
            self.actions = (
                f["actions"][sel].astype(np.int64)
                if self.has_actions
                else np.zeros(self.states.shape[:2], np.int64)[:, :-1]
            )  # (E, T-1)
            self.num_objects = f["num_objects"][sel].astype(np.int64)  # (E,)
            self.obs = f["obs"][sel] if images else None  # (E, T, H, W, 3) uint8
            self.masks = f["masks"][sel] if images and "masks" in f else None
        self.arena = float(info.config.get("arena_size", 1.0))

    @property
    def num_episodes(self) -> int:
        return len(self.states)

    @property
    def steps(self) -> int:
        return self.states.shape[1]

    def feature_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        real = np.arange(self.states.shape[2])[None, :] < self.num_objects[:, None]  # (E, N)
        values = self.states[np.broadcast_to(real[:, None], self.states.shape[:3])]  # (M, F)
        mean, std = values.mean(0), values.std(0)
        return torch.from_numpy(mean), torch.from_numpy(np.where(std > 1e-6, std, 1.0).astype(np.float32))

    def delta_scale(self, n: int) -> torch.Tensor:
        """(n,) robust scale (1.4826 MAD) of the one-step change of the first ``n`` state features."""
        real = np.arange(self.states.shape[2])[None, :] < self.num_objects[:, None]  # (E, N)
        diff = np.diff(self.states[..., :n], axis=1)[
            np.broadcast_to(real[:, None], (len(real), self.steps - 1, len(real[0])))
        ]
        mad = 1.4826 * np.median(np.abs(diff - np.median(diff, 0)), 0)
        return torch.from_numpy(np.where(mad > 1e-8, mad, 1.0).astype(np.float32))

    def frequent_colours(self, k: int, frames: int = 2000, bits: int = 5) -> tuple[np.ndarray, np.ndarray]:
        """The most frequent pixel colour (the background) and the ``k`` next most frequent ones, (3,) and (k, 3) in
        [0, 1], over up to ``frames`` frames spread over the file (colours quantised to ``bits`` per channel; fewer
        than k colours are padded with mid-grey). Deterministic: it initialises the colours of a keypoint decoder."""
        if self.obs is None:
            raise TrainError("the keypoint decoder's colours need image frames ('obs')")
        flat = self.obs.reshape(-1, *self.obs.shape[2:])  # (E T, H, W, 3)
        pick = np.linspace(0, len(flat) - 1, min(frames, len(flat))).round().astype(np.int64)
        shift = 8 - bits
        px = (flat[pick].reshape(-1, 3) >> shift).astype(np.int64)
        codes, counts = np.unique((px[:, 0] << (2 * bits)) | (px[:, 1] << bits) | px[:, 2], return_counts=True)
        order = codes[np.argsort(-counts, kind="stable")][: k + 1]
        mask = (1 << bits) - 1
        rgb = np.stack([(order >> (2 * bits)) & mask, (order >> bits) & mask, order & mask], 1)
        rgb = ((rgb << shift) + (1 << shift) / 2) / 255.0
        colours = np.full((k, 3), 0.5)
        colours[: len(rgb) - 1] = rgb[1:]
        return rgb[0], colours

    def window(self, e: np.ndarray, s: np.ndarray, length: int, history: int) -> dict[str, torch.Tensor]:
        """Windows of ``length`` observations starting at observation time ``s + history - 1``."""
        t = s[:, None] + history - 1 + np.arange(length)[None]  # (B, L) observation times
        out = {
            "states": torch.from_numpy(self.states[e[:, None], t]),  # (B, L, N, F)
            "actions": torch.from_numpy(self.actions[e[:, None], t[:, :-1]]),  # (B, L-1)
            "num_objects": torch.from_numpy(self.num_objects[e]),
        }
        if self.obs is not None:
            frames = s[:, None] + np.arange(length + history - 1)[None]  # (B, L + history - 1)
            out["frames"] = torch.from_numpy(self.obs[e[:, None], frames])  # (B, L+h-1, H, W, 3) uint8
        return out


def slot_mask_for(num_objects: torch.Tensor, num_slots: int, encoder: str) -> torch.Tensor | None:
    """Padding mask (B, K) for the state encoder; image encoders see every slot."""
    if encoder != "state":
        return None
    return torch.arange(num_slots, device=num_objects.device)[None] < num_objects[:, None]


def encode_window(
    model: WorldModel, batch: dict[str, torch.Tensor], length: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Encode ``length`` consecutive observations: (B, L, K, D) slots and (B, L, K, h, w) encoder masks (None for the
    state encoder)."""
    c = model.config
    if c.encoder == "state":
        states = batch["states"]  # (B, L, N, F)
        mask = slot_mask_for(batch["num_objects"], c.num_slots, "state")
        b = states.shape[0]
        flat = states.flatten(0, 1)
        out = model.encode(flat, slot_mask=None if mask is None else mask.repeat_interleave(length, 0))
        return out.slots.unflatten(0, (b, length)), None
    frames = batch["frames"]  # (B, L + history - 1, H, W, 3)
    if not model.tracks_slots:  # cnn, or Slot Attention from learned queries: every frame on its own
        out = model.encode(model.windows_to_input(frames, c.history))  # B L stacks, each frame converted once
        shape = (frames.shape[0], length)
        return out.slots.unflatten(0, shape), out.masks.unflatten(0, shape)
    stacks = frames.unfold(1, c.history, 1).permute(0, 1, 5, 2, 3, 4)  # (B, L, history, H, W, 3)
    # Slot Attention: SAVi-style, the slots of step t initialise step t+1 so that slot order is kept in time.
    slots, masks, prev = [], [], None
    for t in range(length):
        out = model.encode(stacks[:, t], init_slots=prev)
        prev = out.slots
        slots.append(out.slots)
        masks.append(out.masks)
    return torch.stack(slots, 1), torch.stack(masks, 1)


def rollout_loss(
    model: WorldModel,
    batch: dict[str, torch.Tensor],
    cfg: TrainConfig,
    gen: torch.Generator,
    reconstruction_only: bool = False,
):
    c = model.config
    length = cfg.rollout_steps + 1
    ctx = model.context_steps
    # After the pretraining a frozen encoder is held fixed: no graph is kept through it.
    with torch.no_grad() if cfg.freeze_encoder and not reconstruction_only else contextlib.nullcontext():
        z, maps = encode_window(model, batch, ctx + length)  # (B, ctx + L, K, D), (B, ctx + L, K, h, w)
    mask = slot_mask_for(batch["num_objects"], c.num_slots, c.encoder)
    edge_gates = edge_logits = None
    whole = (z, batch["states"], batch["actions"])  # the whole window: with graph_overlap the dynamics loss's steps
    if ctx:  # the graph is inferred from the observations up to the rollout's first step, which starts ctx later
        # (with graph_overlap from the whole window, the steps the rollout predicts included)
        edge_logits, valid = model.graph_inference.logits(z if cfg.graph_overlap else z[:, : ctx + 1], mask)
        edge_gates = model.graph_inference.gates(edge_logits, valid)  # one relaxed sample per rollout
        z = z[:, ctx:]
        maps = None if maps is None else maps[:, ctx:]
        batch = {k: v[:, ctx:] if k in ("states", "actions", "frames") else v for k, v in batch.items()}
    positions = batch["states"][..., :2] / model.arena_size  # (B, L, N, 2)
    preds, gates, state = [], [], z[:, 0]
    for h in range(cfg.rollout_steps):
        # The inferred graph learns from one-step predictions only: through longer rollouts a sampled graph's errors
        # compound, which drives the inference to the deterministic all-edges graph (measured on NRI springs).
        step_gates = edge_gates if edge_gates is None or h == 0 else edge_gates.detach()
        out = model.transition(state, batch["actions"][:, h], positions[:, h], mask, step_gates, norms=False)
        state = state + out.delta
        preds.append(state)
        gates.append(out)
    parts = contrastive_loss(
        torch.stack(preds, 1),
        z,
        hinge=cfg.hinge,
        sigma=cfg.sigma,
        negatives=cfg.negatives,
        slot_mask=mask,
        generator=gen,
    )
    loss = parts["loss"]
    if cfg.sparsity > 0 and edge_logits is not None:
        parts["sparsity"] = edge_kl(edge_logits, valid, cfg.edge_prior)
        loss = loss + cfg.sparsity * parts["sparsity"]
    elif cfg.sparsity > 0:
        parts["sparsity"] = torch.stack([sparsity_penalty(o, mask) for o in gates]).mean()
        loss = loss + cfg.sparsity * parts["sparsity"]
    if cfg.sparsity > 0 and c.action_node:
        parts["action_sparsity"] = torch.stack([action_sparsity_penalty(o, mask) for o in gates]).mean()
        loss = loss + cfg.sparsity * parts["action_sparsity"]
    if model.decoder is not None and not c.uses_images:
        n = model.decoder.num_outputs

        def normalised(states: torch.Tensor) -> torch.Tensor:  # (B, T, N, F) -> (B, T, K, n) decoder targets
            out = (states[..., :n] - model.encoder.mean[:n]) / model.encoder.std[:n]
            # a file with fewer object columns than slots: pad (the padding is masked)
            return F.pad(out, (0, 0, 0, c.num_slots - out.shape[2])) if out.shape[2] < c.num_slots else out

        norm = normalised(batch["states"])  # (B, L, K, n)
        both = torch.cat([z, torch.stack(preds, 1)], 1)  # encoded (L) and imagined (H) slots
        err = (model.decoder(both) - torch.cat([norm, norm[:, 1:]], 1)).pow(2).mean(-1)  # (B, L+H, K)
        real = mask[:, None].float() if mask is not None else torch.ones_like(err)
        parts["recon"] = (err * real).sum() / real.expand_as(err).sum().clamp(min=1)
        # The predicted one-step changes against the true ones, in robust units of a step's change (Huber at
        # dynamics_beta; at the default 1 collisions do not dominate): the part of the dynamics that carries the
        # interactions.
        scale = model.decoder.delta_scale / model.encoder.std[:n]  # change scale in normalised units
        if cfg.teacher_forcing or cfg.graph_overlap:  # one step from each encoded true state: a missed collision
            # is not carried along; with graph_overlap from every observation of the window, context included
            zs, states, acts = whole if cfg.graph_overlap else (z, batch["states"], batch["actions"])
            hs = zs.shape[1] - 1
            norm = normalised(states)  # (B, hs + 1, K, n)
            rep = lambda x: None if x is None else x.repeat_interleave(hs, 0)  # noqa: E731
            one = model.transition(
                zs[:, :-1].flatten(0, 1),
                acts[:, :hs].flatten(0, 1),
                (states[:, :hs, :, :2] / model.arena_size).flatten(0, 1),
                rep(mask),
                rep(edge_gates),
                norms=False,
            )
            previous = model.decoder(zs[:, :-1])
            decoded = model.decoder(zs[:, :-1] + one.delta.unflatten(0, (zs.shape[0], hs)))  # (B, hs, K, n)
        else:  # the steps of the free rollout
            decoded = model.decoder(torch.stack(preds, 1))  # (B, H, K, n)
            previous = torch.cat([model.decoder(z[:, :1]), decoded[:, :-1]], 1)
        dyn = huber((decoded - previous) / scale, (norm[:, 1:] - norm[:, :-1]) / scale, cfg.dynamics_beta)
        real_h = mask[:, None, :, None].float() if mask is not None else torch.ones_like(dyn)
        parts["dynamics"] = (dyn * real_h).sum() / real_h.expand_as(dyn).sum().clamp(min=1)
        loss = loss + cfg.recon_weight * (parts["recon"] + parts["dynamics"])
    elif model.decoder is not None and c.keypoints:
        # The dynamics term trains the transition only: rolled out from detached slots, it cannot make the encoder's
        # keypoints easier to predict (e.g. static) instead of the transition better.
        h = cfg.rollout_steps
        gates_in = None if edge_gates is None else edge_gates.detach()
        free = model.imagine(
            z[:, 0].detach(), batch["actions"][:, :h], positions[:, :h], mask, decode=False, edge_gates=gates_in
        )["z"][:, 1:]
        parts.update(keypoint_losses(model, batch, z, free, maps, beta=cfg.dynamics_beta))
        loss = loss + cfg.recon_weight * (parts["recon"] + parts["dynamics"])
    elif model.decoder is not None:
        target = batch["frames"][:, c.history - 1 : c.history - 1 + length].float().div(255).permute(0, 1, 4, 2, 3)
        recon = model.decode(z.flatten(0, 1)).recon.unflatten(0, z.shape[:2])  # (B, L, 3, H, W)
        err = (recon - target).pow(2)  # (B, L, 3, H, W)
        if cfg.recon_foreground:
            err = err * foreground_weights(target, cfg.recon_foreground)
        parts["recon"] = err.mean()
        loss = loss + cfg.recon_weight * parts["recon"]
    if reconstruction_only:  # `TrainConfig.pretrain_steps`: the other parts are logged but not optimised
        loss = cfg.recon_weight * parts["recon"]
    parts["loss"] = loss
    return parts


def huber(pred: torch.Tensor, target: torch.Tensor, beta: float) -> torch.Tensor:
    """Elementwise Huber loss: 0.5 d^2 for |d| <= beta, beta (|d| - 0.5 beta) beyond (smooth L1 at beta = 1; the
    quadratic part does not shrink as beta grows, so a large beta is a plain half squared error)."""
    return F.huber_loss(pred, target, reduction="none", delta=beta)


def robust_scale(x: torch.Tensor) -> torch.Tensor:
    """(F,) 1.4826 x the median absolute deviation of ``x`` (..., F) over everything but its last axis."""
    flat = x.reshape(-1, x.shape[-1])
    return 1.4826 * (flat - flat.median(0).values).abs().median(0).values


def keypoint_losses(
    model: WorldModel,
    batch: dict[str, torch.Tensor],
    z: torch.Tensor,
    preds: torch.Tensor,
    maps: torch.Tensor,
    beta: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Losses of a cnn with ``keypoints`` and its `KeypointDecoder`, from pixels only.

    ``recon``: the frames (average-pooled to the maps' size) against the colour composite of the encoder's maps and
    against the discs drawn from the encoded slots. ``dynamics``: the imagined one-step changes of each slot's
    (x, y, vx, vy) against the changes its encoded keypoints make (targets detached), Huber in robust units of the
    batch's own changes, weighted by the object's presence: the part of the motion that carries the interactions."""
    c = model.config
    length = z.shape[1]
    frames = batch["frames"][:, c.history - 1 : c.history - 1 + length]  # (B, L, H, W, 3)
    h = maps.shape[-1]
    target = F.adaptive_avg_pool2d(frames.flatten(0, 1).permute(0, 3, 1, 2).float().div(255), h)  # (B L, 3, h, h)
    composite = model.decoder.compose(maps.flatten(0, 1))
    drawn = model.decoder(z.flatten(0, 1), size=h).recon
    # Relative to the frames' variance: objects cover a few percent of a frame, and a plain mean squared error is
    # met by drawing the background alone (the maps then collapse, measured).
    variance = target.var(dim=(0, 2, 3)).sum().clamp(min=1e-6)
    recon = ((composite - target).pow(2).mean() + (drawn - target).pow(2).mean()) * 3 / variance
    kp = slice(c.slot_dim, c.slot_dim + 4)
    true = z[..., kp].detach()  # (B, L, K, 4)
    change = true[:, 1:] - true[:, :-1]  # (B, H, K, 4)
    scale = robust_scale(change).clamp(min=1e-4)
    imagined = preds[..., kp]
    previous = torch.cat([true[:, :1], imagined[:, :-1]], 1)
    dyn = huber((imagined - previous) / scale, change / scale, beta)  # (B, H, K, 4)
    weight = z[:, 1:, :, c.slot_dim + 4, None].detach().clamp(0, 1)  # presence of the target
    dynamics = (dyn * weight).sum() / (weight.expand_as(dyn).sum().clamp(min=1))
    return {"recon": recon, "dynamics": dynamics}


def learning_rate(cfg: TrainConfig, step: int) -> float:
    """The learning rate of optimisation step ``step`` (0-based); a pure function of the step, so resuming needs
    no scheduler state."""
    if cfg.lr_schedule == "constant":
        return cfg.lr
    warmup = max(1, cfg.steps // 50)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, cfg.steps - warmup)
    return 0.5 * cfg.lr * (1.0 + math.cos(math.pi * progress))


def _atomic_save(obj: Any, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _rng_state(rng: np.random.Generator, gen: torch.Generator, device: torch.device) -> dict:
    state = {
        "numpy": rng.bit_generator.state,
        "torch": torch.get_rng_state(),
        "negatives": gen.get_state(),
        "python": random.getstate(),
        "device": str(device),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (cuda when available) as a torch.device; TrainError if absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise TrainError(f"unknown device {name!r}; use cpu, cuda, cuda:N or auto") from err
    if device.type not in ("cpu", "cuda"):
        raise TrainError(f"device {name!r} is not supported; use cpu, cuda, cuda:N or auto")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainError(f"device {name!r} was asked for, but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise TrainError(f"device {name!r} does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    return device


def type_encoding(data: EpisodeArrays) -> dict[str, int]:
    """``type_feature`` and ``num_types`` for a state encoder on ``data``: the ``type`` column one-hot over the types
    of its real objects, or -1 (numbers) when the file has no ``type`` feature or a non-integer one."""
    features = data.info.state_features
    if "type" not in features:
        return {"type_feature": -1, "num_types": 0}
    col = features.index("type")
    real = np.arange(data.states.shape[2])[None, :] < data.num_objects[:, None]  # (E, N)
    types = data.states[:, 0, :, col][real]  # types do not change within an episode
    if types.size == 0 or types.min() < 0 or not np.array_equal(types, np.round(types)) or types.max() > 255:
        return {"type_feature": -1, "num_types": 0}
    return {"type_feature": col, "num_types": int(types.max()) + 1}


def build_model(cfg: TrainConfig, data: EpisodeArrays, saved_model: dict | None = None) -> WorldModel:
    """The model ``cfg`` asks for on ``data``; ``saved_model`` (a checkpoint's model config) fixes the fields that
    are derived from the data, so that a resumed run rebuilds exactly the model it saved."""
    model_fields = dict(cfg.model)
    model_fields.setdefault("num_slots", data.info.max_objects)
    if cfg.encoder == "state":
        derived = type_encoding(data)
        if saved_model is not None:
            derived = {k: saved_model.get(k, -1 if k == "type_feature" else 0) for k in derived}
        for key, value in derived.items():
            model_fields.setdefault(key, value)
    model_fields.update(encoder=cfg.encoder, num_features=data.info.num_features)
    if data.info.image_size:
        model_fields.setdefault("image_size", data.info.image_size)
    try:
        mcfg = config_from_dict(model_fields)
    except (TypeError, ValueError) as err:
        raise TrainError(str(err)) from None
    if mcfg.encoder != "slots" and mcfg.num_slots < data.info.max_objects:
        raise TrainError(
            f"{data.info.max_objects} objects exceed the {mcfg.num_slots} slots of the {mcfg.encoder} encoder "
            "(slot k must be object k); raise --num-slots"
        )
    mean, std = data.feature_stats()
    model = WorldModel(mcfg, feature_mean=mean, feature_std=std)
    model.arena_size = data.arena
    if model.decoder is not None and not mcfg.uses_images:
        model.decoder.delta_scale.copy_(data.delta_scale(model.decoder.num_outputs))
    if model.decoder is not None and mcfg.keypoints:
        background, colours = data.frequent_colours(mcfg.num_slots)
        model.decoder.init_colours(background, colours)
    return model


def train(
    cfg: TrainConfig, out: str | os.PathLike, *, resume: bool = False, progress: bool = True, device: str = "cpu"
) -> dict:
    """Train per ``cfg`` into the run directory ``out``; returns the final logged metrics.

    ``device``: cpu, cuda, cuda:N or auto. Checkpoints are written so that `load_run` restores them on the CPU; a run
    resumes on the kind of device it was trained on (the random streams differ between CPU and CUDA)."""
    out = Path(out)
    device = resolve_device(device)
    if cfg.precision == "bf16" and not native_bf16(device):
        if device.type == "cuda":
            raise TrainError(f"--precision bf16: {torch.cuda.get_device_name(device)} does not support bfloat16")
        warnings.warn(
            "--precision bf16: this CPU has neither AVX512-BF16 nor AMX, so bfloat16 is emulated and the steps will "
            "likely be slower than with fp32",
            stacklevel=2,
        )
    ckpt_path = out / CHECKPOINT
    if resume:
        if not ckpt_path.exists():
            raise TrainError(f"--resume: {ckpt_path} does not exist")
        saved = torch.load(ckpt_path, map_location="cpu", weights_only=False)
        # A field added after the run was saved takes its default there, which keeps the earlier behaviour.
        saved_cfg = {**to_dict(TrainConfig()), **saved["train_config"]}
        if to_dict(cfg) != saved_cfg:
            diff = sorted(k for k, v in to_dict(cfg).items() if saved_cfg.get(k) != v)
            raise TrainError(f"--resume: the config differs from the run's config.yaml in {diff}")
        trained_on = torch.device(saved["rng"].get("device", "cpu"))
        if trained_on.type != device.type:
            raise TrainError(
                f"--resume: the run was trained on {trained_on.type}; resume it there (--device {trained_on.type})"
            )
    elif out.exists() and any(out.iterdir()):
        raise TrainError(f"{out} is not empty; pass --resume to continue that run or choose another --out")
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    data = EpisodeArrays(cfg.data, images=cfg.encoder != "state")
    model = build_model(cfg, data, saved["config"]["model"] if resume else None).to(device)
    history = model.config.history if model.config.uses_images else 1
    length = model.context_steps + cfg.rollout_steps + 1  # observations per window
    max_start = data.steps - (history - 1) - length
    if max_start < 0:
        raise TrainError(
            f"episodes of {data.steps} frames are too short for {cfg.rollout_steps} rollout steps"
            + (f" after a graph context of {model.config.graph_context}" if model.context_steps else "")
        )
    if cfg.teacher_forcing and not (model.decoder is not None and not model.config.uses_images):
        raise TrainError("teacher forcing scores the state decoder's dynamics loss: it needs --encoder state --decoder")
    if cfg.graph_overlap and not (model.context_steps and model.decoder is not None and not model.config.uses_images):
        raise TrainError(
            "graph_overlap infers a --graph-context graph from the window the state decoder's dynamics loss scores: "
            "it needs --encoder state --decoder --graph-context W"
        )
    if cfg.recon_foreground and not (
        model.decoder is not None and model.config.uses_images and not model.config.keypoints
    ):
        raise TrainError(
            "--recon-foreground weighs the image decoder's reconstruction: it needs --decoder with the cnn "
            "or slots encoder (not --keypoints)"
        )
    if cfg.pretrain_steps and model.decoder is None:
        raise TrainError("--pretrain-steps trains the reconstruction alone: it needs --decoder")
    if cfg.freeze_encoder and not cfg.pretrain_steps:
        raise TrainError("--freeze-encoder holds the encoder fixed after --pretrain-steps: give --pretrain-steps N")
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed + 1)
    if device.type == "cuda":
        torch.cuda.manual_seed(cfg.seed)
    step = 0
    if resume:
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        step = saved["step"]
        rng.bit_generator.state = saved["rng"]["numpy"]
        torch.set_rng_state(saved["rng"]["torch"])
        gen.set_state(saved["rng"]["negatives"])
        if device.type == "cuda" and "cuda" in saved["rng"]:
            torch.cuda.set_rng_state(saved["rng"]["cuda"], device)
        random.setstate(saved["rng"]["python"])
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    full_config = {"train": to_dict(cfg), "model": dataclasses.asdict(model.config)}
    if not resume:
        dump_yaml(full_config, out / "config.yaml")
    metrics_path = out / "metrics.jsonl"
    _truncate_metrics(metrics_path, step)

    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    writer = SummaryWriter(str(out / "tensorboard"), purge_step=step if resume else None)
    last: dict[str, float] = {}
    t0, samples = time.perf_counter(), 0
    model.train()
    try:
        with (
            open(metrics_path, "a") as log,
            tqdm(total=cfg.steps, initial=step, disable=not progress, desc=f"train {cfg.encoder}") as bar,
        ):
            while step < cfg.steps:
                check_stop()
                e = rng.integers(0, data.num_episodes, cfg.batch_size)
                s = rng.integers(0, max_start + 1, cfg.batch_size)
                batch = {k: v.to(device, non_blocking=True) for k, v in data.window(e, s, length, history).items()}
                with training_autocast(cfg.precision, device):
                    parts = rollout_loss(model, batch, cfg, gen, reconstruction_only=step < cfg.pretrain_steps)
                if not torch.isfinite(parts["loss"]):
                    raise TrainError(
                        f"loss became {parts['loss'].item()} at step {step + 1}; stopped. The last good checkpoint "
                        f"is {ckpt_path} (try a lower --lr)"
                    )
                for group in opt.param_groups:
                    group["lr"] = learning_rate(cfg, step)
                opt.zero_grad(set_to_none=True)
                parts["loss"].backward()
                opt.step()
                step += 1
                samples += cfg.batch_size
                bar.update(1)
                if step % cfg.log_every == 0 or step == cfg.steps:
                    elapsed = time.perf_counter() - t0
                    last = {
                        "step": step,
                        **{k: float(v.detach()) for k, v in parts.items()},
                        "windows_per_s": samples / elapsed,
                    }
                    log.write(json.dumps(last) + "\n")
                    log.flush()
                    for k, v in last.items():
                        if k != "step":
                            writer.add_scalar(f"train/{k}", v, step)
                    bar.set_postfix(loss=f"{last['loss']:.4f}")
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    _atomic_save(
                        {
                            "model": model.state_dict(),
                            "optimizer": opt.state_dict(),
                            "step": step,
                            "config": full_config,
                            "train_config": to_dict(cfg),
                            "rng": _rng_state(rng, gen, device),
                            "arena_size": data.arena,
                            "scene": data.info.scene,
                            "state_features": data.info.state_features,
                        },
                        ckpt_path,
                    )
    finally:
        writer.close()
    return last


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop lines logged after the checkpoint we resume from, so the log matches an uninterrupted run."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line and json.loads(line)["step"] <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line + "\n" for line in keep))
    os.replace(tmp, path)


def set_threads(threads: int | None) -> None:
    """Use ``threads`` torch CPU threads; None leaves torch's setting (one per core unless changed).

    Evaluation and probing take the thread count of the machine they run on, not the training's: a run trained on
    one thread beside other jobs is probed on every core. Results agree across thread counts up to float rounding."""
    if threads is None:
        return
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    torch.set_num_threads(threads)


def load_run(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> WorldModel:
    """Restore the trained :class:`WorldModel` of a run directory (for notebooks and the CLI)."""
    ckpt = Path(path) / CHECKPOINT
    if not ckpt.exists():
        raise TrainError(f"{path}: no checkpoint at {ckpt} (is this a causal-wm run directory?)")
    try:
        saved = torch.load(ckpt, map_location=map_location, weights_only=False)
        mcfg = config_from_dict(saved["config"]["model"])
    except Exception as err:  # unpickling garbage can raise nearly anything
        raise TrainError(f"{ckpt}: not a causal-wm checkpoint ({type(err).__name__}: {err})") from None
    model = WorldModel(mcfg)
    try:
        model.load_state_dict(saved["model"])
    except RuntimeError as err:
        first = str(err).strip().splitlines()[0]
        raise TrainError(f"{ckpt}: the weights do not match its model config ({first})") from None
    model.arena_size = saved.get("arena_size", 1.0)
    model.scene = saved.get("scene")
    model.state_features = saved.get("state_features")
    if model.scene is None:  # checkpoints written before 0.1.0 final: read the scene from the training file
        data = saved["train_config"].get("data", "")
        if data and Path(data).exists():
            try:
                info = validate(data)
                model.scene, model.state_features = info.scene, info.state_features
            except Exception:  # the training file is not needed to use a run
                pass
    model.train_config = saved["train_config"]
    model.eval()
    return model
