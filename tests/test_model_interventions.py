"""do() in the simulator and the model: parsing, the errors bad do()s get, dowhy gcm on a toy graph with a known
effect, and a smoke run of the intervene CLI."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

import envs
from causal_wm import interventions as iv
from causal_wm.cli import main


@pytest.mark.parametrize(
    "text, prop, index, op, value, step",
    [
        ("mass[0]*=2", "mass", (0,), "*=", 2.0, 0),
        ("velocity[1] = (10, -5)", "velocity", (1,), "=", (10.0, -5.0), 0),
        ("velocity[2]+=(5,0)@7", "velocity", (2,), "+=", (5.0, 0.0), 7),
        ("charge[3]*=-1", "charge", (3,), "*=", -1.0, 0),
        ("remove[2]", "remove", (2,), None, None, 0),
        ("cut_spring[0,4] @ 3", "cut_spring", (0, 4), None, None, 3),
    ],
)
def test_parse_do(text, prop, index, op, value, step):
    d = iv.parse_do(text)
    assert (d.prop, d.index, d.op, d.value, d.step) == (prop, index, op, value, step)


@pytest.mark.parametrize(
    "text, match",
    [
        ("gravity[0]=1", "unknown property"),
        ("mass[0]", "needs one index and a value"),
        ("mass[0]=(1,2)", "takes a number"),
        ("remove[1]=3", "takes no value"),
        ("cut_spring[1]", "two indices"),
        ("mass 0 = 2", "cannot parse"),
    ],
)
def test_parse_do_refuses_bad_text(text, match):
    with pytest.raises(iv.InterventionError, match=match):
        iv.parse_do(text)


def _episode(name="springs", steps=12, seed=0):
    scene = envs.make_scene(name, num_objects=4)
    rng = np.random.default_rng(seed)
    spec = scene.sample_spec(rng)
    actions = scene.sample_actions(rng, steps, spec.num_objects)
    return scene, spec, scene.rollout(spec, actions, render_frames=False)


def test_to_intervention_applies_arithmetic_on_current_values():
    scene, spec, roll = _episode()
    out = iv.to_intervention(iv.parse_do("mass[1]*=3@2"), spec, roll)
    assert out.step == 2 and out.mass[1] == pytest.approx(3 * spec.mass[1])
    out = iv.to_intervention(iv.parse_do("velocity[0]+=(5,0)@4"), spec, roll)
    assert out.velocity[0] == pytest.approx((roll.states[4, 0, 2] + 5, roll.states[4, 0, 3]))


def test_to_intervention_refuses_missing_objects_steps_springs_and_charges():
    scene, spec, roll = _episode()
    with pytest.raises(iv.InterventionError, match="names object 9"):
        iv.to_intervention(iv.parse_do("mass[9]*=2"), spec, roll)
    with pytest.raises(iv.InterventionError, match="past the episode"):
        iv.to_intervention(iv.parse_do("mass[0]*=2@50"), spec, roll)
    with pytest.raises(iv.InterventionError, match="carry no charge"):
        iv.to_intervention(iv.parse_do("charge[0]*=-1"), spec, roll)
    with pytest.raises(iv.InterventionError, match="non-positive mass"):
        iv.to_intervention(iv.parse_do("mass[0]*=-1"), spec, roll)
    pairs = {tuple(p) for p in spec.springs.tolist()}
    missing = next((i, j) for i in range(4) for j in range(i + 1, 4) if (i, j) not in pairs)
    with pytest.raises(iv.InterventionError, match="no spring"):
        iv.to_intervention(iv.parse_do(f"cut_spring[{missing[0]},{missing[1]}]"), spec, roll)


def test_gcm_recovers_a_known_effect_on_a_three_node_toy_graph():
    """x0 -> a1 with slope 2, x1 -> a1 with slope -1; x2 is independent. ACE of do(x0 += 1) on a1 is 2."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(800, 2))
    data = pd.DataFrame({"x0": x[:, 0], "x1": x[:, 1], "a0": -x[:, 0] + 0.1 * rng.normal(size=800)})
    data["a1"] = 2 * data["x0"] - data["x1"] + 0.1 * rng.normal(size=800)
    data = data[["x0", "x1", "a0", "a1"]]
    true = np.array([[0, 1], [0, 0]], bool)
    out = iv.gcm_compare(true, true, data, source=0, delta=1.0, falsify=False)
    assert out["true"]["ace"]["a1"] == pytest.approx(2.0, abs=0.05)
    wrong = iv.gcm_compare(np.zeros((2, 2), bool), true, data, source=0, delta=1.0, falsify=False)
    assert wrong["learned"]["ace"]["a1"] == 0.0 and wrong["ace_abs_error"] == pytest.approx(2.0, abs=0.05)
    assert out["true"]["arrow_strength"]["x0->a1"] > 1.0


def test_partial_correlation_test():
    rng = np.random.default_rng(1)
    z = rng.normal(size=500)
    x, y = z + 0.1 * rng.normal(size=500), z + 0.1 * rng.normal(size=500)
    assert iv.partial_correlation_test(x, y) < 1e-6  # dependent through z
    assert iv.partial_correlation_test(x, y, z[:, None]) > 0.01  # independent given z


@pytest.fixture(scope="module")
def state_run(tmp_path_factory):
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate

    root = tmp_path_factory.mktemp("intervene")
    generate(
        GenerateConfig(episodes=8, steps=14, num_objects="3-4", images=False, influence_steps=0),
        root / "train.h5",
        progress=False,
    )
    args = ["train", "--data", str(root / "train.h5"), "--encoder", "state", "--out", str(root / "run")]
    args += ["--steps", "3", "--batch-size", "4", "--rollout-steps", "2", "--slot-dim", "4", "--hidden", "16"]
    assert main([*args, "--decoder", "--quiet"]) == 0
    return root / "run"


def test_intervene_cli_smoke(state_run, capsys):
    args = ["intervene", str(state_run), "--do", "velocity[0]+=(20,0)", "--episodes", "2", "--horizon", "3"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Pearson" in printed and "conditions violated" in printed
    report = json.loads((state_run / "intervene.json").read_text())
    e = report["effects"]
    assert e["scene"] == "springs" and e["episodes"] == 2 and len(e["per_episode"]) == 2
    first = e["per_episode"][0]
    assert len(first["simulator_effect"]) == first["num_objects"] == len(first["model_effect"])
    assert first["simulator_effect"][0] > 0  # the pushed object moved away from its factual path
    g = report["gcm"]
    assert set(g) >= {"learned", "true", "ace_abs_error", "falsification", "falsification_true", "learned_graph"}
    assert {"falsifiable", "falsified", "violations", "tests", "summary"} <= set(g["falsification_true"])
    before = (state_run / "intervene.json").read_bytes()
    assert main(args) == 2  # no clobbering without --overwrite
    assert (state_run / "intervene.json").read_bytes() == before


def test_learned_graph_scores_prediction_gain_as_the_probe_does(state_run):
    """`learned_graph` with the probe's best method ``prediction_gain`` (which needs the observed next step): the
    mean over probed steps of the gain of step t -> t + 1 (a pair-gated model), thresholded."""
    import torch

    from causal_wm import probe
    from causal_wm.train import load_run

    model = load_run(state_run)
    scene, spec, roll = _episode()
    n = roll.states.shape[1]
    times = range(0, len(roll.states) - 1, 5)
    k = model.config.num_slots
    total = np.zeros((k, k))
    for t in times:
        obs = torch.zeros(2, k, model.config.num_features)
        obs[:, :n] = torch.from_numpy(roll.states[t : t + 2])
        mask = torch.zeros(2, k, dtype=torch.bool)
        mask[:, :n] = True
        z = model.encode(obs, slot_mask=mask).slots
        actions = torch.from_numpy(roll.actions[t : t + 1]).long()
        total += probe.prediction_gain(model, z[:1], z[1:], actions, None, mask[:1])[0].numpy()
    scores = (total / len(times))[:n, :n]
    threshold = float(np.median(scores[~np.eye(n, dtype=bool)]))
    got = iv.learned_graph(model, roll, "prediction_gain", threshold)
    assert got.shape == (n, n) and not got.diagonal().any()
    np.testing.assert_array_equal(got, (scores >= threshold) & ~np.eye(n, dtype=bool))


def test_model_effect_is_decoded_displacement_with_a_state_decoder(state_run, monkeypatch):
    """With a position readout the model's effect is in decoded positions (the simulator's units), the latent distance
    is kept beside it; a decoder that ignores its input therefore shows no effect at all."""
    from causal_wm.train import load_run

    model = load_run(state_run)
    kw = dict(episodes=2, horizon=3, scene_config={"num_objects": (3, 4)})  # the run has 4 slots
    report, _ = iv.compare_effects(model, "velocity[0]+=(20,0)", **kw)
    assert report["model_effect_unit"] == "decoded position"
    first = report["per_episode"][0]
    assert len(first["latent_effect"]) == len(first["model_effect"]) == first["num_objects"]
    assert first["latent_effect"] != first["model_effect"]
    monkeypatch.setattr(type(model), "decode_states", lambda self, z: torch.zeros(*z.shape[:-1], 4))
    flat, _ = iv.compare_effects(model, "velocity[0]+=(20,0)", **kw)
    assert all(v == 0 for e in flat["per_episode"] for v in e["model_effect"])
    assert any(v > 0 for e in flat["per_episode"] for v in e["latent_effect"])


@pytest.mark.parametrize(
    "do_text, message",
    [("mass[7]*=2", "names object 7"), ("teleport[0]=1", "unknown property"), ("mass[0]*=2@99", "too short")],
)
def test_intervene_cli_refuses_bad_do(state_run, tmp_path, capsys, do_text, message):
    out = tmp_path / "x.json"
    assert main(["intervene", str(state_run), "--do", do_text, "--episodes", "1", "--out", str(out), "--no-gcm"]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_falsification_keeps_the_true_spring_graph_and_rejects_the_empty_one():
    """With pushes as the a's exogenous noise and touching steps left out, gcm's test tells graphs apart on springs:
    the true graph violates few local Markov conditions (about the 5% of the tests' level) and is kept, the empty graph
    violates many (whether gcm's permutation test then rejects it is borderline with 20 permutations); the
    causal-minimality check finds edges of the complete graph to remove, all of them non-edges."""
    scene = envs.make_scene("springs")
    spec = scene.sample_spec(np.random.default_rng(1), 5)
    true = scene.rollout(spec, np.zeros(2, dtype=np.int64), render_frames=False).adjacency[0].astype(bool)
    data = iv.unrolled_samples(scene, spec, rollouts=40, seed=1)
    assert list(data.columns[:2]) == ["x0", "x1"] and list(data.columns[-1:]) == ["a4"]
    assert 0 < data.attrs["rows_kept"] == len(data) < data.attrs["rows_simulated"]
    right = iv.graph_falsification(true, data, seed=1)
    empty = iv.graph_falsification(np.zeros_like(true), data, seed=1)
    assert right["falsified"] is False and right["falsifiable"] is True
    assert right["violations"] / right["tests"] < 0.1 < 0.2 < empty["violations"] / empty["tests"]
    assert right["superfluous_edges"] == [] and right["edges_checked"] == true.sum()
    complete = iv.graph_falsification(~np.eye(5, dtype=bool), data, seed=1)
    non_edges = {f"{i}->{j}" for i, j in np.argwhere(~true & ~np.eye(5, dtype=bool))}
    assert complete["edges_checked"] == 20 and len(complete["superfluous_edges"]) >= 3
    assert set(complete["superfluous_edges"]) <= non_edges
