"""The ``causal-wm`` command line: one subcommand per user task.

Every subcommand exits 0 on success and non-zero with a one-line reason on bad input.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
from pathlib import Path

from causal_wm.runtime import PRECISIONS

EXIT_BAD_INPUT = 2


class CLIError(Exception):
    """A user error reported as one line."""


def _scene_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.replace("-", "_"), value


def _add_generate(sub) -> None:
    from envs import SCENES

    p = sub.add_parser(
        "generate",
        help="simulate a scene and write an HDF5 dataset",
        description="Simulate episodes of a pymunk scene and write them (frames, masks, states, actions and the "
        "ground-truth graphs) to HDF5. Example: causal-wm generate --scene springs --episodes 1000 --steps 50 "
        "--num-objects 3-5 --image-size 64 --seed 0 --out data/train.h5",
    )
    p.add_argument("--scene", default="springs", choices=sorted(SCENES), help="scene family (default springs)")
    p.add_argument("--episodes", type=int, default=1000, help="number of episodes (default 1000)")
    p.add_argument("--steps", type=int, default=50, help="frames per episode (default 50)")
    p.add_argument("--num-objects", default="3-5", help="objects per episode: N or MIN-MAX (default 3-5)")
    p.add_argument("--image-size", type=int, default=64, help="frame side in pixels (default 64)")
    p.add_argument("--seed", type=int, default=0, help="master seed (default 0)")
    p.add_argument("--out", required=True, type=Path, help="output HDF5 file")
    p.add_argument("--no-images", action="store_true", help="write a state-only file (no obs/masks)")
    p.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="parallel worker processes; the output is identical for any count (default: all cores)",
    )
    p.add_argument(
        "--influence-steps",
        type=int,
        default=10,
        help="frames after each counterfactual perturbation for `influence`; 0 skips it (default 10)",
    )
    p.add_argument("--shard-size", type=int, default=64, help="episodes per shard (default 64)")
    p.add_argument(
        "--set",
        dest="scene_options",
        action="append",
        type=_scene_option,
        default=[],
        metavar="KEY=VALUE",
        help="scene config field, e.g. --set random_graph=true (repeatable)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out (only once complete)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_generate)


def cmd_generate(args) -> int:
    from causal_wm.config import GenerateConfig
    from causal_wm.data import format_summary, open_dataset
    from causal_wm.generate import generate

    cfg = GenerateConfig(
        scene=args.scene,
        episodes=args.episodes,
        steps=args.steps,
        num_objects=str(args.num_objects),
        image_size=args.image_size,
        seed=args.seed,
        images=not args.no_images,
        influence_steps=args.influence_steps,
        shard_size=args.shard_size,
        scene_options=dict(args.scene_options),
    )
    result = generate(cfg, args.out, workers=args.workers, overwrite=args.overwrite, progress=not args.quiet)
    if not args.quiet:
        with open_dataset(args.out) as ds:
            print(format_summary(ds.summary()))
        print(
            f"wrote {args.out} in {result['seconds']:.1f} s ({result['frames_per_second']:,.0f} frames/s, "
            f"{args.workers} worker(s))"
        )
    return 0


def _add_train(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train a world model on a dataset",
        description="Train an object-centric world model (encoder + gated transition GNN) with the C-SWM contrastive "
        "loss over multi-step rollouts. Example: causal-wm train --data data/train.h5 --encoder cnn --out runs/cnn",
    )
    p.add_argument("--data", required=True, type=Path, help="training HDF5 dataset")
    p.add_argument("--encoder", default="cnn", choices=["cnn", "slots", "state"], help="slot encoder (default cnn)")
    p.add_argument("--out", type=Path, help="run directory (default runs/{scene}__{encoder}__{seed}__{time})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, help="optimisation steps (default from TrainConfig)")
    p.add_argument("--epochs", type=float, help="alternative to --steps: passes over all training windows")
    p.add_argument("--batch-size", type=int, help="windows per step")
    p.add_argument("--lr", type=float, help="Adam learning rate")
    p.add_argument("--lr-schedule", choices=["constant", "cosine"], help="learning-rate schedule")
    p.add_argument("--rollout-steps", type=int, help="H, steps of the multi-step loss")
    p.add_argument("--negatives", choices=["batch", "episode", "both"], help="where negative states come from")
    p.add_argument(
        "--sparsity",
        type=float,
        help="weight of the edge-gate sparsity penalty (with --graph-context: of the KL to the edge prior)",
    )
    p.add_argument("--edge-prior", type=float, help="prior edge probability of an inferred graph (default 0.3)")
    p.add_argument("--num-slots", type=int, help="slots K (default: the dataset's maximum object count)")
    p.add_argument("--slot-dim", type=int, help="slot dimension D")
    p.add_argument("--hidden", type=int, help="transition hidden width")
    p.add_argument("--decoder", action="store_true", help="add a spatial-broadcast decoder and reconstruction loss")
    p.add_argument(
        "--recon-weight",
        type=float,
        help="weight of the decoder's losses (reconstruction; for the state decoder also its dynamics loss)",
    )
    p.add_argument(
        "--recon-foreground",
        type=float,
        help="image decoder: weigh each pixel's reconstruction error by 1 + W * (its distance from the frame's median "
        "colour, capped at 1), so that small objects are not lost to the background (default 0: plain MSE)",
    )
    p.add_argument(
        "--pretrain-steps",
        type=int,
        help="with --decoder: the first N of the --steps optimise the reconstruction alone, so the encoder finds the "
        "objects before the dynamics pull on its slots (default 0)",
    )
    p.add_argument(
        "--freeze-encoder",
        action="store_true",
        help="with --pretrain-steps: hold the encoder fixed afterwards, so the dynamics train the transition (and the "
        "decoder) only",
    )
    p.add_argument(
        "--dynamics-beta",
        type=float,
        help="Huber beta of the state/keypoint decoder's dynamics loss, in robust units of a step's change (default "
        "1: collisions weigh linearly; e.g. 1e4: squared error, every velocity jump in full)",
    )
    p.add_argument(
        "--teacher-forcing",
        action="store_true",
        help="state decoder: score its dynamics loss on one-step predictions from every encoded true state instead "
        "of along the free rollout",
    )
    p.add_argument(
        "--slot-init",
        choices=["gaussian", "learned"],
        help="Slot Attention's initial slots: random draws from a learned Gaussian, tracked from frame to frame "
        "(default), or one learned query per slot, each frame encoded on its own",
    )
    p.add_argument("--slot-iters", type=_positive_int, help="Slot Attention rounds per frame (default 3)")
    p.add_argument(
        "--slot-resolution",
        type=_positive_int,
        help="side of Slot Attention's feature grid, image size / 2**n (default image size / 4)",
    )
    p.add_argument(
        "--slot-implicit",
        action="store_true",
        help="Slot Attention: backpropagate through the last round only (implicit differentiation, Chang et al. "
        "2022), so more --slot-iters cost no more backward work",
    )
    p.add_argument(
        "--contact-channel",
        action="store_true",
        help="state encoder with --decoder: add ungated messages between every pair of objects from their decoded "
        "relative position and velocity (meant for collisions; on springs it brings rollouts nearer but the gates "
        "lose the graph unless --contact-range limits it, see the README)",
    )
    p.add_argument(
        "--contact-range",
        type=float,
        help="with --contact-channel: objects farther apart than this (arena units) exchange no contact messages "
        "(default 0: every pair; 18 kept the graph on springs)",
    )
    p.add_argument(
        "--contact-lookahead",
        type=float,
        help="with --contact-range: apply the range to each pair's closest approach within this time at its present "
        "relative velocity (the velocities' time unit; one frame of the bundled scenes is 0.1) instead of its "
        "present distance (default 0)",
    )
    p.add_argument(
        "--contact-range-detach",
        action="store_true",
        default=None,
        help="with --contact-range: in training, no gradient through the range weight into the decoded states, so "
        "the loss cannot move the decoder's positions to switch pairs in or out of range",
    )
    p.add_argument(
        "--substeps",
        type=int,
        help="apply the transition this many times per frame, each to the slots the last one left (shared weights; "
        "costs that many times the transition's work; default 1)",
    )
    p.add_argument(
        "--graph-context",
        type=int,
        help="W >= 2: infer one interaction graph per rollout from the W observations before it (NRI-style edge "
        "encoder) instead of gating each edge from the current pair of slots (default 0, off)",
    )
    p.add_argument(
        "--graph-overlap",
        action="store_true",
        help="with --graph-context and a state decoder: infer each window's graph from all of its observations, the "
        "predicted steps included, and score the dynamics loss on one-step predictions over the whole window (NRI's "
        "setting) instead of inferring it from the W observations before the rollout",
    )
    p.add_argument(
        "--actions",
        choices=["object", "node", "both"],
        help="how actions reach the slots: C-SWM's object-factored input (slot k = object k), an action node with "
        "learned edges to the slots, or both (default: node for slots, object for cnn and state)",
    )
    p.add_argument(
        "--types",
        choices=["onehot", "number"],
        help="how the state encoder reads the categorical 'type' feature: one-hot over the training file's types "
        "(default) or as a number (how runs trained before this option read it)",
    )
    p.add_argument(
        "--keypoints",
        action="store_true",
        help="cnn: slots also carry each object map's centroid, velocity and presence, and the slot index; with "
        "--decoder a keypoint decoder (one colour per slot) and a dynamics loss on the keypoints",
    )
    p.add_argument(
        "--fixed-colours",
        action="store_true",
        help="--keypoints --decoder: keep the decoder's slot colours at the training frames' most frequent colours "
        "instead of learning them (learned colours can drift until two maps share one object)",
    )
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        help="fp32 (default), or bf16: each step's forward pass under bfloat16 autocast, with weights, losses, slots "
        "and rollouts in float32; 1.5-2x faster steps on a CPU with AVX512-BF16 (README: 'Training in "
        "bfloat16'), slower on CPUs without native bfloat16",
    )
    p.add_argument(
        "--device",
        default="cpu",
        help="cpu (default), cuda, cuda:N, or auto (cuda when available); checkpoints load on the CPU either way",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)


def cmd_train(args) -> int:
    from causal_wm.data import validate
    from causal_wm.errors import TrainError
    from causal_wm.train import TrainConfig, train

    fields = {
        "batch_size": args.batch_size,
        "lr": args.lr,
        "lr_schedule": args.lr_schedule,
        "rollout_steps": args.rollout_steps,
        "negatives": args.negatives,
        "sparsity": args.sparsity,
        "edge_prior": args.edge_prior,
        "recon_weight": args.recon_weight,
        "recon_foreground": args.recon_foreground,
        "pretrain_steps": args.pretrain_steps,
        "freeze_encoder": args.freeze_encoder or None,
        "dynamics_beta": args.dynamics_beta,
        "teacher_forcing": args.teacher_forcing or None,
        "graph_overlap": args.graph_overlap or None,
        "threads": args.threads,
        "precision": args.precision,
    }
    model = {
        "num_slots": args.num_slots,
        "slot_dim": args.slot_dim,
        "hidden": args.hidden,
        "graph_context": args.graph_context,
        "slot_init": args.slot_init,
        "slot_iters": args.slot_iters,
        "slot_resolution": args.slot_resolution,
        "slot_implicit": args.slot_implicit or None,
        "contact_range": args.contact_range,
        "contact_lookahead": args.contact_lookahead,
        "contact_range_detach": args.contact_range_detach,
        "substeps": args.substeps,
    }
    model = {k: v for k, v in model.items() if v is not None}
    if args.decoder:
        model["decoder"] = True
    if args.keypoints:
        model["keypoints"] = True
    if args.contact_channel:
        model["contact_channel"] = True
    if args.fixed_colours:
        model["learn_colours"] = False
    if args.types == "number":
        model["type_feature"] = -1
    if args.actions is not None:
        model["object_actions"] = args.actions in ("object", "both")
        model["action_node"] = args.actions in ("node", "both")
    info = validate(args.data)
    cfg = TrainConfig(
        data=str(args.data),
        encoder=args.encoder,
        seed=args.seed,
        model=model,
        **{k: v for k, v in fields.items() if v is not None and k != "pretrain_steps"},
    )
    if args.steps is not None and args.epochs is not None:
        raise CLIError("give --steps or --epochs, not both")
    if args.epochs is not None:
        windows = info.num_episodes * max(1, info.steps - cfg.rollout_steps - 1)
        cfg = dataclasses.replace(cfg, steps=max(1, round(args.epochs * windows / cfg.batch_size)))
    elif args.steps is not None:
        cfg = dataclasses.replace(cfg, steps=args.steps)
    if args.pretrain_steps is not None:  # checked against the final number of steps
        cfg = dataclasses.replace(cfg, pretrain_steps=args.pretrain_steps)
    out = args.out or Path("runs") / f"{info.scene}__{args.encoder}__{args.seed}__{time.strftime('%Y%m%d-%H%M%S')}"
    if args.resume and args.out is None:
        raise TrainError("--resume needs --out RUN_DIR")
    t0 = time.perf_counter()
    last = train(cfg, out, resume=args.resume, progress=not args.quiet, device=args.device)
    print(
        f"trained {cfg.steps} steps in {time.perf_counter() - t0:.0f} s; "
        f"final loss {last.get('loss', float('nan')):.4f}; run directory {out}"
    )
    return 0


def _add_threads(p) -> None:
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="torch CPU threads (default: torch's, one per core; the training's --threads does not carry over)",
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="Hits@1/MRR at 1, 5, 10 steps, FG-ARI and a position probe -> RUN/eval.json",
        description="Evaluate a trained run with the C-SWM protocol. "
        "Example: causal-wm evaluate runs/cnn --data data/test.h5",
    )
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--data", required=True, type=Path, help="evaluation HDF5 dataset")
    p.add_argument("--horizons", default="1,5,10", help="comma-separated prediction horizons (default 1,5,10)")
    p.add_argument(
        "--slot-iters",
        type=_positive_int,
        help="Slot Attention runs: attention rounds at test time (default: as trained; more rounds let the grouping "
        "settle, see the README)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing eval.json")
    _add_threads(p)
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args) -> int:
    from causal_wm.evaluate import evaluate, write_eval

    try:
        horizons = tuple(sorted({int(h) for h in args.horizons.split(",")}))
    except ValueError:
        raise CLIError(f"--horizons must be comma-separated integers, got {args.horizons!r}") from None
    if min(horizons) < 1:
        raise CLIError("--horizons must be positive")
    if (args.run / "eval.json").exists() and not args.overwrite:
        raise CLIError(f"{args.run / 'eval.json'} exists; pass --overwrite to replace it")
    result = evaluate(args.run, str(args.data), horizons=horizons, threads=args.threads, slot_iters=args.slot_iters)
    path = write_eval(args.run, result)
    for h in horizons:
        line = f"{h:>3} steps: Hits@1 {result['hits_at_1'][str(h)]:.4f}  MRR {result['mrr'][str(h)]:.4f}"
        if "rollout_position_error" in result:
            err, static = result["rollout_position_error"][str(h)], result["rollout_position_error_static"][str(h)]
            line += f"  position error {err:.2f} (no motion: {static:.2f}) arena units"
        print(line)
    if "readout_position_error" in result:
        err = result["readout_position_error"]
        print(f"  0 steps: position error {err:.2f} arena units (the readout of the encoded start)")
    by_contacts = result.get("hits_at_1_by_contact_onsets", {}).get(str(horizons[-1]))
    if by_contacts:
        groups = "  ".join(f"{r['onsets']}: {r['hits_at_1']:.3f} ({r['episodes']})" for r in by_contacts)
        print(f"{horizons[-1]:>3} steps, Hits@1 by contacts begun in the rollout (episodes): {groups}")
    for key in ("fg_ari", "fg_ari_decoder", "probe_position_error_px", "probe_matched_error_px"):
        if key in result:
            print(f"{key}: {result[key]:.4f}")
    print(f"wrote {path}")
    return 0


def _add_probe(sub) -> None:
    from causal_wm.config import PROBE_METHODS as METHODS
    from causal_wm.discovery import METHODS as BASELINES

    p = sub.add_parser(
        "probe",
        help="score the learned interaction graph against the simulator's -> RUN/probe.json",
        description="Read the interaction graph a trained run holds (edge gates, message norms, Jacobian sensitivity, "
        "latent interventions, the prediction gain of each edge on the observed next step), match slots to "
        "objects, and score it against the dataset's ground truth (AUROC, AP, SHD at a threshold chosen on "
        "training episodes). Writes RUN/probe.json and RUN/probe_scores.npz (raw "
        "per-episode scores and labels). Example: causal-wm probe runs/state --data data/test.h5",
    )
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--data", required=True, type=Path, help="evaluation HDF5 dataset (state-only files work)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument(
        "--baselines",
        default="regression,granger",
        help="classical discovery baselines on the ground-truth states, scored in the same table "
        f"(comma-separated subset of {','.join(BASELINES)}; 'none' for none; default regression,granger)",
    )
    p.add_argument("--matching", default="auto", choices=["auto", "identity", "masks", "trajectory"])
    p.add_argument("--time-stride", type=int, default=None, help="probe every n-th step (default 5)")
    p.add_argument("--horizon", type=int, default=None, help="imagined steps of the latent interventions (default 3)")
    p.add_argument(
        "--graph-from",
        default=None,
        choices=["window", "episode"],
        help="runs with --graph-context: infer each probed step's graph from the W observations up to it (window, "
        "the default, as in a rollout) or once from the whole episode (episode, as NRI's encoder reads it)",
    )
    p.add_argument(
        "--train-data", type=Path, help="episodes for choosing thresholds (default: the run's training file)"
    )
    p.add_argument(
        "--slot-iters",
        type=_positive_int,
        help="Slot Attention runs: attention rounds at probe time (default: as trained)",
    )
    p.add_argument(
        "--gain-search",
        type=int,
        help="prediction_gain: search every subset of a receiver's senders (2^K gate patterns) up to this many "
        "slots, above it toggle one edge at a time; 0: always toggle (default 6)",
    )
    p.add_argument("--episodes", type=int, help="probe only the first N episodes")
    p.add_argument("--overwrite", action="store_true", help="replace an existing probe.json / probe_scores.npz")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_threads(p)
    p.set_defaults(func=cmd_probe)


def cmd_probe(args) -> int:
    from causal_wm.discovery import METHODS as BASELINES
    from causal_wm.probe import ProbeConfig, probe, write_probe

    for name in ("probe.json", "probe_scores.npz"):
        if (args.run / name).exists() and not args.overwrite:
            raise CLIError(f"{args.run / name} exists; pass --overwrite to replace it")
    baselines = [] if args.baselines.strip() in ("", "none") else [b.strip() for b in args.baselines.split(",")]
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise CLIError(f"unknown baseline(s) {unknown}; choose from {', '.join(BASELINES)} or none")
    fields = {
        "time_stride": args.time_stride,
        "horizon": args.horizon,
        "matching": args.matching,
        "graph_from": args.graph_from,
        "slot_iters": args.slot_iters,
        "gain_search": args.gain_search,
    }
    cfg = ProbeConfig(
        methods=tuple(m.strip() for m in args.methods.split(",") if m.strip()),
        **{k: v for k, v in fields.items() if v is not None},
    )
    if args.episodes is not None and args.episodes < 1:
        raise CLIError("--episodes must be positive")
    result, arrays = probe(
        args.run,
        str(args.data),
        cfg,
        train_data=None if args.train_data is None else str(args.train_data),
        baselines=baselines,
        episodes=args.episodes,
        progress=not args.quiet,
        threads=args.threads,
    )
    paths = write_probe(args.run, result, arrays, overwrite=args.overwrite)
    print(format_probe(result))
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


def format_probe(result: dict) -> str:
    """The probe's table: one row per method and baseline."""

    def f(x):
        return "  -  " if x is None else f"{x:.3f}"

    lines = [f"  {'method':<22} {'AUROC':>6} {'AP':>6} {'SHD':>6} {'F1':>6}  (against adjacency)"]
    rows = [(m, v) for m, v in result["methods"].items()] + [
        (f"{b} (baseline)", v) for b, v in result.get("baselines", {}).items()
    ]
    for name, v in rows:
        a = v["adjacency"]
        lines.append(f"  {name:<22} {f(a['auroc']):>6} {f(a['ap']):>6} {f(a.get('shd')):>6} {f(a.get('f1')):>6}")
    m = result["matching"]
    lines.append(
        f"  best method: {result['best_method']} (chosen on {result.get('best_selected_on', 'test')} episodes); "
        f"slot matching {m['method']} (mean quality {m['mean_quality']:.2f}, "
        f"{m['dropped_objects']} of {m['objects']} objects dropped)"
    )
    if result.get("action_pushes"):
        reads = ", ".join(f"{r} {v:.3f}" for r, v in result["action_accuracy"].items())
        lines.append(f"  action node on the pushed object ({result['action_pushes']} pushes): {reads}")
    return "\n".join(lines)


def _add_intervene(sub) -> None:
    p = sub.add_parser(
        "intervene",
        help="a do() in the simulator and in the model: effects, agreement and dowhy gcm estimates (JSON)",
        description="Apply a do() to sampled episodes in the simulator and the matching intervention in the model "
        "(re-encode the intervened observation, then imagine), report per-object effects and their agreement, and "
        "compare dowhy gcm arrow strengths and average causal effects on the learned and the true graph. "
        "do() syntax: mass[0]*=2, velocity[1]=(10,0), velocity[1]+=(5,0), position[2]=(50,50), charge[0]*=-1, "
        "remove[2], cut_spring[0,1], each optionally followed by @STEP. "
        "Example: causal-wm intervene runs/state --do 'mass[0]*=2'",
    )
    p.add_argument("run", type=Path, help="run directory")
    p.add_argument("--do", required=True, dest="do_text", help="the intervention, e.g. 'mass[0]*=2'")
    p.add_argument("--scene", help="scene to simulate (default: the run's training scene, with its config)")
    p.add_argument("--episodes", type=int, default=8, help="episodes to intervene on (default 8)")
    p.add_argument("--horizon", type=int, default=10, help="steps over which effects are measured (default 10)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled episodes")
    p.add_argument("--no-gcm", action="store_true", help="skip the dowhy gcm comparison")
    p.add_argument("--out", type=Path, help="JSON output (default RUN/intervene.json)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    _add_threads(p)
    p.set_defaults(func=cmd_intervene)


def _falsified(result: dict | None) -> str:
    """gcm's falsification verdict with the share of local Markov conditions the graph violates and the edges the
    causal-minimality check would remove."""
    if not result:
        return "None"
    if not result.get("tests"):
        return str(result.get("falsified"))
    text = f"{result.get('falsified')} ({result['violations']}/{result['tests']} conditions violated"
    if "superfluous_edges" in result:
        text += f", {len(result['superfluous_edges'])}/{result['edges_checked']} edges superfluous"
    return text + ")"


def cmd_intervene(args) -> int:
    from causal_wm.config import write_json
    from causal_wm.interventions import intervene_report

    out = args.out or args.run / "intervene.json"
    if out.exists() and not args.overwrite:
        raise CLIError(f"{out} exists; pass --overwrite to replace it")
    if args.episodes < 1 or args.horizon < 1:
        raise CLIError("--episodes and --horizon must be positive")
    report = intervene_report(
        args.run,
        args.do_text,
        scene_name=args.scene,
        episodes=args.episodes,
        horizon=args.horizon,
        seed=args.seed,
        gcm=not args.no_gcm,
        threads=args.threads,
    )
    write_json(out, report)
    e = report["effects"]
    fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    print(
        f"do({e['do']}) on {e['episodes']} {e['scene']} episodes, {e['horizon']} steps: simulator vs model effect "
        f"Pearson {fmt(e['pearson'])}, Spearman {fmt(e['spearman'])}, sign agreement {fmt(e['sign_agreement'])}"
    )
    if "gcm" in report:
        g = report["gcm"]
        print(
            f"dowhy gcm (episode 0): ACE of do(x{g['source']} += {g['delta']}) learned vs true graph, mean abs "
            f"difference {fmt(g['ace_abs_error'])}; learned graph {g['learned']['edges']} edges, true "
            f"{g['true']['edges']}; falsified: learned {_falsified(g.get('falsification'))}, true "
            f"{_falsified(g.get('falsification_true'))}"
        )
    print(f"wrote {out}")
    return 0


def _add_figures(sub) -> None:
    p = sub.add_parser(
        "figures",
        help="regenerate the figures from saved results (never trains)",
        description="Draw ROC curves, the learned vs true graph and the intervention scatter from a probed run. "
        "Example: causal-wm figures --run quickstart/run --data quickstart/data/test.h5 --out paper_figures/out",
    )
    p.add_argument("--run", type=Path, default=Path("quickstart/run"), help="probed run (default quickstart/run)")
    p.add_argument("--data", type=Path, default=Path("quickstart/data/test.h5"), help="the dataset it was probed on")
    p.add_argument("--out", type=Path, default=Path("paper_figures/out"), help="output directory")
    p.add_argument("--object-counts", type=Path, help="summary.json of analysis/object_counts.py (optional)")
    p.set_defaults(func=cmd_figures)


def cmd_figures(args) -> int:
    from paper_figures.make_all import make_all

    if not (args.run / "probe_scores.npz").exists():
        raise CLIError(f"{args.run} has no probe_scores.npz; run `causal-wm probe {args.run} --data DATA` first")
    counts = None if args.object_counts is None else str(args.object_counts)
    made = make_all(str(args.run), str(args.data), str(args.out), counts)
    print("\n".join(map(str, made)))
    return 0


def _add_info(sub) -> None:
    p = sub.add_parser(
        "info",
        help="validate a dataset and print its summary",
        description="Validate an HDF5 dataset against the schema and print a summary. "
        "Example: causal-wm info data/train.h5",
    )
    p.add_argument("data", type=Path, help="HDF5 dataset")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=cmd_info)


def cmd_info(args) -> int:
    from causal_wm.data import format_summary, open_dataset

    with open_dataset(args.data) as ds:
        summary = ds.summary()
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0


def _add_quickstart(sub) -> None:
    p = sub.add_parser(
        "quickstart",
        help="the main job at small scale on CPU",
        description="Generate small springs datasets; train two world models, one from pixels (C-SWM's CNN, default "
        "settings) and one from states with the recipe that holds the graph (state decoder, dynamics loss, edge "
        "sparsity); evaluate, probe and intervene on both; draw the figures and write OUT/report.md (about 4 "
        "minutes on 2 cores). Example: causal-wm quickstart --out quickstart",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("quickstart"),
        help="directory for the quickstart's own outputs (default ./quickstart); its files are replaced on each run",
    )
    p.add_argument("--episodes", type=int, default=300, help="training episodes (default 300)")
    p.add_argument("--steps", type=int, default=500, help="training steps of the pixel model (default 500)")
    p.add_argument(
        "--encoder", default="cnn", choices=["cnn", "slots", "state"], help="the first model's encoder (default cnn)"
    )
    p.add_argument(
        "--graph-steps",
        type=int,
        default=2500,
        help="training steps of the second model, the state recipe that holds the graph (default 2500; 0 leaves it "
        "out)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="torch CPU threads of every stage and the generator's worker processes (default: one per core, and "
        "2 for training); set it below the core count when other jobs share the machine",
    )
    p.set_defaults(func=cmd_quickstart)


QUICKSTART_DO = "remove[0]"
"""The quickstart's intervention, in the simulator and in each model."""


def quickstart_models(args, train_h5: Path) -> list[tuple[str, str, object]]:
    """The quickstart's world models as (run directory name, description, TrainConfig): the first from
    ``--encoder`` with default settings, then (unless ``--graph-steps 0``) the state recipe that holds the graph."""
    from causal_wm.train import TrainConfig

    threads = args.threads or TrainConfig.threads
    common = dict(data=str(train_h5), seed=args.seed, threads=threads)
    models = [
        (
            "run",
            f"{args.encoder} encoder, default settings, {args.steps} steps",
            TrainConfig(encoder=args.encoder, steps=args.steps, **common),
        )
    ]
    if args.graph_steps:
        recipe = dict(sparsity=0.05, negatives="both", recon_weight=10.0, model={"decoder": True})
        models.append(
            (
                "run_state",
                f"state encoder, state decoder and dynamics loss (the recipe that holds the graph), "
                f"{args.graph_steps} steps",
                TrainConfig(encoder="state", steps=args.graph_steps, **recipe, **common),
            )
        )
    return models


def cmd_quickstart(args) -> int:
    import shutil

    from causal_wm.config import GenerateConfig
    from causal_wm.data import format_summary, open_dataset
    from causal_wm.generate import generate

    if args.episodes < 4 or args.steps < 1 or args.graph_steps < 0:
        raise CLIError("--episodes must be at least 4, --steps positive and --graph-steps at least 0")
    t0 = time.perf_counter()
    workers = args.threads or os.cpu_count() or 1
    train_h5, test_h5 = args.out / "data" / "train.h5", args.out / "data" / "test.h5"
    common = dict(scene="springs", steps=30, num_objects="3-5")
    n_test = max(4, args.episodes // 3)
    print(f"[1/6] generating {args.episodes} + {n_test} springs episodes -> {args.out}/data")
    generate(
        GenerateConfig(episodes=args.episodes, seed=args.seed, **common),
        train_h5,
        workers=workers,
        overwrite=True,
        progress=False,
    )
    generate(
        GenerateConfig(episodes=n_test, seed=args.seed + 10_000, **common),
        test_h5,
        workers=workers,
        overwrite=True,
        progress=False,
    )
    with open_dataset(train_h5) as ds:
        print(format_summary(ds.summary()))

    from causal_wm.config import write_json, write_text
    from causal_wm.evaluate import evaluate, write_eval
    from causal_wm.interventions import intervene_report
    from causal_wm.probe import ProbeConfig, probe, write_probe
    from causal_wm.train import train

    models = quickstart_models(args, train_h5)
    runs = [args.out / name for name, _, _ in models]
    for stale in ("run", "run_state", "figures"):  # a rerun leaves no other configuration's results beside its own
        shutil.rmtree(args.out / stale, ignore_errors=True)
    for run, (_, what, cfg) in zip(runs, models, strict=True):
        print(f"[2/6] training the world model ({what}) -> {run}")
        train(cfg, run, progress=True)
    results = []
    for run, (_, what, _) in zip(runs, models, strict=True):
        print(f"[3/6] evaluating {run} on held-out episodes -> {run}/eval.json")
        result = evaluate(run, str(test_h5), threads=args.threads)
        write_eval(run, result)
        print(f"[4/6] probing the learned interaction graph -> {run}/probe.json")
        probed, arrays = probe(
            run, str(test_h5), ProbeConfig(), baselines=["regression", "granger"], threads=args.threads
        )
        write_probe(run, probed, arrays, overwrite=True)
        print(f"[5/6] intervening: do({QUICKSTART_DO}) in the simulator and in the model -> {run}/intervene.json")
        report = intervene_report(run, QUICKSTART_DO, episodes=8, horizon=10, seed=args.seed, threads=args.threads)
        write_json(run / "intervene.json", report)
        results.append(dict(run=run, what=what, eval=result, probe=probed, intervene=report))
    print(f"[6/6] figures and report -> {args.out}/report.md")
    from paper_figures.make_all import make_all

    for r in results:
        sub = "figures" if r["run"].name == "run" else f"figures/{r['run'].name}"
        r["figures"] = [
            Path(f).relative_to(args.out) for f in make_all(str(r["run"]), str(test_h5), str(args.out / sub))
        ]
    seconds = time.perf_counter() - t0
    write_text(args.out / "report.md", quickstart_report(results, args, seconds))
    fmt = lambda x: "-" if x is None else f"{x:.3f}"  # noqa: E731
    for r in results:
        result, e = r["eval"], r["intervene"]["effects"]
        print(f"summary: {r['run']} ({r['what']})")
        print(f"  {'horizon':>8} {'Hits@1':>8} {'MRR':>8}")
        for h, hits in result["hits_at_1"].items():
            print(f"  {h + ' steps':>8} {hits:>8.3f} {result['mrr'][h]:>8.3f}")
        for key in ("fg_ari", "fg_ari_decoder", "probe_position_error_px", "probe_matched_error_px"):
            if key in result:
                print(f"  {key}: {result[key]:.3f}")
        print(format_probe(r["probe"]))
        print(
            f"  do({QUICKSTART_DO}): simulator vs model effect Pearson {fmt(e['pearson'])}, "
            f"Spearman {fmt(e['spearman'])}"
        )
    print(f"quickstart finished in {seconds:.0f} s; report {args.out}/report.md, outputs in {args.out}/")
    return 0


def quickstart_report(results: list[dict], args, seconds: float) -> str:
    """The quickstart's Markdown report: a comparison of its models, then the tables of every stage and the
    figures of each."""
    fmt = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
    lines = [
        "# causal-wm quickstart report",
        "",
        f"springs scene, 3–5 balls, {args.episodes} training episodes, seed {args.seed}; finished in {seconds:.0f} s.",
        "",
        "| model | run | Hits@1 at 1 / 5 / 10 steps | best probe (chosen on training episodes) | edge AUROC | SHD | "
        f"do({QUICKSTART_DO}) Pearson |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        hits = " / ".join(f"{v:.2f}" for v in r["eval"]["hits_at_1"].values())
        p = r["probe"]
        lines.append(
            f"| {r['what']} | `{r['run'].name}` | {hits} | {p['best_method']} | {fmt(p['auroc'])} | "
            f"{fmt(p.get('shd'))} | {fmt(r['intervene']['effects']['pearson'])} |"
        )
    for r in results:
        result, probed, report = r["eval"], r["probe"], r["intervene"]
        lines += [
            "",
            f"## `{r['run'].name}`: {r['what']}",
            "",
            "### World model (C-SWM protocol, held-out episodes)",
            "",
            "| horizon | Hits@1 | MRR |",
            "|---|---|---|",
        ]
        lines += [f"| {h} | {v:.3f} | {result['mrr'][h]:.3f} |" for h, v in result["hits_at_1"].items()]
        lines += [
            "",
            "### Learned interaction graph vs ground truth",
            "",
            "| method | AUROC | AP | SHD |",
            "|---|---|---|---|",
        ]
        rows = list(probed["methods"].items())
        rows += [(f"{k} (baseline)", v) for k, v in probed.get("baselines", {}).items()]
        for name, v in rows:
            a = v["adjacency"]
            lines.append(f"| {name} | {fmt(a['auroc'])} | {fmt(a['ap'])} | {fmt(a.get('shd'))} |")
        e = report["effects"]
        lines += [
            "",
            f"### Intervention do({e['do']})",
            "",
            f"Simulator vs model effect on the other objects over {e['horizon']} steps, {e['episodes']} episodes: "
            f"Pearson {fmt(e['pearson'])}, Spearman {fmt(e['spearman'])}.",
        ]
        if "gcm" in report:
            g = report["gcm"]
            falsified = _falsified(g.get("falsification"))
            reference = _falsified(g.get("falsification_true"))
            lines.append(
                f"dowhy gcm: mean |ACE(learned graph) − ACE(true graph)| = {fmt(g['ace_abs_error'])}; learned graph "
                f"from {g['learned_graph_from']}; falsified by the simulator data: {falsified} (the true graph: "
                f"{reference})."
            )
        lines += ["", "### Figures", ""]
        for path in r["figures"]:
            if str(path).endswith(".png"):
                lines.append(f"![{Path(path).stem}]({Path(path).as_posix()})")
    return "\n".join(lines) + "\n"


def build_parser() -> argparse.ArgumentParser:
    from causal_wm import __version__

    parser = argparse.ArgumentParser(prog="causal-wm", description="Object-centric causal world models.")
    parser.add_argument("--version", action="version", version=f"causal-wm {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_probe(sub)
    _add_intervene(sub)
    _add_figures(sub)
    _add_info(sub)
    _add_quickstart(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from causal_wm.errors import CausalWMError
    from causal_wm.runtime import keep_freed_memory
    from envs import ConfigError

    args = build_parser().parse_args(argv)
    keep_freed_memory()  # about 2x faster transitions on CPU (causal_wm/runtime.py)
    # Ctrl-C and `kill` stop cleanly: temporary files are removed, earlier results are kept.
    previous = {sig: signal.signal(sig, _terminate) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        return args.func(args)
    except (CLIError, ConfigError, CausalWMError, FileNotFoundError) as err:
        print(f"causal-wm {args.command}: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"causal-wm {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _in_foreign_callback(frame) -> bool:
    """Whether ``frame`` runs inside a callback from C: pymunk's cffi callbacks (collision handlers, shape and body
    iterators). cffi ignores an exception raised there, and chipmunk, left mid-iteration, can then crash the process
    (SIGSEGV) before any temporary file is removed."""
    callbacks = os.path.join("pymunk", "_callbacks.py")
    while frame is not None:
        if frame.f_code.co_filename.endswith(callbacks):
            return True
        frame = frame.f_back
    return False


def _terminate(signum, frame):
    import threading

    from causal_wm.errors import STOP

    STOP.set()
    if _in_foreign_callback(frame):  # deliver the signal again in a moment, once the callback has returned
        again = threading.Timer(0.01, os.kill, (os.getpid(), signum))
        again.daemon = True
        again.start()
        return
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
