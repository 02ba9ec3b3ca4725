"""C-SWM evaluation: Hits@1 and MRR of multi-step latent predictions, FG-ARI of slot masks, a linear position probe.

Protocol (Kipf et al. 2020): for every evaluation episode, encode the first full observation, imagine ``h`` steps
with the episode's actions, and rank the prediction against the encodings of the true observation ``h`` steps
later of *all* evaluation episodes (squared Euclidean energy; under the best slot matching for Slot Attention,
whose slot order is arbitrary). Ranks are accumulated per sample.

For models that can read positions out of slots (a state decoder, keypoint slots) it also reports where the imagined
objects are: the mean position error of the rollout at every horizon, beside the error of predicting no motion.
Where the file has ``contacts``, Hits@1 is also split by how many object-object contacts begin during the rollout,
which shows whether the misses are the rollouts through collisions.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from causal_wm import metrics
from causal_wm.config import write_json
from causal_wm.data import contact_onsets as data_contact_onsets
from causal_wm.train import EpisodeArrays, TrainError, encode_window, load_run, set_threads, slot_mask_for

HORIZONS = (1, 5, 10)
CONTACT_BINS = 6
"""Hits@1 by contact onsets: one group per count 0 .. CONTACT_BINS - 1, then one for CONTACT_BINS or more."""


def contact_onsets(contacts: np.ndarray, t0: int, horizons) -> dict[int, np.ndarray]:
    """Per horizon h, the number of object pairs i < j of every episode that begin touching between observation
    ``t0`` and ``t0 + h`` (E,), from ``contacts`` (E, T, N, N) (nonzero: touching between t-1 and t; an array or an
    h5py dataset, of which only frames t0 .. t0 + max(horizons) are read), counted as `causal_wm.data.contact_onsets`
    counts collisions."""
    cumulative = data_contact_onsets(contacts[:, t0 : t0 + max(horizons) + 1]).cumsum(1)  # (E, h)
    return {h: cumulative[:, h - 1] for h in horizons}


def hits_by_contacts(ranks: np.ndarray, onsets: np.ndarray) -> list[dict]:
    """Hits@1 of the episodes grouped by their contact ``onsets`` (E,): one row per non-empty group, with its
    ``onsets`` label ("0", "1", ..., "6+"), ``episodes`` and ``hits_at_1``."""
    ranks = np.asarray(ranks)
    group = np.minimum(onsets, CONTACT_BINS)
    rows = []
    for g in np.unique(group):
        sel = group == g
        label = f"{CONTACT_BINS}+" if g == CONTACT_BINS else str(int(g))
        rows.append({"onsets": label, "episodes": int(sel.sum()), "hits_at_1": metrics.hits_at_k(ranks[sel], 1)})
    return rows


@torch.no_grad()
def _encode_all(model, data: EpisodeArrays, t_obs: int, batch: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Slots (E, K, D) of the observation at time ``t_obs`` of every episode, and the encoder masks."""
    c = model.config
    history = c.history if c.uses_images else 1
    slots, masks = [], []
    for a in range(0, data.num_episodes, batch):
        e = np.arange(a, min(a + batch, data.num_episodes))
        w = data.window(e, np.full(len(e), t_obs - history + 1), 1, history)
        mask = slot_mask_for(w["num_objects"], c.num_slots, c.encoder)
        if c.uses_images:
            out = model.encode(w["frames"])
        else:
            out = model.encode(w["states"][:, 0], slot_mask=mask)
        slots.append(out.slots)
        if out.masks is not None:
            masks.append(out.masks)
    return torch.cat(slots), (torch.cat(masks) if masks else None)


@torch.no_grad()
def infer_graphs(model, data: EpisodeArrays, batch: int = 256) -> torch.Tensor | None:
    """(E, K, K) the graph a model with ``graph_context`` infers from the first W observations of each episode (the
    context of rollouts that start at observation W - 1); None for other models."""
    if not model.context_steps:
        return None
    c = model.config
    history = c.history if c.uses_images else 1
    out = []
    for a in range(0, data.num_episodes, batch):
        e = np.arange(a, min(a + batch, data.num_episodes))
        w = data.window(e, np.zeros(len(e), dtype=np.int64), c.graph_context, history)
        z, _ = encode_window(model, w, c.graph_context)  # (B, W, K, D)
        out.append(model.infer_graph(z, slot_mask_for(w["num_objects"], c.num_slots, c.encoder)))
    return torch.cat(out)


@torch.no_grad()
def decoder_fg_ari(model, slots: torch.Tensor, object_ids: np.ndarray, batch: int = 32) -> float:
    """FG-ARI of the decoder's masks of ``slots`` (E, K, D) against the simulator's ``object_ids`` (E, H, W).

    Slot Attention (Locatello et al. 2020) and SAVi score the decoder's alpha masks at full resolution, not the
    attention masks, which live on the coarser feature grid; `evaluate` reports both (``fg_ari`` is the encoder's
    masks). Decoded in chunks of ``batch`` samples: K full-resolution maps per sample are large."""
    if model.decoder is None or not model.config.uses_images:
        raise ValueError("decoder FG-ARI needs an image model with a frame decoder")
    if len(slots) != len(object_ids):
        raise ValueError(f"{len(slots)} slot sets but {len(object_ids)} mask frames")
    per = []
    for a in range(0, len(slots), batch):
        masks = model.decode(slots[a : a + batch]).masks  # (b, K, H, W)
        if masks.shape[-2:] != object_ids.shape[-2:]:
            masks = F.interpolate(masks, size=object_ids.shape[-2:], mode="bilinear", align_corners=False)
        true = torch.from_numpy(np.asarray(object_ids[a : a + batch])).long()
        per.append(metrics.fg_ari(true, masks, per_sample=True))
    per = np.concatenate(per)
    return float(np.nanmean(per)) if np.isfinite(per).any() else float("nan")


def _slots_of_objects(slot_masks: torch.Tensor, object_ids: np.ndarray, counts) -> list[np.ndarray]:
    """Per episode, the slot of each of its objects (-1 for none), matched by the overlap of the encoder's slot masks
    ``slot_masks`` (B, K, h, w), upsampled, with the simulator's ``object_ids`` (B, H, W) of one frame."""
    from causal_wm.probe import match_by_overlap

    up = F.interpolate(slot_masks.float(), size=object_ids.shape[-2:], mode="bilinear").numpy()  # (B, K, H, W)
    return [match_by_overlap(up[b : b + 1], object_ids[b : b + 1], int(n))[0] for b, n in enumerate(counts)]


@torch.no_grad()
def _matched_probe(z0: torch.Tensor, enc_masks: torch.Tensor, data: EpisodeArrays, t0: int, half: int, px: float):
    """Slot -> own object position: each object is matched to a slot by mask overlap in its episode, and one linear
    map (shared by all slots) reads the object's position out of its slot, fitted on the first half of the episodes.
    The all-slots probe above cannot read a slot that holds a different object index in every episode (a cnn whose
    maps follow colours); this one can. Objects left without a slot are left out."""
    rows = {"x": [], "y": [], "train": []}
    for e, slot_of in enumerate(_slots_of_objects(enc_masks, data.masks[:, t0], data.num_objects)):
        n = len(slot_of)
        ok = slot_of >= 0
        rows["x"].append(z0[e, slot_of[ok]].numpy())
        rows["y"].append(data.states[e, t0, :n, :2][ok])
        rows["train"].append(np.full(int(ok.sum()), e < half))
    x, y, train = (np.concatenate(rows[k]) for k in ("x", "y", "train"))
    if train.sum() < 2 or (~train).sum() < 1:
        return {}
    probe = metrics.linear_probe(x[train], y[train], x[~train], y[~train])
    return {"probe_matched_error_px": probe["error"] * px, "probe_matched_r2": probe["r2"]}


def evaluate(
    run: str | os.PathLike,
    data_path: str,
    *,
    horizons=HORIZONS,
    batch: int = 256,
    threads: int | None = None,
    slot_iters: int | None = None,
) -> dict:
    """Evaluate the run on ``data_path``; returns the eval.json content. ``threads``: torch CPU threads (default:
    leave torch's setting, one per core unless the caller changed it). ``slot_iters``: Slot Attention rounds at test
    time (default: as trained), recorded in the result."""
    model = load_run(run)
    c = model.config
    if slot_iters is not None:
        try:
            model.set_slot_iters(slot_iters)
        except ValueError as err:
            raise TrainError(f"{run}: {err}") from None
    t_start = time.perf_counter()
    data = EpisodeArrays(data_path, images=c.uses_images)
    history = c.history if c.uses_images else 1
    ctx = model.context_steps
    t0 = model.first_observation  # the first full observation (after the graph context, for models with one)
    horizon = max(horizons)
    if data.steps - 1 - t0 < horizon:
        raise TrainError(
            f"{data_path}: episodes of {data.steps} frames are shorter than the horizon {horizon} "
            f"(need {horizon + t0 + 1} frames)"
        )
    if c.encoder != "slots" and data.info.max_objects > c.num_slots:
        raise TrainError(f"{data_path} has up to {data.info.max_objects} objects but the model has {c.num_slots} slots")
    if c.encoder == "state" and data.info.num_features != c.num_features:
        raise TrainError(f"{data_path} has {data.info.num_features} state features, the model {c.num_features}")
    set_threads(threads)
    z0, enc_masks = _encode_all(model, data, t0, batch)  # (E, K, D)
    graphs = infer_graphs(model, data, batch)  # (E, K, K) or None
    targets = {h: _encode_all(model, data, t0 + h, batch)[0] for h in horizons}
    # Imagine all horizons in one rollout per batch.
    preds = {h: [] for h in horizons}
    e_all = np.arange(data.num_episodes)
    for a in range(0, data.num_episodes, batch):
        e = e_all[a : a + batch]
        w = data.window(e, np.full(len(e), ctx), horizon + 1, history)
        mask = slot_mask_for(w["num_objects"], c.num_slots, c.encoder)
        positions = w["states"][..., :2] / model.arena_size
        gates = None if graphs is None else graphs[a : a + batch]
        roll = model.imagine(z0[a : a + batch], w["actions"], positions, mask, decode=False, edge_gates=gates)["z"]
        for h in horizons:
            preds[h].append(roll[:, h])
    result = {"hits_at_1": {}, "mrr": {}, "episodes": int(data.num_episodes), "data": str(data_path)}
    if c.encoder == "slots":
        result["slot_iters"] = {"trained": c.slot_iters, "evaluated": slot_iters or c.slot_iters}
    with h5py.File(data_path, "r") as f:
        onsets = contact_onsets(f["contacts"], t0, horizons) if "contacts" in f else None
    if onsets is not None:
        result["hits_at_1_by_contact_onsets"] = {}
    for h in horizons:
        pred = torch.cat(preds[h])
        if c.encoder == "slots":
            ranks = metrics.ranks(pred, targets[h], distance=metrics.matched_distances(pred, targets[h]))
        else:
            ranks = metrics.ranks(pred, targets[h])
        result["hits_at_1"][str(h)] = metrics.hits_at_k(ranks, 1)
        result["mrr"][str(h)] = metrics.mrr(ranks)
        if onsets is not None:
            result["hits_at_1_by_contact_onsets"][str(h)] = hits_by_contacts(ranks, onsets[h])
    if enc_masks is not None and data.masks is not None:
        true = torch.from_numpy(data.masks[:, t0]).long()  # (E, H, W)
        up = F.interpolate(enc_masks, size=true.shape[-2:], mode="nearest")  # (E, K, H, W)
        result["fg_ari"] = metrics.fg_ari(true, up)
    if model.decoder is not None and c.uses_images and data.masks is not None:
        result["fg_ari_decoder"] = decoder_fg_ari(model, z0, data.masks[:, t0])
    # Linear probe: all slots -> all object positions, fitted on the first half of the episodes.
    px = data.info.image_size / data.arena if data.info.image_size else 1.0  # pixels per arena unit
    half = data.num_episodes // 2
    if half >= 2:
        x = z0.flatten(1).numpy()
        y = data.states[:, t0, :, :2].reshape(data.num_episodes, -1)
        probe = metrics.linear_probe(x[:half], y[:half], x[half:], y[half:])
        result["probe_position_error"] = probe["error"]
        result["probe_position_error_px"] = probe["error"] * px
        result["probe_r2"] = probe["r2"]
        if enc_masks is not None and data.masks is not None:
            result.update(_matched_probe(z0, enc_masks, data, t0, half, px))
    if model.reads_positions and (not c.keypoints or (enc_masks is not None and data.masks is not None)):
        result.update(_rollout_position_errors(model, preds, data, t0, enc_masks, px, z0))
    result["scene_stats"] = data.info.stats
    if graphs is not None:
        result["graph_context"] = c.graph_context
    examples = _examples(model, data, z0, targets, horizon, history, graphs)
    result["_examples"] = examples
    result["seconds"] = time.perf_counter() - t_start
    return result


@torch.no_grad()
def _rollout_position_errors(
    model, preds: dict, data: EpisodeArrays, t0: int, enc_masks, px: float, z0: torch.Tensor | None = None
) -> dict:
    """Where the imagined objects are, against where the simulator puts them: per horizon, the mean over episodes of
    the mean Euclidean error over each episode's objects (arena units and pixels), read out of the imagined slots by
    the model's own readout (the state decoder's positions, or keypoint centroids; keypoint slots are matched to
    objects by mask overlap at the rollout's start, and objects without a slot are left out). Beside it, the error
    of predicting no motion (the start positions), a scale for how far the objects moved. With the encoded start
    ``z0``, ``readout_position_error`` is the same error of the readout before any step: the floor that the
    encoder and readout set for every horizon.

    Hits@1 only asks that the prediction be nearer its own target than any other episode's; per-episode static
    features can meet that while the imagined objects are far from the true ones, which this error shows."""
    n_max = int(data.num_objects.max())
    real = np.arange(n_max)[None, :] < data.num_objects[:, None]  # (E, N)
    if model.config.keypoints:
        slot_of = np.full(real.shape, -1)
        for e, slots in enumerate(_slots_of_objects(enc_masks, data.masks[:, t0], data.num_objects)):
            slot_of[e, : len(slots)] = slots
    else:
        slot_of = np.broadcast_to(np.arange(n_max), real.shape)  # fixed order: slot k holds object k
    ok = real & (slot_of >= 0)
    rows = np.arange(len(ok))[:, None]
    start = data.states[:, t0, :n_max, :2]

    def mean_error(pos: np.ndarray, true: np.ndarray) -> float:
        err = np.where(ok, np.linalg.norm(pos - true, axis=-1), 0.0)  # (E, N)
        per_episode = err.sum(1) / np.maximum(ok.sum(1), 1)
        return float(per_episode[ok.any(1)].mean())

    out = {"rollout_position_error": {}, "rollout_position_error_px": {}, "rollout_position_error_static": {}}
    if z0 is not None:
        out["readout_position_error"] = mean_error(model.positions(z0).numpy()[rows, np.maximum(slot_of, 0)], start)
    for h, chunks in preds.items():
        pos = model.positions(torch.cat(chunks)).numpy()[rows, np.maximum(slot_of, 0)]  # (E, N, 2) in object order
        true = data.states[:, t0 + h, :n_max, :2]
        out["rollout_position_error"][str(h)] = mean_error(pos, true)
        out["rollout_position_error_px"][str(h)] = out["rollout_position_error"][str(h)] * px
        out["rollout_position_error_static"][str(h)] = mean_error(start, true)
    return out


@torch.no_grad()
def _examples(
    model, data: EpisodeArrays, z0, targets: dict, horizon: int, history: int, graphs=None, count: int = 4
) -> dict:
    """Arrays for the rollout and slot-mask figures, from the first ``count`` episodes.

    Imagined latents are projected to object positions by a ridge map from all slots to all positions, fitted on the
    encoded true latents of every evaluation episode at the evaluated horizons (with a state decoder, decoded; with
    keypoint slots, each object's own slot's keypoint)."""
    c = model.config
    e = np.arange(min(count, data.num_episodes))
    t0 = model.first_observation
    w = data.window(e, np.full(len(e), model.context_steps), horizon + 1, history)
    mask = slot_mask_for(w["num_objects"], c.num_slots, c.encoder)
    positions = w["states"][..., :2] / model.arena_size
    gates = None if graphs is None else graphs[e]
    roll = model.imagine(z0[e], w["actions"], positions, mask, decode=True, edge_gates=gates)
    out = {"true_positions": data.states[e, t0 : t0 + horizon + 1, :, :2], "num_objects": data.num_objects[e]}
    if "states" in roll:
        out["pred_positions"] = roll["states"][..., :2].numpy()
    else:
        x = torch.cat([z0] + [targets[h] for h in sorted(targets)]).flatten(1).double()  # (E * (1 + |H|), K*D)
        y = np.concatenate([data.states[:, t0 + h, :, :2] for h in [0, *sorted(targets)]]).reshape(len(x), -1)
        mean_x, mean_y = x.mean(0), torch.from_numpy(y).double().mean(0)
        xc, yc = x - mean_x, torch.from_numpy(y).double() - mean_y
        weights = torch.linalg.solve(xc.T @ xc + 1e-3 * len(x) * torch.eye(x.shape[1], dtype=x.dtype), xc.T @ yc)
        flat = roll["z"].flatten(2).double()  # (B, H+1, K*D)
        out["pred_positions"] = ((flat - mean_x) @ weights + mean_y).reshape(*flat.shape[:2], -1, 2).float().numpy()
    if "frames" in roll:
        out["decoded_frames"] = (roll["frames"].clamp(0, 1) * 255).byte().permute(0, 1, 3, 4, 2).numpy()
    if data.obs is not None:
        out["frames"] = data.obs[e, t0 : t0 + horizon + 1]
        frames = torch.from_numpy(data.obs[e, : t0 + horizon + 1])  # encoder masks along the episode
        masks, prev = [], None
        for t in range(t0, t0 + horizon + 1):
            # Slot Attention is chained SAVi-style (the slots of t initialise t+1); prev stays None for the CNN
            enc = model.encode(frames[:, t - history + 1 : t + 1], init_slots=prev)
            prev = enc.slots if model.tracks_slots else None
            masks.append(enc.masks)
        out["slot_masks"] = torch.stack(masks, 1).half().numpy()  # (B, H+1, K, h, w)
        if data.masks is not None:
            out["true_masks"] = data.masks[e, t0 : t0 + horizon + 1]
            if model.config.keypoints:  # each object's own slot's keypoint, matched by mask overlap at the start
                out["pred_positions"] = _keypoint_tracks(
                    model, roll["z"], masks[0], data.masks[e, t0], data.num_objects[e]
                )
    return out


def _keypoint_tracks(model, z: torch.Tensor, slot_masks: torch.Tensor, object_ids: np.ndarray, counts) -> np.ndarray:
    """(B, H+1, N, 2) positions of keypoint slots ``z`` (B, H+1, K, D) in object order: object n gets the keypoint of
    the slot whose map overlaps it most in ``slot_masks`` (B, K, h, w); NaN for an object without a slot."""
    pos = model.positions(z).detach().numpy()  # (B, H+1, K, 2)
    out = np.full((pos.shape[0], pos.shape[1], int(max(counts)), 2), np.nan, dtype=np.float32)
    for b, slot_of in enumerate(_slots_of_objects(slot_masks, object_ids, counts)):
        for obj, slot in enumerate(slot_of):
            if slot >= 0:
                out[b, :, obj] = pos[b, :, slot]
    return out


def write_eval(run: str | os.PathLike, result: dict, name: str = "eval.json") -> Path:
    """Write eval.json (and examples.npz, the arrays behind the rollout and slot-mask figures) atomically."""
    examples = result.pop("_examples", None)
    if examples is not None:
        tmp_npz = Path(run) / ".examples.tmp.npz"
        np.savez_compressed(tmp_npz, **examples)
        os.replace(tmp_npz, Path(run) / "examples.npz")
    return write_json(Path(run) / name, result)
