"""Evaluation metrics, each defined exactly once: ranking, segmentation, probes, causal graphs, seed statistics.

Conventions
-----------
- Inputs may be numpy arrays, array-likes or torch tensors (detached and moved to the CPU); scalar results are python
  floats/ints, array results numpy arrays.
- Everything is accumulated **per sample** (per target, per pixel, per edge, per episode as documented), never as a
  mean of per-batch means, so no result depends on how data was batched (the pitfall of ethanfetaya/NRI#35).
- Graphs are directed: ``adj[i, j] = 1`` means object i acts on object j. Slots past ``num_objects[e]`` are padding;
  only off-diagonal pairs (i != j) of real objects are scored. At the API boundary graphs are ``networkx.DiGraph``
  (see :func:`to_digraph` / :func:`from_digraph`).
- scipy is imported lazily, only by :func:`mean_ci`, :func:`permutation_invariant_edge_accuracy` with more than
  8 types and :func:`matched_distances` with more than 12 slots.

Sections: ranking (C-SWM protocol) | segmentation (ARI, FG-ARI) | linear probes | graphs | seed statistics.
"""

from __future__ import annotations

import itertools
import math
from functools import lru_cache
from typing import Any

import networkx as nx
import numpy as np
import torch

__all__ = [
    "adjusted_rand_index",
    "auroc",
    "average_precision",
    "choose_threshold",
    "fg_ari",
    "from_digraph",
    "graph_metrics_at_threshold",
    "graph_scores",
    "hits_at_k",
    "linear_probe",
    "matched_distances",
    "mean_ci",
    "mrr",
    "offdiag_mask",
    "permutation_invariant_edge_accuracy",
    "ranks",
    "shd",
    "shd_undirected",
    "to_digraph",
]

_BLOCK_ELEMENTS = 1 << 22  # float64 elements per temporary block (32 MiB): bounds memory of the blocked loops


def _np(x: Any, dtype: Any = None) -> np.ndarray:
    """``x`` as a numpy array (torch tensors are detached and copied to the CPU)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=dtype)


def _finite(x: np.ndarray, name: str) -> np.ndarray:
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


# ----------------------------------------------------------------------------------------------------------------------
# Ranking (C-SWM protocol)
# ----------------------------------------------------------------------------------------------------------------------


def _sq_dist_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise squared Euclidean distance by direct differences: (n, P), (n, P) -> (n,) float64.

    This is the reference ("exact") computation; every tie decision in :func:`ranks` is taken with it, so bitwise
    identical rows always give bitwise identical distances.
    """
    diff = a - b
    return np.einsum("np,np->n", diff, diff)


def ranks(pred: Any = None, target: Any = None, distance: Any = None, *, block_size: int | None = None) -> np.ndarray:
    """Rank of each true target among all targets, C-SWM protocol, with ties counted pessimistically.

    Definition: with ``d(i, j)`` the squared Euclidean distance between ``pred[i]`` and ``target[j]`` (both flattened
    to P features), the rank of sample i is

        rank_i = 1 + #{j != i : d(i, j) < d(i, i)} + #{j != i : d(i, j) == d(i, i)} = #{j : d(i, j) <= d(i, i)},

    i.e. a target tied with the true one counts as ranked above it. Rank 1 means the true target is strictly the
    nearest.

    Numerics: distances are computed in float64 blocks of rows with the expansion ``|p|^2 - 2 p.t + |t|^2`` (one
    matmul per block, memory O(block_size * M)); every comparison that falls within a rounding band of the true
    distance (``max(1e-9, 32 P eps) * (|p_i|^2 + max_j |t_j|^2)``) is recomputed by direct differences, so the result is
    exactly the ranking of direct-difference float64 distances, and duplicated targets are always ties.

    Args:
        pred: (M, ...) predictions (e.g. predicted next latent states), flattened to (M, P).
        target: (M, ...) targets (e.g. encoded true next states), same shape as ``pred``.
        distance: optional precomputed (M, M) matrix, ``distance[i, j]`` = distance from prediction i to target j
            (e.g. :func:`matched_distances`); when given, ``pred``/``target`` are not used and ties are exact equality.
        block_size: rows per block (default: about 4M matrix elements per block).

    Returns:
        (M,) int64 ranks in [1, M].
    """
    if distance is not None:
        d = _finite(_np(distance, np.float64), "distance")
        if d.ndim != 2 or d.shape[0] != d.shape[1]:
            raise ValueError(f"distance must be a square (M, M) matrix, got shape {d.shape}")
        m = d.shape[0]
        block = block_size or max(1, _BLOCK_ELEMENTS // max(m, 1))
        out = np.empty(m, dtype=np.int64)
        for s in range(0, m, block):
            rows = d[s : s + block]  # (B, M)
            diag = np.diagonal(d)[s : s + block]  # (B,)
            out[s : s + block] = (rows <= diag[:, None]).sum(1)
        return out

    if pred is None or target is None:
        raise ValueError("ranks needs pred and target, or a precomputed distance matrix")
    p = _np(pred, np.float64)
    t = _np(target, np.float64)
    if p.shape != t.shape or p.ndim < 1:
        raise ValueError(f"pred and target must have the same (M, ...) shape, got {p.shape} and {t.shape}")
    m = p.shape[0]
    p = _finite(np.ascontiguousarray(p.reshape(m, -1)), "pred")  # (M, P)
    t = _finite(np.ascontiguousarray(t.reshape(m, -1)), "target")  # (M, P)
    n_features = p.shape[1]
    band = max(1e-9, 32 * max(n_features, 1) * np.finfo(np.float64).eps)

    p_sq = np.einsum("mp,mp->m", p, p)  # (M,)
    t_sq = np.einsum("mp,mp->m", t, t)  # (M,)
    true_d = _sq_dist_rows(p, t)  # (M,) exact d(i, i)
    # d(i, j) - d(i, i) = -(2 p_i.t_j - |t_j|^2) + (|p_i|^2 - d(i, i)): compare y_ij = 2 p_i.t_j - |t_j|^2 with
    # per-row bounds; |error| of the expansion <= tol_i, so y > hi is surely closer and y < lo surely farther.
    tol = band * (p_sq + t_sq.max(initial=0.0))  # (M,)
    hi = p_sq - true_d + tol  # (M,)
    lo = p_sq - true_d - tol  # (M,)
    p2 = 2.0 * p  # exact scaling, so p2 @ t.T == 2 (p @ t.T) bitwise
    block = block_size or max(1, _BLOCK_ELEMENTS // max(m, 1))
    pair_chunk = max(1, _BLOCK_ELEMENTS // max(n_features, 1))
    out = np.empty(m, dtype=np.int64)
    for s in range(0, m, block):
        e = min(s + block, m)
        y = p2[s:e] @ t.T  # (B, M)
        y -= t_sq[None, :]
        y[np.arange(e - s), np.arange(s, e)] = -np.inf  # the true target itself: counted once below
        hi_b, lo_b = hi[s:e, None], lo[s:e, None]  # (B, 1)
        closer = np.count_nonzero(y > hi_b, axis=1)  # (B,) surely closer than the true target
        maybe = np.count_nonzero(y >= lo_b, axis=1)  # (B,) closer or within the rounding band
        count = 1 + closer  # (B,) the true target ranks itself
        near = np.flatnonzero(maybe > closer)  # rows with near ties: decide them exactly
        if near.size:
            sub = y[near]  # (n_near, M)
            r, k = np.nonzero((sub >= lo_b[near]) & (sub <= hi_b[near]))
            r = near[r]
            for c in range(0, r.size, pair_chunk):
                rc, kc = r[c : c + pair_chunk], k[c : c + pair_chunk]
                exact = _sq_dist_rows(p[s + rc], t[kc])  # (n,)
                count += np.bincount(rc, weights=exact <= true_d[s + rc], minlength=e - s).astype(np.int64)
        out[s:e] = count
    return out


def hits_at_k(ranks: Any, k: int = 1) -> float:
    """Hits@k: the fraction of samples whose rank (from :func:`ranks`) is <= k."""
    r = _np(ranks).ravel()
    if r.size == 0:
        raise ValueError("hits_at_k of an empty rank array")
    return float(np.mean(r <= k))


def mrr(ranks: Any) -> float:
    """Mean reciprocal rank: mean over samples of 1 / rank (ranks from :func:`ranks`, >= 1)."""
    r = _np(ranks, np.float64).ravel()
    if r.size == 0:
        raise ValueError("mrr of an empty rank array")
    if np.any(r < 1):
        raise ValueError("ranks must be >= 1")
    return float(np.mean(1.0 / r))


@lru_cache(maxsize=16)
def _subset_levels(k: int) -> tuple[tuple[np.ndarray, np.ndarray, np.ndarray], ...]:
    """Tables for the assignment DP over subsets of K columns, one per subset size c = 1..K.

    Level c: ``subsets`` (n_c,) bitmasks with c bits set, ``cols`` (n_c, c) the columns in each subset and ``prev``
    (n_c, c) each subset without that column.
    """
    levels = []
    masks = np.arange(1 << k)
    bits = (masks[:, None] >> np.arange(k)[None, :]) & 1  # (2^K, K)
    for c in range(1, k + 1):
        subsets = masks[bits.sum(1) == c]  # (n_c,)
        cols = np.nonzero(bits[subsets])[1].reshape(len(subsets), c)  # (n_c, c), row-major so grouped by subset
        prev = subsets[:, None] ^ (1 << cols)  # (n_c, c)
        levels.append((subsets, cols, prev))
    return tuple(levels)


def _min_assignment_cost(cost: np.ndarray) -> np.ndarray:
    """Exact minimum over permutations pi of sum_k cost[k, pi(k), n]: (K, K, n) -> (n,), for n problems at once.

    Dynamic programming over subsets S of columns, rows taken in order: f(S) = min over l in S of
    f(S \\ {l}) + cost[|S| - 1, l], with f({}) = 0; the answer is f(all columns). O(n K 2^(K-1)) time and O(n 2^K)
    memory, versus O(n K K!) for enumerating permutations. The problem axis is last so every gather copies
    contiguous rows.
    """
    k, _, n = cost.shape
    f = np.empty((1 << k, n), dtype=cost.dtype)  # (2^K, n); level c reads only the subsets written at level c - 1
    f[0] = 0.0
    for c, (subsets, cols, prev) in enumerate(_subset_levels(k)):
        cand = np.take(f, prev, axis=0)  # (n_c, c, n)
        cand += np.take(cost[c], cols, axis=0)  # (n_c, c, n)
        f[subsets] = cand.min(1)
    return f[-1]


def matched_distances(pred: Any, target: Any, *, block_size: int | None = None) -> np.ndarray:
    """Squared distance between slot *sets* under the best slot matching, for slot-order-free encoders.

    Definition: for predictions (M, K, D) and targets (M', K, D),

        out[i, j] = min over permutations pi of {0..K-1} of  sum_k || pred[i, k] - target[j, pi(k)] ||^2,

    so ``out`` is invariant to permuting the slots of any prediction or target. Use it as
    ``ranks(distance=matched_distances(pred, target))``.

    Algorithm: the (K, K) slot cost matrices of a block of pairs are computed by direct differences in float64
    (bitwise equal inputs give bitwise equal distances, so duplicates tie exactly in :func:`ranks`), and the assignment
    is solved exactly for all pairs of the block at once by a vectorised dynamic program over subsets of target slots
    (:func:`_min_assignment_cost`): O(M M' K (K D + 2^(K-1))) time, memory bounded by the block size (about 4M
    elements per temporary). For K > 12 each pair falls back to ``scipy.optimize.linear_sum_assignment`` (O(K^3) per
    pair in a python loop over the M M' pairs: slow). The (M, M') output is held in memory, so M of a few thousand is
    the practical limit.

    Returns:
        (M, M') float64 matrix, ``out[i, j]`` = matched distance from prediction i to target j.
    """
    p = _finite(_np(pred, np.float64), "pred")
    t = _finite(_np(target, np.float64), "target")
    if p.ndim != 3 or t.ndim != 3 or p.shape[1:] != t.shape[1:]:
        raise ValueError(f"pred and target must be (M, K, D) with equal K, D; got {p.shape} and {t.shape}")
    m, k, d = p.shape
    m2 = t.shape[0]
    out = np.zeros((m, m2), dtype=np.float64)
    if k == 0 or m == 0 or m2 == 0:
        return out
    pt = np.ascontiguousarray(p.transpose(1, 2, 0))  # (K, D, M)
    tt = np.ascontiguousarray(t.transpose(1, 2, 0))  # (K, D, M')
    per_pair = 2 * k * k + ((1 << k) + 2 * k * math.comb(k, k // 2) if k <= 12 else 0)  # temporaries, elements
    block = block_size or max(1, _BLOCK_ELEMENTS // (per_pair * m2))
    for s in range(0, m, block):
        e = min(s + block, m)
        cost = np.zeros((k, k, e - s, m2))  # (K, K, B, M'): cost[a, b, i, j] = |pred_i,a - target_j,b|^2
        for dim in range(d):  # summed over features in a fixed order
            cost += np.square(pt[:, None, dim, s:e, None] - tt[None, :, dim, None, :])
        if k <= 12:
            out[s:e] = _min_assignment_cost(cost.reshape(k, k, -1)).reshape(e - s, m2)
        else:
            from scipy.optimize import linear_sum_assignment

            c = cost.transpose(2, 3, 0, 1)  # (B, M', K, K)
            for b, j in itertools.product(range(e - s), range(m2)):
                r, col = linear_sum_assignment(c[b, j])
                out[s + b, j] = c[b, j][r, col].sum()
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Segmentation
# ----------------------------------------------------------------------------------------------------------------------


def _batched_ari(true_ids: np.ndarray, pred_ids: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """ARI per row over the pixels where ``valid``: (B, P) int, (B, P) int, (B, P) bool -> (B,) float64, NaN for rows
    without a valid pixel. Pair counts come from one contingency table per row, built for all rows at once.
    """
    b = true_ids.shape[0]
    owner = np.broadcast_to(np.arange(b)[:, None], true_ids.shape)[valid]  # (n,) row of each valid pixel
    _, t = np.unique(true_ids[valid], return_inverse=True)  # dense true ids (n,)
    _, q = np.unique(pred_ids[valid], return_inverse=True)  # dense predicted ids (n,)
    n_t = int(t.max()) + 1 if t.size else 1
    n_q = int(q.max()) + 1 if q.size else 1
    t, q = t.astype(np.int64).ravel(), q.astype(np.int64).ravel()

    def pairs_in_groups(keys: np.ndarray, per_row: int) -> np.ndarray:
        """Sum over groups (cells) of C(size, 2), per row: (B,)."""
        cells, size = np.unique(keys, return_counts=True)
        return np.bincount(cells // per_row, weights=size * (size - 1) / 2.0, minlength=b)

    n = np.bincount(owner, minlength=b).astype(np.float64)  # (B,) valid pixels
    same_both = pairs_in_groups((owner * n_t + t) * n_q + q, n_t * n_q)  # pairs together in both partitions
    same_true = pairs_in_groups(owner * n_t + t, n_t)
    same_pred = pairs_in_groups(owner * n_q + q, n_q)
    only_true = same_true - same_both  # together in true, split in pred
    only_pred = same_pred - same_both  # together in pred, split in true
    neither = n * (n - 1) / 2.0 - same_both - only_true - only_pred
    num = 2.0 * (same_both * neither - only_true * only_pred)
    den = (same_both + only_true) * (only_true + neither) + (same_both + only_pred) * (only_pred + neither)
    agree = (only_true == 0) & (only_pred == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ari = np.where(agree, 1.0, num / np.where(agree, 1.0, den))
    ari[n == 0] = np.nan
    return ari


def adjusted_rand_index(true_ids: Any, pred_ids: Any) -> float:
    """Adjusted Rand index of two labelings of the same P items (Hubert & Arabie, 1985).

    Definition, from the contingency table n_ab (items with true label a and predicted label b), row sums a_a, column
    sums b_b and n items: with index = sum C(n_ab, 2), expected = sum C(a_a, 2) sum C(b_b, 2) / C(n, 2) and
    max = (sum C(a_a, 2) + sum C(b_b, 2)) / 2,

        ARI = (index - expected) / (max - expected),

    computed in the equivalent pair-counting form of sklearn's ``adjusted_rand_score`` (1.0 when the two partitions
    agree on every pair, which covers both being a single cluster, both all singletons, and n <= 1; a single true
    cluster against a split prediction gives 0.0). Label values are arbitrary integers.
    """
    t = _np(true_ids).ravel()
    q = _np(pred_ids).ravel()
    if t.shape != q.shape:
        raise ValueError(f"labelings differ in size: {t.shape} vs {q.shape}")
    if t.size == 0:
        return 1.0
    return float(_batched_ari(t[None], q[None], np.ones((1, t.size), dtype=bool))[0])


def fg_ari(true_masks: Any, pred_masks: Any, *, per_sample: bool = False) -> float | np.ndarray:
    """Foreground adjusted Rand index: ARI restricted to the pixels whose true id is not background (0).

    Definition: for each sample, :func:`adjusted_rand_index` between ``true[fg]`` and ``pred[fg]`` with
    ``fg = true != 0``; soft predicted masks are first argmaxed over their slot axis. The result is the mean over
    samples that have at least one foreground pixel (samples without foreground are NaN per sample and excluded from
    the mean; the mean of none is NaN). Per sklearn's convention a sample with a single true object scores 1.0 if all
    its foreground pixels fall in one predicted slot and 0.0 otherwise, and one foreground pixel scores 1.0. Invariant
    to relabeling the predicted slots.

    Args:
        true_masks: (B, H, W) integer ids, 0 = background (any trailing pixel shape works).
        pred_masks: (B, K, H, W) soft masks / logits over K slots, or (B, H, W) predicted ids.
        per_sample: return the (B,) per-sample scores instead of the mean.
    """
    t = _np(true_masks)
    q = _np(pred_masks)
    if q.ndim == t.ndim + 1:
        q = q.argmax(axis=1)  # (B, H, W) slot of each pixel
    if q.shape != t.shape:
        raise ValueError(f"pred_masks must be (B, K, *pix) or (B, *pix) for true_masks (B, *pix) = {t.shape}")
    t = t.reshape(t.shape[0], -1)  # (B, P)
    q = q.reshape(q.shape[0], -1)  # (B, P)
    scores = _batched_ari(t, q, t != 0)  # (B,)
    if per_sample:
        return scores
    if np.all(np.isnan(scores)):
        return float("nan")
    return float(np.nanmean(scores))


# ----------------------------------------------------------------------------------------------------------------------
# Linear probes
# ----------------------------------------------------------------------------------------------------------------------


def linear_probe(
    x_train: Any, y_train: Any, x_test: Any, y_test: Any, ridge: float = 1e-3, *, point_dim: int = 2
) -> dict[str, float]:
    """Closed-form ridge-regression probe from representations x to quantities y, scored on held-out data.

    Fit: features are standardised with the training mean and (population) standard deviation (constant features are
    only centred); the bias is the training mean of y (not penalised) and the weights minimise

        (1 / M) * || X_std W - (Y - mean(Y)) ||^2 + ridge * || W ||^2,

    i.e. ``W = (X_std^T X_std / M + ridge I)^-1 X_std^T (Y - mean(Y)) / M`` (least squares when ridge == 0). This equals
    sklearn's ``StandardScaler`` followed by ``Ridge(alpha=ridge * M)``.

    Scores on the test set:
        - ``error``: y is read as Q / point_dim points of ``point_dim`` coordinates (2-D object positions by default);
          the mean over test samples and points of the Euclidean norm || y_pred - y_true ||. NaN if point_dim does not
          divide Q.
        - ``r2``: coefficient of determination per output column, 1 - SS_res / SS_tot (SS_tot about the test mean),
          uniformly averaged over the Q columns; a constant test column scores 1.0 if predicted exactly, else 0.0
          (sklearn's ``r2_score`` conventions).

    Shapes: x (M, P) or (M, ...) flattened, y (M, Q) or (M, ...) flattened.
    """
    x_tr = _finite(_np(x_train, np.float64), "x_train")
    y_tr = _finite(_np(y_train, np.float64), "y_train")
    x_te = _finite(_np(x_test, np.float64), "x_test")
    y_te = _finite(_np(y_test, np.float64), "y_test")
    x_tr, x_te = x_tr.reshape(x_tr.shape[0], -1), x_te.reshape(x_te.shape[0], -1)  # (M, P), (M_test, P)
    y_tr, y_te = y_tr.reshape(y_tr.shape[0], -1), y_te.reshape(y_te.shape[0], -1)  # (M, Q), (M_test, Q)
    if x_tr.shape[0] != y_tr.shape[0] or x_te.shape[0] != y_te.shape[0]:
        raise ValueError("x and y must have the same number of samples")
    if x_tr.shape[1] != x_te.shape[1] or y_tr.shape[1] != y_te.shape[1]:
        raise ValueError("train and test must have the same feature / target sizes")
    if ridge < 0:
        raise ValueError("ridge must be >= 0")
    m = x_tr.shape[0]
    mu, sd = x_tr.mean(0), x_tr.std(0)  # (P,)
    sd = np.where(sd > 0, sd, 1.0)
    xs, xt = (x_tr - mu) / sd, (x_te - mu) / sd
    y_mean = y_tr.mean(0)  # (Q,)
    if ridge > 0:
        gram = xs.T @ xs / m + ridge * np.eye(xs.shape[1])  # (P, P)
        w = np.linalg.solve(gram, xs.T @ (y_tr - y_mean) / m)  # (P, Q)
    else:
        w = np.linalg.lstsq(xs, y_tr - y_mean, rcond=None)[0]
    y_hat = xt @ w + y_mean  # (M_test, Q)

    q = y_te.shape[1]
    if q % point_dim == 0 and q > 0:
        dist = np.linalg.norm((y_hat - y_te).reshape(len(y_te), q // point_dim, point_dim), axis=-1)  # (M_test, Q/pd)
        error = float(dist.mean())
    else:
        error = float("nan")
    ss_res = ((y_te - y_hat) ** 2).sum(0)  # (Q,)
    ss_tot = ((y_te - y_te.mean(0)) ** 2).sum(0)  # (Q,)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.where(ss_res == 0, 1.0, 0.0))
    return {"error": error, "r2": float(r2.mean())}


# ----------------------------------------------------------------------------------------------------------------------
# Graphs
# ----------------------------------------------------------------------------------------------------------------------


def offdiag_mask(n_objects: int, n_slots: int) -> np.ndarray:
    """(n_slots, n_slots) bool mask of the scored pairs: ``mask[i, j]`` iff i != j and both i, j < n_objects."""
    if not 0 <= n_objects <= n_slots:
        raise ValueError(f"need 0 <= n_objects <= n_slots, got {n_objects}, {n_slots}")
    real = np.arange(n_slots) < n_objects
    return real[:, None] & real[None, :] & ~np.eye(n_slots, dtype=bool)


def _pair_masks(num_objects: Any, n_episodes: int, n_slots: int) -> np.ndarray:
    """(E, N, N) bool masks of real off-diagonal pairs (all slots real when ``num_objects`` is None)."""
    if num_objects is None:
        counts = np.full(n_episodes, n_slots)
    else:
        counts = _np(num_objects).astype(np.int64).reshape(-1)
        if counts.shape != (n_episodes,):
            raise ValueError(f"num_objects must have shape ({n_episodes},), got {counts.shape}")
        if np.any(counts < 0) or np.any(counts > n_slots):
            raise ValueError(f"num_objects must lie in [0, {n_slots}]")
    real = np.arange(n_slots)[None, :] < counts[:, None]  # (E, N)
    return real[:, :, None] & real[:, None, :] & ~np.eye(n_slots, dtype=bool)[None]


def _binary(x: Any, name: str) -> np.ndarray:
    a = _np(x)
    if a.dtype != bool:
        if not np.all((a == 0) | (a == 1)):
            raise ValueError(f"{name} must be binary (0/1 or bool)")
        a = a != 0
    return a


def _graph_batch(scores: Any, true: Any, num_objects: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validated (E, N, N) float64 scores, (E, N, N) bool truth and (E, N, N) bool scored-pair mask."""
    s = _np(scores, np.float64)
    y = _binary(true, "true")
    if s.ndim == 2:
        s, y = s[None], y[None]
        num_objects = None if num_objects is None else np.reshape(_np(num_objects), (1,))
    if s.ndim != 3 or s.shape != y.shape or s.shape[1] != s.shape[2]:
        raise ValueError(f"scores and true must both be (E, N, N), got {s.shape} and {y.shape}")
    mask = _pair_masks(num_objects, s.shape[0], s.shape[1])
    if np.isnan(s[mask]).any():
        raise ValueError("scores contain NaN")
    return s, y, mask


def _scores_labels(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    s = _np(scores, np.float64).ravel()
    y = _binary(labels, "labels").ravel()
    if s.shape != y.shape:
        raise ValueError(f"scores and labels differ in size: {s.shape} vs {y.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return s, y


def auroc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic, ties counting one half.

    Definition: AUROC = P(s+ > s-) + 0.5 P(s+ == s-) over positive/negative pairs, computed as
    (R+ - n+ (n+ + 1) / 2) / (n+ n-) with R+ the sum of the positives' average ranks (ascending, ties get the mean
    rank of their group). Equals sklearn's ``roc_auc_score``. NaN when only one class is present.

    Shapes: scores (P,), labels (P,) binary; any shape is flattened.
    """
    s, y = _scores_labels(scores, labels)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # (U,) 0-based start of each tie group in ascending order
    avg_rank = first + (counts + 1) / 2.0  # (U,) 1-based average rank
    r_pos = avg_rank[inverse.ravel()][y].sum()
    return float((r_pos - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _descending_counts(s: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative true / false positives when predicting ``score >= v`` for each distinct score v, descending.

    Returns (values (U,), tp (U,), fp (U,)).
    """
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(s[1:] != s[:-1]), s.size - 1]  # last index of each tie group
    tp = np.cumsum(y)[last].astype(np.float64)
    fp = (last + 1) - tp
    return s[last], tp, fp


def average_precision(scores: Any, labels: Any) -> float:
    """Average precision, exactly sklearn's ``average_precision_score`` (step-wise, not interpolated).

    Definition: with thresholds at the distinct score values in decreasing order (a tie group enters at once),
    precision P_n and recall R_n of predicting ``score >= threshold_n``,

        AP = sum_n (R_n - R_{n-1}) P_n,   R_0 = 0.

    NaN when there is no positive (sklearn warns and returns a degenerate value there).

    Shapes: scores (P,), labels (P,) binary; any shape is flattened.
    """
    s, y = _scores_labels(scores, labels)
    if not y.any():
        return float("nan")
    _, tp, fp = _descending_counts(s, y)
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def graph_scores(score_matrices: Any, true: Any, num_objects: Any = None) -> dict[str, float | int]:
    """Threshold-free scores of predicted edge scores against true directed graphs.

    Only real off-diagonal pairs count (:func:`offdiag_mask`); padding slots and the diagonal are ignored.

    Returns a dict with
        - ``auroc``, ``ap``: :func:`auroc` / :func:`average_precision` pooled over all scored pairs of all episodes;
        - ``auroc_episode_mean``, ``ap_episode_mean``: means over episodes of the per-episode values, over the same
          episodes for both: those whose scored pairs contain both classes (NaN if there is none);
        - ``episodes_scored``, ``episodes_skipped``: how many episodes entered / were left out of those means;
        - ``pairs``, ``positives``: number of scored pairs and true edges among them.

    Shapes: score_matrices (E, N, N) (higher = more likely an edge), true (E, N, N) binary, num_objects (E,) or None
    (all N slots real).
    """
    s, y, mask = _graph_batch(score_matrices, true, num_objects)
    per_auroc, per_ap = [], []
    for e in range(s.shape[0]):
        ys = y[e][mask[e]]
        if ys.any() and not ys.all():
            per_auroc.append(auroc(s[e][mask[e]], ys))
            per_ap.append(average_precision(s[e][mask[e]], ys))
    pooled_s, pooled_y = s[mask], y[mask]
    both = pooled_y.any() and not pooled_y.all()
    return {
        "auroc": auroc(pooled_s, pooled_y) if both else float("nan"),
        "ap": average_precision(pooled_s, pooled_y),
        "auroc_episode_mean": float(np.mean(per_auroc)) if per_auroc else float("nan"),
        "ap_episode_mean": float(np.mean(per_ap)) if per_ap else float("nan"),
        "episodes_scored": len(per_auroc),
        "episodes_skipped": s.shape[0] - len(per_auroc),
        "pairs": int(mask.sum()),
        "positives": int(pooled_y.sum()),
    }


def _pair_states(pred: np.ndarray, true: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, ...]:
    """Edge bits of each unordered scored pair i < j: (a, b, ta, tb) = (pred i->j, pred j->i, true i->j, true j->i),
    each (E, n_pairs), and the (E, n_pairs) mask of scored pairs."""
    iu, ju = np.triu_indices(pred.shape[-1], k=1)
    return pred[:, iu, ju], pred[:, ju, iu], true[:, iu, ju], true[:, ju, iu], mask[:, iu, ju]


def _shd_batch(pred: np.ndarray, true: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Directed SHD per episode: (E, N, N) bool x2, (E, N, N) mask -> (E,) int64 (see :func:`shd`)."""
    a, b, ta, tb, m = _pair_states(pred, true, mask)
    hamming = (a != ta).astype(np.int64) + (b != tb)
    reversal = (a != b) & (a == tb) & (b == ta)  # exactly one edge on each side, in opposite directions
    return ((hamming - reversal) * m).sum(-1)


def _shd_undirected_batch(pred: np.ndarray, true: np.ndarray, mask: np.ndarray) -> np.ndarray:
    a, b, ta, tb, m = _pair_states(pred, true, mask)
    return (((a | b) != (ta | tb)) & m).sum(-1)


def _adjacency_pair(pred: Any, true: Any, num_objects: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two (1, N, N) bool adjacencies (DiGraphs accepted, over nodes 0..N-1) and their (1, N, N) scored-pair mask."""
    graphs = [x for x in (pred, true) if isinstance(x, nx.DiGraph)]
    n_graph = max((max(g.nodes, default=-1) + 1 for g in graphs), default=0)
    mats = []
    for x in (pred, true):
        if isinstance(x, nx.DiGraph):
            size = n_graph
            for other in (pred, true):
                if not isinstance(other, nx.DiGraph):
                    size = max(size, _np(other).shape[-1])
            mats.append(from_digraph(x, size) != 0)
        else:
            mats.append(_binary(x, "adjacency"))
    p, t = mats
    if p.ndim != 2 or p.shape != t.shape or p.shape[0] != p.shape[1]:
        raise ValueError(f"pred and true must both be (N, N), got {p.shape} and {t.shape}")
    n = p.shape[0]
    mask = offdiag_mask(n if num_objects is None else int(num_objects), n)
    return p[None], t[None], mask[None]


def shd(pred: Any, true: Any, num_objects: int | None = None) -> int:
    """Structural Hamming distance between directed graphs.

    Definition: the minimum number of edge insertions, deletions and reversals turning ``pred`` into ``true``, over
    off-diagonal pairs of real objects. Per unordered pair {i, j}: the number of differing directed edges, except that
    a reversal (pred has exactly i->j, true has exactly j->i) counts once. So a missing, an extra or a reversed edge
    each cost 1; predicting both directions where the truth has one costs 1, and where it has none costs 2.

    Shapes: pred (N, N), true (N, N) binary, or networkx DiGraphs over nodes 0..N-1; ``num_objects`` restricts to the
    first slots.
    """
    p, t, m = _adjacency_pair(pred, true, num_objects)
    return int(_shd_batch(p, t, m)[0])


def shd_undirected(pred: Any, true: Any, num_objects: int | None = None) -> int:
    """Structural Hamming distance between skeletons: the number of unordered pairs {i, j} of real objects (i != j)
    that are adjacent (an edge in either direction) in exactly one of ``pred`` and ``true``. Shapes as :func:`shd`."""
    p, t, m = _adjacency_pair(pred, true, num_objects)
    return int(_shd_undirected_batch(p, t, m)[0])


def graph_metrics_at_threshold(
    scores: Any, true: Any, num_objects: Any = None, threshold: float = 0.5
) -> dict[str, float | int]:
    """Thresholded graph metrics: a pair is predicted as an edge iff ``score >= threshold``.

    Only real off-diagonal pairs count. Returns
        - ``shd_mean`` / ``shd_undirected_mean``: mean over episodes of :func:`shd` / :func:`shd_undirected`;
        - ``precision`` = TP / (TP + FP), ``recall`` = TP / (TP + FN), ``f1`` = 2 TP / (2 TP + FP + FN) and
          ``accuracy`` = (TP + TN) / pairs, from confusion counts pooled over every scored pair of every episode
          (a 0 / 0 ratio is 0.0, as sklearn's default);
        - ``tp``, ``fp``, ``fn``, ``tn``: the pooled counts.

    Shapes: scores (E, N, N), true (E, N, N) binary, num_objects (E,) or None.
    """
    s, y, mask = _graph_batch(scores, true, num_objects)
    pred = s >= threshold  # (E, N, N)
    tp = int((pred & y & mask).sum())
    fp = int((pred & ~y & mask).sum())
    fn = int((~pred & y & mask).sum())
    tn = int((~pred & ~y & mask).sum())

    def ratio(a: int, b: int) -> float:
        return a / b if b else 0.0

    return {
        "shd_mean": float(_shd_batch(pred, y, mask).mean()),
        "shd_undirected_mean": float(_shd_undirected_batch(pred, y, mask).mean()),
        "precision": ratio(tp, tp + fp),
        "recall": ratio(tp, tp + fn),
        "f1": ratio(2 * tp, 2 * tp + fp + fn),
        "accuracy": ratio(tp + tn, tp + fp + fn + tn),
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
    }


def choose_threshold(scores: Any, true: Any, num_objects: Any = None) -> float:
    """Decision threshold maximising the pooled F1 of :func:`graph_metrics_at_threshold` (``score >= threshold``).

    Fit it on TRAINING (or validation) episodes only and apply it unchanged to test episodes; choosing it on the test
    set inflates every thresholded test metric.

    Among the distinct scores of the scored pairs, the best cut (the highest one among F1 ties) is placed at the
    midpoint between the lowest score predicted positive and the next lower score (the lowest score itself when
    every pair is predicted positive). Raises ValueError when the scored pairs contain no true edge.

    Shapes: scores (E, N, N), true (E, N, N) binary, num_objects (E,) or None.
    """
    s, y, mask = _graph_batch(scores, true, num_objects)
    s, y = s[mask], y[mask]
    n_pos = int(y.sum())
    if n_pos == 0:
        raise ValueError("choose_threshold needs at least one true edge")
    values, tp, fp = _descending_counts(s, y)
    f1 = 2 * tp / (tp + fp + n_pos)  # 2 TP / (2 TP + FP + FN), FN = n_pos - TP
    k = int(np.argmax(f1))
    if k + 1 == values.size:
        return float(values[k])
    mid = 0.5 * (values[k] + values[k + 1])
    return float(mid if values[k + 1] < mid <= values[k] else values[k])


def permutation_invariant_edge_accuracy(
    pred_types: Any, true_types: Any, num_types: int, mask: Any = None, *, return_permutation: bool = False
) -> float | tuple[float, np.ndarray]:
    """NRI-style edge-type accuracy, maximised over relabelings of the predicted types.

    Definition: with every scored edge of every sample counted once,

        acc = max over permutations sigma of {0..T-1} of  #{edges: sigma(pred) == true} / #edges,

    where ONE permutation is chosen for the whole evaluation set (from the pooled confusion matrix), not per batch,
    and the accuracy is pooled over edges, not averaged over batches (ethanfetaya/NRI#35: per-batch means weight
    incomplete batches wrongly, and per-batch label matching overstates accuracy).

    Args:
        pred_types: (E, P) integer predicted edge types in [0, T) (any shape; flattened).
        true_types: (E, P) integer true edge types in [0, T), same shape.
        num_types: T.
        mask: optional (E, P) bool, the edges to score (e.g. pairs of real objects).
        return_permutation: also return ``sigma`` as a (T,) array, ``sigma[predicted type] = true type``.
    """
    p = _np(pred_types).astype(np.int64).ravel()
    t = _np(true_types).astype(np.int64).ravel()
    if p.shape != t.shape:
        raise ValueError(f"pred_types and true_types differ in size: {p.shape} vs {t.shape}")
    if mask is not None:
        keep = _np(mask, bool).ravel()
        if keep.shape != p.shape:
            raise ValueError("mask must have the shape of pred_types")
        p, t = p[keep], t[keep]
    if p.size == 0:
        raise ValueError("no edges to score")
    if min(p.min(), t.min()) < 0 or max(p.max(), t.max()) >= num_types:
        raise ValueError(f"edge types must lie in [0, {num_types})")
    confusion = np.bincount(p * num_types + t, minlength=num_types**2).reshape(num_types, num_types)  # [pred, true]
    if num_types <= 8:
        perms = np.array(list(itertools.permutations(range(num_types))))  # (T!, T)
        correct = confusion[np.arange(num_types)[None, :], perms].sum(1)  # (T!,)
        sigma = perms[int(np.argmax(correct))]
    else:
        from scipy.optimize import linear_sum_assignment

        _, sigma = linear_sum_assignment(confusion, maximize=True)
    acc = float(confusion[np.arange(num_types), sigma].sum() / p.size)
    return (acc, np.asarray(sigma)) if return_permutation else acc


def to_digraph(adj: Any, num_objects: int | None = None) -> nx.DiGraph:
    """networkx DiGraph with nodes 0..n-1 (n = ``num_objects`` or N) and an edge i -> j for every nonzero
    ``adj[i, j]`` among them (i acts on j). ``adj``: (N, N)."""
    a = _np(adj)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"adj must be (N, N), got {a.shape}")
    n = a.shape[0] if num_objects is None else int(num_objects)
    if not 0 <= n <= a.shape[0]:
        raise ValueError(f"num_objects must lie in [0, {a.shape[0]}]")
    g = nx.DiGraph()
    g.add_nodes_from(range(n))
    g.add_edges_from((int(i), int(j)) for i, j in zip(*np.nonzero(a[:n, :n]), strict=True))
    return g


def from_digraph(g: nx.DiGraph, n: int | None = None) -> np.ndarray:
    """(n, n) uint8 adjacency of a DiGraph whose nodes are integers in [0, n): ``out[i, j] = 1`` iff edge i -> j.
    ``n`` defaults to 1 + the largest node."""
    nodes = list(g.nodes)
    if not all(isinstance(v, int | np.integer) for v in nodes):
        raise ValueError("graph nodes must be integers")
    size = (max(nodes, default=-1) + 1) if n is None else int(n)
    if nodes and (min(nodes) < 0 or max(nodes) >= size):
        raise ValueError(f"graph nodes must lie in [0, {size})")
    out = np.zeros((size, size), dtype=np.uint8)
    if g.number_of_edges():
        i, j = np.array(list(g.edges), dtype=np.int64).T
        out[i, j] = 1
    return out


# ----------------------------------------------------------------------------------------------------------------------
# Seed statistics
# ----------------------------------------------------------------------------------------------------------------------


def mean_ci(values: Any, confidence: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval over independent runs (seeds).

    Definition: for n values with mean m and sample standard deviation s (ddof = 1),
    ``m -/+ t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)``. With a single value returns (value, nan, nan).
    """
    v = _finite(_np(values, np.float64).ravel(), "values")
    if v.size == 0:
        raise ValueError("mean_ci of no values")
    if not 0 < confidence < 1:
        raise ValueError("confidence must lie in (0, 1)")
    mean = float(v.mean())
    if v.size == 1:
        return mean, float("nan"), float("nan")
    from scipy.stats import t as student_t

    half = float(student_t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return mean, mean - half, mean + half
