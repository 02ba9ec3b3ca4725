"""Classical causal-discovery baselines on ground-truth state trajectories.

The learned world models are judged by how well their interaction graphs match the scenes' true graphs. These
baselines read the simulator's states directly (no images, no learning across episodes) and score every ordered
pair of objects, one episode at a time, so that their scores go through :func:`causal_wm.metrics.graph_scores`
exactly like the models' graphs.

>>> from causal_wm import discovery, metrics
>>> scores = discovery.discover("regression", states, num_objects)  # (E, T, N, F), (E,) -> (E, N, N) float32
>>> metrics.graph_scores(scores, adjacency, num_objects)["auroc"]

Conventions
-----------
* ``S[i, j]`` is the evidence that object ``i`` acts on object ``j`` (higher = more likely an edge), matching
  ``adjacency[i, j] = 1``. The diagonal and every entry that involves a padding slot (index ``>= num_objects``)
  are 0. Padding values are never read, so they may be anything (zeros, garbage, NaN).
* Only the first four state features ``x, y, vx, vy`` are read, so states of other simulators (``F >= 4``) work.
* The effect variable is the velocity change over one frame, ``dv(t) = v(t+1) - v(t)`` (both components). The
  cause variables are positions at ``t, t-1, ...``, because the scenes' persistent mechanisms (springs, Coulomb
  forces) are forces that depend on where the objects are.
* Velocity changes are despiked first (:data:`DESPIKE`): a Hampel filter replaces each value that lies more than
  ``DESPIKE`` robust standard deviations from the running median of 5 frames by that median. Collisions (with walls
  or objects) and pushes are one- or two-frame jumps of ``dv`` many times larger than the forces; left in, they
  dominate every least-squares fit and test (springs, 100 episodes: regression AUROC 0.62 raw vs 0.99 despiked).
  ``despike=None`` fits the raw values.
* Everything is deterministic and computed in float64.

Baselines
---------
:func:`granger_scores`: pairwise Granger causality, conditional on the target's own past.
    For a target ``j`` and each component ``c`` of ``dv_j``, the restricted OLS model regresses ``dv_j,c(t)`` on an
    intercept and ``x_j, y_j, vx_j, vy_j`` at lags ``t .. t-lag+1``; the full model adds the source's positions
    ``x_i, y_i`` at the same lags. The F-test of the nested models (the "ssr based F test" of statsmodels'
    ``grangercausalitytests``) gives a p-value per component, and ``S[i, j] = -log10 p_x - log10 p_y`` (each term
    capped at :data:`MAX_LOG10P`). Summing log p-values ranks pairs as Fisher's method of combining the two tests
    does. Since ``x_j`` is in both models, the linear spring force ``k (x_i - x_j)`` lies in the full model's span.
    Assumptions: linear dynamics, Gaussian residuals, stationarity, no common driver left out. Failure modes: the
    test is pairwise, so a third object that moves with ``i`` and drives ``j`` makes ``i`` look causal (in dense
    spring networks most non-edges are such pairs); non-linear forces (Coulomb, springs with a rest length) enter
    only through their linear part; when collisions are the only interaction (billiards) nothing is linear in
    the positions and the test has no power (and despiking removes the collisions on purpose).

:func:`pc_scores`: the PC algorithm (causal-learn, Fisher-z tests) on a time-lagged table, one target at a time.
    For a target ``j`` each frame ``t`` is a sample of the relative positions ``p_i - p_j`` of the other objects and
    of ``j``'s own velocity, at lags ``t .. t-lag+1`` (tier 0), and of ``dv_j(t)`` (tier 1). Tiered background
    knowledge forbids edges into tier 0 and within a tier, so PC decides which relative positions ``dv_j`` depends
    on given the others and the own velocity (which only conditions, for damping; it scores nothing).
    ``S[i, j]`` is the fraction of the ``4 lag`` (component of ``p_i - p_j``, component of ``dv_j``) pairs left
    adjacent, graded so that AUROC is not degenerate. Relative positions matter: with absolute positions the force
    ``k (x_i - x_j)`` is often marginally uncorrelated with ``x_i`` (``x_i`` and ``x_j`` move together), PC
    removes that edge at depth 0, never to test it again, and the scores are at chance (springs AUROC 0.53).
    Assumptions: linear-Gaussian relations (Fisher-z), causal sufficiency, faithfulness. Failure modes: ~50
    samples per episode give the tests little power, so scores jump between a few discrete values; non-linear
    forces and collisions violate the linear-Gaussian test; a singular correlation matrix (duplicated columns)
    makes that target's column all zeros instead of failing. It is by far the slowest baseline (causal-learn's
    Python loops).

:func:`regression_scores`: one ridge regression per target on physically motivated pair features.
    The acceleration ``a_j = dv_j / dt`` (the x and y components stacked as rows, since a central force acts on
    both with the same coefficient) is fitted on, for every other object ``i``, the vector features ``d / r0``,
    ``d / |d|``, ``(d / |d|) (r0 / |d|)^2`` and ``(v_i - v_j) / v0``, where ``d = p_i - p_j``, ``r0`` is the
    episode's median pair distance and ``v0`` its RMS relative speed: a linear spring, a spring's rest length, an
    inverse-square force and a damped spring. The target's own velocity ``v_j / v0`` (drag) is a column of every
    model. ``S[i, j]`` is the drop in explained variance (partial R^2) of ``a_j`` when ``i``'s block of four
    columns is removed and the model refitted. The drop in R^2 is used rather than a coefficient norm because it
    is comparable across episodes and does not depend on how the ridge penalty spreads weight over the collinear
    columns of a block. Assumptions: forces are pairwise, central, additive and near the span of that basis.
    Failure modes: forces outside the basis (contacts, non-central or many-body forces); ``4 (N - 1)`` columns for
    ~100 rows leave little data per coefficient in crowded scenes; objects whose trajectories are nearly collinear
    stand in for each other, so removing either one costs little and both score low.

``regression_linear``: the same regression on the linear block ``d / r0`` alone (``basis="linear"``) and the raw
    velocity changes (``despike=None``): a Hooke-spring model for smooth simulators without collisions, such as NRI
    springs. There the extra columns and the Hampel filter cost the full model much of its power (NRI springs, 200
    held-out episodes: AUROC 0.82 for ``regression``, 0.99 for ``regression_linear``); on scenes with collisions or
    forces outside the linear span it is the weaker one (pymunk springs: 0.99 against 0.63).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import numpy as np

__all__ = [
    "DESPIKE",
    "MAX_LOG10P",
    "METHODS",
    "discover",
    "f_test",
    "granger_pvalues",
    "granger_scores",
    "pc_scores",
    "regression_scores",
]

METHODS = ("granger", "pc", "regression", "regression_linear")
"""Names accepted by :func:`discover`."""

MAX_LOG10P = 300.0
"""Cap on ``-log10 p`` per F-test (p-values below ``1e-300`` all score the same)."""

DESPIKE = 5.0
"""Default Hampel-filter threshold for velocity changes, in robust standard deviations (1.4826 MAD)."""

_RCOND = 1e-10  # singular values below _RCOND * the largest count as zero (rank-deficient designs)


# ------------------------------------------------------------------------------------------------------- helpers


def _episode(states_e: np.ndarray, num_objects: int, min_frames: int, what: str) -> tuple[np.ndarray, np.ndarray, int]:
    """Validated positions and velocities of the real objects, (T, n, 2) float64 each, and the slot count N."""
    states_e = np.asarray(states_e)
    if states_e.ndim != 3:
        raise ValueError(f"{what}: the states of one episode must be (T, N, F), got shape {states_e.shape}")
    steps, slots, feats = states_e.shape
    if feats < 4:
        raise ValueError(f"{what}: states need at least the 4 features x, y, vx, vy, got {feats}")
    if int(num_objects) != num_objects or not 0 <= num_objects <= slots:
        raise ValueError(f"{what}: num_objects must be an integer in [0, {slots}] (the slot count), got {num_objects}")
    if steps < min_frames:
        raise ValueError(
            f"{what}: episodes of {steps} frames are too short for these settings (lag); need >= {min_frames}"
        )
    real = np.asarray(states_e[:, : int(num_objects), :4], dtype=np.float64)
    if not np.isfinite(real).all():
        raise ValueError(f"{what}: the states of real objects contain NaN or inf")
    return real[..., :2], real[..., 2:4], slots


def _despike(x: np.ndarray, width: float | None, half_window: int = 2) -> np.ndarray:
    """Hampel filter along axis 0 of x (M, ...): values more than ``width`` robust standard deviations (1.4826 MAD
    of the deviations, per column) from the running median of ``2 half_window + 1`` frames become that median."""
    if width is None or x.shape[0] < 2 * half_window + 1:
        return x
    padded = np.pad(x, [(half_window, half_window)] + [(0, 0)] * (x.ndim - 1), mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half_window + 1, axis=0)  # (M, ..., W)
    med = np.median(windows, axis=-1)
    dev = x - med
    scale = 1.4826 * np.median(np.abs(dev), axis=0)
    return np.where(np.abs(dev) > width * scale, med, x)


def _standardize(x: np.ndarray) -> np.ndarray:
    """Centre the columns of x (..., M, P) over M and scale them to unit RMS; constant columns become 0."""
    x = x - x.mean(axis=-2, keepdims=True)
    rms = np.sqrt((x**2).mean(axis=-2, keepdims=True))
    return np.divide(x, rms, out=np.zeros_like(x), where=rms > 0)


def _least_squares_rss(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Residual sums of squares and ranks of the least-squares fits of y on x (no intercept added).

    x (..., M, P), y (..., M, C), broadcastable over the leading axes -> rss (..., C), rank (...). A truncated SVD
    (singular values below ``_RCOND`` times the largest dropped) handles rank-deficient designs."""
    u, s, _ = np.linalg.svd(x, full_matrices=False)  # u (..., M, P), s (..., P)
    keep = s > _RCOND * s[..., :1]  # (..., P)
    proj = np.swapaxes(u, -1, -2) @ y  # (..., P, C)
    explained = ((proj**2) * keep[..., None]).sum(-2)  # (..., C)
    return np.maximum((y**2).sum(-2) - explained, 0.0), keep.sum(-1)


def f_test(y: np.ndarray, x_restricted: np.ndarray, x_full: np.ndarray) -> tuple[np.ndarray, ...]:
    """F-test of nested OLS models, each with an intercept (added here): does ``x_full`` explain y better?

    y (..., M, C), x_restricted (..., M, Pr), x_full (..., M, Pf), broadcastable over the leading axes; the span of
    ``x_full`` must contain that of ``x_restricted``. Returns ``(F, p, df_num, df_den)``, each (..., C), with
    ``df_num = rank_full - rank_restricted`` and ``df_den = M - 1 - rank_full`` (ranks without the intercept), as
    statsmodels' ``compare_f_test`` computes them for full-rank designs. Where the test is undefined (no added
    rank, no residual degrees of freedom, a constant y) F = 0 and p = 1."""
    from scipy import stats

    y = y - y.mean(axis=-2, keepdims=True)
    m = y.shape[-2]
    rss_r, rank_r = _least_squares_rss(_standardize(x_restricted), y)
    rss_f, rank_f = _least_squares_rss(_standardize(x_full), y)
    tss = (y**2).sum(-2)
    df_num = np.broadcast_to((rank_f - rank_r)[..., None], rss_f.shape)
    df_den = np.broadcast_to((m - 1 - rank_f)[..., None], rss_f.shape)
    valid = (df_num > 0) & (df_den > 0) & (tss > 0)
    rss_f = np.maximum(rss_f, 1e-15 * tss)  # a numerically perfect fit gets a huge F, not a division by zero
    num, den = np.maximum(df_num, 1), np.maximum(df_den, 1)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0 / 0 where y is constant; masked by `valid`
        f = np.where(valid, np.maximum((rss_r - rss_f) / num / (rss_f / den), 0.0), 0.0)
    p = np.where(valid, stats.f.sf(f, num, den), 1.0)
    return f, p, df_num, df_den


def _lagged(x: np.ndarray, lag: int) -> np.ndarray:
    """Stack lags for a response at t = lag-1 .. T-2: x (T, ..., D) -> (T - lag, ..., lag D), holding x[t], x[t-1],
    ..., x[t-lag+1] (the last frame only enters the response v(t+1) - v(t))."""
    steps = x.shape[0]
    return np.concatenate([x[lag - 1 - l : steps - 1 - l] for l in range(lag)], axis=-1)


def _velocity_change(vel: np.ndarray, lag: int, despike: float | None) -> np.ndarray:
    """Despiked dv(t) = v(t+1) - v(t) for t = lag-1 .. T-2: vel (T, n, 2) -> (T - lag, n, 2)."""
    return _despike(vel[lag:] - vel[lag - 1 : -1], despike)


def _check_lag(lag: int, what: str) -> int:
    if isinstance(lag, bool) or int(lag) != lag or lag < 1:
        raise ValueError(f"{what}: lag must be a positive integer, got {lag!r}")
    return int(lag)


def _embed(scores: np.ndarray, slots: int) -> np.ndarray:
    """(n, n) scores of the real objects -> (N, N) float32 with a zero diagonal and zero padding."""
    out = np.zeros((slots, slots), dtype=np.float32)
    n = scores.shape[0]
    out[:n, :n] = scores
    np.fill_diagonal(out, 0.0)
    return out


# ------------------------------------------------------------------------------------------------------- Granger


def _granger_min_frames(lag: int) -> int:
    """Fewest frames for :func:`granger_scores`: T - lag rows must leave 2 residual dof beyond 1 + 6 lag columns."""
    return 7 * lag + 3


def granger_pvalues(
    states_e: np.ndarray, num_objects: int, *, lag: int = 1, despike: float | None = DESPIKE
) -> np.ndarray:
    """Per-component Granger F-test p-values of one episode: (N, N, 2) float64, ``[i, j, c]`` testing whether the
    positions of ``i`` improve the prediction of component ``c`` of ``dv_j`` (see :func:`granger_scores`). The
    diagonal and padding entries are 1."""
    lag = _check_lag(lag, "granger")
    pos, vel, slots = _episode(states_e, num_objects, _granger_min_frames(lag), "granger")
    n = pos.shape[1]
    out = np.ones((slots, slots, 2))
    if n < 2:
        return out
    dv = _velocity_change(vel, lag, despike)  # (M, n, 2)
    own = np.moveaxis(_lagged(np.concatenate([pos, vel], axis=-1), lag), 1, 0)  # (n_j, M, 4 lag)
    src = np.moveaxis(_lagged(pos, lag), 1, 0)  # (n_i, M, 2 lag)
    x_full = np.concatenate(
        [np.broadcast_to(own[None], (n, *own.shape)), np.broadcast_to(src[:, None], (n, *src.shape))], axis=-1
    )  # (n_i, n_j, M, 6 lag)
    y = np.moveaxis(dv, 1, 0)[None]  # (1, n_j, M, 2)
    _, p, _, _ = f_test(y, own[None], x_full)  # (n_i, n_j, 2)
    out[:n, :n] = p
    out[np.arange(n), np.arange(n)] = 1.0
    return out


def granger_scores(
    states_e: np.ndarray, num_objects: int, *, lag: int = 1, despike: float | None = DESPIKE
) -> np.ndarray:
    """Pairwise Granger-causality scores of one episode, conditional on the target's own past: (N, N) float32.

    ``S[i, j] = sum_c min(-log10 p_ijc, MAX_LOG10P)`` over the x and y components of ``dv_j``, where ``p_ijc`` is
    the F-test p-value of adding ``x_i, y_i`` at lags ``t .. t-lag+1`` to the OLS model of ``dv_j,c(t)`` on an
    intercept and ``x_j, y_j, vx_j, vy_j`` at the same lags (module docstring).

    states_e (T, N, F) with F >= 4; needs ``T >= 7 lag + 3`` frames. ``lag=1`` ranks better than 2 on the springs
    and charges scenes (AUROC 0.70 vs 0.65 and 0.76 vs 0.75 over 100 episodes)."""
    p = granger_pvalues(states_e, num_objects, lag=lag, despike=despike)
    logp = np.minimum(-np.log10(np.maximum(p, 1e-300)), MAX_LOG10P) + 0.0  # + 0.0: no -0.0 where p = 1
    return logp.sum(-1).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------- PC


def pc_scores(
    states_e: np.ndarray,
    num_objects: int,
    *,
    alpha: float = 0.05,
    lag: int = 1,
    max_depth: int | None = None,
    despike: float | None = DESPIKE,
) -> np.ndarray:
    """PC-algorithm scores of one episode: (N, N) float32 in [0, 1].

    For each target ``j``, runs causal-learn's PC (Fisher-z, ``alpha``) on the samples ``t`` of the relative
    positions ``p_i - p_j`` of every other object ``i`` at lags ``t .. t-lag+1`` (tier 0) and ``dv_j(t) = v_j(t+1) -
    v_j(t)`` (tier 1). Edges into tier 0 and within a tier are forbidden. ``S[i, j]`` is the fraction of the
    ``4 lag`` (component of ``p_i - p_j``, component of dv_j) pairs that are adjacent in the result. Conditioning
    sets are capped at ``max_depth`` variables (None: only by the sample size). Constant variables are dropped; if
    PC fails (e.g. a singular correlation matrix) that target's column scores zeros."""
    lag = _check_lag(lag, "pc")
    if not 0 < alpha < 1:
        raise ValueError(f"pc: alpha must lie in (0, 1), got {alpha}")
    pos, vel, slots = _episode(states_e, num_objects, lag + 6, "pc")
    n = pos.shape[1]
    scores = np.zeros((n, n))
    if n < 2:
        return _embed(scores, slots)
    dv = _velocity_change(vel, lag, despike)  # (M, n, 2)
    rel = _lagged(pos[:, :, None, :] - pos[:, None, :, :], lag)  # (M, n_i, n_j, 2 lag): p_i - p_j at lags
    m = dv.shape[0]
    own = _lagged(vel, lag)  # (M, n, 2 lag): the target's own velocity, a conditioning variable (damping)
    for j in range(n):
        sources = np.array([i for i in range(n) if i != j])
        causes = rel[:, sources, j].reshape(m, -1)  # (M, (n-1) 2 lag)
        data = np.concatenate([causes, own[:, j], dv[:, j]], axis=1)  # (M, V)
        owner = np.concatenate([np.repeat(sources, 2 * lag), np.full(2 * lag, j), [j, j]])
        tier = np.concatenate([np.zeros(causes.shape[1] + 2 * lag, dtype=int), [1, 1]])
        spread = data.std(axis=0)
        keep = spread > 1e-9 * (1.0 + np.abs(data).max(axis=0))
        if not keep[tier == 0].any() or not keep[tier == 1].any():
            continue
        data = (data[:, keep] - data[:, keep].mean(0)) / spread[keep]
        owner, tier = owner[keep], tier[keep]
        adjacent = _pc_adjacency(data, tier, alpha, max_depth)
        if adjacent is None:
            continue
        links = adjacent[np.ix_(tier == 0, tier == 1)].sum(1)  # (kept tier-0 variables,) adjacent dv_j components
        np.add.at(scores[:, j], owner[tier == 0], links)  # the own velocity lands on the diagonal, zeroed below
    return _embed(scores / (4 * lag), slots)


def _pc_adjacency(data: np.ndarray, tier: np.ndarray, alpha: float, max_depth: int | None) -> np.ndarray | None:
    """Symmetric (V, V) bool adjacency found by causal-learn's PC on data (M, V), or None if PC fails."""
    from causallearn.graph.GraphNode import GraphNode
    from causallearn.search.ConstraintBased.PC import pc
    from causallearn.utils.PCUtils.BackgroundKnowledge import BackgroundKnowledge

    names = [f"X{k + 1}" for k in range(data.shape[1])]
    knowledge = BackgroundKnowledge()
    for name, t in zip(names, tier, strict=True):
        knowledge.add_node_to_tier(GraphNode(name), int(t))
    knowledge.forbid_within_tier(0)
    knowledge.forbid_within_tier(1)
    depth = data.shape[0] - 4  # Fisher-z needs M - |S| - 3 > 0
    if max_depth is not None:
        depth = min(depth, max_depth)
    try:
        with np.errstate(all="ignore"):
            graph = pc(
                data,
                alpha,
                "fisherz",
                background_knowledge=knowledge,
                show_progress=False,
                node_names=names,
                max_k=max(depth, 0),
            ).G.graph
    except (ValueError, np.linalg.LinAlgError, ZeroDivisionError):
        return None
    return (graph != 0) | (graph.T != 0)


# -------------------------------------------------------------------------------------------------- regression


def _pair_features(pos: np.ndarray, vel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Regression features (module docstring) from positions and velocities (M, n, 2): the vector features of every
    ordered pair, (M, n_i, n_j, 2, 4) for the force of i on j, and the target's own velocity, (M, n_j, 2, 1)."""
    d = pos[:, :, None, :] - pos[:, None, :, :]  # (M, n_i, n_j, 2), from j to i
    w = vel[:, :, None, :] - vel[:, None, :, :]  # (M, n_i, n_j, 2)
    r = np.linalg.norm(d, axis=-1, keepdims=True)  # (M, n_i, n_j, 1)
    off = ~np.eye(pos.shape[1], dtype=bool)
    r0 = float(np.median(r[:, off])) or 1.0
    v0 = float(np.sqrt((w[:, off] ** 2).sum(-1).mean())) or 1.0
    unit = np.divide(d, r, out=np.zeros_like(d), where=r > 0)
    inv_sq = (r0 / np.maximum(r, 0.1 * r0)) ** 2
    return np.stack([d / r0, unit, unit * inv_sq, w / v0], axis=-1), vel[..., None] / v0


_BASES = {"physics": 4, "linear": 1}  # regression basis -> the leading pair features it keeps


def regression_scores(
    states_e: np.ndarray,
    num_objects: int,
    *,
    dt: float = 0.1,
    ridge: float = 1e-3,
    despike: float | None = DESPIKE,
    basis: str = "physics",
) -> np.ndarray:
    """Leave-one-block-out ridge-regression scores of one episode: (N, N) float32 in [0, 1].

    For each target ``j`` the acceleration ``a_j(t) = (v_j(t+1) - v_j(t)) / dt`` (x and y stacked as rows, each
    component centred: unpenalised intercepts) is fitted by ridge regression (penalty ``ridge * rows`` on columns
    scaled to unit RMS) on the four pair features of every other object and the target's own velocity (module
    docstring). ``S[i, j]`` is the increase of the residual sum of squares when ``i``'s block is
    removed and the model refitted, divided by the total sum of squares: the partial R^2 of ``i``. ``basis``:
    ``"physics"`` (the four pair features) or ``"linear"`` (``d / r0`` only, a Hooke spring)."""
    if basis not in _BASES:
        raise ValueError(f"regression: basis must be one of {', '.join(_BASES)}, got {basis!r}")
    if not dt > 0:
        raise ValueError(f"regression: dt must be > 0, got {dt}")
    if not ridge > 0:
        raise ValueError(f"regression: ridge must be > 0, got {ridge}")
    pos, vel, slots = _episode(states_e, num_objects, 3, "regression")
    n = pos.shape[1]
    if n < 2:
        return _embed(np.zeros((n, n)), slots)
    acc = _despike(np.diff(vel, axis=0), despike) / dt  # (M, n, 2)
    pair, own = _pair_features(pos[:-1], vel[:-1])  # (M, n_i, n_j, 2, K), (M, n_j, 2, 1)
    pair = pair[..., : _BASES[basis]]
    m, k = acc.shape[0], pair.shape[-1]
    src = np.array([[i for i in range(n) if i != j] for j in range(n)])  # (n_j, n-1) sources of each target
    x = pair[:, src, np.arange(n)[:, None]].reshape(m, n, n - 1, 2, k)  # (M, n_j, n-1, 2, K)
    x = np.moveaxis(x, 3, 2).reshape(m, n, 2, (n - 1) * k)  # (M, n_j, 2, (n-1) K): columns (source, basis)
    x = np.concatenate([x, own], axis=-1)  # (M, n_j, 2, C), C = (n-1) K + 1, own velocity last
    x = x - x.mean(0)  # centre per component
    x = np.moveaxis(x, 0, 2).reshape(n, 2 * m, -1)  # (n_j, 2M, C): rows (component, t)
    y = np.moveaxis(acc - acc.mean(0), 0, 2).reshape(n, 2 * m, 1)  # (n_j, 2M, 1)
    rms = np.sqrt((x**2).mean(1, keepdims=True))
    x = np.divide(x, rms, out=np.zeros_like(x), where=rms > 1e-12)
    cols = x.shape[-1]
    keep = np.ones((n, cols))  # (variants, C): variant 0 keeps every block, variant b + 1 drops source block b
    for b in range(n - 1):
        keep[b + 1, b * k : (b + 1) * k] = 0.0
    xv = x[:, None] * keep[None, :, None, :]  # (n_j, variants, 2M, C)
    xt = np.swapaxes(xv, -1, -2)
    beta = np.linalg.solve(xt @ xv + ridge * 2 * m * np.eye(cols), xt @ y[:, None])  # (n_j, variants, C, 1)
    rss = ((y[:, None] - xv @ beta) ** 2).sum((-1, -2))  # (n_j, variants)
    tss = (y**2).sum((-1, -2))  # (n_j,)
    drop = np.divide(rss[:, 1:] - rss[:, :1], tss[:, None], out=np.zeros((n, n - 1)), where=tss[:, None] > 0)
    scores = np.zeros((n, n))
    scores[src, np.arange(n)[:, None]] = np.clip(drop, 0.0, 1.0)  # scores[src[j, b], j] = drop of block b
    return _embed(scores, slots)


# ---------------------------------------------------------------------------------------------------- dispatch

_SCORERS: dict[str, Callable[..., np.ndarray]] = {
    "granger": granger_scores,
    "pc": pc_scores,
    "regression": regression_scores,
    "regression_linear": partial(regression_scores, basis="linear", despike=None),
}


def discover(method: str, states: np.ndarray, num_objects: np.ndarray, **kwargs) -> np.ndarray:
    """Edge scores of every episode: states (E, T, N, F), num_objects (E,) -> (E, N, N) float32.

    ``method`` is one of :data:`METHODS`; ``kwargs`` go to its per-episode function (:func:`granger_scores`,
    :func:`pc_scores`, :func:`regression_scores`)."""
    if method not in _SCORERS:
        raise ValueError(f"unknown discovery method {method!r}; choose one of {', '.join(METHODS)}")
    states = np.asarray(states)
    num_objects = np.asarray(num_objects)
    if states.ndim != 4:
        raise ValueError(f"states must be (E, T, N, F), got shape {states.shape}")
    if num_objects.shape != states.shape[:1]:
        raise ValueError(
            f"num_objects must be ({states.shape[0]},) to match states {states.shape}, got {num_objects.shape}"
        )
    if num_objects.size and not np.issubdtype(num_objects.dtype, np.integer):
        if not np.array_equal(num_objects, np.round(num_objects)):
            raise ValueError("num_objects must hold integers")
    scorer = _SCORERS[method]
    out = np.zeros((states.shape[0], states.shape[2], states.shape[2]), dtype=np.float32)
    for e in range(states.shape[0]):
        out[e] = scorer(states[e], int(num_objects[e]), **kwargs)
    return out
