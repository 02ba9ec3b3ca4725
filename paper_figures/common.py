"""Shared style for the paper figures: a colour-blind-safe palette (Okabe & Ito) and saving to PNG and PDF."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

plt.rcParams.update(
    {
        "font.size": 10,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "legend.fontsize": 8,
        "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
        "axes.spines.top": False,
        "axes.spines.right": False,
        "savefig.dpi": 150,
        "savefig.bbox": "tight",
    }
)


def save(fig, out: str | os.PathLike) -> list[Path]:
    """Save ``fig`` as OUT.png and OUT.pdf (atomically: temporary name, then rename) and close it."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        final = out.with_suffix(f".{ext}")
        tmp = final.with_name(f".{final.stem}.tmp.{ext}")
        fig.savefig(tmp)
        tmp.replace(final)
        paths.append(final)
    plt.close(fig)
    return paths
