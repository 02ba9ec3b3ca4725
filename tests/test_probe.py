"""Causal probing: each extraction method on a hand-built transition with a known graph, slot matching on permuted
slots, scoring with dropped objects, and the probe CLI on a state-only file from another simulator."""

import dataclasses
import itertools
import json

import h5py
import numpy as np
import pytest
import torch

from causal_wm import metrics, probe
from causal_wm.cli import main
from causal_wm.model import NUM_DIRECTIONS, ModelConfig, WorldModel
from causal_wm.transition import TransitionOutput

# Object 0 drives 1, 1 drives 2, 3 drives 0; nothing else (a directed graph, i -> j at [i, j]).
A = torch.zeros(4, 4)
A[0, 1] = A[1, 2] = A[3, 0] = 1.0


class HandModel(WorldModel):
    """A world model whose transition is fixed: delta z_j = 0.1 * sum_i g_ij z_i with gates g = A, or the given
    ``edge_gates``."""

    def __init__(self):
        super().__init__(ModelConfig(encoder="state", num_slots=4, slot_dim=3, hidden=8, num_features=4))

    def transition(self, z, actions, positions=None, slot_mask=None, edge_gates=None, norms=True):
        gates = A.expand(z.shape[0], 4, 4) if edge_gates is None else edge_gates
        delta = 0.1 * torch.einsum("bij,bid->bjd", gates, z)
        norms = gates * 0.1 * z.norm(dim=-1)[:, :, None]
        return TransitionOutput(delta=delta, gates=gates, message_norms=norms, action_gates=None)


def test_every_method_recovers_a_hand_built_graph():
    torch.manual_seed(0)
    model = HandModel()
    z = torch.randn(6, 4, 3)
    actions = torch.zeros(6, 1, dtype=torch.long)  # horizon 1: only direct effects
    z_next = z + 0.1 * torch.einsum("ij,bid->bjd", A, z)  # observed: what the true graph does
    scores = probe.slot_scores(model, z, actions, None, None, z_next=z_next)
    assert set(scores) == set(probe.METHODS)
    truth = A.bool().expand(6, 4, 4).numpy()
    for name, s in scores.items():
        assert s.shape == (6, 4, 4)
        assert torch.all(s.diagonal(dim1=1, dim2=2) == 0), name
        assert metrics.graph_scores(s.numpy(), truth)["auroc"] == 1.0, name
    # ||d delta_j / d z_i||_F = 0.1 * ||I_3||_F on the true edges, 0 elsewhere.
    assert torch.allclose(scores["jacobian"], 0.1 * np.sqrt(3) * A.expand(6, 4, 4), atol=1e-3)
    assert torch.equal(scores["gates"], A.expand(6, 4, 4))
    nonzero = scores["latent_intervention"] > 1e-7
    assert torch.equal(nonzero, A.bool().expand(6, 4, 4))


def test_finite_difference_jacobian_matches_autograd_on_a_trained_style_model():
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(encoder="state", num_slots=3, slot_dim=4, hidden=16, num_features=4)).double()
    z = torch.randn(2, 3, 4, dtype=torch.float64)
    actions = torch.zeros(2, dtype=torch.long)
    fd = model.jacobian_norms(z, actions, eps=1e-6)
    exact = torch.zeros(2, 3, 3, dtype=torch.float64)
    for b in range(2):
        jac = torch.autograd.functional.jacobian(lambda x: model.transition(x[None], actions[:1]).delta[0], z[b])
        exact[b] = jac.pow(2).sum((1, 3)).sqrt().t()  # jac[j, :, i, :] -> [i, j]
    exact.diagonal(dim1=1, dim2=2).zero_()
    assert torch.allclose(fd, exact, atol=1e-5)


def test_jacobian_of_a_multi_round_model_uses_whole_graph_differences():
    """Deeper transitions take the generic path (K D perturbed copies of the batch); it agrees with autograd."""
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(encoder="state", num_slots=3, slot_dim=4, hidden=16, num_features=4))
    model.transition_model = type(model.transition_model)(4, hidden=16, obj_action_dim=4, layers=2)
    model = model.double()
    z = torch.randn(2, 3, 4, dtype=torch.float64)
    actions = torch.zeros(2, dtype=torch.long)
    slot_mask = torch.tensor([[True, True, True], [True, False, True]])
    fd = model.jacobian_norms(z, actions, slot_mask=slot_mask, eps=1e-6)
    for b in range(2):
        jac = torch.autograd.functional.jacobian(
            lambda x, m=slot_mask[b : b + 1]: model.transition(x[None], actions[:1], slot_mask=m).delta[0], z[b]
        )
        exact = jac.pow(2).sum((1, 3)).sqrt().t()
        exact.diagonal().zero_()
        exact = exact.masked_fill(~(slot_mask[b, :, None] & slot_mask[b, None, :]), 0.0)
        assert torch.allclose(fd[b], exact, atol=1e-5)
    assert fd[1, 1].abs().sum() == 0 and fd[1, :, 1].abs().sum() == 0


def test_latent_interventions_see_indirect_effects_over_longer_horizons():
    torch.manual_seed(0)
    model = HandModel()
    z = torch.randn(2, 4, 3)
    long = probe.slot_scores(model, z, torch.zeros(2, 3, dtype=torch.long), None, None, ("latent_intervention",))
    s = long["latent_intervention"]
    assert torch.all(s[:, 0, 2] > 1e-7)  # 0 -> 1 -> 2 arrives by step 2
    assert torch.all(s[:, 2, 0] == 0)  # nothing flows from 2 back to 0


class WholeGraphModel(WorldModel):
    """The same network, but `probe` cannot tell its transition is the stock one: latent interventions imagine every
    perturbed copy through the whole graph."""

    def transition(self, *args, **kwargs):
        return super().transition(*args, **kwargs)


def twin_models():
    """A float64 world model with an action node, its `WholeGraphModel` twin (same weights), slots (3, 4, 5) and a
    slot mask with one padded slot in two of the samples."""
    torch.manual_seed(0)
    cfg = ModelConfig(encoder="state", num_slots=4, slot_dim=5, hidden=16, num_features=4, action_node=True)
    model = WorldModel(cfg).double().eval()
    slow = WholeGraphModel(cfg).double().eval()
    slow.load_state_dict(model.state_dict())
    mask = torch.tensor([[True] * 4, [True, False, True, True], [True, True, True, False]])
    return model, slow, torch.randn(3, 4, 5, dtype=torch.float64), mask


def brute_force_errors(model, z, z_next, actions, positions, mask):
    """{pattern: (B, K) squared errors of every receiver with sender i's edges on iff bit i of the pattern is set},
    each from one plain `WorldModel.transition` call."""
    b, k, _ = z.shape
    out = {}
    for bits in itertools.product([0.0, 1.0], repeat=k):
        gates = torch.tensor(bits, dtype=z.dtype)[None, :, None].expand(b, k, k).clone()
        delta = model.transition(z, actions, positions, mask, edge_gates=gates).delta
        out[bits] = (z + delta - z_next).pow(2).sum(-1)
    return out


def profile_by_hand(errors: dict, k: int) -> torch.Tensor:
    """(B, K, K) min over patterns with i off of err_j minus min over patterns with i on."""
    scores = torch.zeros(next(iter(errors.values())).shape[0], k, k, dtype=torch.float64)
    for i in range(k):
        off = torch.stack([e for bits, e in errors.items() if not bits[i]]).amin(0)
        on = torch.stack([e for bits, e in errors.items() if bits[i]]).amin(0)
        scores[:, i] = off - on
    scores.diagonal(dim1=1, dim2=2).zero_()
    return scores


def test_prediction_gain_searches_every_subset_of_senders():
    """The subset search (edge MLP once, `TransitionGNN.gate_variants`) gives the profile likelihood ratio of plain
    transition calls under each of the 2^K gate patterns: action node, pushes, padded slots."""
    model, _, z, mask = twin_models()
    z_next = z + 0.3 * torch.randn_like(z)
    actions, positions = torch.tensor([1, 0, 9]), torch.rand(3, 4, 2, dtype=torch.float64)
    got = probe.prediction_gain(model, z, z_next, actions, positions, mask)
    want = profile_by_hand(brute_force_errors(model, z, z_next, actions, positions, mask), 4)
    want = want.masked_fill(~(mask[:, :, None] & mask[:, None, :]), 0.0)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-9)
    assert (got[1, 1] == 0).all() and (got[1, :, 1] == 0).all() and (got != 0).sum() == 12 + 6 + 6
    # A span sums the errors of its transitions before the minima (one best graph per receiver for the span).
    z2 = z_next + 0.3 * torch.randn_like(z)
    a2 = torch.tensor([0, 5, 2])
    first = brute_force_errors(model, z, z_next, actions, positions, mask)
    second = brute_force_errors(model, z_next, z2, a2, positions, mask)
    summed = {bits: (first[bits] + second[bits]) / 2 for bits in first}
    span = probe.span_gain(
        model, torch.stack([z, z_next, z2], 1), torch.stack([actions, a2], 1), torch.stack([positions] * 2, 1), mask,
        None,
    )  # fmt: skip
    want = profile_by_hand(summed, 4).masked_fill(~(mask[:, :, None] & mask[:, None, :]), 0.0)
    torch.testing.assert_close(span, want, atol=1e-12, rtol=1e-9)


def test_gain_search_limit_and_deeper_transitions_toggle_one_edge_at_a_time():
    """Above the search limit (or for a transition of several rounds) each edge is closed (gate 0) and opened (gate 1)
    with the other gates at the model's own. One-round models set every edge i -> * in one copy; the whole-graph path
    sets one edge per copy. Same scores, with pushes, an action node and padded slots."""
    model, slow, z, mask = twin_models()
    z_next = z + 0.3 * torch.randn_like(z)
    actions, positions = torch.tensor([1, 0, 9]), torch.rand(3, 4, 2, dtype=torch.float64)
    assert probe.searches_subsets(model, 4) and not probe.searches_subsets(model, 4, limit=3)
    assert not probe.searches_subsets(slow, 4)
    fast = probe.prediction_gain(model, z, z_next, actions, positions, mask, search=3)
    ref = probe.prediction_gain(slow, z, z_next, actions, positions, mask)
    torch.testing.assert_close(fast, ref, atol=1e-12, rtol=1e-9)
    assert (fast[1, 1] == 0).all() and (fast[1, :, 1] == 0).all() and (fast.diagonal(dim1=1, dim2=2) == 0).all()
    # by hand for edge 2 -> 0 of sample 0
    gates = model.transition(z, actions, positions, mask).gates
    err = []
    for value in (0.0, 1.0):
        g = gates.clone()
        g[0, 2, 0] = value
        delta = model.transition(z, actions, positions, mask, edge_gates=g).delta
        err.append((z[0, 0] + delta[0, 0] - z_next[0, 0]).pow(2).sum())
    torch.testing.assert_close(fast[0, 2, 0], err[0] - err[1])


def test_prediction_gain_in_extract_averages_the_graphs_own_span(tmp_path):
    """Per probed step t the gain is summed over the transitions the graph was read from and t -> t + 1 (window),
    or over every transition of the episode (episode), with their inferred graph (toggled edges, ``gain_search=0``,
    so that the sum of the per-transition scores is the span's); a pair-gated model scores t -> t + 1 alone."""
    from causal_wm.train import EpisodeArrays

    path = tmp_path / "nri.h5"
    assert main(["generate", "--scene", "springs", "--num-objects", "3", "--episodes", "2", "--steps", "12",
                 "--no-images", "--seed", "0", "--out", str(path), "--quiet"]) == 0  # fmt: skip
    data = EpisodeArrays(str(path), images=False)
    torch.manual_seed(0)
    cfg = ModelConfig(encoder="state", num_slots=3, slot_dim=4, hidden=16, num_features=data.states.shape[-1],
                      graph_context=3)  # fmt: skip
    model = WorldModel(cfg).eval()
    times = np.arange(model.first_observation, data.steps - 1, 4)
    states = torch.from_numpy(data.states)
    z = model.encode(states.flatten(0, 1)).slots.unflatten(0, states.shape[:2])  # (E, T, K, D)
    actions = torch.from_numpy(data.actions)
    for graph_from in ("window", "episode"):
        cfg_probe = probe.ProbeConfig(methods=("prediction_gain",), time_stride=4, graph_from=graph_from, gain_search=0)
        got = probe.extract(model, data, cfg_probe).scores["prediction_gain"]
        want = torch.zeros(2, 3, 3, dtype=torch.float64)
        for t in times:
            span = range(data.steps - 1) if graph_from == "episode" else range(t - 2, t + 1)
            ctx = z if graph_from == "episode" else z[:, t - 2 : t + 1]
            gates = model.infer_graph(ctx, exact=False)
            for s in span:
                gain = probe.prediction_gain(model, z[:, s], z[:, s + 1], actions[:, s], None, None, gates, search=0)
                want += gain.double()
        want /= len(times) * len(span)
        np.testing.assert_allclose(got, want.numpy() * np.where(np.eye(3), np.nan, 1), rtol=1e-4, atol=1e-7)
    # The subset search (the default) computes each transition's errors once for every window that holds it.
    for graph_from in ("window", "episode"):
        cfg_probe = probe.ProbeConfig(methods=("prediction_gain",), time_stride=4, graph_from=graph_from)
        got = probe.extract(model, data, cfg_probe).scores["prediction_gain"]
        want = torch.zeros(2, 3, 3, dtype=torch.float64)
        for t in times:
            lo, hi = (0, data.steps - 1) if graph_from == "episode" else (t - 2, t + 1)
            want += probe.span_gain(model, z[:, lo : hi + 1], actions[:, lo:hi], None, None, None).double()
        want /= len(times)
        np.testing.assert_allclose(got, want.numpy() * np.where(np.eye(3), np.nan, 1), rtol=1e-4, atol=1e-7)
    pair = WorldModel(dataclasses.replace(cfg, graph_context=0)).eval()
    got = probe.extract(pair, data, probe.ProbeConfig(methods=("prediction_gain",), time_stride=4))  # a search
    times = np.arange(0, data.steps - 1, 4)
    z = pair.encode(states.flatten(0, 1)).slots.unflatten(0, states.shape[:2])
    want = sum(probe.prediction_gain(pair, z[:, t], z[:, t + 1], actions[:, t]) for t in times) / len(times)
    np.testing.assert_allclose(got.scores["prediction_gain"], want.numpy() * np.where(np.eye(3), np.nan, 1),
                               rtol=1e-4, atol=1e-7)  # fmt: skip


@pytest.mark.parametrize("horizon", [1, 3])
def test_latent_interventions_recompute_only_the_moved_slots_edges_at_the_first_step(horizon):
    """The first-step shortcut (`TransitionGNN.slot_perturbations`) gives the scores of imagining every perturbed
    copy through the whole graph: action node, pushes, padded slots."""
    model, slow, z, mask = twin_models()
    actions = torch.tensor([[1, 0, 6], [0, 3, 0], [9, 9, 2]])[:, :horizon]
    positions = torch.rand(3, horizon, 4, 2, dtype=torch.float64)
    signs = torch.stack([torch.ones(5), -torch.ones(5)]).double()
    scale = torch.full((5,), 0.7, dtype=torch.float64)
    fast = probe.slot_scores(model, z, actions, positions, mask, ("latent_intervention",), scale=scale, signs=signs)
    ref = probe.slot_scores(slow, z, actions, positions, mask, ("latent_intervention",), scale=scale, signs=signs)
    torch.testing.assert_close(fast["latent_intervention"], ref["latent_intervention"], atol=1e-12, rtol=1e-9)
    assert (fast["latent_intervention"][1, 1] == 0).all() and (fast["latent_intervention"][0] > 0).sum() == 12


def contact_twins(contact_range: float, contact_lookahead: float = 0.0):
    """A float64 state model with contact messages (decoder, type code, non-unit position and velocity scales), its
    `WholeGraphModel` twin, slots (3, 4, D) and a mask with padded slots."""
    torch.manual_seed(0)
    cfg = ModelConfig(
        encoder="state", num_slots=4, slot_dim=5, hidden=16, num_features=8, type_feature=7, num_types=3,
        decoder=True, contact_channel=True, contact_range=contact_range, contact_lookahead=contact_lookahead,
    )  # fmt: skip
    std = torch.tensor([2.0, 3.0, 5.0, 0.5, 1.0, 1.0, 1.0, 1.0])
    model = WorldModel(cfg, feature_std=std).double().eval()
    slow = WholeGraphModel(cfg, feature_std=std).double().eval()
    slow.load_state_dict(model.state_dict())
    assert model.one_round_messages and not model.one_round_transition and not slow.one_round_messages
    mask = torch.tensor([[True] * 4, [True, False, True, True], [True, True, False, False]])
    return model, slow, torch.randn(3, 4, cfg.latent_dim, dtype=torch.float64), mask


@pytest.mark.parametrize("contact_range, contact_lookahead", [(0.0, 0.0), (4.0, 0.0), (4.0, 0.7)])
def test_contact_models_get_the_exact_jacobian_and_the_first_step_shortcut(contact_range, contact_lookahead):
    """With contact messages, the Jacobian adds the contact channel's chain rule to the gated messages' and equals
    autograd; the latent interventions' first-step shortcut equals imagining every copy through the whole graph."""
    model, slow, z, mask = contact_twins(contact_range, contact_lookahead)
    actions = torch.tensor([[1, 0], [0, 3], [6, 2]])
    fast = model.jacobian_norms(z, actions[:, 0], slot_mask=mask)
    for b in range(3):
        jac = torch.autograd.functional.jacobian(
            lambda x, b=b: model.transition(x[None], actions[b : b + 1, 0], slot_mask=mask[b : b + 1]).delta[0], z[b]
        )
        exact = jac.pow(2).sum((1, 3)).sqrt().t()  # jac[j, :, i, :] -> [i, j]
        exact.diagonal().zero_()
        exact = exact.masked_fill(~(mask[b, :, None] & mask[b, None, :]), 0.0)
        torch.testing.assert_close(fast[b], exact, atol=1e-10, rtol=1e-8)
    assert model.contact_jacobians(z, mask).abs().sum() > 0  # the contact channel adds to it
    signs = torch.stack([torch.ones(z.shape[-1]), -torch.ones(z.shape[-1])]).double()
    scale = torch.full((z.shape[-1],), 0.3, dtype=torch.float64)
    run = lambda m: probe.slot_scores(m, z, actions, None, mask, ("latent_intervention",), scale=scale, signs=signs)  # noqa: E731
    torch.testing.assert_close(
        run(model)["latent_intervention"], run(slow)["latent_intervention"], atol=1e-12, rtol=1e-9
    )


def test_action_readouts_run_the_slot_edges_once_and_agree_with_the_whole_graph():
    model, slow, z, mask = twin_models()
    actions = torch.tensor([1 + 2 * NUM_DIRECTIONS + 1, 0, 1 + NUM_DIRECTIONS])
    positions = torch.rand(3, 4, 2, dtype=torch.float64)
    fast = probe.action_readouts(model, z, actions, positions, mask)
    ref = probe.action_readouts(slow, z, actions, positions, mask)
    assert set(fast) == set(probe.ACTION_READOUTS)
    for name in probe.ACTION_READOUTS:
        torch.testing.assert_close(fast[name], ref[name], atol=1e-12, rtol=1e-9)
    assert (fast["intervention"][1] == 0).all() and (fast["intervention"][0] > 0).all()  # a no-op changes nothing


def test_slot_mask_zeroes_padded_pairs():
    model = HandModel()
    mask = torch.tensor([[True, True, False, True]])
    s = probe.slot_scores(model, torch.randn(1, 4, 3), torch.zeros(1, 1, dtype=torch.long), None, mask)
    for v in s.values():
        assert torch.all(v[0, 2] == 0) and torch.all(v[0, :, 2] == 0)


def test_matching_by_mask_overlap_undoes_a_slot_permutation():
    rng = np.random.default_rng(0)
    ids = rng.integers(0, 4, (3, 16, 16))  # background 0, objects 0..2 as ids 1..3
    perm = np.array([2, 0, 3, 1])  # slot k shows object perm[k] (slot with perm 3 is empty)
    slot_masks = np.stack([(ids == p + 1) for p in perm], 1).astype(np.float32)  # (T, K, H, W)
    slot_of_object, iou = probe.match_by_overlap(slot_masks, ids, 3)
    assert slot_of_object.tolist() == [1, 3, 0]
    assert np.allclose(iou, 1.0)


def test_matching_by_trajectory_undoes_a_slot_permutation():
    rng = np.random.default_rng(1)
    pos = rng.normal(size=(30, 3, 2))
    w = rng.normal(size=(2, 5))
    slots = np.concatenate([pos @ w, rng.normal(size=(30, 1, 5))], 1)[:, [3, 2, 0, 1]]  # slot k = object [_,2,0,1]
    slot_of_object, r2 = probe.match_by_trajectory(slots, pos, 3)
    assert slot_of_object.tolist() == [2, 3, 1]
    assert np.all(r2 > 0.99)


def test_scoring_leaves_dropped_objects_out_rather_than_counting_them_as_non_edges():
    truth = np.zeros((1, 3, 3), bool)
    truth[0, 0, 1] = True
    scores = np.array([[[np.nan, 0.9, 0.95], [0.2, np.nan, 0.95], [0.1, 0.1, np.nan]]])
    all_in = probe.score_method(scores, truth, np.ones((1, 3), bool))
    dropped = probe.score_method(scores, truth, np.array([[True, True, False]]))
    assert all_in["auroc"] < 1.0 and dropped["auroc"] == 1.0 and dropped["pairs"] == 2
    thresholded = probe.score_method(scores, truth, np.array([[True, True, False]]), threshold=0.5)
    assert thresholded["shd"] == 0 and thresholded["precision"] == 1.0
    assert thresholded["edge_accuracy_permutation_invariant"] == 1.0
    # Inverted scores are still perfectly informative under relabeling, but as a directed graph the edge is reversed.
    inverted = probe.score_method(-scores, truth, np.array([[True, True, False]]), threshold=-0.5)
    assert inverted["edge_accuracy_permutation_invariant"] == 1.0 and inverted["shd"] == 1


def test_learned_digraph_over_kept_objects():
    scores = np.array([[[np.nan, 0.9, 0.95], [0.2, np.nan, 0.95], [0.1, 0.1, np.nan]]])
    ps = probe.ProbeScores({"gates": scores}, np.array([3]), np.array([[True, True, False]]), np.ones((1, 3)), "x")
    g = probe.learned_digraph(ps, "gates", 0, 0.5)
    assert set(g.nodes) == {0, 1} and list(g.edges) == [(0, 1)] and g.edges[0, 1]["score"] == pytest.approx(0.9)


def test_probe_config_refuses_bad_values():
    with pytest.raises(probe.ProbeError, match="unknown probe method"):
        probe.ProbeConfig(methods=("gates", "telepathy"))
    with pytest.raises(probe.ProbeError, match="matching"):
        probe.ProbeConfig(matching="psychic")
    with pytest.raises(probe.ProbeError):
        probe.ProbeConfig(time_stride=0)
    with pytest.raises(probe.ProbeError, match="gain_search"):
        probe.ProbeConfig(gain_search=13)


# ------------------------------------------------------------------------------------------------- CLI smoke


@pytest.fixture(scope="module")
def nri(nri_files):
    """The state-only NRI-style files and a state run trained on them (``run``)."""
    root = nri_files
    run = root / "run"
    code = main(
        ["train", "--data", str(root / "train.h5"), "--encoder", "state", "--out", str(run), "--steps", "6"]
        + ["--batch-size", "4", "--rollout-steps", "2", "--slot-dim", "4", "--hidden", "16", "--quiet", "--decoder"]
    )
    assert code == 0
    return root


def test_probe_cli_on_a_state_only_file(nri, capsys):
    run, test = nri / "run", str(nri / "test.h5")
    args = ["probe", str(run), "--data", test, "--quiet", "--baselines", "regression,regression_linear,granger"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "jacobian" in out and "regression (baseline)" in out and "regression_linear (baseline)" in out
    result = json.loads((run / "probe.json").read_text())
    assert {"auroc", "ap", "shd", "best_method", "methods", "baselines", "matching"} <= set(result)
    assert set(result["methods"]) == set(probe.METHODS)
    assert result["matching"]["method"] == "identity"
    assert result["threshold_source"] is not None and result["shd"] is not None
    # The best method is picked on the training episodes, never on the test file it is scored on.
    train_auroc = {m: v["adjacency"]["train_auroc"] for m, v in result["methods"].items()}
    assert result["best_selected_on"] == "training"
    test_auroc = {m: v["adjacency"]["auroc"] for m, v in result["methods"].items()}
    assert result["best_method"] == max(train_auroc, key=train_auroc.get)
    assert probe.select_best(test_auroc, train_auroc) == (result["best_method"], "training")
    assert result["auroc"] == result["methods"][result["best_method"]]["adjacency"]["auroc"]
    assert f"best method: {result['best_method']} (chosen on training episodes)" in out
    raw = np.load(run / "probe_scores.npz")
    assert raw["scores_gates"].shape == raw["adjacency"].shape == (8, 5, 5)
    # Anyone can recompute a metric from the raw file.
    again = probe.score_method(raw["scores_gates"].astype(float), raw["adjacency"].astype(bool), raw["matched"])
    assert again["auroc"] == pytest.approx(result["methods"]["gates"]["adjacency"]["auroc"])

    before = (run / "probe.json").read_bytes()
    assert main(["probe", str(run), "--data", test, "--quiet"]) == 2  # no clobbering without --overwrite
    assert (run / "probe.json").read_bytes() == before
    assert main(["probe", str(run), "--data", test, "--quiet", "--overwrite", "--methods", "gates"]) == 0
    assert set(json.loads((run / "probe.json").read_text())["methods"]) == {"gates"}


def test_probe_cli_refuses_mismatched_data_and_bad_flags(nri, tmp_path, capsys):
    run = nri / "run"
    earlier = (run / "probe.json").read_bytes() if (run / "probe.json").exists() else None
    other = tmp_path / "other.h5"
    with h5py.File(nri / "test.h5") as src, h5py.File(other, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        dst.attrs["state_features"] = json.dumps(["x", "y", "vx", "vy", "charge"])
        dst["states"] = np.concatenate([src["states"][:], np.zeros((*src["states"].shape[:3], 1), np.float32)], -1)
        dst["num_objects"] = src["num_objects"][:]
        dst["adjacency"] = src["adjacency"][:]
    assert main(["probe", str(run), "--data", str(other), "--quiet", "--overwrite"]) == 2
    assert "state features" in capsys.readouterr().err
    no_adj = tmp_path / "noadj.h5"
    with h5py.File(nri / "test.h5") as src, h5py.File(no_adj, "w") as dst:
        for k, v in src.attrs.items():
            dst.attrs[k] = v
        dst["states"], dst["num_objects"] = src["states"][:], src["num_objects"][:]
    assert main(["probe", str(run), "--data", str(no_adj), "--quiet", "--overwrite"]) == 2
    assert "adjacency" in capsys.readouterr().err
    assert main(["probe", str(run), "--data", str(nri / "test.h5"), "--baselines", "astrology"]) == 2
    assert main(["probe", str(run), "--data", str(nri / "test.h5"), "--methods", "gates,vibes"]) == 2
    assert main(["probe", str(run), "--data", str(nri / "test.h5"), "--gain-search", "20"]) == 2
    # A failed probe never leaves a partial file behind and keeps earlier results.
    now = (run / "probe.json").read_bytes() if (run / "probe.json").exists() else None
    assert now == earlier
    assert not list(run.glob(".probe*"))


def test_probe_of_an_image_run_matches_slots_by_masks(tmp_path):
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate
    from causal_wm.train import TrainConfig, train

    common = dict(steps=12, num_objects="3", image_size=32, influence_steps=0)
    generate(GenerateConfig(episodes=6, seed=0, **common), tmp_path / "train.h5", progress=False)
    generate(GenerateConfig(episodes=4, seed=1, **common), tmp_path / "test.h5", progress=False)
    cfg = TrainConfig(
        data=str(tmp_path / "train.h5"),
        encoder="cnn",
        steps=2,
        batch_size=4,
        rollout_steps=2,
        model={"slot_dim": 4, "hidden": 16, "encoder_hidden": 8},
    )
    train(cfg, tmp_path / "run", progress=False)
    result, arrays = probe.probe(tmp_path / "run", str(tmp_path / "test.h5"), probe.ProbeConfig(time_stride=4))
    assert result["matching"]["method"] == "masks"
    assert 0.0 <= result["matching"]["mean_quality"] <= 1.0
    assert arrays["scores_jacobian"].shape == (4, 3, 3)
    kept = arrays["matched"]
    off = ~np.eye(3, dtype=bool)
    both = kept[:, :, None] & kept[:, None, :] & off
    assert np.all(np.isfinite(arrays["scores_gates"][both]))
    assert np.all(np.isnan(arrays["scores_gates"][~both]))


class PushHandModel(WorldModel):
    """A model with an action node whose every readout points at slot (pushed object + ``shift``) mod N."""

    def __init__(self, shift):
        super().__init__(
            ModelConfig(encoder="state", num_slots=3, slot_dim=2, hidden=8, action_node=True, object_actions=False)
        )
        self.shift = shift

    def transition(self, z, actions, positions=None, slot_mask=None, edge_gates=None, norms=True):
        b, k, _ = z.shape
        push = actions > 0
        target = ((actions - 1) // NUM_DIRECTIONS + self.shift) % k
        hit = torch.nn.functional.one_hot(target, k).float() * push[:, None]  # (B, K)
        zero = z.new_zeros(b, k, k)
        return TransitionOutput(z * 0.0 + hit[..., None], zero, zero, 0.1 + 0.8 * hit, 2.0 * hit)


@pytest.mark.parametrize("shift, expected", [(0, 1.0), (1, 0.0)])
def test_action_node_readouts_are_scored_against_the_pushed_object(tmp_path, shift, expected):
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate
    from causal_wm.train import EpisodeArrays

    path = tmp_path / "push.h5"
    options = dict(episodes=4, steps=12, num_objects="3", images=False, influence_steps=0)
    generate(GenerateConfig(scene="pushing", **options), path, progress=False)
    data = EpisodeArrays(str(path), images=False)
    scores = probe.extract(PushHandModel(shift), data, probe.ProbeConfig(methods=("gates",), time_stride=1))
    times = np.arange(0, data.steps - 1)
    assert scores.push_steps.sum() == (data.actions[:, times] > 0).sum() > 0
    assert set(scores.push_hits) == set(probe.ACTION_READOUTS)
    for readout, hits in scores.push_hits.items():
        assert hits.sum() / scores.push_steps.sum() == expected, readout


class BlockedPushModel(WorldModel):
    """A push in direction 0 is blocked: its object barely moves and the object it presses on (the next slot) moves
    more. Pushes in the other directions move only the pushed object."""

    def __init__(self):
        super().__init__(
            ModelConfig(encoder="state", num_slots=3, slot_dim=2, hidden=8, action_node=True, object_actions=False)
        )

    def transition(self, z, actions, positions=None, slot_mask=None, edge_gates=None, norms=True):
        b, k, _ = z.shape
        push = actions > 0
        obj = ((actions - 1) // NUM_DIRECTIONS).clamp(min=0)
        blocked = push & ((actions - 1) % NUM_DIRECTIONS == 0)
        own = torch.nn.functional.one_hot(obj, k).float() * push[:, None]  # (B, K)
        pressed = torch.nn.functional.one_hot((obj + 1) % k, k).float() * blocked[:, None]
        move = own * torch.where(blocked, 0.1, 1.0)[:, None] + 0.5 * pressed
        zero = z.new_zeros(b, k, k)
        return TransitionOutput(z * 0.0 + move[..., None], zero, zero, 0.5 + 0 * move, move)


def test_action_readouts_every_direction_sees_through_a_blocked_push():
    model = BlockedPushModel()
    z = torch.zeros(4, 3, 2)
    pos = torch.zeros(4, 3, 2)
    objects = torch.tensor([0, 1, 2, 1])
    actions = torch.cat([1 + objects[:3] * NUM_DIRECTIONS, 1 + objects[3:] * NUM_DIRECTIONS + 2])  # 3 blocked, 1 free
    out = probe.action_readouts(model, z, actions, pos)
    assert set(out) == set(probe.ACTION_READOUTS)
    assert all(v.shape == (4, 3) for v in out.values())
    blocked_top = out["intervention"].argmax(1)
    assert torch.equal(blocked_top[:3], (objects[:3] + 1) % 3)  # one direction: the pressed neighbour looks pushed
    assert blocked_top[3] == objects[3]
    assert torch.equal(out["intervention_directions"].argmax(1), objects)
    noop = probe.action_readouts(model, z, torch.zeros(4, dtype=torch.long), pos)
    assert torch.all(noop["intervention_directions"] == 0) and torch.all(noop["intervention"] == 0)


def test_substeps_chain_the_transition_and_the_probe_takes_the_whole_graph_paths():
    """``substeps = 2`` applies the one-step transition (contact messages included) to its own output, averages the
    gates over the two applications, and its Jacobian (finite differences, no shortcut) agrees with autograd."""
    model, _, z, mask = contact_twins(4.0)
    twice = WorldModel(dataclasses.replace(model.config, substeps=2), feature_std=model.encoder.std).double().eval()
    twice.load_state_dict(model.state_dict())
    assert model.one_round_messages and not twice.one_round_messages
    actions = torch.tensor([1, 0, 3])
    with torch.no_grad():
        first = model.transition(z, actions, slot_mask=mask)
        second = model.transition(z + first.delta, actions, slot_mask=mask)
        both = twice.transition(z, actions, slot_mask=mask)
    torch.testing.assert_close(both.delta, first.delta + second.delta, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(both.gates, (first.gates + second.gates) / 2, atol=1e-12, rtol=1e-10)
    torch.testing.assert_close(both.message_norms, (first.message_norms + second.message_norms) / 2)
    assert not torch.allclose(both.delta, 2 * first.delta)  # the second application sees the moved slots
    fast = twice.jacobian_norms(z, actions, slot_mask=mask, eps=1e-6)
    for b in range(3):
        jac = torch.autograd.functional.jacobian(
            lambda x, b=b: twice.transition(x[None], actions[b : b + 1], slot_mask=mask[b : b + 1]).delta[0], z[b]
        )
        exact = jac.pow(2).sum((1, 3)).sqrt().t()
        exact.diagonal().zero_()
        exact = exact.masked_fill(~(mask[b, :, None] & mask[b, None, :]), 0.0)
        torch.testing.assert_close(fast[b], exact, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="substeps must be >= 1"):
        dataclasses.replace(model.config, substeps=0)


def test_select_best_prefers_training_auroc_and_never_picks_nan():
    test = {"gates": 0.9, "jacobian": 0.99, "message_norms": float("nan")}
    # Training episodes decide, even against a higher test AUROC; a method training did not score is not ranked.
    assert probe.select_best(test, {"gates": 0.8, "jacobian": 0.7}) == ("gates", "training")
    assert probe.select_best(test, {"gates": float("nan"), "message_norms": 0.95}) == ("message_norms", "training")
    # Without training scores the test AUROC decides (optimistic, and recorded as such); ties keep the first.
    assert probe.select_best(test, {}) == ("jacobian", "test")
    assert probe.select_best({"gates": 0.5, "jacobian": 0.5}, {"gates": float("nan")}) == ("gates", "test")
    assert probe.select_best({"gates": float("nan")}, {}) == ("gates", "none")
