"""Benchmark one training step (forward + backward) of the transition model on CPU: `TransitionGNN` against a plain
PyTorch C-SWM transition written the obvious way (dense (B, K, K, 2D) pair tensor, edge MLP, sum, node MLP), with
gates in both for fairness.

    python analysis/benchmarks/transition_step.py            # the full benchmark (about 15 seconds)
    python analysis/benchmarks/transition_step.py --smoke    # seconds

Sizes follow C-SWM: B=256, K=5, hidden 512, a 4-way one-hot object-factored action, D=4 (state) and D=32 (latent).
Both models have the same MLPs (edge: Linear, ReLU, Linear, LayerNorm, ReLU, Linear; gate: Linear, ReLU, Linear,
sigmoid; node: as the edge MLP with output D); TransitionGNN is loaded with the dense model's weights and its output
checked against it, so the difference is the implementation only. Like the command line, the benchmark keeps freed
memory in the heap (`causal_wm.runtime`) for both models. The models are timed in turn, step by step, so
that load from other processes on the machine affects them alike; the table shows medians and interquartile ranges.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from hardware import describe
from torch import Tensor, nn

from causal_wm.runtime import keep_freed_memory
from causal_wm.transition import TransitionGNN, sparsity_penalty


def hardware() -> str:
    """CPU model, cores, torch threads and versions."""
    return f"{describe()}, torch {torch.__version__} with {torch.get_num_threads()} threads"


def cswm_mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    """C-SWM's MLP: Linear, ReLU, Linear, LayerNorm, ReLU, Linear."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.LayerNorm(hidden),
        nn.ReLU(),
        nn.Linear(hidden, out_dim),
    )


class DenseGatedTransition(nn.Module):
    """The straightforward dense C-SWM transition with gates: every (i, j) pair through the edge and gate MLPs."""

    def __init__(self, slot_dim: int, hidden: int, action_dim: int):
        super().__init__()
        self.edge_mlp = cswm_mlp(2 * slot_dim, hidden, hidden)
        self.gate_mlp = nn.Sequential(nn.Linear(2 * slot_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.node_mlp = cswm_mlp(slot_dim + action_dim + hidden, hidden, slot_dim)

    def forward(self, z: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        """Δz (B, K, D) and gates (B, K, K) with gates[b, i, j] for i -> j."""
        num_slots = z.size(1)
        senders = z.unsqueeze(2).repeat(1, 1, num_slots, 1)  # (B, K, K, D): [b, i, j] = z_i
        receivers = z.unsqueeze(1).repeat(1, num_slots, 1, 1)  # (B, K, K, D): [b, i, j] = z_j
        pairs = torch.cat([senders, receivers], dim=-1)  # (B, K, K, 2D)
        off_diagonal = 1.0 - torch.eye(num_slots, device=z.device)  # (K, K)
        gates = torch.sigmoid(self.gate_mlp(pairs)).squeeze(-1) * off_diagonal  # (B, K, K)
        messages = gates.unsqueeze(-1) * self.edge_mlp(pairs)  # (B, K, K, H)
        incoming = messages.sum(dim=1)  # (B, K, H): sum over senders i
        return self.node_mlp(torch.cat([z, action, incoming], dim=-1)), gates


@torch.no_grad()
def load_dense_weights(gnn: TransitionGNN, dense: DenseGatedTransition) -> None:
    """Give `gnn` the weights of `dense`, so that both compute the same function (checked in `main`)."""
    weights, slot_dim = gnn.rounds[0], gnn.slot_dim
    for pair, first in ((weights.edge_in, dense.edge_mlp[0]), (weights.gate_in, dense.gate_mlp[0])):
        pair.sender.copy_(first.weight[:, :slot_dim])
        pair.receiver.copy_(first.weight[:, slot_dim:])
        pair.bias.copy_(first.bias)
    modules = [
        (weights.edge_hidden[0], dense.edge_mlp[2]),
        (weights.edge_hidden[1], dense.edge_mlp[3]),
        (weights.edge_out, dense.edge_mlp[5]),
        (weights.gate_out, dense.gate_mlp[2]),
        (weights.node_mlp, dense.node_mlp),
    ]
    for target, source in modules:
        for a, b in zip(target.parameters(), source.parameters(), strict=True):
            a.copy_(b)


def time_interleaved(steps: list, warmup: int, repeats: int) -> list[list[float]]:
    """Seconds per call of each step, calling the steps in turn so that load changes on the machine hit all alike."""
    for step in steps:
        for _ in range(warmup):
            step()
    times = [[] for _ in steps]
    for _ in range(repeats):
        for step, seconds in zip(steps, times, strict=True):
            start = time.perf_counter()
            step()
            seconds.append(time.perf_counter() - start)
    return times


def benchmark(slot_dim: int, batch: int, num_slots: int, hidden: int, warmup: int, repeats: int) -> list[dict]:
    """Rows for the dense baseline, TransitionGNN (with the dense model's weights) and TransitionGNN with an action node
    and 3..K real slots per sample."""
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(batch, num_slots, slot_dim, generator=generator)
    target = torch.randn(batch, num_slots, slot_dim, generator=generator)
    pushed = torch.randint(0, num_slots, (batch,), generator=generator)
    direction = torch.randint(0, 4, (batch,), generator=generator)
    obj_action = torch.zeros(batch, num_slots, 4)
    obj_action[torch.arange(batch), pushed, direction] = 1.0
    node_action = torch.randn(batch, 7, generator=generator)  # e.g. x, y, one-hot direction, no-op flag
    counts = torch.randint(3, num_slots + 1, (batch,), generator=generator)
    slot_mask = torch.arange(num_slots)[None, :] < counts[:, None]  # (B, K)

    torch.manual_seed(0)
    dense = DenseGatedTransition(slot_dim, hidden, 4)
    gnn = TransitionGNN(slot_dim, hidden, obj_action_dim=4)
    gnn_action = TransitionGNN(slot_dim, hidden, obj_action_dim=4, node_action_dim=7)

    load_dense_weights(gnn, dense)
    with torch.no_grad():
        delta, gates = dense(z, obj_action)
        out = gnn(z, obj_action)
        difference = max((out.delta - delta).abs().max().item(), (out.gates - gates).abs().max().item())

    def dense_step() -> None:
        dense.zero_grad(set_to_none=True)
        delta, gates = dense(z, obj_action)
        loss = (delta - target).square().mean() + 1e-2 * gates.sum() / (batch * num_slots * (num_slots - 1))
        loss.backward()

    def gnn_step() -> None:
        gnn.zero_grad(set_to_none=True)
        out = gnn(z, obj_action, norms=False)  # as in training: the message norms are not needed
        loss = (out.delta - target).square().mean() + 1e-2 * sparsity_penalty(out)
        loss.backward()

    def gnn_action_step() -> None:
        gnn_action.zero_grad(set_to_none=True)
        out = gnn_action(z, obj_action, node_action, slot_mask, norms=False)
        loss = (out.delta - target).square().mean() + 1e-2 * sparsity_penalty(out, slot_mask)
        loss.backward()

    names = ["dense plain PyTorch", "TransitionGNN", "TransitionGNN + action node, 3..K slots"]
    rows = []
    for name, times in zip(
        names, time_interleaved([dense_step, gnn_step, gnn_action_step], warmup, repeats), strict=True
    ):
        median, quartiles = statistics.median(times), statistics.quantiles(times, n=4)
        rows.append(
            dict(
                model=name,
                slot_dim=slot_dim,
                batch=batch,
                num_slots=num_slots,
                hidden=hidden,
                ms_per_batch=1e3 * median,
                ms_iqr=1e3 * (quartiles[2] - quartiles[0]),
                transitions_per_second=batch / median,
                max_abs_difference_to_dense=difference if name == "TransitionGNN" else None,
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="B=32, hidden 64 and few repeats, seconds")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2, the training CPU)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--batch", type=int, default=256, help="B (default 256, as C-SWM)")
    parser.add_argument("--hidden", type=int, default=512, help="MLP width (default 512, as C-SWM)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as the causal-wm command line does; it speeds both models up alike
    batch, hidden, warmup, repeats = (32, 64, 1, 3) if args.smoke else (args.batch, args.hidden, 3, 15)
    print(f"hardware: {hardware()}")
    rows = [r for slot_dim in (4, 32) for r in benchmark(slot_dim, batch, 5, hidden, warmup, repeats)]
    print(f"forward + backward per batch (B={batch}, K=5, hidden {hidden}), median of {repeats}")
    print(f"{'model':42} {'D':>3} {'ms/batch':>9} {'IQR ms':>9} {'transitions/s':>14} {'vs dense':>9}")
    for r in rows:
        base = next(b for b in rows if b["slot_dim"] == r["slot_dim"] and b["model"] == "dense plain PyTorch")
        print(
            f"{r['model']:42} {r['slot_dim']:>3} {r['ms_per_batch']:>9.1f} {r['ms_iqr']:>9.1f} "
            f"{r['transitions_per_second']:>14,.0f} {base['ms_per_batch'] / r['ms_per_batch']:>8.2f}x"
        )
    checks = [
        f"D={r['slot_dim']} {r['max_abs_difference_to_dense']:.1e}" for r in rows if r["model"] == "TransitionGNN"
    ]
    print(f"TransitionGNN vs dense with the same weights, max |difference| of Δz and gates: {', '.join(checks)}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"hardware": hardware(), "rows": rows, "time": time.strftime("%Y-%m-%d %H:%M")}
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
