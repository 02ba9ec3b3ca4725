"""Causal probing: read the interaction graph a trained world model holds and score it against the simulator's.

Five readings of "slot i acts on slot j", each a score per directed pair, averaged over the probed time steps of an
episode (higher = more likely an edge):

- ``gates``: the transition's learned edge gate g_ij in [0, 1] (what the model was built to expose);
- ``message_norms``: the norm of the gated message ||g_ij m_ij|| that slot j receives from slot i;
- ``jacobian``: the sensitivity ||d delta z_j / d z_i||_F of the predicted change of slot j to the slot i;
- ``latent_intervention``: perturb slot i by +/- one standard deviation of the slots along fixed random sign
  patterns, imagine ``horizon`` steps with the episode's actions, and measure the mean change of slot j. It sees
  indirect (multi-hop) effects as the horizon grows, so it scores influence rather than only direct edges.
- ``prediction_gain``: how much better the model predicts the *observed* next slot j when it may use the edge
  i -> j, its squared one-step errors summed over the transitions the graph is read from (for a model with
  ``graph_context``: the W observations up to the probed step and the step after it, or the whole episode with
  ``graph_from="episode"``; otherwise the probed step's transition). For a one-round transition with at most
  ``gain_search`` slots every subset of j's senders is tried, and the score is the profile likelihood ratio: the
  least error without i minus the least with i. Otherwise the edge is closed (gate 0) and opened (gate 1) with the
  other gates at the model's own values. The first four read the model alone; this one asks the data which of the
  edges the model's learned messages need, so an inferred graph that the edge encoder read imperfectly is
  corrected by the dynamics the model learned.

Pixel encoders order their slots arbitrarily, so slots are matched to simulator objects per episode before scoring:

- ``identity``: slot k is object k (the state encoder, which reads objects in the file's order);
- ``masks``: Hungarian assignment on the overlap of the encoder's slot masks with the simulator's object masks over
  the probed frames (the mean per-pixel responsibility of a slot on an object's pixels; 1/K is chance); the matched
  overlap is the matching's confidence;
- ``trajectory``: Hungarian assignment on the R^2 of a per-episode ridge regression from a slot's latent trajectory to
  an object's positions; for encoders without masks. The matched R^2 is the confidence.

A matched pair whose confidence is below ``min_match`` is left out: that object and all its pairs are dropped from
the scores of that episode (never counted as a non-edge), and probe.json says how many objects were dropped.
Thresholded metrics (SHD, precision, recall) use a threshold chosen on training episodes, never on the test set.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from causal_wm import metrics
from causal_wm.config import PROBE_METHODS, write_json
from causal_wm.errors import CausalWMError
from causal_wm.model import NUM_DIRECTIONS
from causal_wm.train import EpisodeArrays, load_run, set_threads, slot_mask_for

METHODS = PROBE_METHODS
ACTION_READOUTS = ("gates", "message_norms", "intervention", "intervention_directions")
"""Readouts of where the action node acts: its edge gates, its message norms, the change of each slot's predicted
change when the push is replaced by a no-op, and that change summed over every direction of a push at the same place
(a push against a wall or another object barely moves its object in one direction, but not in all)."""
MATCHINGS = ("auto", "identity", "masks", "trajectory")
GRAPH_FROM = ("window", "episode")


GAIN_SEARCH = 6
"""Largest slot count for which ``prediction_gain`` searches every subset of senders (2^K gate patterns)."""


class ProbeError(CausalWMError):
    """A probe request that cannot be carried out (mismatched run and data, missing ground truth, ...)."""


@dataclass(frozen=True)
class ProbeConfig:
    """How ``causal-wm probe`` reads learned edges."""

    methods: tuple[str, ...] = METHODS
    """Extraction methods to run (see the module docstring)."""
    time_stride: int = 5
    """Probe every ``time_stride``-th step of each episode."""
    horizon: int = 3
    """Imagined steps of the latent interventions."""
    perturb_scale: float = 1.0
    """Size of a latent intervention, in per-dimension standard deviations of the slots."""
    matching: str = "auto"
    """Slot <-> object matching: auto (identity for state, masks when available, else trajectory), identity, masks,
    or trajectory."""
    min_match: float = 0.05
    """Matches whose confidence (mask overlap or R^2) is below this are dropped from scoring."""
    influence_threshold: float = 1.0
    """``influence`` (arena units of displacement) at or above which a pair counts as a true influence edge."""
    threshold_episodes: int = 200
    """Training episodes on which the decision threshold of each method is chosen."""
    batch: int = 16
    """Episodes per forward batch (small batches are faster on CPU: the latent interventions multiply it by 1 + 2K)."""
    seed: int = 0
    """Seed of the latent-intervention directions."""
    graph_from: str = "window"
    """Models with ``graph_context`` only: where each probed step's inferred graph is read from. ``window``: the W
    observations up to that step, as in a rollout; ``episode``: every observation of the episode, read once (the
    edge encoder's time average over the whole trajectory, as NRI's encoder reads it)."""
    slot_iters: int = 0
    """Slot Attention runs only: attention rounds per frame at probe time; 0: as trained."""
    gain_search: int = GAIN_SEARCH
    """``prediction_gain`` searches every subset of a receiver's senders (2^K gate patterns per transition) for
    one-round transitions with at most this many slots; larger or deeper ones toggle one edge at a time, the other
    gates at the model's values. 0: always toggle."""

    def __post_init__(self):
        unknown = sorted(set(self.methods) - set(METHODS))
        if unknown or not self.methods:
            raise ProbeError(f"unknown probe method(s) {unknown}; choose from {', '.join(METHODS)}")
        if self.matching not in MATCHINGS:
            raise ProbeError(f"matching must be one of {', '.join(MATCHINGS)}, got {self.matching!r}")
        if self.graph_from not in GRAPH_FROM:
            raise ProbeError(f"graph_from must be one of {', '.join(GRAPH_FROM)}, got {self.graph_from!r}")
        if not 0 <= self.gain_search <= 12:
            raise ProbeError(
                f"gain_search must lie in [0, 12] (2^K gate patterns per transition), got {self.gain_search}"
            )
        if self.slot_iters < 0:
            raise ProbeError(f"slot_iters must be >= 1 (or 0: as trained), got {self.slot_iters}")
        if min(self.time_stride, self.horizon, self.batch, self.threshold_episodes) < 1 or self.perturb_scale <= 0:
            raise ProbeError("time_stride, horizon, batch and threshold_episodes must be >= 1, perturb_scale > 0")


# ------------------------------------------------------------------------------------------------- slot scores


def searches_subsets(model, num_slots: int, limit: int = GAIN_SEARCH) -> bool:
    """Whether ``prediction_gain`` searches every subset of each receiver's senders (a one-round transition with at
    most ``limit`` slots) rather than toggling one sender's edges with the other gates at the model's values."""
    return model.one_round_messages and num_slots <= limit


def _patterns(k: int, like: torch.Tensor) -> torch.Tensor:
    """(2^K, K) every on/off pattern of K senders, as floats like ``like``."""
    bits = torch.arange(2**k, device=like.device)[:, None] >> torch.arange(k, device=like.device)[None]
    return (bits & 1).to(like.dtype)


def _gain_errors(model, z, z_next, actions, positions, slot_mask, edge_gates, search: bool):
    """Squared one-step errors (V, B, K_j) of the receivers under V gate settings, and how to turn their sum over
    transitions into edge scores (`_gain_scores`). With ``search``: V = 2^K patterns, sender i's edges i -> * on where
    bit i is set (a receiver's prediction depends only on its incoming gates in a one-round transition). Otherwise
    V = 2 n copies, edges closed then open, one sender's edges per copy (one-round) or one edge per copy, the other
    gates at ``edge_gates`` (default: the pair gates the transition computes from ``z``)."""
    b, k, _ = z.shape
    if search:
        patterns = _patterns(k, z)
        variants = patterns[:, None, :, None].expand(len(patterns), b, k, k)
        obj_action, node_action = model.action_inputs(actions, positions, k)
        delta = model.transition_model.gate_variants(z, variants, obj_action, node_action, slot_mask)
        if model.contact is not None:  # the contact channel has no gates: the same part in every pattern
            delta = delta + model.contact_delta(z, slot_mask)[None]
        return (z[None] + delta - z_next[None]).pow(2).sum(-1), patterns
    if edge_gates is None:
        edge_gates = model.transition(z, actions, positions, slot_mask, norms=False).gates
    one_round = model.one_round_messages
    edges = [(i, None) for i in range(k)] if one_round else [(i, j) for i in range(k) for j in range(k) if i != j]
    n = len(edges)
    variants = edge_gates[None].repeat(2 * n, 1, 1, 1)  # (2n, B, K, K): edges closed, then open
    for v, (i, j) in enumerate(edges):
        receivers = slice(None) if j is None else j
        variants[v, :, i, receivers] = 0.0
        variants[n + v, :, i, receivers] = 1.0

    def tile(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x[None].expand(2 * n, *x.shape).flatten(0, 1)

    delta = model.transition(
        tile(z), tile(actions), tile(positions), tile(slot_mask), variants.flatten(0, 1), norms=False
    ).delta
    return (tile(z) + delta - tile(z_next)).pow(2).sum(-1).unflatten(0, (2 * n, b)), edges


def _gain_scores(errors: torch.Tensor, how, slot_mask: torch.Tensor | None) -> torch.Tensor:
    """(B, K, K) edge scores from summed errors (V, B, K_j) of `_gain_errors`: for a pattern search the profile
    likelihood ratio min_{i off} err_j - min_{i on} err_j, else err_j(closed) - err_j(open)."""
    _, b, k = errors.shape
    if isinstance(how, torch.Tensor):  # the patterns of a subset search
        on = how.bool()
        out = torch.stack([errors[~on[:, i]].amin(0) - errors[on[:, i]].amin(0) for i in range(k)], 1)
    else:
        n = len(how)
        gain = errors[:n] - errors[n:]  # (n, B, K_j)
        if how[0][1] is None:  # one copy per sender
            out = gain.permute(1, 0, 2).contiguous()
        else:
            out = errors.new_zeros(b, k, k)
            for v, (i, j) in enumerate(how):
                out[:, i, j] = gain[v, :, j]
    out.diagonal(dim1=1, dim2=2).zero_()
    if slot_mask is not None:
        out = out.masked_fill(~(slot_mask[:, :, None] & slot_mask[:, None, :]), 0.0)
    return out


@torch.no_grad()
def prediction_gain(
    model,
    z: torch.Tensor,
    z_next: torch.Tensor,
    actions: torch.Tensor,
    positions: torch.Tensor | None = None,
    slot_mask: torch.Tensor | None = None,
    edge_gates: torch.Tensor | None = None,
    search: int = GAIN_SEARCH,
) -> torch.Tensor:
    """(B, K, K) at [b, i, j]: how much better the model predicts the *observed* next slot of j, ||z_j + Δz_j -
    z'_j||², when it may use the edge i -> j than when it may not.

    The other methods read the model alone; this one asks the data which edges the model's learned messages need, so
    that a graph the amortised inference (NRI's edge encoder, the pair gate MLP) read imperfectly can be corrected by
    the dynamics. For a one-round transition with at most ``search`` slots, every subset of j's senders is tried
    (2^K gate patterns, the edge MLP run once, `TransitionGNN.gate_variants`) and the score is the profile
    likelihood ratio: the least error with i off minus the least with i on, each over the other senders' subsets
    (for Gaussian errors of one variance, the log-likelihood ratio of the edge at the best graph either way). Other
    transitions compare the edge closed (gate 0) against open (gate 1) with every other gate at ``edge_gates``
    (default: the pair gates the transition computes from ``z``; all 1 for an ungated model).

    ``z``, ``z_next`` (B, K, D) encoded slots of consecutive observations, ``actions`` (B,) the action between them,
    ``positions`` (B, N, 2) normalised object positions (action node) or None. `extract` sums the errors over
    every transition the graph is read from before taking the minima."""
    use = searches_subsets(model, z.shape[1], search)
    errors, how = _gain_errors(model, z, z_next, actions, positions, slot_mask, edge_gates, use)
    return _gain_scores(errors, how, slot_mask)


@torch.no_grad()
def _latent_interventions(
    model, z, actions, positions, mask, scale: torch.Tensor, signs: torch.Tensor, edge_gates=None
) -> torch.Tensor:
    """(B, K, K) mean ||z'_j - z_j|| over the imagined steps after perturbing slot i, at [b, i, j].

    ``actions`` (B, H), ``positions`` (B, H, N, 2) or None, ``scale`` (D,), ``signs`` (P, D) perturbation patterns."""
    b, k, d = z.shape
    reps = 1 + signs.shape[0] * k
    # One batch holds the factual rollout and every (pattern, slot) perturbation of every sample.
    zz = z[None].repeat(reps, 1, 1, 1)  # (R, B, K, D)
    r = 1
    for p in range(signs.shape[0]):
        for i in range(k):
            zz[r, :, i] += signs[p] * scale
            r += 1
    flat = lambda x: None if x is None else x[None].expand(reps, *x.shape).flatten(0, 1)  # noqa: E731
    if model.one_round_messages:
        # The first step recomputes only the edges that touch the moved slot (`TransitionGNN.slot_perturbations`);
        # contact messages, a small MLP, are recomputed for every copy.
        pos0 = None if positions is None else positions[:, 0]
        obj_action, node_action = model.action_inputs(actions[:, 0], pos0, k)
        moved = model.transition_model.slot_perturbations(
            z, signs * scale, obj_action, node_action, mask, edge_gates
        )  # (P, K_i, B, K, D)
        factual = model.transition_model(
            z, obj_action=obj_action, node_action=node_action, slot_mask=mask, edge_gates=edge_gates, norms=False
        ).delta
        delta = torch.cat([factual[None], moved.flatten(0, 1)])  # (R, B, K, D)
        if model.contact is not None:
            delta = delta + model.contact_delta(zz.flatten(0, 1), flat(mask)).unflatten(0, (reps, b))
        first = zz + delta  # (R, B, K, D) after one step
        rest = lambda x: None if x is None else flat(x[:, 1:])  # noqa: E731
        roll = model.imagine(
            first.flatten(0, 1), rest(actions), rest(positions), flat(mask), decode=False, edge_gates=flat(edge_gates)
        )["z"]  # (R B, H, K, D): the first step, then H - 1 more
    else:
        roll = model.imagine(
            zz.flatten(0, 1), flat(actions), flat(positions), flat(mask), decode=False, edge_gates=flat(edge_gates)
        )["z"][:, 1:]  # (R B, H, K, D) imagined steps only
    roll = roll.unflatten(0, (reps, b))  # (R, B, H, K, D)
    change = (roll[1:] - roll[:1]).norm(dim=-1).mean(2)  # (P*K, B, K_j)
    change = change.unflatten(0, (signs.shape[0], k)).mean(0)  # (K_i, B, K_j)
    out = change.permute(1, 0, 2).contiguous()  # (B, K_i, K_j)
    out.diagonal(dim1=1, dim2=2).zero_()
    return out


def slot_scores(
    model,
    z: torch.Tensor,
    actions: torch.Tensor,
    positions: torch.Tensor | None,
    slot_mask: torch.Tensor | None,
    methods=None,
    *,
    scale: torch.Tensor | None = None,
    signs: torch.Tensor | None = None,
    edge_gates: torch.Tensor | None = None,
    z_next: torch.Tensor | None = None,
) -> dict[str, torch.Tensor]:
    """Edge scores (B, K, K), [b, i, j] for i -> j, of each method at one time step.

    ``z`` (B, K, D) slots, ``actions`` (B, H) int actions from this step on (H >= 1; only the first is used except by
    the latent interventions), ``positions`` (B, H, N, 2) normalised object positions (action node) or None,
    ``slot_mask`` (B, K) or None. ``scale`` (D,) and ``signs`` (P, D) set the latent interventions (default: unit
    scale, patterns +1 and -1). ``edge_gates`` (B, K, K): the graph a model with ``graph_context`` inferred from the
    observations up to this step (`WorldModel.infer_graph`); its Jacobian and interventions hold it fixed.
    ``z_next`` (B, K, D): the encoded slots of the next observation, which ``prediction_gain`` needs. ``methods``
    default: every method, ``prediction_gain`` only if ``z_next`` is given."""
    if methods is None:
        methods = tuple(m for m in METHODS if z_next is not None or m != "prediction_gain")
    out: dict[str, torch.Tensor] = {}
    pos0 = None if positions is None else positions[:, 0]
    if "prediction_gain" in methods:
        if z_next is None:
            raise ValueError("prediction_gain scores the model's predictions of the observed next slots: pass z_next")
        out["prediction_gain"] = prediction_gain(model, z, z_next, actions[:, 0], pos0, slot_mask, edge_gates)
    if "gates" in methods or "message_norms" in methods:
        with torch.no_grad():
            tr = model.transition(z, actions[:, 0], pos0, slot_mask, edge_gates)
        if "gates" in methods:
            out["gates"] = tr.gates
        if "message_norms" in methods:
            out["message_norms"] = tr.message_norms
    if "jacobian" in methods:
        out["jacobian"] = model.jacobian_norms(z, actions[:, 0], pos0, slot_mask, edge_gates)
    if "latent_intervention" in methods:
        d = z.shape[-1]
        scale = z.new_ones(d) if scale is None else scale
        signs = torch.stack([z.new_ones(d), -z.new_ones(d)]) if signs is None else signs
        out["latent_intervention"] = _latent_interventions(
            model, z, actions, positions, slot_mask, scale, signs, edge_gates
        )
    if slot_mask is not None:
        pair = slot_mask[:, :, None] & slot_mask[:, None, :]
        out = {name: s.masked_fill(~pair, 0.0) for name, s in out.items()}
    return out


# ---------------------------------------------------------------------------------------------------- matching


def match_by_overlap(slot_masks: np.ndarray, object_ids: np.ndarray, num_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """Match slots to objects by mask overlap.

    ``slot_masks`` (T, K, H, W) non-negative, ``object_ids`` (T, H, W) with 0 for background and n + 1 for object n.
    Each pixel's slot masks are normalised to responsibilities r_k = m_k / sum_k m_k; the overlap of slot k with
    object n is the mean responsibility of slot k over object n's pixels (1: the slot owns the object, 1/K: chance),
    so background and the absolute scale of the masks do not matter. Returns ``slot_of_object`` (N,) (-1 where an
    object got no slot or has no pixels) and the matched overlap (N,)."""
    onehot = (object_ids[:, None] == np.arange(1, num_objects + 1)[None, :, None, None]).astype(np.float32)  # T,N,H,W
    resp = slot_masks / np.maximum(slot_masks.sum(1, keepdims=True), 1e-9)  # (T, K, H, W)
    area = onehot.sum((0, 2, 3))  # (N,)
    overlap = np.einsum("tkhw,tnhw->kn", resp, onehot) / np.maximum(area, 1.0)[None]  # (K, N)
    slot_of_object, quality = _hungarian(overlap, num_objects)
    slot_of_object[area == 0] = -1
    quality[area == 0] = 0.0
    return slot_of_object, quality


def match_by_trajectory(
    slots: np.ndarray, positions: np.ndarray, num_objects: int, ridge: float = 1e-3
) -> tuple[np.ndarray, np.ndarray]:
    """Match slots to objects by how well a slot's latent trajectory predicts an object's positions.

    ``slots`` (T, K, D), ``positions`` (T, N, 2). For every (slot, object) pair a ridge regression with intercept
    from the slot (D) to the object's (x, y) is fitted over the episode; its R^2 is the match score.
    Returns ``slot_of_object`` (N,) and the matched R^2 (N,)."""
    t, k, d = slots.shape
    x = np.concatenate([slots, np.ones((t, k, 1), slots.dtype)], -1).transpose(1, 0, 2).astype(np.float64)  # K,T,D+1
    y = positions[:, :num_objects].transpose(1, 0, 2).astype(np.float64)  # (N, T, 2)
    gram = np.einsum("ktd,kte->kde", x, x) + ridge * np.eye(d + 1)[None]  # (K, D+1, D+1)
    xty = np.einsum("ktd,nte->knde", x, y)  # (K, N, D+1, 2)
    beta = np.linalg.solve(gram[:, None], xty)  # (K, N, D+1, 2)
    resid = y[None] - np.einsum("ktd,knde->knte", x, beta)  # (K, N, T, 2)
    total = ((y - y.mean(1, keepdims=True)) ** 2).sum((1, 2))  # (N,)
    r2 = 1.0 - (resid**2).sum((2, 3)) / np.maximum(total[None], 1e-9)  # (K, N)
    return _hungarian(r2, num_objects)


def _hungarian(score: np.ndarray, num_objects: int) -> tuple[np.ndarray, np.ndarray]:
    """Maximise the summed (K, N) score over one-to-one assignments; (N,) slot per object and its score."""
    rows, cols = linear_sum_assignment(score, maximize=True)
    slot_of_object = np.full(num_objects, -1, dtype=np.int64)
    quality = np.zeros(num_objects)
    slot_of_object[cols] = rows
    quality[cols] = score[rows, cols]
    return slot_of_object, quality


# ---------------------------------------------------------------------------------------------------- extraction


@dataclass
class ProbeScores:
    """Raw per-episode scores in object order, with the ground truth to score them against.

    scores: method -> (E, N, N) float, [e, i, j] for i -> j; NaN on the diagonal, padding and dropped objects.
    matched: (E, N) bool, objects that were matched to a slot with enough confidence.
    match_quality: (E, N) mask overlap / R^2 of each object's match (1 for identity).
    push_hits: readout -> (E,) pushes whose top slot by that readout of the action node is the pushed object's slot;
        readouts (`ACTION_READOUTS`, computed by `action_readouts`): the action-node gate, the norm of its gated
        message, the change of each slot's predicted delta when the push is replaced by a no-op (an intervention on
        the action), and that change summed over a push in every direction at the same place.
    push_steps: (E,) pushes probed.
    """

    scores: dict[str, np.ndarray]
    num_objects: np.ndarray
    matched: np.ndarray
    match_quality: np.ndarray
    matching: str
    push_hits: dict[str, np.ndarray] | None = None
    push_steps: np.ndarray | None = None


def _resolve_matching(model, data: EpisodeArrays, requested: str) -> str:
    c = model.config
    if requested == "auto":
        if c.encoder == "state":
            return "identity"
        return "masks" if data.masks is not None else "trajectory"
    if requested == "masks" and (c.encoder == "state" or data.masks is None):
        raise ProbeError("matching 'masks' needs an image encoder and a dataset with 'masks'")
    if requested == "identity" and c.encoder == "slots":
        raise ProbeError("Slot Attention orders its slots arbitrarily; identity matching is meaningless")
    return requested


@torch.no_grad()
def _encode_times(model, data: EpisodeArrays, e: np.ndarray, times: np.ndarray):
    """Slots (B, L, K, D) and encoder masks (B, L, K, h, w) or None of episodes ``e`` at observation ``times``."""
    c = model.config
    if c.encoder == "state":
        states = torch.from_numpy(data.states[e[:, None], times[None]])  # (B, L, N, F)
        mask = slot_mask_for(torch.from_numpy(data.num_objects[e]), c.num_slots, "state")
        z = model.encode(states.flatten(0, 1), slot_mask=mask.repeat_interleave(len(times), 0)).slots
        return z.unflatten(0, (len(e), len(times))), None
    frames = [torch.from_numpy(data.obs[e[:, None], times[None] - c.history + 1 + h]) for h in range(c.history)]
    stack = torch.stack(frames, 2)  # (B, L, history, H, W, 3)
    if not model.tracks_slots:
        out = model.encode(stack.flatten(0, 1))
        masks = None if out.masks is None else out.masks.unflatten(0, (len(e), len(times)))
        return out.slots.unflatten(0, (len(e), len(times))), masks
    # Slot Attention follows its slots through every frame between probed times (SAVi-style chaining).
    wanted = set(times.tolist())
    slots, masks, prev = {}, {}, None
    for t in range(c.history - 1, int(times[-1]) + 1):
        window = torch.stack([torch.from_numpy(data.obs[e, t - c.history + 1 + h]) for h in range(c.history)], 1)
        out = model.encode(window, init_slots=prev)
        prev = out.slots
        if t in wanted:
            slots[t], masks[t] = out.slots, out.masks
    return torch.stack([slots[t] for t in times], 1), torch.stack([masks[t] for t in times], 1)


@torch.no_grad()
def action_readouts(
    model, z: torch.Tensor, actions: torch.Tensor, positions: torch.Tensor, slot_mask=None, edge_gates=None
) -> dict[str, torch.Tensor]:
    """(B, K) scores of each slot for the action node's `ACTION_READOUTS`, padded slots 0.

    ``z`` (B, K, D) slots, ``actions`` (B,) integer actions (0 = no-op, else 1 + object * NUM_DIRECTIONS + direction),
    ``positions`` (B, N, 2) normalised object positions (the push locations)."""
    b = actions.shape[0]
    push = actions > 0
    first = actions - 1 - (actions - 1) % NUM_DIRECTIONS  # object * NUM_DIRECTIONS, for pushes
    # one batched call: the action, a no-op, and the push in each direction at the same place
    variants = [actions, torch.zeros_like(actions)]
    variants += [torch.where(push, first + 1 + d, actions) for d in range(NUM_DIRECTIONS)]
    n = len(variants)

    def tile(x: torch.Tensor | None) -> torch.Tensor | None:
        return None if x is None else x.repeat(n, *([1] * (x.dim() - 1)))

    if model.one_round_transition:
        # The slot edges do not depend on the action: they run once for all variants.
        inputs = [model.action_inputs(a, positions, z.shape[1]) for a in variants]
        obj = None if inputs[0][0] is None else torch.stack([i[0] for i in inputs])
        node = torch.stack([i[1] for i in inputs])
        delta, gates, norms = model.transition_model.action_variants(z, node, obj, slot_mask, edge_gates)
    else:
        out = model.transition(tile(z), torch.cat(variants), tile(positions), tile(slot_mask), tile(edge_gates))
        delta = out.delta.unflatten(0, (n, b))  # (n, B, K, D)
        gates, norms = out.action_gates.unflatten(0, (n, b)), out.action_message_norms.unflatten(0, (n, b))
    change = (delta - delta[1]).norm(dim=-1)  # (n, B, K) against the no-op
    return {
        "gates": gates[0],
        "message_norms": norms[0],
        "intervention": change[0],
        "intervention_directions": change[2:].sum(0),
    }


def span_inputs(model, data: EpisodeArrays, e: np.ndarray, start: int, count: int):
    """The actions (B, S) and, with an action node, normalised object positions (B, S, N, 2) of the ``count``
    transitions from time ``start`` of episodes ``e``: what `span_gain` needs beside the slots."""
    steps = start + np.arange(count)
    actions = torch.from_numpy(data.actions[e[:, None], steps[None]])
    positions = None
    if model.config.action_node:
        positions = torch.from_numpy(data.states[e[:, None], steps[None], :, :2]) / model.arena_size
    return actions, positions


@torch.no_grad()
def transition_errors(
    model,
    z_seq: torch.Tensor,
    actions: torch.Tensor,
    positions: torch.Tensor | None,
    slot_mask: torch.Tensor | None,
    edge_gates: torch.Tensor | None,
    search: bool,
    chunk: int = 4096,
):
    """Squared one-step errors (V, B, S, K_j) of each transition of slots ``z_seq`` (B, S + 1, K, D) under the V
    gate settings of `_gain_errors`, with ``actions`` (B, S) and ``positions`` (B, S, N, 2) or None (`span_inputs`),
    and how to turn their sum into scores. ``edge_gates`` (B, K, K), held fixed, matter only without ``search``. At
    most ``chunk`` copies go through the transition per call."""
    b, s1, k, _ = z_seq.shape
    copies = 2**k if search else 2 * k * (1 if model.one_round_messages else k)
    per = max(1, chunk // max(1, b * copies))  # transitions per call
    parts, how = [], None
    for a in range(0, s1 - 1, per):
        n = min(per, s1 - 1 - a)
        errors, how = _gain_errors(
            model,
            z_seq[:, a : a + n].flatten(0, 1),
            z_seq[:, a + 1 : a + n + 1].flatten(0, 1),
            actions[:, a : a + n].flatten(0, 1),
            None if positions is None else positions[:, a : a + n].flatten(0, 1),
            None if slot_mask is None else slot_mask.repeat_interleave(n, 0),
            None if edge_gates is None else edge_gates.repeat_interleave(n, 0),
            search,
        )
        parts.append(errors.unflatten(1, (b, n)))  # (V, B, n, K)
    return torch.cat(parts, 2), how


def span_gain(
    model,
    z_seq: torch.Tensor,
    actions: torch.Tensor,
    positions: torch.Tensor | None,
    slot_mask: torch.Tensor | None,
    edge_gates: torch.Tensor | None,
    search: int = GAIN_SEARCH,
) -> torch.Tensor:
    """(B, K, K) `prediction_gain` of the transitions of slots ``z_seq`` (B, S + 1, K, D) together, with
    ``actions`` (B, S) and ``positions`` (B, S, N, 2) or None (`span_inputs`): the errors are averaged over the S
    transitions before the scores are formed (a subset search then picks one best graph per receiver for the whole
    span). ``edge_gates`` (B, K, K) are held fixed over the span (None: the pair gates of each step)."""
    use = searches_subsets(model, z_seq.shape[2], search)
    errors, how = transition_errors(model, z_seq, actions, positions, slot_mask, edge_gates, use)
    return _gain_scores(errors.mean(2), how, slot_mask)


def extract(model, data: EpisodeArrays, cfg: ProbeConfig, *, progress: bool = False) -> ProbeScores:
    """Run every configured method on every episode of ``data`` and map the scores to objects."""
    c = model.config
    matching = _resolve_matching(model, data, cfg.matching)
    history = c.history if c.uses_images else 1
    ctx = model.context_steps  # a model with graph_context reads the ctx observations before each probed one
    times = np.arange(model.first_observation, data.steps - 1, cfg.time_stride)  # needs one action after t
    if len(times) == 0:
        raise ProbeError(f"episodes of {data.steps} frames are too short to probe")
    e_all, n_cap = data.num_episodes, data.states.shape[2]
    k = c.num_slots
    slot_acc = {m: np.zeros((e_all, k, k)) for m in cfg.methods}
    slot_of_object = np.tile(np.arange(n_cap), (e_all, 1))
    quality = np.ones((e_all, n_cap))
    pushes: list[tuple[np.ndarray, np.ndarray, dict]] = []  # (episode, pushed object, readout -> top slot) per push
    push_hits = {r: np.zeros(e_all, dtype=np.int64) for r in ACTION_READOUTS}
    push_steps = np.zeros(e_all, dtype=np.int64)
    gen = torch.Generator().manual_seed(cfg.seed)
    signs = torch.randint(0, 2, (1, c.latent_dim), generator=gen).float() * 2 - 1
    signs = torch.cat([signs, -signs])  # a symmetric pair cancels the first-order sign
    scale = None
    gain = "prediction_gain" in cfg.methods
    per_step = tuple(m for m in cfg.methods if m != "prediction_gain")  # the gain is scored over spans below
    from tqdm import tqdm

    for a in tqdm(range(0, e_all, cfg.batch), disable=not progress, desc="probe"):
        e = np.arange(a, min(a + cfg.batch, e_all))
        whole = ctx and cfg.graph_from == "episode"
        if ctx:
            last = data.steps - 1 if whole else times[-1] + gain
            z_full, masks = _encode_times(model, data, e, np.arange(history - 1, last + 1))  # every step
            z_all = z_full[:, times - history + 1]  # (B, L, K, D)
            masks = None if masks is None else masks[:, times - history + 1]
        elif gain:  # the next observation of each probed one too
            both = np.union1d(times, times + 1)
            z_both, masks = _encode_times(model, data, e, both)
            now, after = np.searchsorted(both, times), np.searchsorted(both, times + 1)
            z_all, z_after = z_both[:, now], z_both[:, after]  # (B, L, K, D)
            masks = None if masks is None else masks[:, now]
        else:
            z_all, masks = _encode_times(model, data, e, times)  # (B, L, K, D)
        slot_mask = slot_mask_for(torch.from_numpy(data.num_objects[e]), k, c.encoder)
        if whole:
            with torch.no_grad():
                episode_gates = model.infer_graph(z_full, slot_mask, exact=False)
            if gain:  # every transition of the episode, under the one graph read from it
                inputs = span_inputs(model, data, e, history - 1, z_full.shape[1] - 1)
                episode_gain = span_gain(model, z_full, *inputs, slot_mask, episode_gates, cfg.gain_search).numpy()
        elif ctx and gain and searches_subsets(model, k, cfg.gain_search):
            # A subset search does not read the inferred gates, so each transition's errors serve every window
            # that holds it: computed once here, summed per probed step below.
            inputs = span_inputs(model, data, e, history - 1, z_full.shape[1] - 1)
            all_errors, patterns = transition_errors(model, z_full, *inputs, slot_mask, None, True)
        if scale is None:  # one perturbation size for the whole probe, from the first batch's slots
            flat = z_all.flatten(0, 1)[slot_mask.repeat_interleave(len(times), 0)] if slot_mask is not None else None
            flat = z_all.flatten(0, 2) if flat is None else flat
            scale = cfg.perturb_scale * flat.std(0).clamp(min=1e-6)
        for li, t in enumerate(times):
            h = min(cfg.horizon, data.steps - 1 - t)
            act = torch.from_numpy(data.actions[e[:, None], t + np.arange(h)[None]])  # (B, h)
            pos = torch.from_numpy(data.states[e[:, None], t + np.arange(h)[None], :, :2]) / model.arena_size
            pos = pos if c.action_node else None
            pos0 = None if pos is None else pos[:, 0]
            edge_gates = None
            now = t - history + 1  # index of t in z_full
            if whole:
                edge_gates = episode_gates
            elif ctx:
                with torch.no_grad():
                    edge_gates = model.infer_graph(z_full[:, now - ctx : now + 1], slot_mask)
            scores = slot_scores(
                model, z_all[:, li], act, pos, slot_mask, per_step, scale=scale, signs=signs, edge_gates=edge_gates
            )
            for m, s in scores.items():
                slot_acc[m][e] += s.numpy()
            if gain and whole:
                slot_acc["prediction_gain"][e] += episode_gain
            elif gain and ctx and searches_subsets(model, k, cfg.gain_search):
                window = all_errors[:, :, now - ctx : now + 1].mean(2)  # the graph's observations and t -> t + 1
                slot_acc["prediction_gain"][e] += _gain_scores(window, patterns, slot_mask).numpy()
            elif gain and ctx:  # the transitions of the observations the graph was read from, and t -> t + 1
                span = z_full[:, now - ctx : now + 2]
                inputs = span_inputs(model, data, e, t - ctx, ctx + 1)
                slot_acc["prediction_gain"][e] += span_gain(
                    model, span, *inputs, slot_mask, edge_gates, cfg.gain_search
                ).numpy()
            elif gain:
                g = prediction_gain(
                    model, z_all[:, li], z_after[:, li], act[:, 0], pos0, slot_mask, search=cfg.gain_search
                )
                slot_acc["prediction_gain"][e] += g.numpy()
            if c.action_node:
                readouts = action_readouts(model, z_all[:, li], act[:, 0], pos[:, 0], slot_mask, edge_gates)
                pushed = act[:, 0].numpy() > 0
                obj = (act[:, 0].numpy() - 1) // NUM_DIRECTIONS
                push_steps[e] += pushed
                # the top slot of each readout, scored against the pushed object once slots are matched
                pushes.append((e[pushed], obj[pushed], {r: v.numpy()[pushed].argmax(1) for r, v in readouts.items()}))
        if matching == "masks":
            true = data.masks[e[:, None], times[None]]  # (B, L, H, W)
            up = F.interpolate(masks.flatten(0, 1), size=true.shape[-2:], mode="bilinear", align_corners=False)
            up = up.unflatten(0, masks.shape[:2]).numpy()
            for bi, ep in enumerate(e):
                slot_of_object[ep], quality[ep] = _pad(match_by_overlap(up[bi], true[bi], data.num_objects[ep]), n_cap)
        elif matching == "trajectory":
            zs = z_all.numpy()
            pos_all = data.states[e[:, None], times[None], :, :2]
            for bi, ep in enumerate(e):
                slot_of_object[ep], quality[ep] = _pad(
                    match_by_trajectory(zs[bi], pos_all[bi], data.num_objects[ep]), n_cap
                )
    n_times = len(times)
    real = np.arange(n_cap)[None] < data.num_objects[:, None]
    matched = real & (slot_of_object >= 0) & (quality >= cfg.min_match)
    if matching == "identity":
        matched = real.copy()
    # Object-order scores: [e, a, b] = slot score of (slot of a, slot of b); NaN unless both are kept and a != b.
    slot = np.maximum(slot_of_object, 0)  # (E, N), valid where matched
    pair = matched[:, :, None] & matched[:, None, :] & ~np.eye(n_cap, dtype=bool)[None]
    ep = np.arange(e_all)[:, None, None]
    out = {
        m: np.where(pair, acc[ep, slot[:, :, None], slot[:, None, :]] / n_times, np.nan) for m, acc in slot_acc.items()
    }
    if c.action_node:
        for e_idx, obj_idx, top in pushes:
            ok = obj_idx < n_cap
            slot_pushed = slot_of_object[e_idx[ok], obj_idx[ok]]  # -1 (a miss) for an unmatched object
            for r, slots in top.items():
                np.add.at(push_hits[r], e_idx[ok], slot_pushed == slots[ok])
    return ProbeScores(
        scores=out,
        num_objects=data.num_objects.copy(),
        matched=matched,
        match_quality=np.where(real, quality, 0.0),
        matching=matching,
        push_hits=push_hits if c.action_node else None,
        push_steps=push_steps if c.action_node else None,
    )


def _pad(result: tuple[np.ndarray, np.ndarray], capacity: int) -> tuple[np.ndarray, np.ndarray]:
    slot_of_object, quality = result
    s = np.full(capacity, -1, dtype=np.int64)
    q = np.zeros(capacity)
    s[: len(slot_of_object)], q[: len(quality)] = slot_of_object, quality
    return s, q


# ------------------------------------------------------------------------------------------------------- scoring


def compact(scores: np.ndarray, truth: np.ndarray, matched: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reorder each episode so its kept (matched, real) objects come first.

    ``scores`` (E, N, N), ``truth`` (E, N, N), ``matched`` (E, N) bool. Returns scores and truth in the new order with
    dropped objects' entries zeroed, and the kept count (E,), ready for `metrics.graph_scores(s, y, counts)`."""
    order = np.argsort(~matched, axis=1, kind="stable")  # kept objects first, in their original order
    idx = np.arange(len(scores))[:, None, None]
    s = scores[idx, order[:, :, None], order[:, None, :]]
    y = truth[idx, order[:, :, None], order[:, None, :]]
    counts = matched.sum(1)
    real = np.arange(scores.shape[1])[None] < counts[:, None]
    pair = real[:, :, None] & real[:, None, :]
    return np.where(pair, np.nan_to_num(s, nan=0.0), 0.0), np.where(pair, y, 0), counts


def score_method(
    scores: np.ndarray, truth: np.ndarray, matched: np.ndarray, threshold: float | None = None
) -> dict[str, float | int | None]:
    """Threshold-free (AUROC, AP: pooled and per-episode means) and, with a threshold, thresholded metrics (SHD,
    precision, recall, F1, accuracy, and NRI's edge accuracy maximised over relabelings of {edge, no edge}) of one
    method's scores against a binary truth."""
    s, y, counts = compact(scores, truth, matched)
    result: dict[str, float | int | None] = dict(metrics.graph_scores(s, y, counts))
    result["threshold"] = threshold
    if threshold is not None:
        at = metrics.graph_metrics_at_threshold(s, y, counts, threshold)
        result.update(shd=at["shd_mean"], shd_undirected=at["shd_undirected_mean"])
        result.update({k: at[k] for k in ("precision", "recall", "f1", "accuracy")})
        real = np.arange(s.shape[1])[None] < counts[:, None]
        pairs = real[:, :, None] & real[:, None, :] & ~np.eye(s.shape[1], dtype=bool)[None]
        if pairs.any():
            result["edge_accuracy_permutation_invariant"] = metrics.permutation_invariant_edge_accuracy(
                (s >= threshold).astype(int), y.astype(int), 2, pairs
            )
    return result


def learned_digraph(probe_scores: ProbeScores, method: str, episode: int, threshold: float):
    """The graph ``method`` reads from the model on one episode, as a networkx DiGraph over its kept objects
    (edge i -> j with attribute ``score`` where the score is at least ``threshold``)."""
    import networkx as nx

    kept = probe_scores.matched[episode]
    s = np.where(kept[:, None] & kept[None, :], probe_scores.scores[method][episode], np.nan)
    g = nx.DiGraph()
    g.add_nodes_from(int(i) for i in np.flatnonzero(kept))
    g.add_edges_from(
        (int(i), int(j), {"score": float(s[i, j])})
        for i, j in zip(*np.nonzero(np.nan_to_num(s, nan=-np.inf) >= threshold), strict=True)
    )
    return g


def thresholds_from(scores: dict[str, np.ndarray], truth: np.ndarray, matched: np.ndarray) -> dict[str, float]:
    """The F1-maximising decision threshold of each method's (E, N, N) scores on these (training) episodes."""
    out = {}
    for m, s in scores.items():
        cs, y, counts = compact(s, truth, matched)
        try:
            out[m] = metrics.choose_threshold(cs, y, counts)
        except ValueError:  # no true edge among the training episodes (e.g. billiards against adjacency)
            continue
    return out


def select_best(test_auroc: dict[str, float], train_auroc: dict[str, float]) -> tuple[str, str]:
    """The method probe.json reports as best, and where it was chosen: ``"training"`` when the threshold episodes
    of the training file scored it (highest AUROC there, so the test figures stay an unbiased estimate), else
    ``"test"`` (highest test AUROC, an optimistic pick). Ties keep the earlier method; NaN never wins."""
    for source, table in (("training", train_auroc), ("test", test_auroc)):
        ranked = [m for m in test_auroc if np.isfinite(table.get(m, np.nan))]
        if ranked:
            return max(ranked, key=lambda m: table[m]), source
    return next(iter(test_auroc)), "none"


def _truth(path: str, data: EpisodeArrays, influence_threshold: float) -> dict[str, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        out = {"adjacency": f["adjacency"][: data.num_episodes].astype(bool)}
        if "influence" in f:
            out["influence_raw"] = f["influence"][: data.num_episodes].astype(np.float32)
            out["influence"] = out["influence_raw"] >= influence_threshold
    n = out["adjacency"].shape[1]
    for key in ("adjacency", "influence"):
        if key in out:
            out[key][:, np.arange(n), np.arange(n)] = False
    return out


def _check_compatible(model, info, path: str) -> None:
    c = model.config
    trained = model.train_config.get("data", "")
    run_scene = getattr(model, "scene", None)
    if run_scene and info.scene != run_scene:
        raise ProbeError(f"{path} holds scene {info.scene!r} but the run was trained on {run_scene!r}")
    if c.uses_images and not info.has_images:
        raise ProbeError(f"{path} has no images ('obs') but the run's {c.encoder} encoder reads pixels")
    if c.uses_images and info.image_size != c.image_size:
        raise ProbeError(f"{path} has {info.image_size}px frames, the run {c.image_size}px")
    if c.encoder == "state" and info.num_features != c.num_features:
        raise ProbeError(f"{path} has {info.num_features} state features, the run {c.num_features} ({trained})")
    saved_features = getattr(model, "state_features", None)
    if c.encoder == "state" and saved_features and list(info.state_features) != list(saved_features):
        raise ProbeError(f"{path} has state features {info.state_features}, the run was trained on {saved_features}")
    if c.encoder != "slots" and info.max_objects > c.num_slots:
        raise ProbeError(f"{path} has up to {info.max_objects} objects but the run has {c.num_slots} slots")
    if info.max_objects < 2:
        raise ProbeError(f"{path}: a graph needs at least 2 objects per episode")


def probe(
    run: str | os.PathLike,
    data_path: str,
    cfg: ProbeConfig = ProbeConfig(),
    *,
    train_data: str | None = None,
    baselines: tuple[str, ...] | list[str] = (),
    episodes: int | None = None,
    progress: bool = False,
    threads: int | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Probe a run on ``data_path``: returns the probe.json content and the raw arrays for probe_scores.npz.

    Decision thresholds are chosen on the first ``cfg.threshold_episodes`` episodes of ``train_data`` (default: the
    run's training file); without a readable training file the thresholded metrics are left out. ``baselines`` are
    `causal_wm.discovery` methods run on the file's ground-truth states and scored the same way (identity matching).
    ``episodes`` limits the probe to the first episodes of ``data_path``. ``threads``: torch CPU threads (default:
    leave torch's setting)."""
    from causal_wm.data import validate

    t_start = time.perf_counter()
    model = load_run(run)
    if cfg.slot_iters:
        try:
            model.set_slot_iters(cfg.slot_iters)
        except ValueError as err:
            raise ProbeError(f"{run}: {err}") from None
    set_threads(threads)
    info = validate(data_path)
    _check_compatible(model, info, data_path)
    data = EpisodeArrays(
        data_path, images=model.config.uses_images, episodes=None if episodes is None else slice(0, episodes)
    )
    truth = _truth(data_path, data, cfg.influence_threshold)
    scores = extract(model, data, cfg, progress=progress)

    train_path = train_data or model.train_config.get("data")
    thresholds: dict[str, float] = {}
    train_auroc: dict[str, float] = {}
    threshold_source = None
    tdata = train_truth = None
    if train_path and Path(train_path).exists():
        tinfo = validate(train_path)
        _check_compatible(model, tinfo, train_path)
        n_thr = min(cfg.threshold_episodes, tinfo.num_episodes)
        tdata = EpisodeArrays(train_path, images=model.config.uses_images, episodes=slice(0, n_thr))
        tprobe = extract(model, tdata, cfg)
        train_truth = _truth(train_path, tdata, cfg.influence_threshold)["adjacency"]
        thresholds = thresholds_from(tprobe.scores, train_truth, tprobe.matched)
        train_auroc = {
            m: metrics.graph_scores(*compact(s, train_truth, tprobe.matched))["auroc"] for m, s in tprobe.scores.items()
        }
        threshold_source = f"{train_path} (first {n_thr} episodes)"

    arrays_extra: dict[str, np.ndarray] = {}
    result: dict = {"methods": {}, "run": str(run), "data": str(data_path), "episodes": int(data.num_episodes)}
    for m, s in scores.scores.items():
        result["methods"][m] = {"adjacency": score_method(s, truth["adjacency"], scores.matched, thresholds.get(m))}
        if "influence" in truth:
            result["methods"][m]["influence"] = score_method(s, truth["influence"], scores.matched)
    if baselines:
        from causal_wm import discovery

        result["baselines"] = {}
        real = np.arange(data.states.shape[2])[None] < data.num_objects[:, None]
        for b in baselines:
            s = discovery.discover(b, data.states, data.num_objects).astype(np.float64)
            thr = None
            if tdata is not None:  # the baseline's own threshold, chosen on the same training episodes
                ts = discovery.discover(b, tdata.states, tdata.num_objects).astype(np.float64)
                treal = np.arange(ts.shape[1])[None] < tdata.num_objects[:, None]
                thr = thresholds_from({b: ts}, train_truth, treal).get(b)
            result["baselines"][b] = {"adjacency": score_method(s, truth["adjacency"], real, thr)}
            if "influence" in truth:
                result["baselines"][b]["influence"] = score_method(s, truth["influence"], real)
            arrays_extra[f"baseline_{b}"] = s.astype(np.float32)
    best, best_selected_on = select_best(
        {m: result["methods"][m]["adjacency"]["auroc"] for m in scores.scores}, train_auroc
    )
    for m, a in train_auroc.items():
        result["methods"][m]["adjacency"]["train_auroc"] = a
    top = result["methods"][best]["adjacency"]
    result.update(
        best_method=best,
        best_selected_on=best_selected_on,
        auroc=top["auroc"],
        ap=top["ap"],
        shd=top.get("shd"),
        precision=top.get("precision"),
        recall=top.get("recall"),
        threshold_source=threshold_source,
    )
    real = np.arange(scores.matched.shape[1])[None] < scores.num_objects[:, None]
    result["matching"] = {
        "method": scores.matching,
        "mean_quality": float(scores.match_quality[real].mean()),
        "objects": int(real.sum()),
        "dropped_objects": int((real & ~scores.matched).sum()),
        "min_match": cfg.min_match,
    }
    if scores.push_steps is not None:
        total = int(scores.push_steps.sum())
        result["action_accuracy"] = {r: float(h.sum() / total) if total else None for r, h in scores.push_hits.items()}
        result["action_pushes"] = total
    result["config"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()}
    result["scene_stats"] = info.stats
    result["seconds"] = time.perf_counter() - t_start
    arrays = {f"scores_{m}": s.astype(np.float32) for m, s in scores.scores.items()} | arrays_extra
    arrays.update(
        adjacency=truth["adjacency"].astype(np.uint8),
        num_objects=scores.num_objects,
        matched=scores.matched,
        match_quality=scores.match_quality.astype(np.float32),
    )
    if "influence" in truth:
        arrays["influence"] = truth["influence_raw"]
    return result, arrays


def write_probe(
    run: str | os.PathLike,
    result: dict,
    arrays: dict[str, np.ndarray],
    *,
    overwrite: bool = False,
    name: str = "probe",
):
    """Write NAME.json and NAME_scores.npz (probe.json and probe_scores.npz by default) atomically; refuse to
    replace them without ``overwrite``."""
    run = Path(run)
    paths = run / f"{name}.json", run / f"{name}_scores.npz"
    if not overwrite:
        for p in paths:
            if p.exists():
                raise ProbeError(f"{p} exists; pass --overwrite to replace it")
    tmp_npz = run / f".{name}_scores.tmp.npz"
    np.savez_compressed(tmp_npz, **arrays)
    os.replace(tmp_npz, paths[1])
    write_json(paths[0], result)
    return paths
