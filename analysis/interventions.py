"""The intervention suite: for each trained run, a set of do()s in the simulator and in the model, with the agreement
of their effects and the dowhy gcm comparison of the learned and the true graph. Writes OUT.json and OUT.md.

Each (run, do) cell is saved under OUT_cells/ as it finishes and skipped on a rerun. The default suite: a mass change,
a push (velocity change), removing an object and, on springs, cutting a spring; on charges, flipping a charge.

    python analysis/interventions.py --runs runs/springs5__state__0 runs/springs5__state__1 --out results/interventions
    python analysis/interventions.py --smoke
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from causal_wm import metrics  # noqa: E402
from causal_wm.config import stem_path, write_json, write_text  # noqa: E402
from causal_wm.interventions import InterventionError, intervene_report  # noqa: E402

SUITE = {
    "springs": ["mass[0]*=3", "velocity[0]+=(30,0)", "remove[0]", "cut_spring[SPRING]"],
    "charges": ["mass[0]*=3", "velocity[0]+=(30,0)", "remove[0]", "charge[0]*=-1"],
    "billiards": ["mass[0]*=3", "velocity[0]+=(30,0)", "remove[0]"],
    "pushing": ["mass[0]*=3", "velocity[0]+=(30,0)", "remove[0]"],
}


def first_spring(run: Path, seed: int) -> str | None:
    """A spring pair present in every sampled episode is not guaranteed; take the first episode's first spring."""
    import envs
    from causal_wm.interventions import _training_config
    from causal_wm.train import load_run

    model = load_run(run)
    config = _training_config(model).get("scene_config", {})
    scene = envs.make_scene("springs", **{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
    spec = scene.sample_spec(np.random.default_rng(seed))
    return None if len(spec.springs) == 0 else f"{spec.springs[0][0]},{spec.springs[0][1]}"


def run_cell(run: Path, do_text: str, out: Path, episodes: int, horizon: int, seed: int, gcm: bool) -> dict | None:
    if out.exists():
        return json.loads(out.read_text())
    try:
        # cut_spring must name a spring of every episode; the suite uses one episode for it
        n_eps = 1 if do_text.startswith("cut_spring") else episodes
        report = intervene_report(run, do_text, episodes=n_eps, horizon=horizon, seed=seed, gcm=gcm)
    except InterventionError as err:
        print(f"  skipped do({do_text}): {err}")
        return None
    e = report["effects"]
    row = {k: e[k] for k in ("do", "property", "pearson", "spearman", "sign_agreement", "pairs", "episodes")}
    row["model_effect_unit"] = e.get("model_effect_unit", "latent distance")
    if "gcm" in report:
        g = report["gcm"]
        row.update(
            ace_abs_error=g["ace_abs_error"],
            learned_edges=g["learned"]["edges"],
            true_edges=g["true"]["edges"],
            falsified=g.get("falsification", {}).get("falsified"),
            true_falsified=g.get("falsification_true", {}).get("falsified"),
        )
        for key, name in (("falsification", "violated"), ("falsification_true", "true_violated")):
            f = g.get(key, {})
            if f.get("tests"):
                row[name] = f["violations"] / f["tests"]  # fraction of local Markov conditions violated
            if f.get("edges_checked"):
                row[name.replace("violated", "superfluous")] = len(f["superfluous_edges"]) / f["edges_checked"]
    row["simulator_effects"] = [
        x for ep in e["per_episode"] for i, x in enumerate(ep["simulator_effect"]) if i not in ep["intervened"]
    ]
    row["model_effects"] = [
        x for ep in e["per_episode"] for i, x in enumerate(ep["model_effect"]) if i not in ep["intervened"]
    ]
    write_json(out, row)
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", type=Path, help="trained run directories")
    p.add_argument("--out", type=Path, help="output stem: OUT.json, OUT.md and OUT_cells/")
    p.add_argument("--episodes", type=int, default=8)
    p.add_argument("--horizon", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-gcm", action="store_true")
    p.add_argument("--smoke", action="store_true", help="a tiny suite on a tiny run in a temporary directory")
    args = p.parse_args(argv)
    if args.smoke:
        from causal_wm.cli import main as cli
        from causal_wm.config import GenerateConfig
        from causal_wm.generate import generate

        tmp = Path(tempfile.mkdtemp(prefix="interventions_smoke_"))
        generate(GenerateConfig(episodes=6, steps=14, num_objects="3", images=False, influence_steps=0), tmp / "t.h5")
        train = ["train", "--data", str(tmp / "t.h5"), "--encoder", "state", "--out", str(tmp / "run"), "--quiet"]
        cli(train + ["--steps", "2", "--batch-size", "4", "--rollout-steps", "2", "--hidden", "16"])
        args.runs, args.out, args.episodes, args.horizon = [tmp / "run"], tmp / "suite", 2, 3
    if not args.runs or args.out is None:
        p.error("--runs and --out are required (or --smoke)")
    from causal_wm.train import load_run

    table: dict = {"runs": [str(r) for r in args.runs], "interventions": {}}
    for run in args.runs:
        scene = load_run(run).scene
        for do_text in SUITE.get(scene, SUITE["billiards"]):
            if "SPRING" in do_text:
                pair = first_spring(run, args.seed)
                if pair is None:
                    continue
                do_text = do_text.replace("SPRING", pair)
            key = do_text.split("[")[0]
            name = f"{run.name}__{do_text}".replace("/", "_").replace(",", "-").replace("(", "").replace(")", "")
            row = run_cell(
                run,
                do_text,
                Path(f"{args.out}_cells") / f"{name}.json",
                args.episodes,
                args.horizon,
                args.seed,
                not args.no_gcm,
            )
            if row is not None:
                table["interventions"].setdefault(key, []).append(row)
    lines = [
        "| do() | runs | Pearson | Spearman | sign agreement | |ACE learned − true| | falsified (learned / true) "
        "| conditions violated (learned / true) | edges superfluous (learned / true) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    sim_all, model_all = [], []
    for rows in table["interventions"].values():

        def stat(k, rows=rows):
            vals = [r[k] for r in rows if r.get(k) is not None and np.isfinite(r[k])]
            if not vals:
                return "–"
            mean, lo, hi = metrics.mean_ci(vals)
            return f"{mean:.3f}" if not np.isfinite(lo) else f"{mean:.3f} ± {(hi - lo) / 2:.3f}"

        def falsified(k, rows=rows):
            vals = [r[k] for r in rows if r.get(k) is not None]
            return f"{sum(vals)}/{len(vals)}" if vals else "–"

        lines.append(
            f"| {rows[0]['do']} | {len(rows)} | {stat('pearson')} | {stat('spearman')} | "
            f"{stat('sign_agreement')} | {stat('ace_abs_error')} | {falsified('falsified')} / "
            f"{falsified('true_falsified')} | {stat('violated')} / {stat('true_violated')} | "
            f"{stat('superfluous')} / {stat('true_superfluous')} |"
        )
        for r in rows:
            sim_all += r["simulator_effects"]
            model_all += [np.nan if v is None else v for v in r["model_effects"]]
    sim_v, mod_v = np.array(sim_all, float), np.array(model_all, float)
    ok = np.isfinite(sim_v) & np.isfinite(mod_v)
    if ok.sum() >= 3:
        from scipy.stats import spearmanr

        table["pooled_spearman"] = float(spearmanr(sim_v[ok], mod_v[ok])[0])
        lines.append(
            f"\nPooled over the suite: Spearman {table['pooled_spearman']:.3f} over {int(ok.sum())} "
            "(episode, object) effects."
        )
    rows_all = [r for rows in table["interventions"].values() for r in rows]
    units = sorted({r.get("model_effect_unit", "latent distance") for r in rows_all})
    if units:
        lines.append(f"\nModel effects measured in: {', '.join(units)} (simulator: displacement in arena units).")
    write_json(stem_path(args.out, ".json"), table)
    md = "\n".join(lines) + "\n"
    write_text(stem_path(args.out, ".md"), md)
    print(md)
    print(f"wrote {stem_path(args.out, '.json')} and {stem_path(args.out, '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
