"""Can the gated transition hold the interaction graph when it is taught the dynamics directly?

A diagnostic, not a world model: the `TransitionGNN` regresses the true one-step velocity change of every object from
the true states (Huber loss in robust units: 1.4826 MAD of the change, so that collisions do not dominate), with C-SWM's
object-factored actions. Four ways to present the states separate representation from learning:

- ``number``: normalised states, the categorical ``type`` as a number, straight into the transition;
- ``onehot``: the same with the type one-hot;
- ``latent``: a state-encoder MLP (type one-hot in its input) to D-dimensional slots, a state decoder back, the loss
  on the decoded change (the world model's ``--decoder`` path without the contrastive loss);
- ``latent_code``: as ``latent``, with the type code appended to each slot (what `StateEncoder` does with a
  ``type_feature``).

Each variant's gates and Jacobian norms, averaged over every 5th step of held-out episodes, are scored against the
file's ``adjacency`` (pooled AUROC over the off-diagonal pairs of real objects).

    python analysis/supervised_transition.py --train data/springs5_train.h5 --test data/springs5_test.h5 \\
        --out results/supervised_transition_springs5.json
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from causal_wm.config import write_json  # noqa: E402
from causal_wm.decoder import StateDecoder  # noqa: E402
from causal_wm.encoders import StateEncoder  # noqa: E402
from causal_wm.model import NUM_DIRECTIONS  # noqa: E402
from causal_wm.train import EpisodeArrays, type_encoding  # noqa: E402
from causal_wm.transition import TransitionGNN, sparsity_penalty  # noqa: E402

VARIANTS = ("number", "onehot", "latent", "latent_code")


def object_actions(actions: torch.Tensor, num_slots: int) -> torch.Tensor:
    """Integer actions (...) -> C-SWM object-factored actions (..., K, 4), as `WorldModel.action_inputs`."""
    push = actions > 0
    obj = ((actions - 1) // NUM_DIRECTIONS).clamp(min=0)
    direction = ((actions - 1) % NUM_DIRECTIONS).clamp(min=0)
    on = F.one_hot(obj.clamp(max=num_slots - 1), num_slots).bool() & push[..., None] & (obj < num_slots)[..., None]
    return on[..., None].float() * F.one_hot(direction, NUM_DIRECTIONS).float()[..., None, :]


class Variant(nn.Module):
    """Slots from states (an identity on the encoder's inputs, or an encoder MLP), the transition, a readout of Δv."""

    def __init__(self, kind: str, data: EpisodeArrays, slot_dim: int, hidden: int):
        super().__init__()
        mean, std = data.feature_stats()
        types = type_encoding(data) if kind != "number" else {"type_feature": -1, "num_types": 0}
        col = types["type_feature"]
        self.kind = kind
        self.encoder = StateEncoder(
            data.info.num_features,
            slot_dim=slot_dim,
            hidden=64,
            mean=mean,
            std=std,
            type_feature=col if col >= 0 else None,
            num_types=types["num_types"],
        )
        latent = kind.startswith("latent")
        inputs = self.encoder.mlp[0].in_features
        dim = (self.encoder.out_dim if kind == "latent_code" else slot_dim) if latent else inputs
        self.transition = TransitionGNN(dim, hidden=hidden, obj_action_dim=NUM_DIRECTIONS)
        self.decoder = StateDecoder(dim, hidden=64, num_outputs=4) if latent else None

    def slots(self, states: torch.Tensor) -> torch.Tensor:
        if self.decoder is None:
            return self.encoder.inputs(states)  # normalised features; the first four are x, y, vx, vy
        if self.kind == "latent_code":
            return self.encoder.slots(states)
        return self.encoder.mlp(self.encoder.inputs(states))

    def forward(self, states: torch.Tensor, actions: torch.Tensor, mask: torch.Tensor):
        """Predicted Δv (normalised), the transition output and the reconstruction error of the normalised state."""
        z = self.slots(states)
        out = self.transition(z, object_actions(actions, z.shape[1]), slot_mask=mask, norms=False)
        if self.decoder is None:
            return out.delta[..., 2:4], out, z.new_zeros(())
        before, after = self.decoder(z), self.decoder(z + out.delta)
        recon = (before - self.encoder.inputs(states)[..., :4]).pow(2)[mask].mean()
        return after[..., 2:4] - before[..., 2:4], out, recon


def pooled_auroc(scores: np.ndarray, adjacency: np.ndarray, counts: np.ndarray) -> float:
    k = scores.shape[1]
    real = (np.arange(k)[None] < counts[:, None])[:, :, None] & (np.arange(k)[None] < counts[:, None])[:, None, :]
    real &= ~np.eye(k, dtype=bool)[None]
    labels = adjacency[:, :k, :k][real] > 0
    if labels.all() or not labels.any():
        return float("nan")
    return float(roc_auc_score(labels, scores[real]))


def run_variant(kind: str, train: EpisodeArrays, test: EpisodeArrays, args) -> dict:
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    model = Variant(kind, train, args.slot_dim, args.hidden)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    std = model.encoder.std[2:4]
    scale = train.delta_scale(4)[2:4] / std  # a step's velocity change in normalised units
    k = train.states.shape[2]
    t0 = time.perf_counter()
    for _ in range(args.steps):
        e = rng.integers(train.num_episodes, size=args.batch)
        t = rng.integers(train.steps - 1, size=args.batch)
        states = torch.from_numpy(train.states[e, t])
        target = torch.from_numpy(train.states[e, t + 1, :, 2:4] - train.states[e, t, :, 2:4]) / std / scale
        mask = torch.arange(k)[None] < torch.from_numpy(train.num_objects[e])[:, None]
        pred, out, recon = model(states, torch.from_numpy(train.actions[e, t]), mask)
        loss = F.smooth_l1_loss(pred / scale, target, reduction="none")[mask].mean() + recon
        loss = loss + args.sparsity * sparsity_penalty(out, mask)
        opt.zero_grad()
        loss.backward()
        opt.step()
    seconds = time.perf_counter() - t0
    model.eval()
    n = min(args.episodes, test.num_episodes)
    counts = test.num_objects[:n]
    mask = torch.arange(k)[None] < torch.from_numpy(counts)[:, None]
    gates, jac, errors = [], [], []
    with torch.no_grad():
        for t in range(0, test.steps - 1, 5):
            states = torch.from_numpy(test.states[:n, t])
            actions = torch.from_numpy(test.actions[:n, t])
            z = model.slots(states)
            obj = object_actions(actions, k)
            gates.append(model.transition(z, obj, slot_mask=mask).gates)
            jac.append(model.transition.sender_sensitivity(z, obj, slot_mask=mask))
            pred, _, _ = model(states, actions, mask)
            true = torch.from_numpy(test.states[:n, t + 1, :, 2:4] - test.states[:n, t, :, 2:4]) / std
            errors.append(F.smooth_l1_loss(pred / scale, true / scale, reduction="none")[mask].mean())
    adjacency = test.adjacency[:n]
    return {
        "variant": kind,
        "gates_auroc": pooled_auroc(torch.stack(gates).mean(0).numpy(), adjacency, counts),
        "jacobian_auroc": pooled_auroc(torch.stack(jac).mean(0).numpy(), adjacency, counts),
        "test_huber": float(torch.stack(errors).mean()),
        "train_seconds": round(seconds, 1),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=False, help="training HDF5 (with states and adjacency)")
    p.add_argument("--test", required=False, help="held-out HDF5 (with adjacency)")
    p.add_argument("--out", help="write the results as JSON here")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated subset of {', '.join(VARIANTS)}")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch", type=int, default=256, help="transitions per step")
    p.add_argument("--slot-dim", type=int, default=8)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--sparsity", type=float, default=0.05)
    p.add_argument("--episodes", type=int, default=200, help="held-out episodes scored")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = sorted(set(variants) - set(VARIANTS))
    if bad or not variants:
        p.error(f"unknown variant(s) {bad}; choose from {', '.join(VARIANTS)}")
    if not args.train or not args.test:
        p.error("--train and --test are required")
    if min(args.steps, args.batch, args.episodes) < 1:
        p.error("--steps, --batch and --episodes must be positive")
    torch.set_num_threads(args.threads)
    train = EpisodeArrays(args.train, images=False)
    test = EpisodeArrays(args.test, images=False)
    import h5py

    with h5py.File(args.test, "r") as f:
        if "adjacency" not in f:
            p.error(f"{args.test} has no 'adjacency' to score against")
        test.adjacency = f["adjacency"][: args.episodes]
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.threads} thread(s)")
    print(f"{'variant':12s} {'gates AUROC':>12s} {'Jacobian AUROC':>15s} {'test Huber':>11s} {'train s':>8s}")
    results = []
    for kind in variants:
        r = run_variant(kind, train, test, args)
        results.append(r)
        print(
            f"{kind:12s} {r['gates_auroc']:12.3f} {r['jacobian_auroc']:15.3f} {r['test_huber']:11.3f} "
            f"{r['train_seconds']:8.1f}",
            flush=True,
        )
    if args.out:
        print(f"wrote {write_json(args.out, {'args': vars(args), 'results': results})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
