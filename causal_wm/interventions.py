"""Interventions in the simulator and in the model, and dowhy gcm effect estimates on the learned and the true graph.

**Simulator vs model.** A do() such as ``mass[0]*=2`` is applied at frame ``s`` of an episode replayed from t=0
(`envs.do`). The model gets the matching intervention by re-encoding the intervened observation at frame ``s`` (the
state encoder sees the new mass, velocity, position or a removed object's padding; image encoders see the new frame)
and imagining ``horizon`` steps with the episode's actions from both the factual and the intervened encoding. The
effect on object j is its mean displacement from the factual run over the horizon: in positions for the simulator, and
for the model in decoded positions where it has a position readout (a state decoder), otherwise in latent distance
(the report's ``model_effect_unit``; the latent distance is also kept as ``latent_effect``). Agreement is the Pearson
and Spearman correlation of the two effect vectors over the non-intervened objects, pooled over episodes, and the
sign agreement of the signed x/y displacements where the model has a position readout.

An intervention that changes nothing the model can observe (a spring cut in a scene whose springs follow the visible
types, a mass change under an image encoder that cannot see mass) is expected to disagree: the report says so
rather than hiding it.

**dowhy gcm.** The time-unrolled object variables are the state of every object at t, ``x{i}``, ``y{i}``, ``vx{i}``,
``vy{i}``, and ``a{j}`` = its x-velocity change from t to t+1. Two `StructuralCausalModel`s are built: one on the true
graph (object i's state -> a_j for each true edge i -> j) and one on the learned graph, both with object j's own state
-> a_j. Mechanisms are set explicitly (empirical distributions for the state, additive-noise linear regressors for the
a's; auto-assignment is slow and arrow strengths vary between runs, dowhy#1214, #1130) and everything is seeded. They
are fitted on simulator rollouts of the same objects and springs from resampled initial conditions, keeping only the
steps in which no object touches another or a wall, so that the pairwise forces the graph names (springs, charges) and a
random push (the exogenous noise of the a's: the scenes are deterministic) are all that moves the objects. We compare
the arrow strengths into each ``a{j}`` and the average causal effect of shifting the intervened object's position,
``do(x_i := x_i + delta)``, on every other ``a{j}``.

gcm's graph falsification then tests the local Markov conditions of the learned graph, and of the true graph as a
reference, against the same data. The state at t is dependent across objects through the unmodelled past, so for this
test its variables are joined by a complete DAG in a fixed order, which implies no independence among them; what is
tested is each ``a{j}`` against every other variable given object j's state and its senders' states. Without the pushes,
the contact filter, the full state and that block, the true graph itself was rejected on springs, which made the verdict
uninformative.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

import numpy as np
import torch

import envs
from causal_wm.errors import CausalWMError
from causal_wm.train import encode_window, set_threads
from envs.scene import BOX

PROPERTIES = ("mass", "charge", "velocity", "position", "remove", "cut_spring")
_DO = re.compile(
    r"^\s*(?P<prop>[a-z_]+)\s*\[\s*(?P<idx>\d+(\s*,\s*\d+)?)\s*\]\s*"
    r"(?:(?P<op>\*=|\+=|=)\s*(?P<value>\(\s*[-+0-9.eE]+\s*,\s*[-+0-9.eE]+\s*\)|[-+0-9.eE]+))?\s*"
    r"(?:@\s*(?P<step>\d+))?\s*$"
)


class InterventionError(CausalWMError):
    """A do() that cannot be applied (unknown property, missing object or step, ...)."""


@dataclass(frozen=True)
class DoSpec:
    """A parsed do(): ``prop[index] op value @ step``."""

    prop: str
    index: tuple[int, ...]
    op: str | None
    value: float | tuple[float, float] | None
    step: int
    text: str


def parse_do(text: str, default_step: int = 0) -> DoSpec:
    """Parse ``'mass[0]*=2'``, ``'velocity[1]=(10,0)'``, ``'velocity[2]+=(5,-5)'``, ``'charge[0]*=-1'``,
    ``'position[3]=(50,50)'``, ``'remove[2]'`` or ``'cut_spring[0,1]'``, each optionally followed by ``@STEP``."""
    m = _DO.match(text)
    if m is None:
        raise InterventionError(
            f"cannot parse do() {text!r}; expected e.g. 'mass[0]*=2', 'velocity[1]=(10,0)', 'remove[2]', "
            "'cut_spring[0,1]', optionally followed by '@STEP'"
        )
    prop = m["prop"]
    if prop not in PROPERTIES:
        raise InterventionError(f"unknown property {prop!r} in {text!r}; choose one of {', '.join(PROPERTIES)}")
    index = tuple(int(i) for i in m["idx"].split(","))
    op, raw = m["op"], m["value"]
    if prop in ("remove", "cut_spring"):
        if op is not None:
            raise InterventionError(f"{prop}[...] takes no value ({text!r})")
        if (prop == "cut_spring") != (len(index) == 2):
            raise InterventionError(f"{prop} takes {'two indices' if prop == 'cut_spring' else 'one index'}")
        value = None
    else:
        if op is None or len(index) != 1:
            raise InterventionError(f"{prop} needs one index and a value, e.g. '{prop}[0]*=2' ({text!r})")
        vector = raw.startswith("(")
        if prop in ("mass", "charge") and vector:
            raise InterventionError(f"{prop} takes a number, got {raw!r}")
        if prop in ("velocity", "position") and not vector and op != "*=":
            raise InterventionError(f"{prop} takes a vector '(x, y)' with = or +=, or a number with *=")
        value = tuple(float(v) for v in raw.strip("()").split(",")) if vector else float(raw)
    step = int(m["step"]) if m["step"] is not None else default_step
    return DoSpec(prop, index, op, value, step, text.strip())


def to_intervention(do_spec: DoSpec, spec: envs.EpisodeSpec, factual: envs.Rollout) -> envs.Intervention:
    """The `envs.Intervention` of ``do_spec`` on this episode; checks objects, step and property."""
    n, steps = spec.num_objects, len(factual.states)
    for i in do_spec.index:
        if i >= n:
            raise InterventionError(f"{do_spec.text!r} names object {i} but the episode has {n} objects (0..{n - 1})")
    if do_spec.step >= steps - 1:
        raise InterventionError(f"{do_spec.text!r}: step {do_spec.step} is past the episode's last step ({steps - 2})")
    s, (i, *rest) = do_spec.step, do_spec.index
    if do_spec.prop == "remove":
        return envs.do(s, remove=[i])
    if do_spec.prop == "cut_spring":
        j = rest[0]
        pairs = {tuple(sorted(p)) for p in np.asarray(spec.springs).tolist()}
        if tuple(sorted((i, j))) not in pairs:
            raise InterventionError(f"{do_spec.text!r}: there is no spring between objects {i} and {j}")
        return envs.do(s, cut_spring=[(i, j)])
    if do_spec.prop == "charge" and not np.any(np.asarray(spec.charge) != 0):
        raise InterventionError(f"{do_spec.text!r}: this scene's objects carry no charge")
    current = {
        "mass": float(spec.mass[i]),
        "charge": float(spec.charge[i]),
        "velocity": factual.states[s, i, 2:4].astype(float),
        "position": factual.states[s, i, 0:2].astype(float),
    }[do_spec.prop]
    v = np.asarray(do_spec.value, dtype=float)
    new = {"=": v, "*=": current * v, "+=": current + v}[do_spec.op]
    if do_spec.prop == "mass" and float(new) <= 0:
        raise InterventionError(f"{do_spec.text!r} gives a non-positive mass {float(new)}")
    value = float(new) if do_spec.prop in ("mass", "charge") else tuple(np.broadcast_to(new, 2).tolist())
    return envs.do(s, **{do_spec.prop: {i: value}})


# ------------------------------------------------------------------------------------------ simulator vs model


def _scene_of(model, scene_name: str | None, scene_config: dict | None):
    name = scene_name or getattr(model, "scene", None)
    if not name:
        raise InterventionError("the run does not record its scene; pass --scene")
    if name not in envs.SCENES:
        raise InterventionError(f"scene {name!r} is not a causal-wm scene; choose one of {', '.join(envs.SCENES)}")
    return envs.make_scene(name, **(scene_config or {}))


@torch.no_grad()
def _model_rollout(model, roll: envs.Rollout, step: int, horizon: int, present: np.ndarray, cut=()):
    """Encode the observation at ``step`` of ``roll`` and imagine ``horizon`` steps: (H+1, K, D) slots, masks, slot mask
    and the inferred graph (a model with ``graph_context`` reads it from the observations up to ``step``). ``cut``
    pairs (i, j) of a spring cut get gate 0 both ways at every imagined step, the model's side of the graph surgery
    (`WorldModel.imagine`)."""
    c = model.config
    ctx = model.context_steps
    if step < model.first_observation:
        raise InterventionError(
            f"this model needs frame {model.first_observation} or later (history and graph context)"
        )
    actions = torch.from_numpy(roll.actions[step : step + horizon]).long()[None]  # (1, H)
    states = torch.from_numpy(roll.states[step : step + horizon + 1])[None]  # (1, H+1, N, F)
    positions = states[..., :2] / model.arena_size
    if c.encoder == "state":
        n = roll.states.shape[1]
        obs = torch.zeros(1 + ctx, c.num_slots, c.num_features)
        obs[:, :n] = torch.from_numpy(roll.states[step - ctx : step + 1])
        mask = torch.zeros(1, c.num_slots, dtype=torch.bool)
        mask[0, :n] = torch.from_numpy(present)
        z_ctx = model.encode(obs, slot_mask=mask.expand(1 + ctx, -1)).slots[None]  # (1, 1 + ctx, K, D)
        pos = torch.zeros(1, actions.shape[1], c.num_slots, 2)
        pos[:, :, :n] = positions[:, :-1]
        masks = None
    else:
        mask = None
        frames = torch.from_numpy(roll.frames[step - ctx - c.history + 1 : step + 1])[None]  # (1, ctx + history, ...)
        z_ctx, masks = encode_window(model, {"frames": frames}, 1 + ctx)  # (1, 1 + ctx, K, D), (1, 1 + ctx, K, h, w)
        masks = masks[:, -1]  # the masks at ``step``
        pos = positions[:, :-1]
    gates = model.infer_graph(z_ctx, mask)
    out = model.imagine(z_ctx[:, -1], actions, pos, mask, edge_gates=gates, cut=cut)
    out["context"] = z_ctx  # the encoded observations up to ``step`` (1, 1 + ctx, K, D)
    return out, masks, mask, gates


def compare_effects(
    model,
    do_text: str,
    *,
    scene_name: str | None = None,
    scene_config: dict | None = None,
    episodes: int = 8,
    horizon: int = 10,
    seed: int = 0,
    steps: int | None = None,
) -> tuple[dict, tuple]:
    """Apply ``do_text`` in the simulator and in the model on ``episodes`` sampled episodes.

    Returns the report and ``(scene, do_spec, spec, factual)`` of the first episode (for the gcm comparison)."""
    from scipy.stats import pearsonr, spearmanr

    from causal_wm.probe import match_by_overlap

    scene = _scene_of(model, scene_name, scene_config)
    do_spec = parse_do(do_text, model.first_observation)
    steps = steps or do_spec.step + horizon + 1
    if do_spec.step + horizon >= steps:
        raise InterventionError(f"episodes of {steps} frames are too short for step {do_spec.step} + horizon {horizon}")
    images = model.config.uses_images
    readout = model.reads_positions  # a state decoder or keypoint slots read positions out of the slots
    rng = np.random.default_rng(seed)
    per_episode, sim_all, model_all, sign_hits, sign_total, first = [], [], [], 0, 0, None
    for _ in range(episodes):
        spec = scene.sample_spec(rng)
        actions = scene.sample_actions(rng, steps, spec.num_objects)
        factual = scene.rollout(spec, actions, render_frames=images)
        intervention = to_intervention(do_spec, spec, factual)
        treated = scene.rollout(spec, actions, interventions=[intervention], render_frames=images)
        first = first or (scene, do_spec, spec, factual)
        s, n = do_spec.step, spec.num_objects
        window = slice(s + 1, s + horizon + 1)
        disp = treated.states[window, :n, :2] - factual.states[window, :n, :2]  # (H, N, 2)
        alive = treated.present[s, :n]
        sim_effect = np.linalg.norm(disp, axis=-1).mean(0)  # (N,)
        cut = [tuple(do_spec.index)] if do_spec.prop == "cut_spring" else []
        f_out, f_masks, _, _ = _model_rollout(model, factual, s, horizon, factual.present[s, :n])
        t_out, _, _, _ = _model_rollout(model, treated, s, horizon, alive, cut=cut)
        zf, zt = f_out["z"][0, 1:], t_out["z"][0, 1:]  # (H, K, D)
        slot_effect = (zt - zf).norm(dim=-1).mean(0).numpy()  # (K,)
        if images:  # slots -> objects by mask overlap on the factual frame
            up = torch.nn.functional.interpolate(f_masks, size=factual.masks.shape[-2:], mode="bilinear")
            slot_of, _ = match_by_overlap(up.numpy(), factual.masks[s][None], n)
        else:
            slot_of = np.arange(n)
        latent_effect = np.where(slot_of >= 0, slot_effect[np.maximum(slot_of, 0)], np.nan)
        model_effect = latent_effect
        if readout:  # displacement against displacement, in the data's units
            pf, pt = model.positions(f_out["z"][0, 1:]), model.positions(t_out["z"][0, 1:])  # (H, K, 2)
            model_disp = (pt - pf)[:, np.maximum(slot_of, 0)].detach().numpy()  # (H, N, 2)
            model_disp[:, slot_of < 0] = np.nan
            model_effect = np.linalg.norm(model_disp, axis=-1).mean(0)  # (N,)
        others = np.array([i not in do_spec.index for i in range(n)]) & alive & np.isfinite(model_effect)
        if readout:
            big = np.abs(disp) > 0.05 * (np.abs(disp).max() + 1e-9)
            sel = big & others[None, :, None] & np.isfinite(model_disp)
            sign_hits += int((np.sign(model_disp[sel]) == np.sign(disp[sel])).sum())
            sign_total += int(sel.sum())
        sim_all.append(sim_effect[others])
        model_all.append(model_effect[others])
        per_episode.append(
            {
                "num_objects": int(n),
                "simulator_effect": sim_effect.round(5).tolist(),
                "model_effect": np.round(model_effect, 5).tolist(),
                "latent_effect": np.round(latent_effect, 5).tolist(),
                "intervened": list(do_spec.index),
                "true_graph": factual.adjacency[s, :n, :n].astype(int).tolist(),
            }
        )
    sim_v, mod_v = np.concatenate(sim_all), np.concatenate(model_all)
    enough = len(sim_v) >= 3 and np.ptp(sim_v) > 0 and np.ptp(mod_v) > 0
    report = {
        "do": do_spec.text,
        "property": do_spec.prop,
        "step": do_spec.step,
        "horizon": horizon,
        "episodes": episodes,
        "scene": scene.name,
        "pearson": float(pearsonr(sim_v, mod_v)[0]) if enough else None,
        "spearman": float(spearmanr(sim_v, mod_v)[0]) if enough else None,
        "sign_agreement": sign_hits / sign_total if sign_total else None,
        "model_effect_unit": "decoded position" if readout else "latent distance",
        "pairs": int(len(sim_v)),
        "per_episode": per_episode,
    }
    return report, first


# ------------------------------------------------------------------------------------------------- dowhy gcm


STATE_VARIABLES = ("x", "y", "vx", "vy")
"""Per-object state variables of the unrolled model, in the order of ``envs.STATE_FEATURES``' first four columns."""


def unrolled_samples(scene, spec, *, rollouts: int = 60, steps: int = 40, seed: int = 0, push_prob: float = 1.0):
    """A DataFrame of time-unrolled samples, the state ``x{i}, y{i}, vx{i}, vy{i}`` of every object at t and
    ``a{j}`` = vx_j(t+1) - vx_j(t), from ``rollouts`` runs of the same objects and springs with resampled positions and
    velocities. Each step pushes a random object in a random direction with probability ``push_prob`` (the scene's own
    actions): the kicks are the exogenous noise of the a's. The scenes are deterministic, and without them the errors
    of any fitted mechanism are functions of the shared state, so a_j and a_k stay dependent given every parent and
    even the true graph is rejected. Only steps in which no object touches another object or a wall are kept
    (pymunk's arbiters over every physics substep); ``df.attrs`` holds ``rows_simulated`` and ``rows_kept``."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    rows, simulated = [], 0
    for _ in range(rollouts):
        fresh = scene.sample_spec(rng, spec.num_objects)  # new velocities (and angles)
        extent = np.where(spec.shape == BOX, spec.size * np.sqrt(2), spec.size)
        episode = replace(spec, position=scene._place(rng, extent), velocity=fresh.velocity, angle=fresh.angle)
        push = rng.random(steps - 1) < push_prob
        actions = np.where(push, 1 + rng.integers(0, 4 * spec.num_objects, steps - 1), 0)
        roll = scene.rollout(episode, actions, render_frames=False)
        state = roll.states[:-1, :, :4]  # (T-1, N, 4) x, y, vx, vy
        a = np.diff(roll.states[:, :, 2], axis=0)  # (T-1, N)
        touching = roll.contacts[1:].any((1, 2)) | roll.wall_contacts[1:].any(1)  # (T-1,) during t -> t+1
        simulated += len(a)
        rows.append(np.concatenate([state.transpose(0, 2, 1).reshape(len(a), -1), a], 1)[~touching])
    n = spec.num_objects
    columns = [f"{v}{i}" for v in STATE_VARIABLES for i in range(n)] + [f"a{j}" for j in range(n)]
    data = pd.DataFrame(np.concatenate(rows), columns=columns)
    data.attrs.update(rows_simulated=simulated, rows_kept=len(data))
    return data


def state_variables(data) -> tuple[str, ...]:
    """The per-object state variables present in ``data`` (``x`` at least), in `STATE_VARIABLES` order."""
    found = tuple(v for v in STATE_VARIABLES if f"{v}0" in data.columns)
    if "x" not in found:
        raise InterventionError("unrolled data need the columns x0, x1, ... and a0, a1, ...")
    return found


def unrolled_graph(adjacency: np.ndarray, state: tuple[str, ...] = ("x",), *, joint_state: bool = False):
    """networkx DiGraph over the unrolled variables: object j's ``state`` variables -> a{j}, and object i's -> a{j}
    for every edge i -> j. ``joint_state``: also join the state variables by a complete DAG (in the order objects
    within variables), so that the graph implies no independence among them (for falsification)."""
    import networkx as nx

    n = len(adjacency)
    nodes = [f"{v}{i}" for v in state for i in range(n)]
    g = nx.DiGraph()
    g.add_nodes_from(nodes + [f"a{j}" for j in range(n)])
    if joint_state:
        g.add_edges_from((u, w) for k, u in enumerate(nodes) for w in nodes[k + 1 :])
    for j in range(n):
        for i in range(n):
            if i == j or adjacency[i, j]:
                g.add_edges_from((f"{v}{i}", f"a{j}") for v in state)
    return g


def fit_scm(graph, data, seed: int = 0):
    """A fitted gcm StructuralCausalModel with explicit mechanisms (empirical roots, linear additive noise)."""
    from dowhy import gcm

    gcm.config.disable_progress_bars()
    gcm.util.general.set_random_seed(seed)
    scm = gcm.StructuralCausalModel(graph)
    for node in graph.nodes:
        if graph.in_degree(node) == 0:
            scm.set_causal_mechanism(node, gcm.EmpiricalDistribution())
        else:
            scm.set_causal_mechanism(node, gcm.AdditiveNoiseModel(gcm.ml.create_linear_regressor()))
    gcm.fit(scm, data)
    return scm


def partial_correlation_test(x: np.ndarray, y: np.ndarray, z: np.ndarray | None = None) -> float:
    """p-value of a Fisher-z test of zero partial correlation between x and y given z (linear, Gaussian; fast, and
    the right test for the linear mechanisms fitted here)."""
    from scipy.stats import norm

    x, y = np.asarray(x, float).reshape(len(x), -1), np.asarray(y, float).reshape(len(y), -1)
    design = np.ones((len(x), 1))
    if z is not None and np.size(z):
        design = np.concatenate([design, np.asarray(z, float).reshape(len(x), -1)], 1)
    resid = lambda v: v - design @ np.linalg.lstsq(design, v, rcond=None)[0]  # noqa: E731
    rx, ry = resid(x[:, :1]), resid(y[:, :1])
    denom = np.sqrt((rx**2).sum() * (ry**2).sum())
    r = float((rx * ry).sum() / denom) if denom > 0 else 0.0
    r = min(max(r, -0.999999), 0.999999)
    dof = len(x) - design.shape[1] - 1
    if dof < 2:
        return 1.0
    stat = np.sqrt(dof) * np.arctanh(r)
    return float(2 * norm.sf(abs(stat)))


def graph_falsification(adjacency: np.ndarray, data, seed: int = 0, max_rows: int = 1000) -> dict:
    """gcm's `falsify_graph` of the time-unrolled graph of ``adjacency`` (state block joined, `unrolled_graph`)
    against ``data`` (at most ``max_rows`` rows), with linear partial-correlation tests and 20 permuted graphs:
    ``falsifiable`` (the data can tell this graph from random ones), ``falsified`` (the data reject it), the local
    Markov conditions it violates (``violations`` of ``tests``, at the 5% level) and the first lines of dowhy's
    summary.

    Local Markov conditions cannot reject an edge too many (a complete graph implies no independence to test), so
    gcm's causal-minimality check is run too: ``superfluous_edges`` lists the object edges i -> j of the graph for
    which every one of object i's state variables is independent of a_j given a_j's other parents (the data support
    removing the edge), out of ``edges_checked``."""
    from dowhy import gcm
    from dowhy.gcm.falsify import FalsifyConst, falsify_graph

    gcm.util.general.set_random_seed(seed)
    result = falsify_graph(
        unrolled_graph(adjacency, state_variables(data), joint_state=True),
        data.sample(n=min(len(data), max_rows), random_state=seed),
        independence_test=partial_correlation_test,
        conditional_independence_test=partial_correlation_test,
        n_permutations=20,
        show_progress_bar=False,
        n_jobs=1,
        suggestions=True,
    )
    out = {"falsifiable": bool(result.falsifiable), "falsified": bool(result.falsified)}
    lmc = result.summary[FalsifyConst.VALIDATE_LMC]
    out["violations"], out["tests"] = int(lmc[FalsifyConst.GIVEN_VIOLATIONS]), int(lmc[FalsifyConst.N_TESTS])
    removable: dict[tuple[int, int], list[bool]] = {}  # object edge i -> j: is each state variable's edge removable
    for (node, parent, _), (_, independent) in result.suggestions[FalsifyConst.VALIDATE_CM][
        FalsifyConst.P_VALUES
    ].items():
        sender, receiver = re.fullmatch(r"[a-z]+(\d+)", parent), re.fullmatch(r"a(\d+)", node)
        if receiver and sender and sender[1] != receiver[1]:
            removable.setdefault((int(sender[1]), int(receiver[1])), []).append(bool(independent))
    out["superfluous_edges"] = [f"{i}->{j}" for (i, j), flags in sorted(removable.items()) if all(flags)]
    out["edges_checked"] = len(removable)
    out["summary"] = str(result).strip().splitlines()[:12]
    return out


def gcm_compare(
    learned: np.ndarray, true: np.ndarray, data, source: int, *, delta: float = 5.0, seed: int = 0, falsify: bool = True
) -> dict:
    """Arrow strengths and ACEs of ``do(x_source := x_source + delta)`` on the learned and on the true graph; with
    ``falsify``, gcm's graph falsification of the learned graph (``falsification``) and, as a reference, of the true
    graph (``falsification_true``) against the same data."""
    import networkx as nx
    from dowhy import gcm

    n = len(true)
    state = state_variables(data)
    out: dict = {"delta": delta, "source": int(source), "rows": len(data)}
    for name, adj in (("learned", learned), ("true", true)):
        g = unrolled_graph(adj, state)
        scm = fit_scm(g, data, seed)
        strengths = {}
        for j in range(n):
            gcm.util.general.set_random_seed(seed)
            s = gcm.arrow_strength(scm, f"a{j}", num_samples_conditional=500, max_num_runs=200, n_jobs=1)
            own = {f"{v}{j}" for v in state}
            strengths.update({f"{u}->{v}": float(val) for (u, v), val in s.items() if u not in own})
        ace = {}
        for j in range(n):
            if j == source:
                continue
            if not nx.has_path(g, f"x{source}", f"a{j}"):
                ace[f"a{j}"] = 0.0  # the graph rules any effect out (dowhy refuses non-ancestors)
                continue
            gcm.util.general.set_random_seed(seed)
            ace[f"a{j}"] = float(
                gcm.average_causal_effect(
                    scm,
                    f"a{j}",
                    interventions_alternative={f"x{source}": lambda x: x + delta},
                    interventions_reference={f"x{source}": lambda x: x},
                    num_samples_to_draw=2000,
                )
            )
        out[name] = {"edges": int(adj.sum()), "arrow_strength": strengths, "ace": ace}
    a_l, a_t = out["learned"]["ace"], out["true"]["ace"]
    keys = sorted(a_t)
    lv, tv = np.array([a_l[k] for k in keys]), np.array([a_t[k] for k in keys])
    out["ace_abs_error"] = float(np.abs(lv - tv).mean()) if keys else None
    if falsify:
        out["falsification"] = graph_falsification(learned, data, seed)
        # The same test on the true graph: a reference that says whether the test can tell a right graph at all.
        out["falsification_true"] = graph_falsification(true, data, seed)
    return out


# ---------------------------------------------------------------------------------------------------- report


def learned_graph(
    model, roll: envs.Rollout, method: str, threshold: float, stride: int = 5, gain_search: int | None = None
) -> np.ndarray:
    """(N, N) bool graph the model holds on one rollout: ``method`` scores averaged over time, ``>= threshold``.

    ``prediction_gain`` is scored as `causal_wm.probe.extract` scores it, over the transitions of each probed step's
    graph context and the step after it (``gain_search``: its subset-search limit, default the probe's)."""
    from causal_wm.probe import GAIN_SEARCH, match_by_overlap, slot_scores, span_gain

    c = model.config
    n = roll.states.shape[1]
    total, masks, count = 0.0, [], 0
    for t in range(model.first_observation, len(roll.states) - 1, stride):
        out, enc_masks, mask, gates = _model_rollout(model, roll, t, 1, roll.present[t])
        z = out["z"][:, 0]
        actions = torch.from_numpy(roll.actions[t : t + 1]).long()[None]
        pos = None
        if c.action_node:
            pos = torch.zeros(1, 1, max(n, c.num_slots), 2)
            pos[0, 0, :n] = torch.from_numpy(roll.states[t, :, :2]) / model.arena_size
        if method == "prediction_gain":  # the observed next step, encoded as the probe encodes it
            ctx = model.context_steps
            after = _model_rollout(model, roll, t + 1, 0, roll.present[t + 1])[0]["context"][:, -1:]
            z_seq = torch.cat([out["context"], after], 1)  # (1, ctx + 2, K, D)
            span_actions = torch.from_numpy(roll.actions[t - ctx : t + 1]).long()[None]
            span_pos = None
            if c.action_node:
                span_pos = torch.zeros(1, ctx + 1, max(n, c.num_slots), 2)
                span_pos[0, :, :n] = torch.from_numpy(roll.states[t - ctx : t + 1, :, :2]) / model.arena_size
            search = GAIN_SEARCH if gain_search is None else gain_search
            score_t = span_gain(model, z_seq, span_actions, span_pos, mask, gates, search)[0].numpy()
        else:
            score_t = slot_scores(model, z, actions, pos, mask, (method,), edge_gates=gates)[method][0].numpy()
        total = total + score_t
        if enc_masks is not None:
            masks.append((t, enc_masks))
        count += 1
    score = total / max(count, 1)
    if c.uses_images:
        t0, m0 = masks[0]
        up = torch.nn.functional.interpolate(m0, size=roll.masks.shape[-2:], mode="bilinear").numpy()
        slot_of, _ = match_by_overlap(up, roll.masks[t0][None], n)
    else:
        slot_of = np.arange(n)
    graph = np.zeros((n, n), dtype=bool)
    ok = np.flatnonzero(slot_of >= 0)
    graph[np.ix_(ok, ok)] = score[np.ix_(slot_of[ok], slot_of[ok])] >= threshold
    np.fill_diagonal(graph, False)
    return graph


def _training_config(model) -> dict:
    """The generation config of the run's training file ({} when the file is gone)."""
    import json
    from pathlib import Path

    import h5py

    path = model.train_config.get("data", "")
    if not path or not Path(path).exists():
        return {}
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["config"])


def intervene_report(
    run,
    do_text: str,
    *,
    scene_name: str | None = None,
    episodes: int = 8,
    horizon: int = 10,
    seed: int = 0,
    gcm: bool = True,
    threads: int | None = None,
) -> dict:
    """The full ``causal-wm intervene`` report: simulator vs model effects, and the dowhy gcm comparison on the first
    episode (learned graph: the best method and threshold of RUN/probe.json when present, else gates >= 0.5).
    ``threads``: torch CPU threads (default: leave torch's setting)."""
    import json
    from pathlib import Path

    from causal_wm.train import load_run

    model = load_run(run)
    set_threads(threads)
    generation = _training_config(model)
    steps = int(generation.get("steps", 50))  # episodes as long as the training episodes
    config = generation.get("scene_config", {}) if scene_name in (None, getattr(model, "scene", None)) else {}
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    if getattr(model, "scene", None) is None and scene_name is None:
        raise InterventionError("the run does not record its scene; pass --scene")
    if scene_name is None and model.scene not in envs.SCENES:
        raise InterventionError(
            f"the run was trained on {model.scene!r}, which is not a causal-wm scene; pass --scene to simulate one"
        )
    report = {"run": str(run)}
    report["effects"], (scene, do_spec, spec, factual) = compare_effects(
        model,
        do_text,
        scene_name=scene_name,
        scene_config=config,
        episodes=episodes,
        horizon=horizon,
        seed=seed,
        steps=steps,
    )
    if gcm:
        probe_json = Path(run) / "probe.json"
        method, threshold, source = "gates", 0.5, "gates >= 0.5 (no probe.json)"
        gain_search = None
        if probe_json.exists():
            source = "gates >= 0.5 (probe.json has no threshold for its best method)"
            saved = json.loads(probe_json.read_text())
            best = saved["best_method"]
            thr = saved["methods"][best]["adjacency"].get("threshold")
            if thr is not None:
                method, threshold, source = best, thr, f"{best} >= {thr:.4g} (from probe.json)"
            gain_search = saved.get("config", {}).get("gain_search")
        learned = learned_graph(model, factual, method, threshold, gain_search=gain_search)
        true = factual.adjacency[0].astype(bool)
        data = unrolled_samples(scene, spec, seed=seed)
        report["gcm"] = gcm_compare(learned, true, data, source=do_spec.index[0], seed=seed)
        report["gcm"]["learned_graph_from"] = source
        report["gcm"]["learned_graph"] = learned.astype(int).tolist()
        report["gcm"]["true_graph"] = true.astype(int).tolist()
    return report
