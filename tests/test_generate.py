"""`causal-wm generate` and `info`: round trip, worker-count identity, atomic writes, and bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import envs
from causal_wm.cli import main
from causal_wm.config import GenerateConfig
from causal_wm.data import open_dataset, validate
from causal_wm.generate import generate, simulate_episode

TINY = ["--episodes", "6", "--steps", "8", "--num-objects", "2-4", "--image-size", "32", "--shard-size", "4", "--quiet"]


def test_generate_round_trip(tmp_path, capsys):
    out = tmp_path / "d.h5"
    assert main(["generate", "--scene", "springs", "--out", str(out), "--workers", "1", *TINY]) == 0
    info = validate(out)
    assert (info.num_episodes, info.steps, info.max_objects, info.image_size) == (6, 8, 4, 32)
    assert set(info.optional_keys) == {"actions", "obs", "masks", "contacts", "influence"}
    assert info.state_features[:4] == ["x", "y", "vx", "vy"]
    assert info.config["seed"] == 0 and info.config["scene_config"]["num_objects"] == [2, 4]
    with open_dataset(out) as ds:
        ep = ds.episode(3)
    # The stored episode is exactly what the simulator produces for (seed, episode index).
    cfg = GenerateConfig(episodes=6, steps=8, num_objects="2-4", image_size=32)
    scene = envs.make_scene("springs", num_objects="2-4", image_size=32)
    expected, _ = simulate_episode(scene, cfg, 3)
    n = expected["num_objects"]
    assert ep["num_objects"] == n
    for key in ("states", "obs", "masks", "adjacency", "contacts", "actions", "influence"):
        assert np.array_equal(ep[key], expected[key]), key
    assert np.all(ep["states"][:, n:] == 0) and ep["masks"].max() <= n
    assert main(["info", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 6 and summary["mean_speed_px_per_frame"] > 0


def test_same_bytes_for_one_and_two_workers(tmp_path):
    cfg = GenerateConfig(episodes=10, steps=6, num_objects="3-5", image_size=32, shard_size=3)
    generate(cfg, tmp_path / "a.h5", workers=1, progress=False)
    generate(cfg, tmp_path / "b.h5", workers=2, progress=False)
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert sorted(a) == sorted(b)
        for key in a:
            assert a[key][...].tobytes() == b[key][...].tobytes(), key
        assert a.attrs["config"] == b.attrs["config"]
    generate(GenerateConfig(**{**vars(cfg), "seed": 1}), tmp_path / "c.h5", workers=1, progress=False)
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "c.h5") as c:
        assert not np.array_equal(a["states"][...], c["states"][...])


def test_state_only_file(tmp_path):
    out = tmp_path / "s.h5"
    assert (
        main(
            [
                "generate",
                "--scene",
                "charges",
                "--no-images",
                "--influence-steps",
                "0",
                "--out",
                str(out),
                "--workers",
                "1",
                *TINY,
            ]
        )
        == 0
    )
    info = validate(out)
    assert not info.has_images and "influence" not in info.optional_keys


@pytest.mark.parametrize(
    "args, message",
    [
        (["--episodes", "0"], "--episodes must be positive"),
        (["--steps", "1"], "--steps must be at least 2"),
        (["--num-objects", "0"], "must be positive"),
        (["--num-objects", "5-3"], "larger than max"),
        (["--image-size", "8"], "at least 16"),
        (["--num-objects", "60"], "do not fit"),
        (["--set", "stiffness=-1"], "stiffness > 0"),
        (["--set", "wobble=1"], "unknown springs option"),
        (["--workers", "0"], "--workers must be at least 1"),
    ],
)
def test_bad_input_exits_nonzero_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "x.h5"
    assert main(["generate", "--out", str(out), "--episodes", "2", "--steps", "4", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []


def test_unknown_scene_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--scene", "gas", "--out", str(tmp_path / "x.h5")])
    assert exc.value.code == 2 and "invalid choice: 'gas'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_overwrite(tmp_path, capsys):
    out = tmp_path / "d.h5"
    out.write_bytes(b"precious results")
    assert main(["generate", "--out", str(out), "--workers", "1", *TINY]) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"precious results"
    assert main(["generate", "--out", str(out), "--workers", "1", "--overwrite", *TINY]) == 0
    assert validate(out).num_episodes == 6


def test_failed_run_keeps_the_earlier_file(tmp_path, monkeypatch):
    out = tmp_path / "d.h5"
    assert main(["generate", "--out", str(out), "--workers", "1", *TINY]) == 0
    before = out.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr("causal_wm.generate.simulate_episode", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        main(["generate", "--out", str(out), "--workers", "1", "--overwrite", *TINY])
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL])
def test_killed_run_leaves_no_output(tmp_path, sig):
    out = tmp_path / "big.h5"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "causal_wm.cli",
            "generate",
            "--out",
            str(out),
            "--episodes",
            "100000",
            "--steps",
            "20",
            "--workers",
            "1",
            "--quiet",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # a background shell may ignore SIGINT
    )
    deadline = time.time() + 30
    while not any(p.name.endswith(".tmp") for p in tmp_path.iterdir()) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=30)
    report = f"exit {proc.returncode}, files {sorted(p.name for p in tmp_path.iterdir())}, stderr:\n{stderr.decode()}"
    assert proc.returncode != 0 and not out.exists(), report
    if sig != signal.SIGKILL:  # Ctrl-C and kill also remove the temporary files
        assert list(tmp_path.iterdir()) == [], report


def test_a_signal_inside_a_pymunk_callback_is_delivered_again_outside_it(tmp_path):
    """cffi swallows an exception raised in a pymunk callback and chipmunk can then crash (SIGSEGV, temporary files
    left): the handler must not raise there, but re-deliver the signal once the callback has returned."""
    from causal_wm import cli
    from causal_wm.errors import STOP

    namespace: dict = {"sys": sys}
    callback = os.path.join(str(tmp_path), "pymunk", "_callbacks.py")
    exec(compile("def callback(inner):\n    return inner()\n", callback, "exec"), namespace)
    inside = namespace["callback"](lambda: sys._getframe())  # a frame called from the callback
    outside = sys._getframe()
    assert cli._in_foreign_callback(inside) and not cli._in_foreign_callback(outside)

    received = []
    previous = signal.signal(signal.SIGUSR1, lambda signum, frame: received.append(signum))
    try:
        cli._terminate(signal.SIGUSR1, inside)  # no exception inside the callback ...
        assert STOP.is_set()
        deadline = time.time() + 5
        while not received and time.time() < deadline:
            time.sleep(0.01)
        assert received == [signal.SIGUSR1]  # ... the signal comes back, to be handled outside it
        with pytest.raises(KeyboardInterrupt):
            cli._terminate(signal.SIGUSR1, outside)
    finally:
        signal.signal(signal.SIGUSR1, previous)
        STOP.clear()
