"""Experiment scripts and figures: --help and --smoke of each script, figures from saved results only, and the
errors missing inputs get."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from causal_wm.cli import main
from envs.scene import PALETTE

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = [
    "analysis/edge_recovery.py",
    "analysis/nri_springs.py",
    "analysis/object_counts.py",
    "analysis/interventions.py",
    "analysis/supervised_transition.py",
    "analysis/keypoint_colours.py",
    "analysis/one_step_dynamics.py",
    "analysis/regression_window.py",
    "analysis/slot_autoencoder.py",
    "analysis/slot_rounds.py",
    "analysis/falsification_check.py",
    "paper_figures/roc_curves.py",
    "paper_figures/learned_graph.py",
    "paper_figures/intervention_scatter.py",
    "paper_figures/make_all.py",
    "paper_figures/object_counts.py",
    "paper_figures/rollouts.py",
    "paper_figures/slot_masks.py",
]


def run(*args):
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True)


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_has_help(script):
    out = run(script, "--help")
    assert out.returncode == 0 and "usage" in out.stdout


def test_edge_recovery_smoke_writes_a_table():
    out = run("analysis/edge_recovery.py", "--smoke")
    assert out.returncode == 0, out.stderr
    assert "| regression (baseline) |" in out.stdout and "| jacobian |" in out.stdout
    written = out.stdout.strip().splitlines()[-1].split()[1]
    table = json.loads(Path(written).read_text())
    assert set(table["methods"]) >= {"gates", "jacobian"} and len(table["runs"]) == 2
    auroc = table["methods"]["gates"]["adjacency_auroc"]
    assert auroc["n"] == 2 and 0 <= auroc["mean"] <= 1


def test_object_counts_smoke_resumes_from_saved_cells(tmp_path):
    out = tmp_path / "oc"
    first = run("analysis/object_counts.py", "--smoke", "--out", out)
    assert first.returncode == 0, first.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["counts"]) == {"2", "6"}  # 6 objects: never seen in training (3-5)
    assert 0 <= summary["counts"]["6"]["hits_at_1_1"]["mean"] <= 1
    assert summary["counts"]["6"]["shd_gates"]["mean"] >= 0  # each method's SHD at its own training threshold
    assert (out / "summary.csv").read_text().startswith("count,metric,mean,ci_low,ci_high,n")
    cell = out / "cells" / "0_6.json"
    cell.write_text(json.dumps({**json.loads(cell.read_text()), "auroc": 0.123}))
    again = run("analysis/object_counts.py", "--smoke", "--out", out)
    assert again.returncode == 0 and "trained" not in again.stdout  # runs and cells are reused, not redone
    assert json.loads((out / "cells" / "0_6.json").read_text())["auroc"] == 0.123


def test_slot_autoencoder_smoke_and_its_output_rules(tmp_path):
    smoke = run("analysis/slot_autoencoder.py", "--smoke")
    assert smoke.returncode == 0 and "smoke OK" in smoke.stdout, smoke.stderr
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate

    common = dict(steps=4, num_objects="2-3", image_size=32, influence_steps=0)
    generate(GenerateConfig(episodes=3, seed=0, **common), tmp_path / "img.h5", progress=False)
    generate(GenerateConfig(episodes=3, seed=0, images=False, **common), tmp_path / "states.h5", progress=False)
    args = ["analysis/slot_autoencoder.py", "--data", tmp_path / "img.h5", "--test", tmp_path / "img.h5"]
    args += ["--steps", "2", "--eval-every", "1", "--batch", "2", "--slot-dim", "4", "--hidden", "8", "--threads", "1"]
    out = tmp_path / "ae.json"
    out.write_text("my notes")
    refused = run(*args, "--out", out)
    assert refused.returncode == 2 and "not a slot_autoencoder.py result" in refused.stderr
    assert out.read_text() == "my notes"
    assert run(*args, "--out", out, "--overwrite").returncode == 0
    first = json.loads(out.read_text())
    assert first["complete"] and [r["step"] for r in first["curve"]] == [1, 2]
    assert all(-1 <= r["fg_ari_decoder"] <= 1 and -1 <= r["fg_ari_attention"] <= 1 for r in first["curve"])
    again = run(*args, "--out", out)
    assert again.returncode == 0 and "is complete" in again.stdout and json.loads(out.read_text()) == first
    unsaved = run(*args, "--out", out, "--save", tmp_path / "ae.pt")  # a complete run whose weights were never kept
    assert unsaved.returncode == 2 and "was never written" in unsaved.stderr and not (tmp_path / "ae.pt").exists()
    states = run(*args[:4], tmp_path / "states.h5", *args[5:], "--out", tmp_path / "s.json")
    assert states.returncode != 0 and "image file is needed" in states.stderr and not (tmp_path / "s.json").exists()
    assert run(*args, "--recon-foreground", "-1").returncode == 2
    bad_grid = run(*args, "--resolution", "12", "--out", tmp_path / "g.json")
    assert bad_grid.returncode != 0 and "--resolution must be 32 / 2**n" in bad_grid.stderr
    assert not (tmp_path / "g.json").exists()
    fine = run(*args, "--resolution", "16", "--implicit", "--save", tmp_path / "g.pt", "--out", tmp_path / "g.json")
    assert fine.returncode == 0, fine.stderr
    assert json.loads((tmp_path / "g.json").read_text())["settings"]["resolution"] == 16
    rounds = run("analysis/slot_rounds.py", tmp_path / "g.pt", "--test", tmp_path / "img.h5", "--iters", "2")
    assert rounds.returncode == 0, rounds.stderr  # rebuilt with its 16x16 grid, or its weights would not load


def test_keypoint_colours_smoke_prints_a_type_by_slot_table():
    out = run("analysis/keypoint_colours.py", "--smoke")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("type  objects"))
    rows = [line.split() for line in lines[header + 1 :] if line.strip()[:1].isdigit()]
    assert rows and all(len(r) == 2 + 4 for r in rows)  # type, objects, one entry per slot (--num-slots 4)
    shares = np.array([[float(v) for v in r[2:]] for r in rows])
    assert (shares >= 0).all() and (shares.sum(1) <= 1 + 1e-6).all()  # the maps share each pixel with the background
    assert "decoder colours, by slot" in out.stdout
    # each type's colour as drawn: springs draws type t in PALETTE[t]; edge pixels blend into the background
    (line,) = [line for line in lines if line.startswith("colours on the frames, by type (RGB):")]
    drawn = ast.literal_eval(line.split(":", 1)[1].strip())
    assert len(drawn) == len(rows)
    for t, colour in enumerate(drawn):
        if colour is not None:
            assert np.abs(np.array(colour) - PALETTE[t % len(PALETTE)]).max() <= 40, (t, colour)


def test_interior_drops_object_rims(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "analysis"))
    from slot_autoencoder import interior

    ids = np.zeros((1, 8, 8), dtype=np.int64)
    ids[0, 1:7, 1:7] = 1
    ids[0, 3, 3] = 2  # a one-pixel object has no interior, and its neighbours become rim
    out = interior(ids)[0]
    assert out[3, 3] == 0 and out[2, 3] == out[3, 2] == out[4, 3] == out[3, 4] == 0
    assert out[2, 2] == out[5, 5] == 1 and out[1].sum() == out[:, 1].sum() == 0  # the outer ring is rim
    assert out.sum() == 16 - 5


def test_slot_rounds_failure_kinds_on_hand_built_masks(monkeypatch):
    """Frame 0: objects 1 and 2 (centroids 10 px apart) share slot 1 -> a merge; frame 1: object 1 spread over two
    slots -> a split; frame 2 scores 1 and is not a failure. Only frame 0's pair is merged."""
    monkeypatch.syspath_prepend(str(ROOT / "analysis"))
    from slot_rounds import failure_kinds

    ids = np.zeros((3, 20, 20), dtype=np.int64)
    ids[:, 2:5, 2:5] = 1  # centroid (3, 3)
    ids[:, 2:5, 12:15] = 2  # centroid (3, 13)
    ids[:, 14:17, 2:5] = 3  # centroid (15, 3)
    owner = np.zeros((3, 20, 20), dtype=np.int64)
    owner[0][ids[0] > 0] = 1
    owner[0][ids[0] == 3] = 2
    owner[1][ids[1] == 1] = 1
    owner[1, 2:5, 2:4] = 3  # two of object 1's three columns in slot 3: the largest share is 2/3 < 75%
    owner[1][ids[1] == 2] = 2
    owner[1][ids[1] == 3] = 4
    masks = np.eye(5)[owner].transpose(0, 3, 1, 2)  # (3, K=5, 20, 20) one-hot
    kinds = failure_kinds(ids, masks, np.array([0.5, 0.8, 1.0]))
    assert (kinds["merge"], kinds["split"], kinds["other"]) == (1, 1, 0)
    assert kinds["merged_pairs"] == 1 and kinds["merged_pair_px"] == pytest.approx(10.0)
    assert kinds["merged_pairs_near"] == 0.0  # 10 px > 2.5 radii of a 9-pixel object (2.5 * 1.69 px)
    assert kinds["any_pair_px"] == pytest.approx(12.0)  # median of 10, 12, 15.6 in each of the 3 frames


def test_slot_rounds_smoke_and_a_corrupt_model(tmp_path):
    out = run("analysis/slot_rounds.py", "--smoke")
    assert out.returncode == 0 and "smoke OK" in out.stdout, out.stdout + out.stderr
    assert "rounds: FG-ARI" in out.stdout and "below it:" in out.stdout
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    out = run("analysis/slot_rounds.py", str(bad))
    assert out.returncode == 1 and "is not a slot_autoencoder.py --save file" in out.stderr
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate

    data = tmp_path / "img.h5"
    generate(GenerateConfig(episodes=2, seed=0, steps=4, num_objects="2-3", image_size=32), data, progress=False)
    train = ["analysis/slot_autoencoder.py", "--data", data, "--test", data, "--steps", "1", "--batch", "2"]
    train += ["--slot-dim", "4", "--hidden", "8", "--eval-stride", "2", "--threads", "1", "--save", tmp_path / "m.pt"]
    assert run(*train).returncode == 0
    missing = run("analysis/slot_rounds.py", tmp_path / "m.pt", "--test", tmp_path / "gone.h5")
    assert missing.returncode == 2 and "gone.h5" in missing.stderr and "is not here" in missing.stderr


def test_falsification_check_smoke_keeps_the_true_graph_ahead_of_the_empty_one():
    out = run("analysis/falsification_check.py", "--smoke")
    assert out.returncode == 0 and "smoke OK" in out.stdout, out.stdout + out.stderr
    assert "| 0 | true |" in out.stdout and "| 0 | complete |" in out.stdout


def test_intervention_suite_smoke():
    out = run("analysis/interventions.py", "--smoke")
    assert out.returncode == 0, out.stderr
    assert "| mass[0]*=3 |" in out.stdout and "| remove[0] |" in out.stdout


def test_supervised_transition_smoke_scores_every_variant(tmp_path):
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate

    common = dict(steps=12, num_objects="3-4", images=False, influence_steps=0)
    generate(GenerateConfig(episodes=8, seed=0, **common), tmp_path / "train.h5", progress=False)
    generate(GenerateConfig(episodes=6, seed=1, **common), tmp_path / "test.h5", progress=False)
    args = ["--train", tmp_path / "train.h5", "--test", tmp_path / "test.h5", "--steps", "5", "--batch", "8"]
    out = run("analysis/supervised_transition.py", *args, "--out", tmp_path / "r.json")
    assert out.returncode == 0, out.stderr
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["variant"] for r in results] == ["number", "onehot", "latent", "latent_code"]
    for r in results:
        assert all(r[k] is None or 0 <= r[k] <= 1 for k in ("gates_auroc", "jacobian_auroc")), r
        assert r["test_huber"] >= 0
    bad = run("analysis/supervised_transition.py", *args, "--variants", "onehot,nope")
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_edge_recovery_summarises_methods_that_only_some_runs_probed():
    sys.path.insert(0, str(ROOT / "analysis"))
    from edge_recovery import markdown, summarise

    def result(run, methods):
        return {
            "run": run, "best_method": "gates", "matching": "identity",
            "methods": {m: {"adjacency": {"auroc": v, "shd": 1.0}} for m, v in methods.items()},
        }  # fmt: skip

    two = {"gates": 1.0, "message_norms": 0.9}
    table = summarise([result("a", {**two, "jacobian": 0.7}), result("b", two), result("c", {"gates": 0.8})])
    assert list(table["methods"]) == ["gates", "message_norms", "jacobian"]
    assert table["methods"]["gates"]["runs"] == 3 and table["methods"]["jacobian"]["runs"] == 1
    assert table["methods"]["gates"]["adjacency_auroc"]["mean"] == pytest.approx(2.8 / 3)
    assert table["methods"]["message_norms"]["adjacency_auroc"]["n"] == 2
    text = markdown(table, "mixed")
    assert "| gates | 0.933 ± " in text and "| jacobian (1 of 3 runs) | 0.700 |" in text
    assert "| message_norms (2 of 3 runs) | 0.900 ± 0.000 |" in text
    # each run's own best method, and where probe.json chose it (older probes, without the field: on test)
    assert table["best"]["methods"] == ["gates"] * 3 and table["best"]["selected_on"] == ["test"]
    assert table["best"]["adjacency_auroc"]["mean"] == pytest.approx(2.8 / 3)
    assert "| each run's best method, chosen on test episodes | 0.933 ± " in text
    runs = [result("a", two) | {"best_selected_on": "training", "best_method": "message_norms"}, result("b", two)]
    table = summarise(runs)
    assert table["best"]["adjacency_auroc"]["mean"] == pytest.approx(0.95)
    assert "| each run's best method, chosen on test and training episodes | 0.950 ± " in markdown(table, "x")


def test_edge_recovery_reprobes_a_probe_that_chose_its_best_method_on_test(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "analysis"))
    import edge_recovery

    import causal_wm.probe as probe_module

    data = tmp_path / "test.h5"
    data.write_bytes(b"")
    saved = {"data": str(data), "baselines": {}, "methods": {}, "best_method": "gates"}
    (tmp_path / "probe.json").write_text(json.dumps(saved))
    calls = []
    monkeypatch.setattr(probe_module, "probe", lambda *a, **k: calls.append(a) or ({"redone": True}, {}))
    monkeypatch.setattr(probe_module, "write_probe", lambda *a, **k: None)
    assert edge_recovery.probe_run(tmp_path, str(data), "none", None) == {"redone": True} and len(calls) == 1
    (tmp_path / "probe.json").write_text(json.dumps(saved | {"best_selected_on": "training"}))
    assert edge_recovery.probe_run(tmp_path, str(data), "none", None)["best_method"] == "gates" and len(calls) == 1


def test_nri_springs_file_is_state_only_and_physical(tmp_path):
    sys.path.insert(0, str(ROOT / "analysis"))
    from nri_springs import simulate

    states, adj = simulate(4, 5, 20, seed=0)
    assert states.shape == (4, 20, 5, 4) and adj.shape == (4, 5, 5)
    assert np.array_equal(adj, adj.transpose(0, 2, 1)) and not adj[:, range(5), range(5)].any()
    assert np.all(np.abs(states[..., :2]) <= 5.0 + 1e-6)  # walls
    # Over 10 frames (1 time unit at speed 0.5) no particle reaches a wall at 5: unconnected particles keep their
    # velocity exactly, connected ones accelerate.
    lonely, _ = simulate(1, 2, 10, edge_prob=0.0, seed=3)
    assert np.allclose(np.diff(lonely[0, :, :, 2:], axis=0), 0, atol=1e-9)
    joined, _ = simulate(1, 2, 10, edge_prob=1.0, seed=3)
    assert np.abs(np.diff(joined[0, :, :, 2:], axis=0)).max() > 1e-4
    out = tmp_path / "nri.h5"
    assert run("analysis/nri_springs.py", "--smoke", "--out", out).returncode == 0
    assert run("analysis/nri_springs.py", "--smoke", "--out", out).returncode == 2  # no clobbering
    from causal_wm.data import validate

    info = validate(out)
    assert not info.has_images and info.state_features == ["x", "y", "vx", "vy"]


@pytest.fixture()
def probed(tmp_path):
    """A fake probed run: probe.json, probe_scores.npz, intervene.json, and a tiny dataset with frames."""
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate

    generate(
        GenerateConfig(episodes=3, steps=6, num_objects="3", image_size=32, influence_steps=0),
        tmp_path / "data.h5",
        progress=False,
    )
    rng = np.random.default_rng(0)
    adj = np.zeros((3, 3, 3), np.uint8)
    adj[:, 0, 1] = adj[:, 1, 0] = 1
    scores = adj + 0.3 * rng.random((3, 3, 3))
    scores[:, range(3), range(3)] = np.nan
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    np.savez(
        run_dir / "probe_scores.npz",
        scores_gates=scores.astype(np.float32),
        baseline_regression=adj.astype(np.float32),
        adjacency=adj,
        num_objects=np.full(3, 3),
        matched=np.ones((3, 3), bool),
    )
    (run_dir / "probe.json").write_text(
        json.dumps({"best_method": "gates", "methods": {"gates": {"adjacency": {"threshold": 0.5}}}})
    )
    effects = {
        "do": "remove[0]",
        "pearson": 0.5,
        "per_episode": [{"simulator_effect": [0, 1, 2], "model_effect": [0, 0.5, 1.5], "intervened": [0]}],
    }
    (run_dir / "intervene.json").write_text(json.dumps({"effects": effects}))
    return run_dir, tmp_path / "data.h5"


def test_figures_command_draws_every_figure_from_saved_results(probed, tmp_path):
    run_dir, data = probed
    out = tmp_path / "figs"
    assert main(["figures", "--run", str(run_dir), "--data", str(data), "--out", str(out)]) == 0
    for name in ("roc_curves", "learned_graph", "intervention_scatter"):
        for ext in ("png", "pdf"):
            path = out / f"{name}.{ext}"
            assert path.exists() and path.stat().st_size > 1000, path
    assert not list(out.glob(".*tmp*"))


def test_object_counts_figure(tmp_path):
    summary = {
        "encoder": "state",
        "train_counts": "3-5",
        "seeds": [0, 1],
        "counts": {
            str(c): {"hits_at_1_1": {"mean": 0.9, "ci": [0.8, 1.0]}, "auroc": {"mean": 0.6, "ci": [None, None]}}
            for c in (2, 6)
        },
    }
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(summary))
    out = run("paper_figures/object_counts.py", "--summary", path, "--out", tmp_path / "oc")
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "oc.png").stat().st_size > 1000 and (tmp_path / "oc.pdf").exists()


def test_roc_curve_is_exact_on_a_hand_case():
    sys.path.insert(0, str(ROOT))
    from paper_figures.roc_curves import roc

    fpr, tpr = roc(np.array([0.9, 0.8, 0.7, 0.1]), np.array([True, False, True, False]))
    assert fpr.tolist() == [0, 0, 0.5, 0.5, 1] and tpr.tolist() == [0, 0.5, 0.5, 1, 1]


def test_figures_command_needs_a_probed_run(tmp_path, capsys):
    assert main(["figures", "--run", str(tmp_path), "--out", str(tmp_path / "f")]) == 2
    assert "causal-wm probe" in capsys.readouterr().err


def run_shell(script, *args, **env_vars):
    """A bash experiment script with this interpreter's environment first on PATH (causal-wm, python), and
    ``env_vars`` set."""
    import os

    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}", **env_vars)
    return subprocess.run(["bash", script, *args], cwd=ROOT, capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    "script",
    [
        "analysis/world_model_seeds.sh",
        "analysis/graph_inference.sh",
        "analysis/action_node.sh",
        "analysis/state_dynamics.sh",
        "analysis/pixel_keypoints.sh",
    ],
)
def test_shell_scripts_have_help_and_refuse_unknown_flags(script):
    out = run_shell(script, "--help")
    assert out.returncode == 0 and "--smoke" in out.stdout
    bad = run_shell(script, "--bogus")
    assert bad.returncode == 2 and "unknown argument --bogus" in bad.stderr


def test_world_model_seeds_smoke_trains_and_evaluates():
    out = run_shell("analysis/world_model_seeds.sh", "--smoke")
    assert out.returncode == 0, out.stderr
    written = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("wrote ")]
    assert {Path(w).parent.name for w in written} == {"springs5__cnn__0", "springs5__state__0"}
    assert all("hits_at_1" in json.loads(Path(w).read_text()) for w in written)


def test_graph_inference_smoke_writes_a_table():
    out = run_shell("analysis/graph_inference.sh", "--smoke")
    assert out.returncode == 0, out.stderr
    assert "| gates |" in out.stdout
    written = out.stdout.strip().splitlines()[-1].split()[1]
    table = json.loads(Path(written).read_text())
    assert len(table["runs"]) == 2 and table["methods"]["gates"]["adjacency_auroc"]["n"] == 2


def test_action_node_smoke_writes_the_action_accuracy_table():
    out = run_shell("analysis/action_node.sh", "--smoke")
    assert out.returncode == 0, out.stderr
    assert "| intervention |" in out.stdout
    written = out.stdout.strip().splitlines()[-1].split()[1]
    table = json.loads(Path(written).read_text())
    assert len(table["runs"]) == 2 and table["action_accuracy"]["gates"]["n"] == 2
    assert all(0.0 <= v["mean"] <= 1.0 for v in table["action_accuracy"].values())


def test_state_dynamics_smoke_trains_every_scene_with_the_type_code():
    out = run_shell("analysis/state_dynamics.sh", "--smoke")
    assert out.returncode == 0, out.stderr
    assert "| mass[0]*=3 |" in out.stdout  # the springs intervention suite ran
    written = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("wrote ")]
    tables = [Path(w) for w in written if w.endswith(".json") and "edge_recovery" in w]
    assert sorted(t.name for t in tables) == ["edge_recovery_charges5_dec10.json", "edge_recovery_springs5_dec10.json"]
    for table in tables:
        (run,) = json.loads(table.read_text())["runs"]
        config = (Path(run) / "config.yaml").read_text()
        assert "recon_weight: 10.0" in config and "type_feature: 7" in config
        assert (Path(run) / "eval.json").exists()


@pytest.mark.slow  # a variant of the smoke run above (~30-40 s); pytest -m slow runs it
def test_state_dynamics_with_mass_and_a_seed_subset_names_everything_after_them():
    import h5py

    out = run_shell("analysis/state_dynamics.sh", "--smoke", SCENES="springs", MASS="0.5,2", SEEDS="0")
    assert out.returncode == 0, out.stderr
    written = [Path(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("wrote ")]
    names = {w.name for w in written}
    # SEEDS other than "0 1 2" names the tables after the seeds, so a one-seed copy keeps the 3-seed tables
    assert {
        "edge_recovery_springs5_m0.5-2_dec10_seeds0.json",
        "interventions_springs5_m0.5-2_dec10_seeds0.json",
    } <= names
    (table,) = [w for w in written if w.name == "edge_recovery_springs5_m0.5-2_dec10_seeds0.json"]
    (run,) = json.loads(table.read_text())["runs"]
    assert Path(run).name == "springs5_m0.5-2_dec10__state__0"
    data = Path(run).parent / "springs5_m0.5-2_train.h5"
    assert f"data: {data}" in (Path(run) / "config.yaml").read_text()
    with h5py.File(data) as f:
        mass = f["states"][..., 5][f["states"][..., 5] > 0]
    assert mass.min() >= 0.5 and mass.max() <= 2.0 and mass.std() > 0.1


@pytest.mark.parametrize("mass", ["2,1", "0,1", "1", "a,b"])
def test_state_dynamics_rejects_a_bad_mass_range(mass):
    out = run_shell("analysis/state_dynamics.sh", MASS=mass)
    assert out.returncode == 2
    assert f"MASS must be LO,HI with 0 < LO <= HI, got {mass}" in out.stderr


def test_pixel_keypoints_smoke_trains_probes_and_reads_positions_in_the_suite():
    out = run_shell("analysis/pixel_keypoints.sh", "--smoke")
    assert out.returncode == 0, out.stderr
    assert "Model effects measured in: decoded position" in out.stdout
    written = [Path(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("wrote ")]
    (table,) = [w for w in written if w.name == "edge_recovery_springs5_kpfix.json"]
    (run,) = json.loads(table.read_text())["runs"]
    config = (Path(run) / "config.yaml").read_text()
    assert "keypoints: true" in config and "action_node: true" in config and "num_slots: 6" in config
    assert "learn_colours: false" in config and Path(run).name == "springs5_kpfix__cnn__0"
    assert json.loads((Path(run) / "probe.json").read_text())["matching"]["method"] == "masks"


def test_pixel_keypoints_refuses_an_unknown_precision_before_any_work():
    bad = run_shell("analysis/pixel_keypoints.sh", "--smoke", PRECISION="fp16")
    assert bad.returncode == 2 and "PRECISION must be fp32 or bf16, got fp16" in bad.stderr
    assert "Traceback" not in bad.stderr and not bad.stdout
    usage = run_shell("analysis/pixel_keypoints.sh", "--help").stdout
    assert "PRECISION=bf16" in usage and usage.rstrip().endswith("results/interventions_{stem}_kpfix.{json,md}.")


@pytest.mark.slow  # a variant of the smoke run above (~30-40 s); pytest -m slow runs it
def test_pixel_keypoints_on_charges_uses_distinct_colours_and_the_given_strength():
    out = run_shell("analysis/pixel_keypoints.sh", "--smoke", SCENE="charges", STRENGTH="20000")
    assert out.returncode == 0, out.stderr
    written = [Path(line.split()[1]) for line in out.stdout.splitlines() if line.startswith("wrote ")]
    (table,) = [w for w in written if w.name == "edge_recovery_charges5dc_k20000_kpfix.json"]
    (run,) = json.loads(table.read_text())["runs"]
    assert Path(run).name == "charges5dc_k20000_kpfix__cnn__0"
    with h5py.File(Path(run).parent / "charges5dc_k20000_train.h5") as f:
        scene = json.loads(f.attrs["config"])["scene_config"]
    assert scene["distinct_colours"] is True and scene["strength"] == 20000.0
    assert "charge[0]*=-1" in out.stdout  # the suite flips a charge on this scene
    bad = run_shell("analysis/pixel_keypoints.sh", "--smoke", SCENE="billiards")
    assert bad.returncode == 2 and "SCENE must be springs or charges" in bad.stderr
    bad = run_shell("analysis/pixel_keypoints.sh", "--smoke", STRENGTH="80000")
    assert bad.returncode == 2 and "STRENGTH applies to SCENE=charges only" in bad.stderr
    bad = run_shell("analysis/pixel_keypoints.sh", "--smoke", SCENE="charges", STRENGTH="0")
    assert bad.returncode == 2 and "STRENGTH must be a positive number" in bad.stderr


def test_regression_window_reads_more_from_longer_windows(tmp_path):
    sys.path.insert(0, str(ROOT / "analysis"))
    from nri_springs import simulate
    from regression_window import window_scores

    from causal_wm.metrics import graph_scores

    states, adj = simulate(60, 5, 49, seed=0)
    n = np.full(60, 5)
    short = graph_scores(window_scores(states, n, 5, 5), adj, n)["auroc"]
    whole = graph_scores(window_scores(states, n, None, 5), adj, n)["auroc"]
    assert whole > short + 0.02 and whole > 0.98

    out = run("analysis/regression_window.py", "--smoke")
    assert out.returncode == 0 and "window  all: AUROC" in out.stdout
    data = tmp_path / "nri.h5"
    assert run("analysis/nri_springs.py", "--smoke", "--out", data).returncode == 0
    bad = run("analysis/regression_window.py", "--data", data, "--windows", "2")
    assert bad.returncode != 0 and "3 to 11 observations" in bad.stderr
    bad = run("analysis/regression_window.py", "--data", data, "--episodes", "0")
    assert bad.returncode != 0 and "--episodes must be positive" in bad.stderr
    with h5py.File(data, "a") as f:
        del f["adjacency"]
    bad = run("analysis/regression_window.py", "--data", data)
    assert bad.returncode != 0 and "no 'adjacency'" in bad.stderr
