"""Tests for the episode-level graph inference (`GraphInference`, ``ModelConfig.graph_context``): shapes, masking,
permutation equivariance, relaxed sampling, the transition's ``edge_gates`` and the train -> evaluate -> probe path."""

import json

import numpy as np
import pytest
import torch

from causal_wm.cli import main
from causal_wm.model import ModelConfig, WorldModel
from causal_wm.transition import GraphInference, TransitionGNN

D, H = 4, 16


def make_inference(seed=0) -> GraphInference:
    torch.manual_seed(seed)
    return GraphInference(D, H).eval()


def context(batch=3, steps=5, slots=4, seed=1) -> torch.Tensor:
    return torch.randn(batch, steps, slots, D, generator=torch.Generator().manual_seed(seed))


def test_shapes_range_and_zero_diagonal():
    gates = make_inference()(context())
    assert gates.shape == (3, 4, 4)
    assert bool(((gates >= 0) & (gates <= 1)).all())
    assert torch.count_nonzero(gates.diagonal(dim1=1, dim2=2)) == 0
    off = ~torch.eye(4, dtype=torch.bool)
    assert bool((gates[:, off] > 0).all())


def test_permutation_equivariance():
    model, ctx = make_inference(), context()
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(model(ctx[:, :, perm]), model(ctx)[:, perm][:, :, perm])


def test_padded_slots_change_nothing_and_get_no_edges():
    model, ctx = make_inference(), context(batch=2, slots=5)
    mask = torch.tensor([[True, True, True, False, False], [True] * 5])
    garbage = ctx.clone()
    garbage[0, :, 3:] = 1e3
    gates = model(garbage, mask)
    assert torch.count_nonzero(gates[0, 3:]) == 0 and torch.count_nonzero(gates[0, :, 3:]) == 0
    alone = model(ctx[:1, :, :3])  # the same sample with only its real slots
    torch.testing.assert_close(gates[0, :3, :3], alone[0])


def test_context_must_have_two_steps():
    with pytest.raises(ValueError, match="W >= 2"):
        make_inference()(context(steps=1))
    with pytest.raises(ValueError, match="temperature"):
        GraphInference(D, H, temperature=0.0)


@torch.no_grad()
def test_training_mode_samples_relaxed_bernoulli_gates_under_a_seed():
    model, ctx = make_inference(), context(batch=64)
    probs = model(ctx)
    model.train()
    torch.manual_seed(5)
    first = model(ctx)
    torch.manual_seed(5)
    torch.testing.assert_close(model(ctx), first)  # deterministic under a seed
    assert not torch.allclose(first, probs)
    off = ~torch.eye(4, dtype=torch.bool)
    # Samples are near-binary (temperature 0.5) and their frequency of being "on" follows the probability.
    assert float(((first[:, off] < 0.1) | (first[:, off] > 0.9)).float().mean()) > 0.5
    torch.manual_seed(6)
    on = torch.stack([model(ctx)[:, off] > 0.5 for _ in range(200)]).float().mean(0)
    assert float((on - probs[:, off]).abs().mean()) < 0.05
    assert torch.allclose(model(ctx, sample=False), probs)


def test_gradients_reach_every_parameter():
    model = make_inference().train()
    model(context()).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_transition_uses_given_gates():
    torch.manual_seed(0)
    tr = TransitionGNN(D, hidden=H, obj_action_dim=0)
    z = torch.randn(2, 3, D)
    gates = torch.zeros(2, 3, 3)
    gates[:, 0, 1] = 1.0  # only 0 -> 1
    out = tr(z, edge_gates=gates)
    torch.testing.assert_close(out.gates, gates)
    moved = z.clone()
    moved[:, 0] += 1.0
    again = tr(moved, edge_gates=gates)
    assert not torch.allclose(again.delta[:, 1], out.delta[:, 1])  # 1 hears 0
    torch.testing.assert_close(again.delta[:, 2], out.delta[:, 2])  # 2 hears nobody
    with pytest.raises(ValueError, match="edge_gates must have shape"):
        tr(z, edge_gates=torch.zeros(2, 3, 4))


def test_model_config_and_transition_need_the_context():
    with pytest.raises(ValueError, match="graph_context"):
        ModelConfig(encoder="state", graph_context=1)
    with pytest.raises(ValueError, match="gated"):
        ModelConfig(encoder="state", graph_context=3, gated=False)
    model = WorldModel(ModelConfig(encoder="state", num_slots=3, slot_dim=D, hidden=H, graph_context=3)).eval()
    assert model.context_steps == 2
    z = torch.randn(2, 3, D)
    with pytest.raises(ValueError, match="infer_graph"):
        model.transition(z, torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="3 steps"):
        model.infer_graph(torch.randn(2, 2, 3, D))
    gates = model.infer_graph(torch.randn(2, 3, 3, D))
    roll = model.imagine(z, torch.zeros(2, 4, dtype=torch.long), edge_gates=gates)
    assert roll["z"].shape == (2, 5, 3, D)
    torch.testing.assert_close(roll["gates"][:, 0], gates)


@pytest.fixture(scope="module")
def nri_context_run(nri_files):
    """The state-only NRI-style files and a run with a graph context trained on them (``run_ctx``)."""
    root = nri_files
    run = root / "run_ctx"
    args = ["train", "--data", str(root / "train.h5"), "--encoder", "state", "--out", str(run), "--steps", "4"]
    args += ["--batch-size", "4", "--rollout-steps", "2", "--slot-dim", "4", "--hidden", "16", "--quiet"]
    assert main(args + ["--decoder", "--graph-context", "4", "--sparsity", "0.1"]) == 0
    return root


def test_train_evaluate_probe_with_a_graph_context(nri_context_run):
    root = nri_context_run
    run, test = root / "run_ctx", str(root / "test.h5")
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])["step"] == 4
    assert main(["evaluate", str(run), "--data", test, "--horizons", "1,5"]) == 0
    result = json.loads((run / "eval.json").read_text())
    assert result["graph_context"] == 4 and 0 <= result["hits_at_1"]["5"] <= 1
    assert main(["probe", str(run), "--data", test, "--quiet"]) == 0
    raw = np.load(run / "probe_scores.npz")
    gates = raw["scores_gates"]
    off = ~np.eye(gates.shape[1], dtype=bool)
    assert np.isfinite(gates[:, off]).all() and (gates[:, off] > 0).all()


def test_infer_graph_reads_a_longer_context_only_when_asked():
    model = WorldModel(ModelConfig(encoder="state", num_slots=3, slot_dim=D, hidden=H, graph_context=3)).eval()
    z = context(batch=2, steps=7, slots=3)
    with pytest.raises(ValueError, match="must hold 3 steps, got 7"):
        model.infer_graph(z)
    with pytest.raises(ValueError, match="at least 3 steps, got 2"):
        model.infer_graph(z[:, :2], exact=False)
    torch.testing.assert_close(model.infer_graph(z, exact=False), model.graph_inference(z))
    torch.testing.assert_close(model.infer_graph(z[:, :3], exact=False), model.infer_graph(z[:, :3]))


def test_probe_reads_the_graph_from_whole_episodes(nri_context_run, capsys):
    """``--graph-from episode``: every probed step uses the graph inferred once from all of the episode's
    observations, so the gate scores are exactly that graph (identity matching for the state encoder)."""
    import h5py

    from causal_wm.probe import ProbeConfig, ProbeError
    from causal_wm.train import load_run, slot_mask_for

    root = nri_context_run
    run, test = root / "run_ctx", str(root / "test.h5")
    args = ["probe", str(run), "--data", test, "--quiet", "--baselines", "none", "--methods", "gates"]
    assert main([*args, "--graph-from", "episode", "--overwrite"]) == 0
    assert json.loads((run / "probe.json").read_text())["config"]["graph_from"] == "episode"
    scores = np.load(run / "probe_scores.npz")["scores_gates"]
    model = load_run(run).eval()
    with h5py.File(test, "r") as f:
        states, counts = torch.from_numpy(f["states"][:]).float(), torch.from_numpy(f["num_objects"][:])
    e, t, n, _ = states.shape
    mask = slot_mask_for(counts, model.config.num_slots, "state")
    with torch.no_grad():
        z = model.encode(states.flatten(0, 1), slot_mask=mask.repeat_interleave(t, 0)).slots.unflatten(0, (e, t))
        expected = model.infer_graph(z, mask, exact=False).numpy()
    off = ~np.eye(n, dtype=bool)
    np.testing.assert_allclose(scores[:, off], expected[:, :n, :n][:, off], rtol=1e-5, atol=1e-6)
    # the default reads a window per probed step, which differs from the whole episode's graph
    assert main([*args, "--overwrite"]) == 0
    window = np.load(run / "probe_scores.npz")["scores_gates"]
    assert json.loads((run / "probe.json").read_text())["config"]["graph_from"] == "window"
    assert not np.allclose(window[:, off], scores[:, off])
    with pytest.raises(SystemExit):
        main([*args, "--graph-from", "all", "--overwrite"])
    assert "invalid choice: 'all'" in capsys.readouterr().err
    with pytest.raises(ProbeError, match="graph_from must be one of window, episode"):
        ProbeConfig(graph_from="all")


def test_graph_context_too_long_for_the_episodes(nri_files, tmp_path, capsys):
    args = ["train", "--data", str(nri_files / "train.h5"), "--encoder", "state", "--out", str(tmp_path / "r")]
    assert main(args + ["--steps", "1", "--graph-context", "200", "--quiet"]) == 2
    assert "graph context of 200" in capsys.readouterr().err


def test_graph_overlap_reads_and_scores_the_whole_window(nri_files, tmp_path, monkeypatch, capsys):
    """``--graph-overlap``: the graph is inferred from all W + H observations of a window, the predicted ones
    included, and the dynamics loss scores one-step predictions from each of its W + H - 1 first observations
    (without it: the W observations up to the rollout, and the H rollout steps)."""
    from causal_wm.model import WorldModel

    contexts, rows = [], []
    logits, transition = GraphInference.logits, WorldModel.transition
    monkeypatch.setattr(
        GraphInference, "logits", lambda self, c, m=None: contexts.append(c.shape[1]) or logits(self, c, m)
    )
    monkeypatch.setattr(
        WorldModel, "transition", lambda self, z, *a, **k: rows.append(z.shape[0]) or transition(self, z, *a, **k)
    )
    args = ["train", "--data", str(nri_files / "train.h5"), "--encoder", "state", "--steps", "1", "--quiet"]
    args += ["--batch-size", "4", "--rollout-steps", "2", "--slot-dim", "4", "--hidden", "16"]
    ctx = ["--graph-context", "4"]
    assert main([*args, *ctx, "--decoder", "--teacher-forcing", "--out", str(tmp_path / "before")]) == 0
    assert contexts == [4] and rows == [4, 4, 4 * 2]  # two rollout steps, then one step from each of 2 states
    contexts.clear(), rows.clear()
    assert main([*args, *ctx, "--decoder", "--graph-overlap", "--out", str(tmp_path / "overlap")]) == 0
    assert contexts == [4 + 2] and rows == [4, 4, 4 * (4 + 2 - 1)]
    for bad in (["--decoder"], ctx):  # no graph context; no state decoder
        assert main([*args, *bad, "--graph-overlap", "--out", str(tmp_path / "bad")]) == 2
        assert "graph_overlap" in capsys.readouterr().err and not (tmp_path / "bad").exists()


@pytest.fixture(scope="module")
def springs_context_run(tmp_path_factory):
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate

    root = tmp_path_factory.mktemp("springs_ctx")
    config = GenerateConfig(episodes=6, steps=14, num_objects="3", images=False, influence_steps=0)
    generate(config, root / "train.h5", progress=False)
    args = ["train", "--data", str(root / "train.h5"), "--encoder", "state", "--out", str(root / "run"), "--quiet"]
    args += ["--steps", "2", "--batch-size", "4", "--rollout-steps", "2", "--slot-dim", "4", "--hidden", "16"]
    assert main([*args, "--graph-context", "3"]) == 0
    return root / "run"


def test_intervene_cuts_the_inferred_graph(springs_context_run, capsys):
    """A spring cut reaches a model with an inferred graph as gate 0 on the cut pair, so the other end's prediction
    changes; the do() defaults to the first frame with a full context."""
    run, out = springs_context_run, springs_context_run / "cut.json"
    args = ["intervene", str(run), "--do", "cut_spring[0,1]", "--episodes", "1", "--horizon", "3", "--no-gcm"]
    assert main([*args, "--out", str(out)]) == 0
    effects = json.loads(out.read_text())["effects"]
    assert effects["step"] == 2
    assert effects["per_episode"][0]["model_effect"][1] > 0
    early = run / "early.json"
    assert main(["intervene", str(run), "--do", "mass[0]*=2@1", "--episodes", "1", "--out", str(early)]) == 2
    assert "frame 2 or later" in capsys.readouterr().err
    assert not early.exists()


def test_cnn_with_a_graph_context_trains_evaluates_and_intervenes(tmp_path):
    """The image path: frames of the context are stacked per step, and the intervention matches slots on the masks
    of the intervened frame."""
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate

    generate(GenerateConfig(episodes=4, steps=14, num_objects="3"), tmp_path / "train.h5", progress=False)
    run = tmp_path / "run"
    args = ["train", "--data", str(tmp_path / "train.h5"), "--encoder", "cnn", "--out", str(run), "--quiet"]
    args += ["--steps", "2", "--batch-size", "4", "--rollout-steps", "2", "--hidden", "16", "--graph-context", "3"]
    assert main(args) == 0
    assert main(["evaluate", str(run), "--data", str(tmp_path / "train.h5"), "--horizons", "1,5"]) == 0
    assert json.loads((run / "eval.json").read_text())["graph_context"] == 3
    out = run / "push.json"
    do = ["intervene", str(run), "--do", "velocity[0]+=(30,0)", "--episodes", "1", "--horizon", "3", "--no-gcm"]
    assert main([*do, "--out", str(out)]) == 0
    effects = json.loads(out.read_text())["effects"]
    assert effects["step"] == 3  # history 2 and a context of 3: the first full observation is frame 1 + 2
    assert len(effects["per_episode"][0]["model_effect"]) == 3
