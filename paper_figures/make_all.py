"""Regenerate every figure from saved results (never trains): `causal-wm figures` runs this.

Given a probed run directory (probe.json, probe_scores.npz, optionally intervene.json) and the dataset it was probed
on, writes roc_curves, learned_graph and intervention_scatter (PNG and PDF) under OUT. Figures whose inputs are missing
are skipped with a message saying which command makes them.

    python paper_figures/make_all.py --run quickstart/run --data quickstart/data/test.h5 --out paper_figures/out
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def make_all(run: str, data: str, out: str, object_counts: str | None = None) -> list[Path]:
    from paper_figures import intervention_scatter, learned_graph, roc_curves, rollouts, slot_masks
    from paper_figures import object_counts as counts_figure

    run_dir, out_dir = Path(run), Path(out)
    made: list[Path] = []
    if (run_dir / "probe_scores.npz").exists():
        made += roc_curves.plot(str(run_dir / "probe_scores.npz"), str(out_dir / "roc_curves"))
        made += learned_graph.plot(run, data, 0, str(out_dir / "learned_graph"))
    else:
        print(f"skipping roc_curves and learned_graph: no {run_dir / 'probe_scores.npz'} (run `causal-wm probe`)")
    examples = run_dir / "examples.npz"
    if examples.exists():
        made += rollouts.plot(str(examples), str(out_dir / "rollouts"))
        if "slot_masks" in np.load(examples).files:
            made += slot_masks.plot(str(examples), str(out_dir / "slot_masks"))
    else:
        print(f"skipping rollouts and slot_masks: no {examples} (run `causal-wm evaluate`)")
    if (run_dir / "intervene.json").exists():
        made += intervention_scatter.plot([str(run_dir / "intervene.json")], str(out_dir / "intervention_scatter"))
    else:
        print(f"skipping intervention_scatter: no {run_dir / 'intervene.json'} (run `causal-wm intervene`)")
    if object_counts and Path(object_counts).exists():
        made += counts_figure.plot(object_counts, str(out_dir / "object_counts"))
    elif object_counts:
        print(f"skipping object_counts: no {object_counts} (run analysis/object_counts.py)")
    return made


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="quickstart/run", help="probed run directory (default quickstart/run)")
    p.add_argument("--data", default="quickstart/data/test.h5", help="the dataset it was probed on")
    p.add_argument("--out", default="paper_figures/out", help="output directory (default paper_figures/out)")
    p.add_argument("--object-counts", help="summary.json of analysis/object_counts.py (optional)")
    args = p.parse_args(argv)
    if not Path(args.run).is_dir():
        p.error(f"{args.run} is not a run directory")
    made = make_all(args.run, args.data, args.out, args.object_counts)
    print("\n".join(map(str, made)) or "no figures made")
    return 0


if __name__ == "__main__":
    sys.exit(main())
