"""Slot Attention as a plain autoencoder: can it find the objects of a file's frames, before any dynamics?

Trains the project's `SlotAttentionEncoder` and `SpatialBroadcastDecoder` on single frames (no history, no
transition, no contrastive loss) with the reconstruction loss alone, optionally weighted towards pixels unlike each
frame's median colour (`--recon-foreground`, the `causal-wm train` option of the same name), and scores object
discovery on held-out frames every `--eval-every` steps: the FG-ARI of the decoder's masks at full resolution (what
Slot Attention and SAVi report) and of the attention masks (upsampled from the feature grid).

    python analysis/slot_autoencoder.py --data data/springs5_train.h5 --test data/springs5_test.h5 \\
        --steps 4000 --recon-foreground 10 --out results/slot_autoencoder_fg10.json
    python analysis/slot_autoencoder.py --smoke      # a tiny file in a temporary directory (seconds)

The JSON holds the settings, the hardware and one row per evaluation. It is written atomically after every
evaluation with ``"complete": false`` until the last step; a complete file is kept unless ``--overwrite``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from benchmarks.hardware import describe  # analysis/ is the script's directory

from causal_wm import metrics
from causal_wm.config import write_json
from causal_wm.decoder import SpatialBroadcastDecoder
from causal_wm.encoders import SLOT_INITS, SlotAttentionEncoder, downsampling_steps
from causal_wm.losses import foreground_weights
from causal_wm.train import _atomic_save


def hardware() -> str:
    return f"{describe()}, torch {torch.__version__} with {torch.get_num_threads()} threads"


def load_frames(path: Path, episodes: int | None, stride: int, masks: bool) -> tuple[torch.Tensor, np.ndarray | None]:
    """(N, H, W, 3) uint8 frames of the first ``episodes`` episodes, every ``stride``-th step; their (N, H, W) ids."""
    with h5py.File(path, "r") as f:
        if "obs" not in f or (masks and "masks" not in f):
            sys.exit(
                f"slot_autoencoder.py: {path} has no {'obs and masks' if masks else 'obs'} (an image file is needed)"
            )
        sel = slice(0, episodes)
        obs = f["obs"][sel, ::stride]
        ids = f["masks"][sel, ::stride].reshape(-1, *obs.shape[2:4]) if masks else None
    return torch.from_numpy(obs.reshape(-1, *obs.shape[2:])), ids


def to_input(frames: torch.Tensor) -> torch.Tensor:
    return frames.permute(0, 3, 1, 2).float().div(255)  # (N, 3, H, W) in [0, 1]


def interior(ids: np.ndarray) -> np.ndarray:
    """``ids`` (N, H, W) with every object pixel that has a 4-neighbour of another id (its rim) set to background 0."""
    padded = np.pad(ids, ((0, 0), (1, 1), (1, 1)), mode="edge")
    same = [
        padded[:, 1 + dy : padded.shape[1] - 1 + dy, 1 + dx : padded.shape[2] - 1 + dx] == ids
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1))
    ]
    return np.where(np.logical_and.reduce(same), ids, 0)


@torch.no_grad()
def fg_aris(encoder, decoder, frames: torch.Tensor, ids: np.ndarray, batch: int = 100) -> tuple[float, float, float]:
    """Mean FG-ARI over held-out frames of the decoder's masks, of the attention masks, and of the decoder's masks on
    the objects' interiors only (rims left out: how much of the shortfall lies on the objects' edges)."""
    dec, att, inner = [], [], []
    for a in range(0, len(frames), batch):
        x = to_input(frames[a : a + batch])
        out = encoder(x)
        masks = decoder(out.slots).masks
        dec.append(metrics.fg_ari(ids[a : a + batch], masks, per_sample=True))
        inner.append(metrics.fg_ari(interior(ids[a : a + batch]), masks, per_sample=True))
        up = F.interpolate(out.masks, size=x.shape[-2:], mode="nearest")
        att.append(metrics.fg_ari(ids[a : a + batch], up, per_sample=True))
    return tuple(float(np.nanmean(np.concatenate(v))) for v in (dec, att, inner))


def build(settings: dict, image_size: int) -> tuple[SlotAttentionEncoder, SpatialBroadcastDecoder]:
    """The encoder and decoder of a run's ``settings`` (its command-line options; ``--save`` files keep them) for
    ``image_size`` frames. Options added later default to their old behaviour, so older files still rebuild."""
    encoder = SlotAttentionEncoder(
        in_channels=3,
        num_slots=settings["slots"],
        slot_dim=settings["slot_dim"],
        hidden=settings["hidden"],
        image_size=image_size,
        slot_init=settings["slot_init"],
        iters=settings.get("iters", 3),
        implicit=settings.get("implicit", False),
        resolution=settings.get("resolution"),
    )
    decoder = SpatialBroadcastDecoder(settings["slot_dim"], hidden=settings["hidden"], image_size=image_size)
    return encoder, decoder


def run(args: argparse.Namespace) -> dict:
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train_frames, _ = load_frames(args.data, args.train_episodes, 1, masks=False)
    test_frames, test_ids = load_frames(args.test, args.eval_episodes, args.eval_stride, masks=True)
    size = train_frames.shape[1]
    if train_frames.shape[1:] != test_frames.shape[1:]:
        sys.exit(f"slot_autoencoder.py: frames of {tuple(train_frames.shape[1:])} and {tuple(test_frames.shape[1:])}")
    try:
        downsampling_steps(size, size // 4 if args.resolution is None else args.resolution)
    except ValueError:
        sys.exit(
            f"slot_autoencoder.py: --resolution must be {size} / 2**n for {size}x{size} frames, got {args.resolution}"
        )
    settings = {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items() if k not in ("out", "smoke", "save")
    }
    encoder, decoder = build(settings, size)
    params = [*encoder.parameters(), *decoder.parameters()]
    opt = torch.optim.Adam(params, lr=args.lr)
    result = {"settings": settings, "hardware": hardware(), "complete": False, "curve": []}
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = args.lr * min(1.0, step / args.warmup)
        x = to_input(train_frames[torch.from_numpy(rng.integers(0, len(train_frames), args.batch))])
        err = (decoder(encoder(x).slots).recon - x).pow(2)
        if args.recon_foreground:
            err = err * foreground_weights(x, args.recon_foreground)
        loss = err.mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % args.eval_every == 0 or step == args.steps:
            encoder.eval(), decoder.eval()
            dec, att, inner = fg_aris(encoder, decoder, test_frames, test_ids)
            encoder.train(), decoder.train()
            row = {"step": step, "loss": loss.item(), "fg_ari_decoder": dec, "fg_ari_attention": att}
            row["fg_ari_decoder_interior"] = inner
            row["seconds"] = round(time.perf_counter() - t0, 1)
            result["curve"].append(row)
            result["complete"] = step == args.steps
            print(json.dumps(row), flush=True)
            if args.out is not None:
                write_json(args.out, result)
    if args.save is not None:  # weights and settings, written atomically once training is complete
        args.save.parent.mkdir(parents=True, exist_ok=True)
        _atomic_save(
            {"encoder": encoder.state_dict(), "decoder": decoder.state_dict(), "settings": settings}, args.save
        )
    return result


def smoke() -> None:
    from causal_wm.config import GenerateConfig
    from causal_wm.generate import generate

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tiny.h5"
        common = dict(steps=4, num_objects="2-3", image_size=32, influence_steps=0)
        generate(GenerateConfig(episodes=4, seed=0, **common), path, progress=False)
        out = Path(tmp) / "ae.json"
        argv = ["--data", str(path), "--test", str(path), "--steps", "3", "--eval-every", "2", "--batch", "4"]
        argv += ["--slot-dim", "4", "--hidden", "8", "--recon-foreground", "5", "--eval-stride", "2", "--out", str(out)]
        result = main([*argv, "--save", str(Path(tmp) / "ae.pt")])
        weights = torch.load(Path(tmp) / "ae.pt")
        assert set(weights) == {"encoder", "decoder", "settings"} and weights["settings"]["steps"] == 3
        saved = json.loads(out.read_text())
        assert saved["complete"] and [r["step"] for r in saved["curve"]] == [2, 3] == [
            r["step"] for r in result["curve"]
        ]
        print(f"smoke OK: {out.name} with {len(saved['curve'])} rows")


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a tiny file in a temporary directory (seconds)")
    parser.add_argument("--data", type=Path, help="training file with frames (obs)")
    parser.add_argument("--test", type=Path, help="held-out file with frames and masks")
    parser.add_argument("--out", type=Path, help="JSON of the settings and the FG-ARI curve")
    parser.add_argument("--overwrite", action="store_true", help="replace a complete --out")
    parser.add_argument("--save", type=Path, help="write the trained encoder and decoder weights here (torch.save)")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=32, help="frames per step")
    parser.add_argument("--slots", type=int, default=6, help="slots K (objects + 1 for the background)")
    parser.add_argument("--slot-dim", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=32, help="channels of the backbone and the decoder")
    parser.add_argument("--slot-init", choices=SLOT_INITS, default="gaussian")
    parser.add_argument("--iters", type=int, default=3, help="slot attention rounds (Locatello et al.: 3)")
    parser.add_argument(
        "--resolution", type=int, help="side of the feature grid slot attention runs on (default: image size / 4)"
    )
    parser.add_argument(
        "--implicit",
        action="store_true",
        help="backpropagate through the last attention round only (Chang et al. 2022's implicit differentiation)",
    )
    parser.add_argument("--lr", type=float, default=4e-4, help="Adam learning rate after the warm-up")
    parser.add_argument("--warmup", type=int, default=500, help="steps of linear learning-rate warm-up")
    parser.add_argument("--recon-foreground", type=float, default=0.0, help="foreground weight W (0: plain MSE)")
    parser.add_argument("--train-episodes", type=int, default=400, help="training episodes whose frames are used")
    parser.add_argument("--eval-episodes", type=int, default=50, help="held-out episodes scored")
    parser.add_argument("--eval-stride", type=int, default=10, help="score every n-th frame of those episodes")
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.smoke:
        smoke()
        return None
    if args.data is None or args.test is None:
        parser.error("--data and --test are required (or --smoke)")
    positive = ("steps", "batch", "slots", "slot_dim", "hidden", "warmup", "train_episodes", "eval_episodes", "iters")
    if min(getattr(args, k) for k in (*positive, "eval_stride", "eval_every", "threads")) < 1:
        parser.error("sizes, steps, strides and --threads must be >= 1")
    if args.resolution is not None and args.resolution < 1:
        parser.error("--resolution must be >= 1")
    if args.lr <= 0 or args.recon_foreground < 0:
        parser.error("--lr must be positive and --recon-foreground non-negative")
    for path in (args.data, args.test):
        if not path.is_file():
            parser.error(f"{path} does not exist")
    if args.out is not None and args.out.exists() and not args.overwrite:
        try:
            saved = json.loads(args.out.read_text())
            ours = isinstance(saved, dict) and "curve" in saved and "settings" in saved
        except (json.JSONDecodeError, UnicodeDecodeError):
            ours = False
        if not ours:
            parser.error(
                f"{args.out} exists and is not a slot_autoencoder.py result; pass --overwrite or another --out"
            )
        if saved.get("complete"):
            if args.save is not None and not args.save.exists():
                parser.error(
                    f"{args.out} is complete but {args.save} was never written; pass --overwrite to train again"
                )
            print(f"{args.out} is complete; pass --overwrite to train again")
            return saved
        print(f"{args.out} is from an interrupted run; training again from step 0")
    return run(args)


if __name__ == "__main__":
    main()
