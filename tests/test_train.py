"""World model, training and evaluation: shapes, smoke runs of every encoder, resume equivalence, NaN handling,
and the errors bad input gets."""

import copy
import dataclasses
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from causal_wm.cli import main
from causal_wm.config import GenerateConfig
from causal_wm.evaluate import evaluate
from causal_wm.generate import generate
from causal_wm.losses import contrastive_loss, energy, foreground_weights
from causal_wm.model import ModelConfig, WorldModel
from causal_wm.probe import ACTION_READOUTS
from causal_wm.train import EpisodeArrays, TrainConfig, TrainError, huber, load_run, resolve_device, train


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    common = dict(steps=14, num_objects="2-3", image_size=32, influence_steps=0)
    generate(GenerateConfig(episodes=12, seed=0, **common), root / "train.h5", progress=False)
    generate(GenerateConfig(episodes=8, seed=1, **common), root / "test.h5", progress=False)
    generate(GenerateConfig(episodes=6, seed=2, images=False, **common), root / "states.h5", progress=False)
    return root


def cfg(tiny, encoder, **kw):
    base = dict(
        data=str(tiny / "train.h5"),
        encoder=encoder,
        steps=3,
        batch_size=4,
        rollout_steps=2,
        log_every=1,
        checkpoint_every=2,
        model={"slot_dim": 4, "hidden": 16, "encoder_hidden": 8},
    )
    base.update(kw)
    return TrainConfig(**base)


def test_energy_and_contrastive_loss_hand_case():
    a = torch.zeros(2, 3, 4)
    b = torch.ones(2, 3, 4)
    assert torch.allclose(energy(a, b, sigma=0.5), torch.full((2,), 0.5 / 0.25 * 12))
    mask = torch.tensor([[True, False, False], [True, True, True]])
    assert torch.allclose(energy(a, b, 0.5, mask), torch.tensor([8.0, 24.0]))
    target = torch.randn(5, 3, 3, 4)
    perfect = contrastive_loss(target[:, 1:], target, hinge=0.0)
    assert perfect["positive"] == 0 and perfect["negative"] == 0
    for negatives in ("batch", "episode"):
        parts = contrastive_loss(target[:, 1:] + 0.1, target, hinge=1e6, negatives=negatives)
        assert parts["positive"] > 0 and parts["negative"] > 0


def test_foreground_weights_hand_case():
    frames = torch.zeros(2, 3, 3, 4, 4)  # (B, L, C, H, W): black frames
    frames[0, 0, :, 1, 2] = 1.0  # one white pixel: sum_c |x - m| = 3, capped at 1
    frames[0, 0, 0, 3, 3] = 0.25  # one dim red pixel: 0.25
    frames[1, 2] = 0.5  # a uniform grey frame: its median is its colour, so no pixel stands out
    w = foreground_weights(frames, 4.0)
    assert w.shape == (2, 3, 1, 4, 4) and torch.isclose(w.mean(), torch.tensor(1.0))
    raw = w / w[1, 2, 0, 0, 0]  # a background pixel weighs 1 before the normalisation
    assert torch.isclose(raw[0, 0, 0, 1, 2], torch.tensor(5.0)) and torch.isclose(raw[0, 0, 0, 3, 3], torch.tensor(2.0))
    assert torch.allclose(raw[1], torch.ones_like(raw[1]))
    assert torch.allclose(foreground_weights(frames, 0.0), torch.ones_like(w))
    with pytest.raises(ValueError, match="non-negative"):
        foreground_weights(frames, -1.0)


def test_recon_foreground_weighs_the_image_reconstruction(tiny, tmp_path, monkeypatch):
    import causal_wm.train as tr

    seen = []
    real = tr.foreground_weights
    monkeypatch.setattr(tr, "foreground_weights", lambda x, s: seen.append((x.shape, s)) or real(x, s))
    c = cfg(tiny, "slots", steps=2, recon_foreground=5.0, model={"slot_dim": 4, "hidden": 16, "decoder": True})
    last = train(c, tmp_path / "run", progress=False)
    assert math.isfinite(last["recon"]) and seen == [(torch.Size([4, 3, 3, 32, 32]), 5.0)] * 2
    with pytest.raises(TrainError, match="needs --decoder"):
        train(cfg(tiny, "cnn", recon_foreground=5.0), tmp_path / "nodecoder", progress=False)
    assert not (tmp_path / "nodecoder").exists()
    with pytest.raises(TrainError, match="recon_foreground non-negative"):
        cfg(tiny, "cnn", recon_foreground=-1.0)
    args = ["train", "--data", str(tiny / "train.h5"), "--encoder", "slots", "--steps", "1", "--batch-size", "2"]
    args += ["--slot-dim", "4", "--hidden", "8", "--quiet", "--recon-foreground", "5"]
    assert main([*args, "--decoder", "--out", str(tmp_path / "cli")]) == 0
    assert "recon_foreground: 5.0" in (tmp_path / "cli/config.yaml").read_text()
    assert main([*args, "--out", str(tmp_path / "cli_bad")]) == 2 and not (tmp_path / "cli_bad").exists()


def test_pretrain_steps_optimise_the_reconstruction_alone(tiny, tmp_path):
    c = cfg(
        tiny, "slots", steps=3, pretrain_steps=2, recon_weight=2.0, model={"slot_dim": 4, "hidden": 16, "decoder": True}
    )
    train(c, tmp_path / "run", progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for r in rows[:2]:  # the contrastive parts are logged, but the loss is the weighted reconstruction alone
        assert r["positive"] > 0 and r["loss"] == pytest.approx(2.0 * r["recon"])
    assert rows[2]["loss"] == pytest.approx(2.0 * rows[2]["recon"] + rows[2]["positive"] + rows[2]["negative"])
    with pytest.raises(TrainError, match="needs --decoder"):
        train(cfg(tiny, "cnn", pretrain_steps=1), tmp_path / "nodecoder", progress=False)
    with pytest.raises(TrainError, match=r"pretrain_steps must lie in \[0, steps = 3\)"):
        cfg(tiny, "cnn", pretrain_steps=3)
    args = ["train", "--data", str(tiny / "train.h5"), "--encoder", "slots", "--decoder", "--batch-size", "2"]
    args += ["--slot-dim", "4", "--hidden", "8", "--quiet", "--pretrain-steps", "2"]
    assert main([*args, "--steps", "3", "--freeze-encoder", "--out", str(tmp_path / "cli")]) == 0  # not 2500 steps
    assert (
        "pretrain_steps: 2" in (text := (tmp_path / "cli/config.yaml").read_text()) and "freeze_encoder: true" in text
    )
    assert (
        main([*args, "--steps", "2", "--out", str(tmp_path / "cli_bad")]) == 2 and not (tmp_path / "cli_bad").exists()
    )


def test_freeze_encoder_holds_the_pretrained_encoder_fixed(tiny, tmp_path, monkeypatch):
    import causal_wm.train as tr

    saved = {}
    real = tr._atomic_save
    monkeypatch.setattr(
        tr,
        "_atomic_save",
        lambda obj, path: saved.update({obj["step"]: copy.deepcopy(obj["model"])}) or real(obj, path),
    )
    model = {"slot_dim": 4, "hidden": 16, "decoder": True}
    c = cfg(tiny, "slots", steps=4, pretrain_steps=2, checkpoint_every=2, freeze_encoder=True, model=model)
    train(c, tmp_path / "run", progress=False)
    pre, after = saved[2], saved[4]
    encoder = [k for k in pre if k.startswith("encoder.") and pre[k].is_floating_point()]
    transition = [k for k in pre if k.startswith("transition_model.") and pre[k].is_floating_point()]
    assert encoder and transition
    assert all(torch.equal(pre[k], after[k]) for k in encoder)  # steps 3-4 left the pretrained encoder as it was
    assert any(not torch.equal(pre[k], after[k]) for k in transition)  # ... and trained the transition
    with pytest.raises(TrainError, match="give --pretrain-steps N"):
        train(cfg(tiny, "slots", freeze_encoder=True, model=model), tmp_path / "nopre", progress=False)


def small_model(encoder: str, **kw) -> WorldModel:
    """A world model of 3 slots of 4 dimensions at 32x32 (or 8 state features), narrow enough for unit tests."""
    base = dict(num_slots=3, slot_dim=4, hidden=16, encoder_hidden=8, image_size=32, num_features=8)
    return WorldModel(ModelConfig(encoder=encoder, **{**base, **kw}))


@pytest.mark.parametrize("encoder", ["cnn", "slots", "state"])
def test_imagine_shapes(encoder):
    torch.manual_seed(0)
    model = small_model(encoder, decoder=encoder != "state")
    obs = torch.rand(2, 3, 8) if encoder == "state" else torch.randint(0, 255, (2, 2, 32, 32, 3), dtype=torch.uint8)
    z = model.encode(obs).slots
    assert z.shape == (2, 3, 4)
    out = model.imagine(z, torch.tensor([[0, 1, 5], [2, 0, 0]]), torch.rand(2, 3, 3, 2))
    assert out["z"].shape == (2, 4, 3, 4) and out["gates"].shape == (2, 3, 3, 3)
    assert torch.equal(out["z"][:, 0], z)
    if model.decoder is not None:
        assert out["frames"].shape == (2, 4, 3, 32, 32)


def test_object_actions_reach_the_pushed_slot():
    model = WorldModel(ModelConfig(encoder="state", num_slots=3, num_features=8))
    obj, node = model.action_inputs(torch.tensor([0, 1 + 4 * 2 + 3]), None, 3)
    assert node is None and obj.shape == (2, 3, 4)
    assert obj[0].sum() == 0 and obj[1, 2, 3] == 1 and obj[1].sum() == 1


@pytest.mark.parametrize("encoder", ["cnn", "slots", "state"])
def test_train_smoke_and_load_run(tiny, tmp_path, encoder):
    data = "states.h5" if encoder == "state" else "train.h5"
    last = train(cfg(tiny, encoder, data=str(tiny / data)), tmp_path / "run", progress=False)
    assert last["step"] == 3 and np.isfinite(last["loss"])
    for name in ("config.yaml", "metrics.jsonl", "checkpoints/last.pt"):
        assert (tmp_path / "run" / name).exists()
    assert list((tmp_path / "run" / "tensorboard").iterdir())
    model = load_run(tmp_path / "run")
    assert model.config.encoder == encoder and not model.training


def test_decoder_reconstruction_loss_is_logged(tiny, tmp_path):
    c = cfg(tiny, "cnn", model={"slot_dim": 4, "hidden": 16, "encoder_hidden": 8, "decoder": True})
    last = train(c, tmp_path / "run", progress=False)
    assert last["recon"] > 0


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_reaches_the_same_final_state(tiny, tmp_path, monkeypatch, precision):
    c = cfg(tiny, "cnn", steps=6, checkpoint_every=2, sparsity=0.01, precision=precision)
    train(c, tmp_path / "a", progress=False)

    import causal_wm.train as tr

    real = tr.rollout_loss
    calls = {"n": 0}

    def interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:  # killed during step 5, after the checkpoint at step 4
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tr, "rollout_loss", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(c, tmp_path / "b", progress=False)
    monkeypatch.setattr(tr, "rollout_loss", real)
    assert torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=False)["step"] == 4
    train(c, tmp_path / "b", resume=True, progress=False)
    a = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=False)
    b = torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=False)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k

    def strip(p):
        return [{k: v for k, v in json.loads(x).items() if k != "windows_per_s"} for x in p.read_text().splitlines()]

    assert strip(tmp_path / "a/metrics.jsonl") == strip(tmp_path / "b/metrics.jsonl")


def test_nan_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tiny, tmp_path, monkeypatch):
    import causal_wm.train as tr

    real = tr.rollout_loss
    calls = {"n": 0}

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        parts = real(*args, **kwargs)
        if calls["n"] == 3:
            parts["loss"] = parts["loss"] * float("nan")
        return parts

    monkeypatch.setattr(tr, "rollout_loss", poisoned)
    with pytest.raises(TrainError, match="loss became nan at step 3"):
        train(cfg(tiny, "state", data=str(tiny / "states.h5"), steps=5), tmp_path / "run", progress=False)
    saved = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=False)
    assert saved["step"] == 2 and all(torch.isfinite(v).all() for v in saved["model"].values() if v.is_floating_point())


def test_bad_training_input(tiny, tmp_path):
    with pytest.raises(TrainError, match="state-only file"):
        train(cfg(tiny, "cnn", data=str(tiny / "states.h5")), tmp_path / "r1", progress=False)
    with pytest.raises(TrainError, match="exceed the 2 slots"):
        train(cfg(tiny, "cnn", model={"num_slots": 2}), tmp_path / "r2", progress=False)
    with pytest.raises(TrainError, match="too short"):
        train(cfg(tiny, "cnn", rollout_steps=20), tmp_path / "r3", progress=False)
    (tmp_path / "r4").mkdir()
    (tmp_path / "r4" / "keep.txt").write_text("earlier results")
    with pytest.raises(TrainError, match="not empty"):
        train(cfg(tiny, "cnn"), tmp_path / "r4", progress=False)
    assert (tmp_path / "r4" / "keep.txt").read_text() == "earlier results"
    with pytest.raises(TrainError, match="unknown encoder"):
        TrainConfig(encoder="vae")


def test_resume_refuses_a_different_config(tiny, tmp_path):
    train(cfg(tiny, "state", data=str(tiny / "states.h5")), tmp_path / "run", progress=False)
    with pytest.raises(TrainError, match="differs .* \\['lr'\\]"):
        train(cfg(tiny, "state", data=str(tiny / "states.h5"), lr=0.5), tmp_path / "run", resume=True)


def test_resume_accepts_a_run_saved_before_a_config_field_existed(tiny, tmp_path):
    c = cfg(tiny, "state", data=str(tiny / "states.h5"), steps=2)
    train(c, tmp_path / "run", progress=False)
    path = tmp_path / "run/checkpoints/last.pt"
    saved = torch.load(path, weights_only=False)
    # fields added later, at their defaults
    added = (
        "dynamics_beta",
        "teacher_forcing",
        "graph_overlap",
        "recon_foreground",
        "pretrain_steps",
        "freeze_encoder",
    )
    for name in added:
        del saved["train_config"][name]
    torch.save(saved, path)
    train(c, tmp_path / "run", resume=True, progress=False)  # the config check passes
    with pytest.raises(TrainError, match="differs .* \\['dynamics_beta'\\]"):
        train(dataclasses.replace(c, dynamics_beta=5.0), tmp_path / "run", resume=True, progress=False)


def test_device_choice_and_its_errors(tiny, tmp_path):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    for name, message in (("meta", "not supported"), ("tpu", "unknown device"), ("cuda:99", "CUDA|does not exist")):
        with pytest.raises(TrainError, match=message):
            resolve_device(name)
    if not torch.cuda.is_available():
        with pytest.raises(TrainError, match="CUDA is not available"):
            train(cfg(tiny, "state", data=str(tiny / "states.h5")), tmp_path / "gpu", progress=False, device="cuda")
        assert not (tmp_path / "gpu").exists()  # refused before anything was written


def test_resume_refuses_another_kind_of_device(tiny, tmp_path):
    c = cfg(tiny, "state", data=str(tiny / "states.h5"))
    train(c, tmp_path / "run", progress=False, device="cpu")
    path = tmp_path / "run/checkpoints/last.pt"
    saved = torch.load(path, weights_only=False)
    assert saved["rng"]["device"] == "cpu"
    saved["rng"]["device"] = "cuda:0"
    torch.save(saved, path)
    with pytest.raises(TrainError, match="trained on cuda; resume it there"):
        train(c, tmp_path / "run", resume=True, progress=False)


def test_mismatched_checkpoint_is_refused(tiny, tmp_path):
    train(cfg(tiny, "state", data=str(tiny / "states.h5")), tmp_path / "run", progress=False)
    path = tmp_path / "run/checkpoints/last.pt"
    saved = torch.load(path, weights_only=False)
    saved["config"]["model"]["hidden"] = 32
    torch.save(saved, path)
    with pytest.raises(TrainError, match="do not match its model config"):
        load_run(tmp_path / "run")
    path.write_bytes(b"garbage")
    with pytest.raises(TrainError, match="not a causal-wm checkpoint"):
        load_run(tmp_path / "run")


def test_evaluate(tiny, tmp_path):
    train(cfg(tiny, "cnn"), tmp_path / "run", progress=False)
    result = evaluate(tmp_path / "run", str(tiny / "test.h5"), horizons=(1, 5))
    assert set(result["hits_at_1"]) == {"1", "5"} and result["episodes"] == 8
    assert all(0 <= v <= 1 for v in [*result["hits_at_1"].values(), *result["mrr"].values()])
    assert -1 <= result["fg_ari"] <= 1 and result["probe_position_error_px"] >= 0
    assert "fg_ari_decoder" not in result  # no frame decoder
    for h in ("1", "5"):  # the contact groups partition the episodes and average to the overall Hits@1
        rows = result["hits_at_1_by_contact_onsets"][h]
        assert sum(r["episodes"] for r in rows) == 8
        assert sum(r["episodes"] * r["hits_at_1"] for r in rows) / 8 == pytest.approx(result["hits_at_1"][h])
    with pytest.raises(TrainError, match="shorter than the horizon 20"):
        evaluate(tmp_path / "run", str(tiny / "test.h5"), horizons=(20,))
    with pytest.raises(TrainError, match="state-only"):
        evaluate(tmp_path / "run", str(tiny / "states.h5"), horizons=(1,))


def test_decoder_fg_ari_scores_the_decoded_masks_at_full_resolution(tiny, tmp_path, monkeypatch):
    from types import SimpleNamespace

    from causal_wm.evaluate import decoder_fg_ari

    model_cfg = {"slot_dim": 4, "hidden": 16, "encoder_hidden": 8, "decoder": True}
    train(cfg(tiny, "slots", model=model_cfg), tmp_path / "run", progress=False)
    model = load_run(tmp_path / "run")
    data = EpisodeArrays(str(tiny / "test.h5"), images=True)
    ids = data.masks[:, 3]  # (E, H, W), 0 = background
    k = model.config.num_slots
    slots = torch.randn(len(ids), k, model.config.latent_dim)
    real = decoder_fg_ari(model, slots, ids)
    assert -1.0 <= real <= 1.0 and decoder_fg_ari(model, slots, ids, batch=3) == pytest.approx(real)

    def decoded(masks):  # the decoder returns these masks, chunk by chunk, whatever the slots
        done = [0]

        def decode(z, slot_mask=None):
            done[0] += len(z)
            return SimpleNamespace(masks=masks[done[0] - len(z) : done[0]])

        return decode

    onehot = F.one_hot(torch.from_numpy(ids).long(), k + 1).permute(0, 3, 1, 2).float()  # object n in map n
    monkeypatch.setattr(model, "decode", decoded(onehot[:, torch.randperm(k + 1)]))  # any slot order
    assert decoder_fg_ari(model, slots, ids) == pytest.approx(1.0)
    monkeypatch.setattr(model, "decode", decoded(onehot))
    assert decoder_fg_ari(model, slots, ids, batch=3) == pytest.approx(1.0)  # chunks are scored in order
    small = F.interpolate(onehot, scale_factor=0.5, mode="nearest")  # coarser masks are upsampled to the frame
    monkeypatch.setattr(model, "decode", decoded(small))
    assert 0.5 < decoder_fg_ari(model, slots, ids) <= 1.0
    one = torch.zeros_like(onehot)
    one[:, 0] = 1.0  # every pixel in one slot: FG-ARI 0 wherever there are two or more objects
    monkeypatch.setattr(model, "decode", decoded(one))
    assert decoder_fg_ari(model, slots, ids) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="2 slot sets but 8 mask frames"):
        decoder_fg_ari(model, slots[:2], ids)
    train(cfg(tiny, "cnn"), tmp_path / "plain", progress=False)
    with pytest.raises(ValueError, match="needs an image model with a frame decoder"):
        decoder_fg_ari(load_run(tmp_path / "plain"), slots, ids)


def test_contact_onsets_and_hits_by_contacts_hand_case():
    from causal_wm.evaluate import CONTACT_BINS, contact_onsets, hits_by_contacts

    contacts = np.zeros((3, 6, 3, 3), np.uint8)  # episodes, frames, objects, objects
    contacts[0, 1:3, 0, 1] = contacts[0, 1:3, 1, 0] = 1  # one onset at frame 1 (lasting two frames)
    contacts[0, 4, 1, 2] = contacts[0, 4, 2, 1] = 1  # a second pair at frame 4
    contacts[1, 0, 0, 2] = contacts[1, 0, 2, 0] = 1  # touching at t0 already: not an onset in the rollout
    contacts[2, 2, 0, 1] = contacts[2, 2, 1, 0] = 1  # onset, release, onset again: two onsets
    contacts[2, 4, 0, 1] = contacts[2, 4, 1, 0] = 1
    onsets = contact_onsets(contacts, 0, (1, 3, 5))
    assert [list(onsets[h]) for h in (1, 3, 5)] == [[1, 0, 0], [1, 0, 1], [2, 0, 2]]
    assert list(contact_onsets(contacts, 2, (2,))[2]) == [1, 0, 1]  # from observation 2: onsets in frames 3, 4
    rows = hits_by_contacts(np.array([1, 1, 3]), onsets[5])
    assert rows == [
        {"onsets": "0", "episodes": 1, "hits_at_1": 1.0},
        {"onsets": "2", "episodes": 2, "hits_at_1": 0.5},
    ]
    assert hits_by_contacts(np.array([2]), np.array([CONTACT_BINS + 3]))[0]["onsets"] == f"{CONTACT_BINS}+"


def test_cli_train_evaluate_smoke(tiny, tmp_path, capsys):
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--data",
                str(tiny / "train.h5"),
                "--encoder",
                "cnn",
                "--out",
                str(run),
                "--steps",
                "2",
                "--batch-size",
                "4",
                "--rollout-steps",
                "1",
                "--slot-dim",
                "4",
                "--hidden",
                "16",
                "--quiet",
            ]
        )
        == 0
    )
    assert main(["evaluate", str(run), "--data", str(tiny / "test.h5"), "--horizons", "1,2"]) == 0
    assert "2 steps, Hits@1 by contacts begun in the rollout (episodes): " in capsys.readouterr().out
    result = json.loads((run / "eval.json").read_text())
    assert set(result["mrr"]) == {"1", "2"}
    assert main(["evaluate", str(run), "--data", str(tiny / "test.h5")]) == 2  # eval.json exists
    assert "--overwrite" in capsys.readouterr().err
    assert (
        main(
            ["train", "--data", str(tiny / "states.h5"), "--encoder", "slots", "--out", str(tmp_path / "x"), "--quiet"]
        )
        == 2
    )


def test_evaluate_takes_its_own_thread_count_not_the_trainings(tiny, tmp_path, capsys):
    import torch

    run = tmp_path / "run"
    small = ["--batch-size", "4", "--rollout-steps", "1", "--slot-dim", "4", "--hidden", "16", "--quiet"]
    assert (
        main(
            ["train", "--data", str(tiny / "states.h5"), "--encoder", "state", "--out", str(run), "--steps", "2"]
            + small
            + ["--threads", "1"]
        )
        == 0
    )
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        test = str(tiny / "states.h5")
        assert main(["evaluate", str(run), "--data", test, "--horizons", "1"]) == 0
        assert torch.get_num_threads() == 2  # a run trained on one thread is evaluated on the machine's threads
        assert main(["evaluate", str(run), "--data", test, "--horizons", "1", "--overwrite", "--threads", "1"]) == 0
        assert torch.get_num_threads() == 1
        with pytest.raises(SystemExit) as exit_info:
            main(["evaluate", str(run), "--data", test, "--overwrite", "--threads", "0"])
        assert exit_info.value.code == 2 and "positive integer" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)


def test_cli_slot_init_learned_trains_evaluates_and_probes(tiny, tmp_path, capsys):
    run = tmp_path / "learned"
    args = ["--encoder", "slots", "--slot-init", "learned", "--steps", "2", "--batch-size", "4", "--rollout-steps", "2"]
    assert main(["train", "--data", str(tiny / "train.h5"), "--out", str(run), "--quiet", *args]) == 0
    assert load_run(run).config.slot_init == "learned" and not load_run(run).tracks_slots
    assert main(["evaluate", str(run), "--data", str(tiny / "test.h5"), "--horizons", "1,2"]) == 0
    assert "rollout_position_error" not in json.loads((run / "eval.json").read_text())  # no position readout
    assert main(["probe", str(run), "--data", str(tiny / "test.h5"), "--baselines", "none", "--quiet"]) == 0
    bad = ["train", "--data", str(tiny / "train.h5"), "--out", str(tmp_path / "bad"), "--slot-init", "zeros"]
    with pytest.raises(SystemExit):
        main(bad)


def test_cli_slot_iters_implicit_training_and_more_rounds_at_test_time(tiny, tmp_path, capsys):
    """--slot-iters and --slot-implicit reach the saved config; evaluate --slot-iters runs more rounds at test time,
    records both counts, and leaves the run's config alone; a non-Slot-Attention run refuses it."""
    run = tmp_path / "implicit"
    args = ["--encoder", "slots", "--slot-iters", "2", "--slot-implicit", "--steps", "2", "--batch-size", "4"]
    args += ["--slot-resolution", "16"]  # 32x32 frames: a 16x16 feature grid instead of the default 8x8
    assert main(["train", "--data", str(tiny / "train.h5"), "--out", str(run), "--quiet", *args]) == 0
    model = load_run(run)
    assert model.config.slot_iters == 2 and model.config.slot_implicit and model.encoder.slot_attention.implicit
    assert model.encoder.maps_size == (16, 16)
    test = ["--data", str(tiny / "test.h5"), "--horizons", "1,2"]
    assert main(["evaluate", str(run), *test]) == 0
    default = json.loads((run / "eval.json").read_text())
    assert default["slot_iters"] == {"trained": 2, "evaluated": 2}
    assert main(["evaluate", str(run), *test, "--slot-iters", "6", "--overwrite"]) == 0
    more = json.loads((run / "eval.json").read_text())
    assert more["slot_iters"] == {"trained": 2, "evaluated": 6}
    assert more["fg_ari"] != default["fg_ari"]  # the masks come from the sixth round, not the second
    assert load_run(run).config.slot_iters == 2
    probe = ["probe", str(run), "--data", str(tiny / "test.h5"), "--baselines", "none", "--quiet"]
    assert main([*probe, "--methods", "gates", "--slot-iters", "6"]) == 0
    assert json.loads((run / "probe.json").read_text())["config"]["slot_iters"] == 6
    with pytest.raises(SystemExit):
        main(["evaluate", str(run), *test, "--slot-iters", "0", "--overwrite"])
    cnn = tmp_path / "cnn"
    assert main(["train", "--data", str(tiny / "train.h5"), "--out", str(cnn), "--quiet", "--steps", "1"]) == 0
    assert main(["evaluate", str(cnn), *test, "--slot-iters", "5"]) == 2
    assert "Slot Attention runs only" in capsys.readouterr().err
    assert not (cnn / "eval.json").exists()
    assert main(["probe", str(cnn), "--data", str(tiny / "test.h5"), "--slot-iters", "5", "--quiet"]) == 2
    assert "Slot Attention runs only" in capsys.readouterr().err and not (cnn / "probe.json").exists()
    bad = ["train", "--data", str(tiny / "train.h5"), "--out", str(tmp_path / "bad"), "--encoder", "slots"]
    assert main([*bad, "--slot-resolution", "12"]) == 2  # 32 is not a power-of-two multiple of 12
    assert "slot_resolution must be image_size / 2**n" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "checkpoints").exists()


def test_cli_keypoints_train_evaluate_probe_and_decode_rollouts(tiny, tmp_path, capsys):
    run = tmp_path / "kp"
    args = ["--encoder", "cnn", "--keypoints", "--decoder", "--actions", "node", "--num-slots", "4", "--steps", "3"]
    args += ["--batch-size", "4", "--rollout-steps", "2", "--slot-dim", "4", "--hidden", "16", "--sparsity", "0.1"]
    assert (
        main(["train", "--data", str(tiny / "train.h5"), "--out", str(run), "--quiet", *args, "--dynamics-beta", "10"])
        == 0
    )
    assert "dynamics_beta: 10.0" in (run / "config.yaml").read_text()
    logged = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
    assert logged["recon"] > 0 and logged["dynamics"] > 0 and np.isfinite(logged["loss"])
    model = load_run(run)
    assert model.config.keypoints and model.config.latent_dim == 4 + 5 + 4
    z = torch.zeros(2, 4, model.config.latent_dim)
    roll = model.imagine(z, torch.zeros(2, 3, dtype=torch.long), positions=torch.zeros(2, 3, 3, 2))
    assert roll["z"].shape == (2, 4, 4, 13) and roll["frames"].shape == (2, 4, 3, 32, 32)
    assert main(["evaluate", str(run), "--data", str(tiny / "test.h5"), "--horizons", "1,2"]) == 0
    evaluated = json.loads((run / "eval.json").read_text())
    assert 0.0 <= evaluated["fg_ari"] <= 1.0 and evaluated["probe_matched_error_px"] >= 0
    assert -1.0 <= evaluated["fg_ari_decoder"] <= 1.0  # the keypoint decoder's disc opacities
    assert set(evaluated["rollout_position_error"]) == {"1", "2"}  # keypoint centroids of the imagined slots
    assert all(v >= 0 for v in evaluated["rollout_position_error_static"].values())
    examples = np.load(run / "examples.npz")  # imagined keypoints, in object order, in arena units
    pred, true, counts = examples["pred_positions"], examples["true_positions"], examples["num_objects"]
    assert pred.shape[:2] == true.shape[:2] and pred.shape[2] == counts.max() and pred.shape[3] == 2
    start = pred[:, 0][np.arange(pred.shape[2])[None] < counts[:, None]]  # encoded keypoints: inside the arena
    assert np.isfinite(pred[0, :, : counts[0]]).all() and ((start >= 0) & (start <= 100)).all()
    assert main(["probe", str(run), "--data", str(tiny / "test.h5"), "--baselines", "none", "--quiet"]) == 0
    assert json.loads((run / "probe.json").read_text())["matching"]["method"] == "masks"
    with pytest.raises(ValueError, match="keypoints need the cnn encoder"):
        ModelConfig(encoder="state", keypoints=True)
    bad = ["train", "--data", str(tiny / "states.h5"), "--encoder", "state", "--keypoints", "--quiet"]
    assert main([*bad, "--out", str(tmp_path / "b")]) == 2 and "keypoints" in capsys.readouterr().err


def test_cli_fixed_colours_keep_the_keypoint_decoder_colours_while_the_rest_trains(tiny, tmp_path, capsys):
    from causal_wm.train import EpisodeArrays

    args = ["--encoder", "cnn", "--keypoints", "--decoder", "--actions", "node", "--num-slots", "4", "--steps", "3"]
    args += ["--batch-size", "4", "--rollout-steps", "2", "--slot-dim", "4", "--hidden", "16", "--lr", "0.05"]
    runs = {}
    for name, extra in (("learned", []), ("fixed", ["--fixed-colours"])):
        runs[name] = tmp_path / name
        train = ["train", "--data", str(tiny / "train.h5"), "--out", str(runs[name]), "--quiet"]
        assert main([*train, *args, *extra]) == 0
    background, colours = EpisodeArrays(str(tiny / "train.h5"), images=True).frequent_colours(4)
    start = torch.as_tensor(colours, dtype=torch.float32).clamp(0.02, 0.98)
    fixed, learned = load_run(runs["fixed"]), load_run(runs["learned"])
    assert not fixed.config.learn_colours and learned.config.learn_colours
    torch.testing.assert_close(fixed.decoder.colours, start)
    dark = torch.as_tensor(background, dtype=torch.float32).clamp(0.02, 0.98)
    torch.testing.assert_close(fixed.decoder.background, dark)
    assert (learned.decoder.colours - start).abs().max() > 1e-3  # the same steps move learned colours
    assert abs(fixed.decoder.log_radius.item() - math.log(0.12)) > 1e-4  # the decoder's radius still trains
    with pytest.raises(ValueError, match="need the keypoint decoder"):
        ModelConfig(encoder="cnn", keypoints=True, learn_colours=False)
    bad = ["train", "--data", str(tiny / "train.h5"), "--encoder", "cnn", "--fixed-colours", "--quiet"]
    assert main([*bad, "--out", str(tmp_path / "b")]) == 2 and "keypoint decoder" in capsys.readouterr().err


def test_frequent_colours_are_the_background_then_the_object_colours(tiny):
    from causal_wm.train import EpisodeArrays
    from envs.scene import PALETTE

    data = EpisodeArrays(str(tiny / "train.h5"), images=True)
    background, colours = data.frequent_colours(3)
    assert np.abs(background - 0.0).max() < 0.05  # black arena
    palette = PALETTE / 255.0
    for colour in colours:  # every object colour is one of the palette's (within the 5-bit quantisation)
        assert np.abs(palette - colour).max(1).min() < 1 / 32 + 1e-6
    with pytest.raises(TrainError, match="image frames"):
        EpisodeArrays(str(tiny / "states.h5"), images=False).frequent_colours(3)


def test_quickstart_smoke(tmp_path, capsys):
    out = tmp_path / "qs"
    tiny = ["--episodes", "6", "--steps", "2", "--graph-steps", "3"]
    assert main(["quickstart", "--out", str(out), *tiny]) == 0
    text = capsys.readouterr().out
    assert "[6/6] figures and report" in text and "Hits@1" in text and "regression (baseline)" in text
    assert f"summary: {out / 'run'} (cnn encoder" in text and f"summary: {out / 'run_state'} (state encoder" in text
    for run in ("run", "run_state"):
        result = json.loads((out / run / "eval.json").read_text())
        assert set(result["hits_at_1"]) == {"1", "5", "10"}
        assert {"auroc", "best_method"} <= set(json.loads((out / run / "probe.json").read_text()))
        assert "effects" in json.loads((out / run / "intervene.json").read_text())
    # the second model is the state recipe that holds the graph, trained for --graph-steps
    state_cfg = yaml.safe_load((out / "run_state" / "config.yaml").read_text())["train"]
    assert state_cfg["encoder"] == "state" and state_cfg["steps"] == 3 and state_cfg["model"]["decoder"] is True
    assert (state_cfg["sparsity"], state_cfg["negatives"], state_cfg["recon_weight"]) == (0.05, "both", 10.0)
    report = (out / "report.md").read_text()
    assert "## `run`: cnn encoder" in report and "## `run_state`: state encoder" in report
    assert "| state encoder, state decoder and dynamics loss" in report  # the comparison table's row
    assert "![roc_curves](figures/roc_curves.png)" in report
    assert "![roc_curves](figures/run_state/roc_curves.png)" in report
    for name in ("roc_curves", "learned_graph", "rollouts", "slot_masks", "intervention_scatter"):
        assert (out / "figures" / f"{name}.png").exists(), name
    for name in ("roc_curves", "learned_graph", "rollouts", "intervention_scatter"):
        assert (out / "figures" / "run_state" / f"{name}.png").exists(), name
    examples = np.load(out / "run" / "examples.npz")
    assert examples["pred_positions"].shape == examples["true_positions"].shape
    assert examples["slot_masks"].shape[:2] == examples["frames"].shape[:2]
    # reruns replace its files (a model left out leaves no stale run behind); --threads reaches the training's config
    assert "threads: 2" in (out / "run" / "config.yaml").read_text()
    assert main(["quickstart", "--out", str(out), *tiny[:4], "--graph-steps", "0", "--threads", "1"]) == 0
    assert "threads: 1" in (out / "run" / "config.yaml").read_text()
    assert not (out / "run_state").exists() and "run_state" not in (out / "report.md").read_text()
    assert not (out / "figures" / "run_state").exists() and (out / "figures" / "roc_curves.png").exists()
    assert main(["quickstart", "--episodes", "0"]) == 2
    assert main(["quickstart", "--graph-steps", "-1"]) == 2
    with pytest.raises(SystemExit) as bad:
        main(["quickstart", "--threads", "0"])
    assert bad.value.code == 2


def test_package_exports_are_lazy():
    import subprocess
    import sys

    code = (
        "import sys, causal_wm; assert 'torch' not in sys.modules; "
        "from causal_wm import WorldModel, load_run, metrics; assert callable(load_run) and metrics.hits_at_k"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_command_line_parser_and_generate_do_not_import_torch():
    """`causal-wm generate` and `--help` start in a fraction of a second and stay small (torch costs ~4 s and
    ~400 MB per process, in every generate worker too): probe's method names come from config, not probe."""
    import subprocess
    import sys

    code = "import sys; from causal_wm.cli import build_parser; import causal_wm.generate; build_parser(); "
    code += "bad = {'torch', 'torch_geometric', 'scipy'} & set(sys.modules); assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_contact_channel_trains_evaluates_and_probes(tiny, tmp_path, capsys):
    import yaml

    common = ["--data", str(tiny / "states.h5"), "--encoder", "state", "--steps", "2", "--batch-size", "4"]
    common += ["--rollout-steps", "2", "--slot-dim", "4", "--hidden", "16", "--quiet", "--contact-channel"]
    assert main(["train", *common, "--out", str(tmp_path / "bad")]) == 2  # no decoder, no positions to read
    assert "contact_channel reads decoded positions and velocities" in capsys.readouterr().err
    assert main(["train", *common[:-1], "--decoder", "--contact-range", "9", "--out", str(tmp_path / "bad")]) == 2
    assert "contact_range must be >= 0 and needs contact_channel" in capsys.readouterr().err
    assert main(["train", *common, "--decoder", "--contact-lookahead", "0.1", "--out", str(tmp_path / "bad")]) == 2
    assert "contact_lookahead must be >= 0 and needs a contact_range" in capsys.readouterr().err
    assert main(["train", *common, "--decoder", "--contact-range-detach", "--out", str(tmp_path / "bad")]) == 2
    assert "contact_range_detach needs a contact_range" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    run = tmp_path / "contact"
    ahead = ["--contact-range", "30", "--contact-lookahead", "0.1", "--contact-range-detach"]
    assert main(["train", *common, "--decoder", *ahead, "--out", str(run)]) == 0
    saved = yaml.safe_load((run / "config.yaml").read_text())["model"]
    assert saved["contact_channel"] is True and saved["contact_range"] == 30 and saved["contact_lookahead"] == 0.1
    model = load_run(run)
    assert model.contact is not None and model.contact.contact_range == 30 and not model.one_round_transition
    assert model.contact.contact_lookahead == 0.1 and model.contact.range_detach and saved["contact_range_detach"]
    z, actions = torch.randn(2, model.config.num_slots, model.config.latent_dim), torch.tensor([0, 3])
    with torch.no_grad():
        out = model.transition(z, actions)
        obj_action, node_action = model.action_inputs(actions, None, z.shape[1])
        gated = model.transition_model(z, obj_action=obj_action, node_action=node_action)
        assert torch.equal(out.gates, gated.gates)  # the learned graph is the gated messages' alone
        contact = model.contact(model.decoder(z), state_scale=model.encoder.std[:4])  # arena units and seconds
        assert torch.allclose(out.delta, gated.delta + contact, atol=1e-6)
    assert main(["evaluate", str(run), "--data", str(tiny / "states.h5"), "--horizons", "1,2"]) == 0
    assert "0 steps: position error" in capsys.readouterr().out
    assert json.loads((run / "eval.json").read_text())["readout_position_error"] >= 0
    assert main(["probe", str(run), "--data", str(tiny / "states.h5"), "--baselines", "none", "--quiet"]) == 0
    assert set(json.loads((run / "probe.json").read_text())["methods"]) >= {"gates", "jacobian"}
    with pytest.raises(ValueError, match="needs the state encoder and decoder"):
        ModelConfig(encoder="cnn", decoder=True, contact_channel=True)


def test_cli_substeps_train_evaluate_and_probe(tiny, tmp_path, capsys):
    import yaml

    common = ["--data", str(tiny / "states.h5"), "--encoder", "state", "--steps", "2", "--batch-size", "4"]
    common += ["--rollout-steps", "2", "--slot-dim", "4", "--hidden", "16", "--quiet", "--decoder"]
    assert main(["train", *common, "--substeps", "0", "--out", str(tmp_path / "bad")]) == 2
    assert "substeps must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    run = tmp_path / "sub"
    assert main(["train", *common, "--substeps", "2", "--contact-channel", "--out", str(run)]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["model"]["substeps"] == 2
    model = load_run(run)
    assert model.config.substeps == 2 and not model.one_round_messages
    assert main(["evaluate", str(run), "--data", str(tiny / "states.h5"), "--horizons", "1,2"]) == 0
    assert main(["probe", str(run), "--data", str(tiny / "states.h5"), "--baselines", "none", "--quiet"]) == 0
    assert set(json.loads((run / "probe.json").read_text())["methods"]) >= {"gates", "jacobian"}


def test_cli_actions_choose_how_actions_reach_the_slots_and_probe_reads_the_action_node(tiny, tmp_path, capsys):
    import yaml

    common = ["--data", str(tiny / "states.h5"), "--encoder", "state", "--steps", "2", "--batch-size", "4"]
    common += ["--rollout-steps", "1", "--slot-dim", "4", "--hidden", "16", "--quiet", "--sparsity", "0.1"]
    for actions, node, obj in (("node", True, False), ("both", True, True), ("object", False, True)):
        run = tmp_path / actions
        assert main(["train", *common, "--actions", actions, "--out", str(run)]) == 0
        model = yaml.safe_load((run / "config.yaml").read_text())["model"]
        assert (model["action_node"], model["object_actions"]) == (node, obj)
        logged = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert ("action_sparsity" in logged) == node
    run = tmp_path / "node"
    assert main(["probe", str(run), "--data", str(tiny / "states.h5"), "--baselines", "none", "--quiet"]) == 0
    result = json.loads((run / "probe.json").read_text())
    assert result["action_pushes"] > 0
    assert set(result["action_accuracy"]) == set(ACTION_READOUTS)
    assert all(0.0 <= v <= 1.0 for v in result["action_accuracy"].values())
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *common, "--actions", "telepathy", "--out", str(tmp_path / "bad")])
    assert exit_info.value.code == 2 and "--actions" in capsys.readouterr().err


def test_state_runs_read_the_type_one_hot_and_resume_older_runs(tiny, tmp_path, capsys):
    import h5py

    with h5py.File(tiny / "states.h5") as f:
        features = json.loads(f.attrs["state_features"])
        states, counts = f["states"][:], f["num_objects"][:]
    col = features.index("type")
    real = np.arange(states.shape[2])[None] < counts[:, None]
    num_types = int(states[:, 0, :, col][real].max()) + 1
    c = cfg(tiny, "state", data=str(tiny / "states.h5"), steps=4)
    train(c, tmp_path / "new", progress=False)
    model = load_run(tmp_path / "new")
    assert (model.config.type_feature, model.config.num_types) == (col, num_types)
    assert model.encoder.mlp[0].in_features == len(features) - 1 + num_types
    # A run trained before the option (its checkpoint's model config has no type fields) resumes as it was built.
    old = cfg(tiny, "state", data=str(tiny / "states.h5"), steps=4, model=c.model | {"type_feature": -1})
    train(old, tmp_path / "old", progress=False)
    path = tmp_path / "old/checkpoints/last.pt"
    saved = torch.load(path, weights_only=False)
    for key in ("type_feature", "num_types"):
        del saved["config"]["model"][key]
    saved["train_config"]["model"] = dict(c.model)  # as if trained without --types
    torch.save(saved, path)
    train(c, tmp_path / "old", resume=True, progress=False)  # rebuilds the saved model: its weights load
    assert load_run(tmp_path / "old").encoder.type_feature is None
    # --types number keeps the type a number.
    run = tmp_path / "number"
    args = ["train", "--data", str(tiny / "states.h5"), "--encoder", "state", "--steps", "2", "--batch-size", "4"]
    assert main([*args, "--types", "number", "--out", str(run), "--quiet"]) == 0
    assert load_run(run).config.type_feature == -1
    with pytest.raises(ValueError, match="num_types"):
        ModelConfig(encoder="state", num_features=8, type_feature=7, num_types=0)


def test_imagine_cuts_pair_gates_at_every_step():
    """do(cut_spring) on a model whose gates come from the pair: gate 0 both ways on the cut pair at each imagined
    step, and at the first step only the pair's own slots change."""
    torch.manual_seed(0)
    model = WorldModel(ModelConfig(encoder="state", num_slots=4, slot_dim=4, hidden=16, num_features=8)).eval()
    z = torch.randn(2, 4, 4)
    actions = torch.zeros(2, 3, dtype=torch.long)
    with torch.no_grad():
        plain = model.imagine(z, actions)
        cut = model.imagine(z, actions, cut=[(0, 1)])
    assert bool((cut["gates"][:, :, 0, 1] == 0).all() and (cut["gates"][:, :, 1, 0] == 0).all())
    assert bool((plain["gates"][:, 0, 0, 1] > 0).all())
    first = (cut["z"][:, 1] - plain["z"][:, 1]).abs().amax(dim=(0, 2))  # (K,)
    assert first[0] > 0 and first[1] > 0 and first[2] == 0 and first[3] == 0
    torch.testing.assert_close(cut["gates"][:, 0, 2:], plain["gates"][:, 0, 2:])
    with pytest.raises(ValueError, match="two different slots"):
        model.imagine(z, actions, cut=[(2, 2)])
    ungated = WorldModel(ModelConfig(encoder="state", num_slots=4, slot_dim=4, hidden=16, num_features=8, gated=False))
    with pytest.raises(ValueError, match="ungated"):
        ungated.imagine(z, actions, cut=[(0, 1)])


def test_state_decoder_trains_with_more_slots_than_object_columns(tiny, tmp_path):
    """The object-counts sweep trains 10 slots on files with 5 object columns; the decoder's targets are padded."""
    model = {"slot_dim": 4, "hidden": 16, "encoder_hidden": 8, "decoder": True, "num_slots": 6}
    last = train(cfg(tiny, "state", data=str(tiny / "states.h5"), model=model), tmp_path / "run", progress=False)
    assert np.isfinite(last["dynamics"]) and last["recon"] > 0
    assert load_run(tmp_path / "run").config.num_slots == 6


def test_dynamics_beta_sets_where_the_dynamics_loss_turns_linear(tiny, tmp_path):
    d = torch.tensor([0.5, 2.0, 30.0])
    assert torch.equal(huber(d, torch.zeros(3), 1.0), torch.nn.functional.smooth_l1_loss(d, 0 * d, reduction="none"))
    assert torch.allclose(huber(d, torch.zeros(3), 1e4), 0.5 * d**2)  # a large beta: half the squared error
    assert torch.allclose(huber(d, torch.zeros(3), 10.0), torch.tensor([0.125, 2.0, 250.0]))  # 10 * (30 - 5)
    model = {"slot_dim": 4, "hidden": 16, "encoder_hidden": 8, "decoder": True}
    losses = [
        train(
            cfg(tiny, "state", data=str(tiny / "states.h5"), model=model, steps=1, dynamics_beta=beta),
            tmp_path / f"run{beta}",
            progress=False,
        )["dynamics"]
        for beta in (1.0, 1e4)
    ]
    assert losses[1] > losses[0]  # the same first batch, its velocity jumps weighed quadratically
    with pytest.raises(TrainError, match="dynamics_beta must be positive"):
        TrainConfig(dynamics_beta=0.0)


def test_teacher_forcing_scores_one_step_predictions_from_the_encoded_states(tiny, tmp_path):
    model = {"slot_dim": 4, "hidden": 16, "encoder_hidden": 8, "decoder": True}
    data = str(tiny / "states.h5")

    def first_dynamics(name, **kw):
        c = cfg(tiny, "state", data=data, model=model, steps=1, **kw)
        return train(c, tmp_path / name, progress=False)["dynamics"]

    # One rollout step: the free rollout's only step is the one-step prediction from the first encoded state.
    assert first_dynamics("r1", rollout_steps=1) == pytest.approx(
        first_dynamics("r1tf", rollout_steps=1, teacher_forcing=True)
    )
    # Longer rollouts: later steps start from the encoded states instead of the imagined ones.
    assert first_dynamics("r3", rollout_steps=3) != pytest.approx(
        first_dynamics("r3tf", rollout_steps=3, teacher_forcing=True)
    )
    with pytest.raises(TrainError, match="teacher forcing .* needs --encoder state --decoder"):
        train(cfg(tiny, "cnn", teacher_forcing=True), tmp_path / "cnn", progress=False)
    assert not (tmp_path / "cnn").exists()


def test_rollout_position_error_against_hand_worked_rollouts(tiny):
    from causal_wm.evaluate import _rollout_position_errors
    from causal_wm.train import EpisodeArrays

    data = EpisodeArrays(str(tiny / "states.h5"), images=False)
    n = int(data.num_objects.max())

    class ReadsXY:  # a stand-in model whose slots are the positions themselves
        config = ModelConfig(encoder="state", num_slots=n)

        @staticmethod
        def positions(z):
            return z[..., :2]

    def rollout(offset, t):
        return {h: [torch.from_numpy(data.states[:, t(h), :n, :2] + offset)] for h in (1, 3)}

    exact = _rollout_position_errors(ReadsXY, rollout(0.0, lambda h: h), data, 0, None, px=2.0)
    assert exact["rollout_position_error"] == {"1": 0.0, "3": 0.0}
    assert "readout_position_error" not in exact  # no encoded start given
    start = torch.from_numpy(data.states[:, 0, :n, :2] + np.float32([3, 4]))
    shifted = _rollout_position_errors(
        ReadsXY, rollout(np.float32([3, 4]), lambda h: h), data, 0, None, px=2.0, z0=start
    )
    assert shifted["rollout_position_error"] == pytest.approx({"1": 5.0, "3": 5.0})
    assert shifted["readout_position_error"] == pytest.approx(5.0)
    assert shifted["rollout_position_error_px"] == pytest.approx({"1": 10.0, "3": 10.0})
    frozen = _rollout_position_errors(ReadsXY, rollout(0.0, lambda h: 0), data, 0, None, px=2.0)
    assert frozen["rollout_position_error"] == pytest.approx(frozen["rollout_position_error_static"])
    assert 0 < frozen["rollout_position_error_static"]["1"] < frozen["rollout_position_error_static"]["3"]


def test_precision_is_validated(tiny, tmp_path, capsys):
    with pytest.raises(TrainError, match="precision must be one of fp32, bf16"):
        cfg(tiny, "cnn", precision="fp16")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--data", str(tiny / "train.h5"), "--out", str(tmp_path / "r"), "--precision", "fp16"])
    assert exit_info.value.code == 2 and "invalid choice: 'fp16'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _autocast_model(kind: str) -> tuple[WorldModel, torch.Tensor]:
    encoder = "cnn" if kind == "keypoints" else kind
    model = small_model(encoder, decoder=True, keypoints=kind == "keypoints", action_node=kind == "keypoints")
    g = torch.Generator().manual_seed(0)
    obs = (
        torch.rand(2, 3, 8, generator=g)
        if encoder == "state"
        else torch.randint(0, 255, (2, 2, 32, 32, 3), generator=g)
    )
    return model.eval(), obs if encoder == "state" else obs.to(torch.uint8)


@pytest.mark.parametrize("kind", ["cnn", "keypoints", "slots", "state"])
def test_bf16_autocast_keeps_slots_rollouts_and_state_decoding_in_float32(kind):
    torch.manual_seed(0)
    model, obs = _autocast_model(kind)
    actions, positions = torch.tensor([0, 3]), torch.rand(2, 3, 2)
    with torch.no_grad():
        torch.manual_seed(1)
        ref = model.encode(obs)
        ref_delta = model.transition(ref.slots, actions, positions).delta
        with torch.autocast("cpu", dtype=torch.bfloat16):
            torch.manual_seed(1)
            out = model.encode(obs)
            delta = model.transition(ref.slots, actions, positions).delta
            decoded = model.decode_states(out.slots) if kind == "state" else None
    assert out.slots.dtype == delta.dtype == torch.float32
    assert out.masks is None or out.masks.dtype == torch.float32
    # The transition's matrix products did run in bfloat16: Δz is near the float32 one, not equal to it.
    assert not torch.equal(delta, ref_delta)
    torch.testing.assert_close(delta, ref_delta, atol=0.05 * ref_delta.abs().max().item(), rtol=0)
    if kind == "state":  # the state encoder and decoder are float32 islands: exact
        assert torch.equal(out.slots, ref.slots)
        assert decoded.dtype == torch.float32 and torch.equal(decoded, model.decode_states(ref.slots))
    elif kind == "keypoints":  # the centroids and velocities (the slot's explicit entries) come from float32 maps
        assert not torch.equal(out.slots, ref.slots)
        torch.testing.assert_close(out.slots[..., 4:8], ref.slots[..., 4:8], atol=0.02, rtol=0)
    elif kind == "cnn":
        assert not torch.equal(out.slots, ref.slots)
        torch.testing.assert_close(out.slots, ref.slots, atol=0.05 * ref.slots.abs().max().item(), rtol=0)
    # (Slot Attention's competition for pixels can settle differently in bfloat16 on an untrained model, so its
    # slots are compared in dtype only.)


@pytest.mark.parametrize("encoder", ["cnn", "state"])
def test_bf16_training_loss_is_near_the_float32_loss(tiny, encoder):
    import causal_wm.train as tr

    data = str(tiny / ("states.h5" if encoder == "state" else "train.h5"))
    model_cfg = {"slot_dim": 4, "hidden": 16, "encoder_hidden": 8, "decoder": True}
    c = cfg(tiny, encoder, data=data, sparsity=0.05, recon_weight=10.0, model=model_cfg)
    arrays = EpisodeArrays(data, images=encoder != "state")
    torch.manual_seed(0)
    model = tr.build_model(c, arrays)
    history = model.config.history if model.config.uses_images else 1
    batch = arrays.window(np.arange(4), np.zeros(4, dtype=int), c.rollout_steps + 1, history)
    losses = {}
    for precision in ("fp32", "bf16"):
        with tr.training_autocast(precision, torch.device("cpu")):
            parts = tr.rollout_loss(model, batch, c, torch.Generator().manual_seed(1))
        assert parts["loss"].dtype == torch.float32
        losses[precision] = {k: v.item() for k, v in parts.items()}
    for k, v in losses["fp32"].items():
        assert math.isfinite(losses["bf16"][k]) and abs(losses["bf16"][k] - v) <= 0.05 * abs(v) + 1e-3, k
    assert losses["bf16"] != losses["fp32"]


def test_bf16_training_records_its_precision_and_warns_without_native_bfloat16(tiny, tmp_path, monkeypatch, capsys):
    import causal_wm.train as tr

    monkeypatch.setattr(tr, "native_bf16", lambda device: False)
    c = cfg(tiny, "state", data=str(tiny / "states.h5"), steps=2, precision="bf16")
    with pytest.warns(UserWarning, match="bfloat16 is emulated"):
        last = train(c, tmp_path / "run", progress=False)
    assert np.isfinite(last["loss"])
    assert yaml.safe_load((tmp_path / "run/config.yaml").read_text())["train"]["precision"] == "bf16"
    args = ["train", "--data", str(tiny / "states.h5"), "--encoder", "state", "--out", str(tmp_path / "c")]
    args += ["--steps", "2", "--batch-size", "4", "--quiet"]
    with pytest.warns(UserWarning, match="emulated"):
        assert main([*args, "--precision", "bf16"]) == 0
    assert main([*args, "--resume"]) == 2  # resuming in float32 is a changed config
    assert "differs from the run's config.yaml in ['precision']" in capsys.readouterr().err


def test_bf16_is_refused_on_a_gpu_without_bfloat16(tiny, tmp_path, monkeypatch):
    import causal_wm.train as tr

    monkeypatch.setattr(tr, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(tr, "native_bf16", lambda device: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Old GPU")
    c = cfg(tiny, "state", data=str(tiny / "states.h5"), precision="bf16")
    with pytest.raises(TrainError, match="--precision bf16: Old GPU does not support bfloat16"):
        train(c, tmp_path / "run", progress=False, device="cuda")
    assert not (tmp_path / "run").exists()  # refused before anything was written
