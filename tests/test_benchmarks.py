"""Every benchmark script runs end to end in its --smoke mode and prints the hardware next to its figures."""

import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "analysis" / "benchmarks"


@pytest.mark.parametrize("script", ["generate_throughput.py", "transition_step.py"])
def test_benchmark_smoke(script, tmp_path):
    out = tmp_path / "result.json"
    proc = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cores" in proc.stdout and out.exists()
