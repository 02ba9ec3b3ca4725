"""Summarise eval.json files of several seeds as mean ± std (a Markdown table).

python analysis/summarize_runs.py runs/springs5__cnn__* runs/springs5__state__*
python analysis/summarize_runs.py --smoke      # a self-check on synthetic eval.json files
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def group_runs(runs: list[Path]) -> dict[str, list[dict]]:
    """eval.json contents grouped by run name without its seed (``name__SEED`` -> ``name``)."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        path = run / "eval.json"
        if not path.exists():
            raise SystemExit(f"{path} does not exist (run causal-wm evaluate first)")
        groups[re.sub(r"__\d+$", "", run.name)].append(json.loads(path.read_text()))
    return groups


def fmt(values: list[float]) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.3f}"


def table(groups: dict[str, list[dict]]) -> str:
    horizons = sorted({h for evals in groups.values() for e in evals for h in e["hits_at_1"]}, key=int)
    head = ["runs", "seeds", *[f"Hits@1 {h}" for h in horizons], *[f"MRR {h}" for h in horizons], "FG-ARI"]
    head += ["FG-ARI (decoder)"]
    head += ["probe px", "matched probe px"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, evals in sorted(groups.items()):
        row = [name, str(len(evals))]
        row += [fmt([e["hits_at_1"][h] for e in evals]) for h in horizons]
        row += [fmt([e["mrr"][h] for e in evals]) for h in horizons]
        for key in ("fg_ari", "fg_ari_decoder", "probe_position_error_px", "probe_matched_error_px"):
            row.append(fmt([e[key] for e in evals]) if all(key in e for e in evals) else "–")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="*", type=Path, help="run directories holding eval.json")
    parser.add_argument("--smoke", action="store_true", help="summarise two synthetic runs")
    args = parser.parse_args()
    if args.smoke:
        with tempfile.TemporaryDirectory() as tmp:
            for seed, hits in ((0, 0.5), (1, 0.7)):
                run = Path(tmp) / f"demo__cnn__{seed}"
                run.mkdir()
                (run / "eval.json").write_text(json.dumps({"hits_at_1": {"1": hits}, "mrr": {"1": hits}}))
            print(table(group_runs(sorted(Path(tmp).iterdir()))))
        return
    if not args.runs:
        parser.error("give run directories (or --smoke)")
    print(table(group_runs(args.runs)))


if __name__ == "__main__":
    sys.exit(main())
