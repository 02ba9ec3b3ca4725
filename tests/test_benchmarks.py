"""Every benchmark and analysis script runs end to end in its --smoke mode."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "script, expect",
    [
        ("analysis/benchmarks/generate_throughput.py", "cores"),
        ("analysis/benchmarks/transition_step.py", "cores"),
        ("analysis/benchmarks/train_step.py", "causal-wm, default 5-step windows"),
        ("analysis/benchmarks/probe_methods.py", "hidden 32 + contact channel: all four methods"),
        ("analysis/summarize_runs.py", "0.600 ± 0.141"),
        ("analysis/slot_init_check.py", "A vs B, same step"),
        ("analysis/one_step_dynamics.py", "ball contact"),
        ("analysis/contact_range.py", "in range, not touching"),
    ],
)
def test_script_smoke(script, expect, tmp_path):
    cmd = [sys.executable, str(ROOT / script), "--smoke"]
    if "benchmarks" in script:
        cmd += ["--out", str(tmp_path / "result.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert expect in proc.stdout
    if "benchmarks" in script:
        assert (tmp_path / "result.json").exists()
