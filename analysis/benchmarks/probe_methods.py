"""Benchmark `causal-wm probe`'s four edge-reading methods one at a time, for state models of several sizes.

    python analysis/benchmarks/probe_methods.py                           # 200 springs episodes (a few minutes)
    python analysis/benchmarks/probe_methods.py --data data/springs5_test.h5 --episodes 1000
    python analysis/benchmarks/probe_methods.py --smoke                   # seconds

The probe's arithmetic depends on the model's shape, not on its training, so each model is built fresh under a
fixed seed. A trained model and a fresh one of the same config took the same time within 8% (README), so the table
stands for trained runs. Models: the state
encoder at the default width (`--hidden 256`), at `--hidden 512` (the 2,500- and 7,500-step recipes of the README),
and at 512 with the contact channel (`--contact-channel --contact-range 16 --contact-lookahead 0.1`). Each method
runs `causal_wm.probe.extract` with the probe's defaults (every 5th step, 3 imagined steps, batches of 16 episodes)
on the same episodes; the table gives seconds and the time scaled to 1,000 episodes. `causal-wm probe` also
probes 200 training episodes to choose thresholds, so its full run takes about 1.2 times the sum of a row.
Without ``--data`` a springs file of ``--episodes`` states-only episodes is generated in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from hardware import describe

from causal_wm.model import ModelConfig, WorldModel
from causal_wm.probe import METHODS, ProbeConfig, extract
from causal_wm.runtime import keep_freed_memory
from causal_wm.train import EpisodeArrays, type_encoding

MODELS = [
    dict(hidden=256),
    dict(hidden=512),
    dict(hidden=512, contact_channel=True, contact_range=16.0, contact_lookahead=0.1),
]


def label(options: dict) -> str:
    return f"state, hidden {options['hidden']}" + (" + contact channel" if options.get("contact_channel") else "")


def hardware() -> str:
    return f"{describe()}, torch {torch.__version__} with {torch.get_num_threads()} threads"


def build(data: EpisodeArrays, **options) -> WorldModel:
    """A fresh state model (the recipe's decoder and type code) with the file's feature statistics, as
    `causal-wm train` sets them up."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        encoder="state", num_slots=data.states.shape[2], decoder=True, **type_encoding(data), **options
    )  # the type one-hot as `causal-wm train` derives it, so slots have the trained models' size
    mean, std = data.feature_stats()
    model = WorldModel(cfg, feature_mean=mean, feature_std=std)
    model.arena_size = data.arena
    return model.eval()


def generate(path: Path, episodes: int, steps: int) -> None:
    cmd = ["causal-wm", "generate", "--scene", "springs", "--num-objects", "5", "--episodes", str(episodes)]
    cmd += ["--steps", str(steps), "--no-images", "--seed", "1", "--out", str(path), "--quiet"]
    subprocess.run(cmd, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="8 episodes of 12 frames and hidden 32, seconds")
    parser.add_argument("--data", type=Path, help="a springs (or any state) file; default: generate one")
    parser.add_argument("--episodes", type=int, default=200, help="episodes to probe (default 200)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (default 2)")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    if args.episodes < 1 or args.threads < 1:
        parser.error("--episodes and --threads must be >= 1")
    torch.set_num_threads(args.threads)
    keep_freed_memory()
    episodes = 8 if args.smoke else args.episodes
    models = [dict(options, hidden=32) for options in MODELS] if args.smoke else MODELS
    print(f"hardware: {hardware()}")
    with tempfile.TemporaryDirectory() as tmp:
        path = args.data
        if path is None:
            path = Path(tmp) / "springs.h5"
            generate(path, episodes, 12 if args.smoke else 50)
        data = EpisodeArrays(str(path), images=False, episodes=slice(0, episodes))
        episodes = data.num_episodes
        print(f"{episodes} episodes of {data.steps} frames from {path if args.data else 'a generated springs file'}")
        print(f"slots: {type_encoding(data)['num_types']} type dimensions + 8 learned (as causal-wm train makes them)")
        rows = []
        for options in models:
            name, model = label(options), build(data, **options)
            for method in METHODS:
                start = time.perf_counter()
                extract(model, data, ProbeConfig(methods=(method,)))
                seconds = time.perf_counter() - start
                rows.append(
                    dict(model=name, hidden=options["hidden"], slot_size=model.config.latent_dim, method=method,
                         seconds=seconds)
                )  # fmt: skip
    print(f"{'model':38} {'method':20} {'seconds':>8} {'per 1,000 episodes':>19}")
    for r in rows:
        r["seconds_per_1000_episodes"] = r["seconds"] * 1000 / episodes
        print(f"{r['model']:38} {r['method']:20} {r['seconds']:>8.2f} {r['seconds_per_1000_episodes']:>18.1f}s")
    for name in map(label, models):
        total = sum(r["seconds_per_1000_episodes"] for r in rows if r["model"] == name)
        print(f"{name}: all four methods {total:.0f} s per 1,000 episodes (x 1.2 with the threshold episodes)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"hardware": hardware(), "episodes": episodes, "rows": rows, "time": time.strftime("%Y-%m-%d %H:%M")}
        args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    sys.exit(main())
