"""Benchmark `causal-wm generate`: end-to-end frames/s (HDF5 write included), peak memory as episodes grow, and
byte identity of the output for 1 and 2 workers.

    python analysis/benchmarks/generate_throughput.py            # the full benchmark (about 2 minutes)
    python analysis/benchmarks/generate_throughput.py --smoke    # seconds

Each measurement runs the real CLI in a fresh subprocess, which reports its own and its workers' peak RSS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from hardware import describe

_RUNNER = """
import json, resource, sys, time
from causal_wm.cli import main
t = time.perf_counter()
code = main(sys.argv[1:])
seconds = time.perf_counter() - t
# VmHWM is this process image's own peak; ru_maxrss of RUSAGE_SELF would carry over the peak of the process that
# forked and exec'd us (Linux keeps it across execve).
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"code": code, "seconds": seconds, "parent_rss_mb": hwm / 1024,
                  "worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def run_generate(out: Path, episodes: int, steps: int, workers: int, scene: str, extra: list[str]) -> dict:
    cmd = [
        sys.executable,
        "-c",
        _RUNNER,
        "generate",
        "--scene",
        scene,
        "--episodes",
        str(episodes),
        "--steps",
        str(steps),
        "--num-objects",
        "5",
        "--image-size",
        "64",
        "--seed",
        "0",
        "--out",
        str(out),
        "--workers",
        str(workers),
        "--quiet",
        "--overwrite",
        *extra,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"generate failed: {proc.stderr.strip().splitlines()[-1]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(
        episodes=episodes,
        steps=steps,
        workers=workers,
        scene=scene,
        extra=" ".join(extra),
        frames_per_second=episodes * steps / result["seconds"],
        file_mb=out.stat().st_size / 2**20,
    )
    return result


def same_bytes(a: Path, b: Path) -> bool:
    with h5py.File(a) as fa, h5py.File(b) as fb:
        keys = sorted(fa)
        if keys != sorted(fb):
            return False
        for k in keys:
            for e in range(0, fa[k].shape[0], 64):
                if not np.array_equal(fa[k][e : e + 64], fb[k][e : e + 64]):
                    return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    args = parser.parse_args()
    small, large, steps = (40, 120, 20) if args.smoke else (500, 5000, 50)
    print(f"hardware: {describe()}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for scene in ["springs"] if args.smoke else ["springs", "charges", "billiards", "pushing"]:
            rows.append(run_generate(tmp / f"{scene}.h5", small * 2, steps, 2, scene, []))
        rows.append(run_generate(tmp / "noinfl.h5", small * 2, steps, 2, "springs", ["--influence-steps", "0"]))
        rows.append(run_generate(tmp / "states.h5", small * 2, steps, 2, "springs", ["--no-images"]))
        w1 = run_generate(tmp / "w1.h5", small, steps, 1, "springs", [])
        w2 = run_generate(tmp / "w2.h5", small, steps, 2, "springs", [])
        identical = same_bytes(tmp / "w1.h5", tmp / "w2.h5")
        big = run_generate(tmp / "big.h5", large, steps, 2, "springs", [])
        rows += [w1, w2, big]
    print(
        f"{'scene':10} {'options':22} {'workers':>7} {'episodes':>8} {'frames/s':>10} {'parent MB':>9} "
        f"{'worker MB':>9} {'file MB':>8}"
    )
    for r in rows:
        print(
            f"{r['scene']:10} {r['extra'] or 'defaults':22} {r['workers']:>7} {r['episodes']:>8} "
            f"{r['frames_per_second']:>10,.0f} {r['parent_rss_mb']:>9.0f} {r['worker_rss_mb']:>9.0f} "
            f"{r['file_mb']:>8.1f}"
        )
    growth = max(big["parent_rss_mb"] - w2["parent_rss_mb"], big["worker_rss_mb"] - w2["worker_rss_mb"])
    print(f"same bytes with 1 and 2 workers: {identical}")
    print(f"peak RSS growth from {small} to {large} episodes: {growth:+.0f} MB")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "hardware": describe(),
                    "rows": rows,
                    "identical_1_vs_2_workers": identical,
                    "rss_growth_mb": growth,
                    "time": time.strftime("%Y-%m-%d %H:%M"),
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
