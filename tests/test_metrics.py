"""Tests for causal_wm.metrics: hand-worked cases and cross-checks against brute force, sklearn and scipy."""

import itertools
import math

import networkx as nx
import numpy as np
import pytest
import torch

from causal_wm import metrics as M


def brute_ranks(pred, target):
    """Reference: direct-difference distances, rank = #{j : d(i, j) <= d(i, i)}."""
    p, t = pred.reshape(len(pred), -1), target.reshape(len(target), -1)
    d = ((p[:, None, :] - t[None, :, :]) ** 2).sum(-1)
    return (d <= np.diag(d)[:, None]).sum(1)


def brute_matched(pred, target):
    k = pred.shape[1]
    out = np.full((len(pred), len(target)), np.inf)
    for perm in itertools.permutations(range(k)):
        d = ((pred[:, None, :, :] - target[None, :, list(perm), :]) ** 2).sum((-1, -2))
        out = np.minimum(out, d)
    return out


# ---------------------------------------------------------------------------------------------------- ranking


def test_ranks_hand_worked_with_tie():
    target = np.array([[0.0], [1.0], [2.0], [3.0]])
    pred = np.array([[0.1], [2.0], [2.0], [10.0]])
    # sample 1: d = (4, 1, 0, 1); target 2 is closer (d=0), target 3 ties (d=1) and counts against it -> rank 3
    r = M.ranks(pred, target)
    assert r.tolist() == [1, 3, 1, 1]
    assert M.hits_at_k(r, 1) == 0.75
    assert M.hits_at_k(r, 3) == 1.0
    assert M.mrr(r) == pytest.approx((1 + 1 / 3 + 1 + 1) / 4)


def test_ranks_duplicate_targets_are_pessimistic_ties():
    target = np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 0.0]])
    pred = np.array([[1.0, 1.0], [1.0, 1.0], [5.0, 5.0]])
    assert M.ranks(pred, target).tolist() == [2, 2, 3]
    assert M.mrr([2, 2, 3]) == pytest.approx((0.5 + 0.5 + 1 / 3) / 3)


@pytest.mark.parametrize("block_size", [None, 7])
def test_ranks_match_brute_force_with_duplicates_and_torch(block_size):
    rng = np.random.default_rng(0)
    base = rng.normal(size=(20, 3, 4)) * 123.456  # large non-integer values: expansion rounding must not break ties
    target = base[rng.integers(0, 20, size=60)]  # many exact duplicates
    pred = target + rng.normal(size=target.shape) * rng.choice([0.0, 1e-7, 30.0], size=(60, 1, 1))
    expected = brute_ranks(pred, target)
    assert (expected > 1).any() and (expected == 1).any()
    np.testing.assert_array_equal(M.ranks(pred, target, block_size=block_size), expected)
    np.testing.assert_array_equal(M.ranks(torch.from_numpy(pred), torch.from_numpy(target)), expected)
    d = ((pred.reshape(60, -1)[:, None] - target.reshape(60, -1)[None]) ** 2).sum(-1)
    np.testing.assert_array_equal(M.ranks(distance=d, block_size=block_size), expected)


def test_ranks_rejects_bad_input():
    with pytest.raises(ValueError):
        M.ranks(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError):
        M.ranks(np.array([[np.nan]]), np.zeros((1, 1)))
    with pytest.raises(ValueError):
        M.ranks(distance=np.zeros((2, 3)))
    with pytest.raises(ValueError):
        M.mrr([0, 1])


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_matched_distances_equal_brute_force(k):
    rng = np.random.default_rng(k)
    pred = rng.normal(size=(6, k, 3))
    target = rng.normal(size=(8, k, 3))
    np.testing.assert_allclose(M.matched_distances(pred, target), brute_matched(pred, target), rtol=1e-12)


def test_matched_distances_large_k_agree_with_hungarian():
    linear_sum_assignment = pytest.importorskip("scipy.optimize").linear_sum_assignment
    rng = np.random.default_rng(1)
    pred, target = rng.normal(size=(3, 9, 2)), rng.normal(size=(4, 9, 2))
    got = M.matched_distances(pred, target)
    for i, j in itertools.product(range(3), range(4)):
        cost = ((pred[i][:, None] - target[j][None]) ** 2).sum(-1)
        r, c = linear_sum_assignment(cost)
        assert got[i, j] == pytest.approx(cost[r, c].sum(), rel=1e-12)


def test_matched_distances_invariant_to_slot_order_and_rank_usage():
    rng = np.random.default_rng(2)
    target = rng.normal(size=(30, 4, 3))
    pred = target + 0.05 * rng.normal(size=target.shape)
    shuffled = np.stack([t[rng.permutation(4)] for t in target])  # each target's slots in a new order
    d = M.matched_distances(pred, target)
    np.testing.assert_allclose(M.matched_distances(pred, shuffled), d, rtol=1e-12)
    np.testing.assert_allclose(M.matched_distances(torch.from_numpy(shuffled), torch.from_numpy(pred)), d.T, rtol=1e-12)
    assert M.ranks(distance=M.matched_distances(pred, shuffled)).tolist() == [1] * 30
    assert M.hits_at_k(M.ranks(pred, shuffled), 1) < 1.0  # slot-order-sensitive ranking is fooled by the shuffle


# ---------------------------------------------------------------------------------------------------- segmentation


def test_ari_matches_sklearn_on_random_and_degenerate_labelings():
    adjusted_rand_score = pytest.importorskip("sklearn.metrics").adjusted_rand_score
    rng = np.random.default_rng(3)
    cases = [(rng.integers(0, a, n), rng.integers(0, b, n) * 7 - 3) for n, a, b in [(50, 3, 4), (200, 6, 2), (9, 9, 9)]]
    x = rng.integers(0, 4, 100)
    cases += [(x, x + 10), (x, (x + 1) % 4), (np.zeros(5), np.zeros(5)), (np.zeros(5), np.arange(5))]
    cases += [(np.arange(5), np.arange(5)), (np.arange(5), np.zeros(5)), ([1], [2]), ([0, 0, 1, 1], [0, 1, 0, 1])]
    for t, p in cases:
        assert M.adjusted_rand_index(t, p) == pytest.approx(adjusted_rand_score(t, p), abs=1e-12)


def test_fg_ari_ignores_background_and_is_invariant_to_slot_relabeling():
    adjusted_rand_score = pytest.importorskip("sklearn.metrics").adjusted_rand_score
    rng = np.random.default_rng(4)
    b, k, h, w = 6, 5, 8, 8
    true = rng.integers(0, 4, size=(b, h, w))
    logits = rng.normal(size=(b, k, h, w))
    ids = logits.argmax(1)
    expected = np.mean([adjusted_rand_score(true[i][true[i] != 0], ids[i][true[i] != 0]) for i in range(b)])
    assert M.fg_ari(true, logits) == pytest.approx(expected, abs=1e-12)
    assert M.fg_ari(true, ids) == pytest.approx(expected, abs=1e-12)
    assert M.fg_ari(torch.from_numpy(true), torch.from_numpy(logits)) == pytest.approx(expected, abs=1e-12)
    # relabeling predicted slots (a different permutation per sample) changes nothing
    permuted = np.stack([logits[i, rng.permutation(k)] for i in range(b)])
    assert M.fg_ari(true, permuted) == pytest.approx(expected, abs=1e-12)
    # whatever is predicted on background pixels changes nothing
    scrambled = np.where(true == 0, rng.integers(0, k, size=ids.shape), ids)
    assert M.fg_ari(true, scrambled) == pytest.approx(expected, abs=1e-12)
    per = M.fg_ari(true, ids, per_sample=True)
    assert per.shape == (b,) and np.mean(per) == pytest.approx(expected, abs=1e-12)


def test_fg_ari_degenerate_samples():
    true = np.zeros((3, 2, 2), dtype=int)
    true[1] = [[1, 1], [0, 0]]  # one object
    true[2] = [[1, 1], [0, 2]]
    pred = np.array([[[0, 1], [2, 3]], [[4, 4], [0, 1]], [[0, 1], [1, 1]]])
    per = M.fg_ari(true, pred, per_sample=True)
    assert np.isnan(per[0])  # no foreground: excluded
    assert per[1] == 1.0  # single object in a single slot (sklearn: both partitions trivial)
    # ids (1, 1, 2) vs slots (0, 1, 1): pairs together in neither / true only / pred only = 1 / 1 / 1, none in both
    assert per[2] == pytest.approx(2 * (0 * 1 - 1 * 1) / ((0 + 1) * (1 + 1) + (0 + 1) * (1 + 1)))
    assert M.fg_ari(true, pred) == pytest.approx(np.nanmean(per))
    split = pred.copy()
    split[1] = [[4, 5], [0, 1]]
    assert M.fg_ari(true, split, per_sample=True)[1] == 0.0  # single object split over two slots
    assert math.isnan(M.fg_ari(np.zeros((2, 3, 3), int), np.zeros((2, 3, 3), int)))


# ---------------------------------------------------------------------------------------------------- probes


def test_linear_probe_recovers_exact_linear_map():
    rng = np.random.default_rng(5)
    a, bias = rng.normal(size=(6, 4)), rng.normal(size=4)
    x_tr, x_te = rng.normal(size=(200, 6)) * 5 + 2, rng.normal(size=(50, 6)) * 5 + 2
    res = M.linear_probe(x_tr, x_tr @ a + bias, x_te, x_te @ a + bias, ridge=0.0)
    assert res["error"] < 1e-9 and res["r2"] == pytest.approx(1.0, abs=1e-12)
    res = M.linear_probe(torch.from_numpy(x_tr), x_tr @ a + bias, x_te, x_te @ a + bias)  # default ridge: tiny shrink
    assert res["error"] < 0.05 and res["r2"] > 0.9999
    odd = M.linear_probe(x_tr, (x_tr @ a)[:, :3], x_te, (x_te @ a)[:, :3])
    assert math.isnan(odd["error"]) and odd["r2"] > 0.9999


def test_linear_probe_matches_sklearn_ridge():
    pytest.importorskip("sklearn")
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(6)
    x_tr, x_te = rng.normal(size=(80, 10)), rng.normal(size=(40, 10))
    x_tr[:, 3] = x_te[:, 3] = 1.0  # a constant feature
    w = rng.normal(size=(10, 6))
    y_tr, y_te = x_tr @ w + rng.normal(size=(80, 6)), x_te @ w + rng.normal(size=(40, 6))
    ridge = 0.3
    scaler = StandardScaler().fit(x_tr)
    y_hat = Ridge(alpha=ridge * len(x_tr)).fit(scaler.transform(x_tr), y_tr).predict(scaler.transform(x_te))
    res = M.linear_probe(x_tr, y_tr, x_te, y_te, ridge=ridge)
    assert res["r2"] == pytest.approx(r2_score(y_te, y_hat), abs=1e-10)
    assert res["error"] == pytest.approx(np.linalg.norm((y_hat - y_te).reshape(40, 3, 2), axis=-1).mean(), abs=1e-10)


# ---------------------------------------------------------------------------------------------------- graphs


def test_offdiag_mask():
    m = M.offdiag_mask(2, 3)
    assert m.tolist() == [[False, True, False], [True, False, False], [False, False, False]]
    assert M.offdiag_mask(3, 3).sum() == 6
    with pytest.raises(ValueError):
        M.offdiag_mask(4, 3)


def test_auroc_and_average_precision_match_sklearn_with_ties():
    skm = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    for n in (5, 40, 300):
        for _ in range(5):
            y = rng.integers(0, 2, n)
            if y.min() == y.max():
                continue
            s = rng.integers(0, 4, n) + 0.5 * y * rng.integers(0, 2, n)  # heavy ties
            assert M.auroc(s, y) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
            assert M.average_precision(s, y) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert M.average_precision([0.3, 0.3, 0.3], [1, 1, 1]) == 1.0
    assert math.isnan(M.auroc([0.1, 0.2], [1, 1]))
    assert math.isnan(M.average_precision([0.1, 0.2], [0, 0]))
    # hand case: positives at 0.9 and 0.5 (tied with a negative); AP = 0.5 * 1 + 0.5 * 2/3
    assert M.average_precision([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.5 + 1 / 3)
    assert M.auroc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx((1 + 1 + 0.5 + 1) / 4)


def test_graph_scores_ignore_padding_and_diagonal():
    true = np.zeros((2, 4, 4), dtype=np.uint8)
    true[0, 0, 1] = true[0, 2, 0] = 1  # episode 0: 3 real objects
    true[0, 3, 0] = true[0, 0, 3] = 1  # padding (object 3 is not real): must be ignored
    scores = np.where(true, 0.9, 0.1)
    scores[0, 3, 0] = scores[0, 0, 3] = 0.0  # would be badly ranked positives if padding counted
    np.fill_diagonal(scores[0], 5.0)  # would be top-ranked negatives if the diagonal counted
    scores[0, 1, 2] = 0.05
    true[1, 0, 1] = 1  # episode 1: 2 real objects, one edge and one non-edge, ranked wrongly
    scores[1, 0, 1], scores[1, 1, 0] = 0.2, 0.8
    res = M.graph_scores(scores, true, num_objects=[3, 2])
    assert res["pairs"] == 6 + 2 and res["positives"] == 3
    assert res["auroc_episode_mean"] == pytest.approx(0.5) and res["ap_episode_mean"] == pytest.approx(0.75)
    assert res["episodes_scored"] == 2 and res["episodes_skipped"] == 0
    # pooled: positives 0.9, 0.9, 0.2; negatives 0.1 x3, 0.05, 0.8
    assert res["auroc"] == pytest.approx((5 + 5 + 4) / 15)
    res1 = M.graph_scores(scores[:1], true[:1], num_objects=[3])
    assert res1["auroc"] == 1.0 and res1["ap"] == 1.0
    skipped = M.graph_scores(np.zeros((2, 3, 3)), np.zeros((2, 3, 3)), [3, 2])
    assert skipped["episodes_skipped"] == 2 and math.isnan(skipped["auroc_episode_mean"])


def test_shd_hand_cases():
    true = np.zeros((3, 3), dtype=int)
    true[0, 1] = true[1, 2] = 1
    assert M.shd(true, true) == 0
    missing = true.copy()
    missing[1, 2] = 0
    assert M.shd(missing, true) == 1
    extra = true.copy()
    extra[2, 0] = 1
    assert M.shd(extra, true) == 1
    reversed_ = true.copy()
    reversed_[0, 1], reversed_[1, 0] = 0, 1
    assert M.shd(reversed_, true) == 1 and M.shd_undirected(reversed_, true) == 0
    both = true.copy()
    both[1, 0] = 1  # 0 <-> 1 where the truth has 0 -> 1
    assert M.shd(both, true) == 1
    both_none = true.copy()
    both_none[0, 2] = both_none[2, 0] = 1  # 0 <-> 2 where the truth has nothing
    assert M.shd(both_none, true) == 2 and M.shd_undirected(both_none, true) == 1
    self_loop = true.copy()
    self_loop[2, 2] = 1
    assert M.shd(self_loop, true) == 0  # diagonal ignored
    assert M.shd(extra, true, num_objects=2) == 0  # the extra edge involves padding object 2
    assert M.shd(M.to_digraph(reversed_), M.to_digraph(true)) == 1
    assert M.shd(nx.DiGraph([(1, 0), (1, 2)]), true) == 1


def test_graph_metrics_at_threshold_and_choose_threshold():
    true = np.zeros((2, 3, 3), dtype=int)
    true[0, 0, 1] = true[0, 1, 2] = true[1, 1, 0] = 1
    scores = np.full((2, 3, 3), 0.1)
    scores[0, 0, 1], scores[0, 1, 2], scores[1, 1, 0] = 0.7, 0.4, 0.6
    scores[0, 1, 0] = 0.5  # a reversal of 0 -> 1 when predicted
    scores[:, 2, 2] = 0.99  # diagonal
    res = M.graph_metrics_at_threshold(scores, true, num_objects=[3, 2], threshold=0.45)
    # predicted: e0 {0->1, 1->0}, e1 {1->0}; true: e0 {0->1, 1->2}, e1 {1->0}
    assert (res["tp"], res["fp"], res["fn"], res["tn"]) == (2, 1, 1, 4)
    assert res["precision"] == pytest.approx(2 / 3) and res["recall"] == pytest.approx(2 / 3)
    assert res["f1"] == pytest.approx(2 / 3) and res["accuracy"] == pytest.approx(6 / 8)
    assert res["shd_mean"] == pytest.approx((2 + 0) / 2)  # e0: extra 1->0, missing 1->2
    # F1 of ">= v" over the distinct scored values 0.7, 0.6, 0.5, 0.4, 0.1: 1/2, 4/5, 2/3, 6/7, 6/11 -> cut below 0.4
    thr = M.choose_threshold(scores, true, num_objects=[3, 2])
    assert thr == pytest.approx(0.25)
    assert M.graph_metrics_at_threshold(scores, true, [3, 2], thr)["f1"] == pytest.approx(6 / 7)
    perfect = np.where(true, 0.8, 0.2)
    thr = M.choose_threshold(perfect, true)
    assert thr == pytest.approx(0.5) and M.graph_metrics_at_threshold(perfect, true, None, thr)["f1"] == 1.0
    with pytest.raises(ValueError):
        M.choose_threshold(scores, np.zeros_like(true))


def test_permutation_invariant_edge_accuracy_relabeled_and_per_batch_pitfall():
    rng = np.random.default_rng(8)
    true = rng.integers(0, 3, size=(10, 12))
    relabel = np.array([2, 0, 1])
    acc, sigma = M.permutation_invariant_edge_accuracy(relabel[true], true, 3, return_permutation=True)
    assert acc == 1.0 and np.array_equal(sigma[relabel], np.arange(3))
    many = rng.integers(0, 9, size=(4, 50))  # > 8 types: assignment instead of enumeration
    assert M.permutation_invariant_edge_accuracy((many * 4 + 1) % 9, many, 9) == 1.0
    # NRI#35-style pitfall: batch A predicts the true labels, batch B the swapped labels (a different model labeling).
    true2 = rng.integers(0, 2, size=(8, 6))
    pred2 = true2.copy()
    pred2[4:] = 1 - pred2[4:]
    per_batch = np.mean([M.permutation_invariant_edge_accuracy(pred2[s], true2[s], 2) for s in (slice(0, 4), slice(4))])
    assert per_batch == 1.0  # matching labels per batch hides the inconsistency
    assert M.permutation_invariant_edge_accuracy(pred2, true2, 2) == pytest.approx(0.5)
    # incomplete last batch: the pooled accuracy is the per-edge fraction, not a mean of batch means
    pred3 = true2.copy()
    pred3[7, :3] = 1 - pred3[7, :3]
    batch_means = np.mean([np.mean(pred3[s] == true2[s]) for s in (slice(0, 5), slice(5))])
    pooled = M.permutation_invariant_edge_accuracy(pred3, true2, 2)
    assert pooled == pytest.approx(1 - 3 / 48) and batch_means != pytest.approx(pooled)
    mask = np.ones_like(true2, dtype=bool)
    mask[7, :3] = False
    assert M.permutation_invariant_edge_accuracy(pred3, true2, 2, mask=mask) == 1.0
    with pytest.raises(ValueError):
        M.permutation_invariant_edge_accuracy(true2 + 1, true2, 2)


def test_digraph_round_trip():
    adj = np.zeros((4, 4), dtype=np.uint8)
    adj[0, 1] = adj[2, 0] = adj[3, 1] = 1
    g = M.to_digraph(adj, num_objects=3)
    assert isinstance(g, nx.DiGraph) and sorted(g.nodes) == [0, 1, 2] and sorted(g.edges) == [(0, 1), (2, 0)]
    back = M.from_digraph(g, 4)
    assert back.dtype == np.uint8 and back.sum() == 2 and back[0, 1] == back[2, 0] == 1
    np.testing.assert_array_equal(M.from_digraph(M.to_digraph(adj), 4), adj)
    with pytest.raises(ValueError):
        M.from_digraph(nx.DiGraph([(0, 5)]), 3)


# ---------------------------------------------------------------------------------------------------- seeds


def test_mean_ci_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    v = np.array([0.61, 0.72, 0.58, 0.69, 0.65])
    mean, low, high = M.mean_ci(v, 0.9)
    half = stats.t.ppf(0.95, 4) * v.std(ddof=1) / math.sqrt(5)
    assert mean == pytest.approx(v.mean())
    assert (low, high) == pytest.approx((v.mean() - half, v.mean() + half))
    assert (low, high) == pytest.approx(stats.t.interval(0.9, 4, loc=v.mean(), scale=stats.sem(v)))
    one = M.mean_ci([0.5])
    assert one[0] == 0.5 and math.isnan(one[1]) and math.isnan(one[2])
    with pytest.raises(ValueError):
        M.mean_ci([])
