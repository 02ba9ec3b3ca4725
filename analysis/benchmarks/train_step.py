"""Benchmark a whole training step (encode, transition, contrastive loss, backward, Adam) of the CNN world model on CPU
against an equal-size plain-PyTorch C-SWM step, side by side, in transitions per second.

    python analysis/benchmarks/train_step.py            # the full benchmark (about a minute)
    python analysis/benchmarks/train_step.py --smoke    # seconds
    python analysis/benchmarks/train_step.py --device cuda   # both steps on a GPU (optional)

Rows (same encoder architecture and widths, same transition widths, same number of scored transitions per step):

- ``plain C-SWM step``: C-SWM's training step written the straightforward way. A batch of (obs, action, next_obs)
  transitions; both observations go through the encoder (the layers of the world model's `ObjectExtractorCNN` in
  PyTorch's default channels-first layout); the
  transition is the dense gated C-SWM GNN of ``transition_step.py`` (every (i, j) pair through the edge and gate MLPs);
  C-SWM's hinge loss with negatives shuffled from the batch.
- ``causal-wm, 1-step windows``: `causal_wm.train.rollout_loss` on windows of 2 observations, so it encodes as many
  frames per transition as the plain step: the difference is the implementation (`TransitionGNN`, channels-last
  convolutions).
- ``causal-wm, default 5-step windows``: the default training step, 64 windows of 6 observations: each frame is encoded
  once and scored in up to two transitions (6 encodes per 5 transitions instead of 10).
- ``..., bf16``: the plain step and the default step with their forward passes under bfloat16 autocast, as
  ``causal-wm train --precision bf16`` runs it (`causal_wm.runtime`). Timed only where the device computes
  bfloat16 natively (a CPU with AVX512-BF16 or AMX, a GPU with bfloat16); ``--no-bf16`` leaves them out. Their "vs
  plain" is against the float32 plain step, and "same precision" against the plain step in bfloat16.

Each step's FLOPs (forward + backward convolutions and matmuls, counted by `torch.utils.flop_counter`) over its time
give its achieved FLOP/s, reported as a fraction of the FLOP/s of a large matmul in the step's precision (float32 or
bfloat16) measured in the same process.
Steps are timed in turn, so that load from other processes hits all alike; medians and interquartile ranges are shown.
Like the command line, the process keeps freed memory in the heap (`causal_wm.runtime`), for every row alike.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch
from hardware import describe
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from transition_step import DenseGatedTransition, time_interleaved

from causal_wm.encoders import ObjectExtractorCNN
from causal_wm.model import ModelConfig, WorldModel
from causal_wm.runtime import keep_freed_memory, native_bf16, training_autocast
from causal_wm.train import TrainConfig, rollout_loss


def hardware(device: torch.device | None = None) -> str:
    cpu = f"{describe()}, torch {torch.__version__} with {torch.get_num_threads()} threads"
    return cpu if device is None or device.type == "cpu" else f"{torch.cuda.get_device_name(device)} (GPU); host: {cpu}"


def matmul_flops_per_second(size: int, repeats: int, device: torch.device, dtype=torch.float32) -> float:
    """FLOP/s of a (size x size) @ (size x size) matmul in ``dtype`` (default float32, PyTorch's), best of
    ``repeats``."""
    a, b = torch.randn(size, size, device=device, dtype=dtype), torch.randn(size, size, device=device, dtype=dtype)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def synchronised(step, device: torch.device):
    """``step`` made to return only when the GPU has finished it."""

    def run() -> None:
        step()
        torch.cuda.synchronize(device)

    return run


class PlainEncoder(nn.Module):
    """C-SWM's object extractor and object MLP as plain modules in PyTorch's default (channels-first) layout, with the
    layers and weights of the world model's `ObjectExtractorCNN`."""

    def __init__(self, like: ObjectExtractorCNN):
        super().__init__()
        self.extractor = nn.Sequential(*(copy.deepcopy(m) for m in like.extractor)).to(
            memory_format=torch.contiguous_format
        )
        self.object_encoder = copy.deepcopy(like.object_encoder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> slots (B, K, D)."""
        return self.object_encoder(self.extractor(x).flatten(2))


class PlainCSWMStep:
    """C-SWM's training step written the straightforward way (see the module docstring)."""

    def __init__(
        self,
        model: WorldModel,
        transitions: int,
        image_size: int,
        generator: torch.Generator,
        device,
        precision: str = "fp32",
    ):
        c = model.config
        self.precision, self.device = precision, torch.device(device)
        self.encoder = PlainEncoder(model.encoder).to(device)
        self.transition = DenseGatedTransition(c.slot_dim, c.hidden, 4).to(device)
        self.params = list(self.encoder.parameters()) + list(self.transition.parameters())
        self.opt = torch.optim.Adam(self.params, lr=1e-3)
        shape = (transitions, c.history, image_size, image_size, 3)
        self.obs = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        self.next_obs = torch.randint(0, 256, shape, dtype=torch.uint8, generator=generator)
        self.action = torch.zeros(transitions, c.num_slots, 4)
        pushed = torch.randint(0, c.num_slots, (transitions,), generator=generator)
        self.action[torch.arange(transitions), pushed, torch.randint(0, 4, (transitions,), generator=generator)] = 1
        self.perm = torch.randperm(transitions, generator=generator)
        self.obs, self.next_obs, self.action, self.perm = (
            t.to(device) for t in (self.obs, self.next_obs, self.action, self.perm)
        )
        self.transitions = transitions

    @staticmethod
    def to_input(frames: torch.Tensor) -> torch.Tensor:
        """(B, history, H, W, 3) uint8 -> (B, 3 history, H, W) float in [0, 1]."""
        return frames.permute(0, 1, 4, 2, 3).flatten(1, 2).float() / 255.0

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        with training_autocast(self.precision, self.device):
            state = self.encoder(self.to_input(self.obs)).float()  # (B, K, D)
            next_state = self.encoder(self.to_input(self.next_obs)).float()
            delta, _ = self.transition(state, self.action)
            energy = lambda a, b: 0.5 / 0.5**2 * (a - b).pow(2).sum((1, 2))  # noqa: E731  (C-SWM, sigma 0.5)
            positive = energy(state + delta.float(), next_state)
            negative = energy(state[self.perm], next_state)
            loss = positive.mean() + torch.relu(1.0 - negative).mean()
        loss.backward()
        self.opt.step()


class WorldModelStep:
    """`causal_wm.train.rollout_loss` + backward + Adam on random frames, as `causal-wm train` runs it."""

    def __init__(
        self,
        model: WorldModel,
        windows: int,
        rollout: int,
        image_size: int,
        generator: torch.Generator,
        device,
        precision: str = "fp32",
    ):
        c = model.config
        self.model = model.to(device)
        self.device = torch.device(device)
        self.cfg = TrainConfig(encoder="cnn", batch_size=windows, rollout_steps=rollout, precision=precision)
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        frames = rollout + 1 + c.history - 1
        self.batch = {
            "frames": torch.randint(
                0, 256, (windows, frames, image_size, image_size, 3), dtype=torch.uint8, generator=generator
            ),
            "states": torch.rand(windows, rollout + 1, c.num_slots, c.num_features, generator=generator),
            "actions": torch.randint(0, 1 + 4 * c.num_slots, (windows, rollout), generator=generator),
            "num_objects": torch.full((windows,), c.num_slots),
        }
        self.batch = {k: v.to(device) for k, v in self.batch.items()}
        self.gen = torch.Generator(device=device).manual_seed(1)
        self.transitions = windows * rollout

    def __call__(self) -> None:
        self.opt.zero_grad(set_to_none=True)
        with training_autocast(self.cfg.precision, self.device):
            loss = rollout_loss(self.model, self.batch, self.cfg, self.gen)["loss"]
        loss.backward()
        self.opt.step()


def count_flops(step) -> int:
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="8 windows of 32x32 frames and few repeats, seconds")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2, the training CPU)")
    parser.add_argument("--repeats", type=int, default=12, help="timed steps per row (default 12)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda: where both steps run")
    parser.add_argument("--no-bf16", action="store_true", help="leave out the bfloat16 rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    keep_freed_memory()
    windows, image_size, warmup, repeats = (8, 32, 1, 2) if args.smoke else (64, 64, 2, args.repeats)
    rollout = 5
    transitions = windows * rollout
    print(f"hardware: {hardware(device)}")
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    config = ModelConfig(encoder="cnn", num_slots=5, image_size=image_size)
    steps = {
        "plain C-SWM step": PlainCSWMStep(WorldModel(config), transitions, image_size, generator, device),
        "causal-wm, 1-step windows": WorldModelStep(WorldModel(config), transitions, 1, image_size, generator, device),
        "causal-wm, default 5-step windows": WorldModelStep(
            WorldModel(config), windows, rollout, image_size, generator, device
        ),
    }
    bf16 = not args.no_bf16 and native_bf16(device)
    if bf16:
        steps["plain C-SWM step, bf16"] = PlainCSWMStep(
            WorldModel(config), transitions, image_size, generator, device, "bf16"
        )
        steps["causal-wm, default, bf16"] = WorldModelStep(
            WorldModel(config), windows, rollout, image_size, generator, device, "bf16"
        )
    elif not args.no_bf16:
        print("bfloat16 rows left out: this device has no native bfloat16 (AVX512-BF16, AMX or a bf16 GPU)")
    transitions_of = {name: step.transitions for name, step in steps.items()}
    flops = {name: count_flops(step) for name, step in steps.items()}
    if device.type == "cuda":  # time whole steps: wait for the GPU's queue after each
        steps = {name: synchronised(step, device) for name, step in steps.items()}
    times = dict(zip(steps, time_interleaved(list(steps.values()), warmup, repeats), strict=True))
    size = 512 if args.smoke else 2048
    peaks = {"fp32": matmul_flops_per_second(size, 5, device)}
    if bf16:
        peaks["bf16"] = matmul_flops_per_second(size, 5, device, torch.bfloat16)
    print(
        f"one training step, {transitions} scored transitions (K=5, D={config.slot_dim}, hidden {config.hidden}, "
        f"{image_size}x{image_size} frames, history {config.history}), median of {repeats}; matmul peak "
        + ", ".join(f"{p / 1e9:.0f} GFLOP/s ({name})" for name, p in peaks.items())
    )
    header = (
        f"{'ms/step':>8} {'IQR ms':>7} {'transitions/s':>14} {'vs plain':>9} {'same precision':>15} "
        f"{'GFLOP/step':>11} {'of peak':>8}"
    )
    print(f"{'step':36} {header}")
    rows, base = [], statistics.median(times["plain C-SWM step"])
    for name, seconds in times.items():
        precision = "bf16" if name.endswith(", bf16") else "fp32"
        plain = "plain C-SWM step" + (", bf16" if precision == "bf16" else "")
        median, quartiles = statistics.median(seconds), statistics.quantiles(seconds, n=4)
        row = dict(
            step=name,
            precision=precision,
            ms_per_step=1e3 * median,
            ms_iqr=1e3 * (quartiles[2] - quartiles[0]),
            transitions_per_second=transitions_of[name] / median,
            speedup_vs_plain=base / median,
            speedup_vs_plain_same_precision=statistics.median(times[plain]) / median,
            gflop_per_step=flops[name] / 1e9,
            fraction_of_matmul_peak=flops[name] / median / peaks[precision],
        )
        rows.append(row)
        print(
            f"{name:36} {row['ms_per_step']:>8.0f} {row['ms_iqr']:>7.0f} {row['transitions_per_second']:>14,.0f} "
            f"{row['speedup_vs_plain']:>8.2f}x {row['speedup_vs_plain_same_precision']:>14.2f}x "
            f"{row['gflop_per_step']:>11.2f} {row['fraction_of_matmul_peak']:>8.1%}"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "hardware": hardware(device),
            "matmul_gflops": peaks["fp32"] / 1e9,
            "matmul_gflops_by_precision": {name: p / 1e9 for name, p in peaks.items()},
            "transitions_per_step": transitions,
            "rows": rows,
            "time": time.strftime("%Y-%m-%d %H:%M"),
        }
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
