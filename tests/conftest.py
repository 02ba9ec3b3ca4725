"""Fixtures shared by several test modules."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def nri_files(tmp_path_factory) -> Path:
    """A directory with a state-only NRI-style pair train.h5 / test.h5 (x, y, vx, vy; no actions, no images), written
    by analysis/nri_springs.py as another simulator would; tests add their run directories next to them."""
    root = tmp_path_factory.mktemp("nri")
    script = str(ROOT / "analysis" / "nri_springs.py")
    for name, seed in (("train", 0), ("test", 1)):
        subprocess.run(
            [sys.executable, script, "--out", str(root / f"{name}.h5"), "--smoke", "--seed", str(seed)], check=True
        )
    return root
