"""Tests for causal_wm.data: schema validation, layout/merge, lazy readers, summary and torch datasets."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from causal_wm import data
from causal_wm.data import (
    DatasetError,
    WindowDataset,
    copy_episodes,
    create_layout,
    format_summary,
    open_dataset,
    validate,
    write_attrs,
)

E, T, N, F, S = 5, 12, 3, 5, 8  # T > 10 so image chunks (10 frames) leave a partial edge chunk
FEATURES = ["x", "y", "vx", "vy", "angle"]
CONFIG = {"arena_size": 10.0, "image_size": S, "dt": 0.1, "seed": 3}


def random_arrays(num_episodes=E, *, state_only=False, seed=0):
    """Random arrays following the schema, (E, ...) each."""
    rng = np.random.default_rng(seed)
    arrays = {
        "states": rng.normal(size=(num_episodes, T, N, F)).astype(np.float32),
        "num_objects": rng.integers(1, N + 1, size=num_episodes).astype(np.int32),
        "adjacency": rng.integers(0, 2, size=(num_episodes, N, N)).astype(np.uint8),
    }
    if not state_only:
        contacts = rng.integers(0, 2, size=(num_episodes, T, N, N)).astype(np.uint8)
        arrays |= {
            "actions": rng.integers(0, 1 + 4 * N, size=(num_episodes, T - 1)).astype(np.int32),
            "obs": rng.integers(0, 256, size=(num_episodes, T, S, S, 3)).astype(np.uint8),
            "masks": rng.integers(0, N + 1, size=(num_episodes, T, S, S)).astype(np.uint8),
            "contacts": contacts | contacts.transpose(0, 1, 3, 2),
            "influence": rng.random(size=(num_episodes, N, N)).astype(np.float32),
        }
    return arrays


def layout(h5, arrays):
    """create_layout matching which optional arrays are present."""
    create_layout(
        h5,
        num_episodes=len(arrays["states"]),
        steps=T,
        max_objects=N,
        num_features=F,
        image_size=S if "obs" in arrays else None,
        with_actions="actions" in arrays,
        with_contacts="contacts" in arrays,
        with_influence="influence" in arrays,
    )


def write_file(path, arrays, config=CONFIG, stats=None):
    with h5py.File(path, "w") as h5:
        layout(h5, arrays)
        for k, v in arrays.items():
            h5[k][...] = v
        write_attrs(h5, scene="billiards", config=config, state_features=FEATURES[:F], stats=stats)
    return path


@pytest.fixture
def full(tmp_path):
    arrays = random_arrays()
    return write_file(tmp_path / "full.h5", arrays), arrays


@pytest.fixture
def state_only(tmp_path):
    arrays = random_arrays(state_only=True)
    return write_file(tmp_path / "states.h5", arrays), arrays


# ------------------------------------------------------------------------------------------- layout


def test_create_layout_chunks_and_filters(full):
    path, _ = full
    with h5py.File(path) as h5:
        expected = {
            "states": (1, T, N, F),
            "num_objects": (E,),
            "adjacency": (1, N, N),
            "actions": (1, T - 1),
            "contacts": (1, T, N, N),
            "influence": (1, N, N),
            "obs": (1, 10, S, S, 3),
            "masks": (1, 10, S, S),
        }
        assert {k: h5[k].chunks for k in h5} == expected
        for ds in h5.values():
            assert (ds.compression, ds.shuffle, ds.fletcher32) == ("lzf", False, False)


# -------------------------------------------------------------------------------------- validation


def test_validate_full_file(full):
    path, _ = full
    info = validate(path)
    assert (info.path, info.scene) == (str(path), "billiards")
    assert (info.num_episodes, info.steps, info.max_objects, info.num_features) == (E, T, N, F)
    assert info.state_features == FEATURES
    assert (info.image_size, info.has_images) == (S, True)
    assert info.optional_keys == ("actions", "obs", "masks", "contacts", "influence")
    assert info.config == CONFIG and info.stats == {}
    with h5py.File(path) as h5:
        assert validate(h5) == info


def test_state_only_file_validates(state_only):
    path, arrays = state_only
    info = validate(path)
    assert (info.image_size, info.has_images, info.optional_keys) == (None, False, ())
    with open_dataset(path) as ds:
        np.testing.assert_array_equal(ds.window(1, 2, 3)["states"], arrays["states"][1, 2:5])


def replace(name, fn):
    """Mutation replacing dataset ``name`` by ``fn(old array)``."""

    def mutate(h5):
        new = fn(h5[name][()])
        del h5[name]
        h5[name] = new

    return mutate


def set_attr(name, value):
    return lambda h5: h5.attrs.__setitem__(name, value)


BAD_CASES = {
    "missing dataset": (lambda h5: h5.__delitem__("adjacency"), "missing required dataset 'adjacency'"),
    "states dtype": (
        replace("states", lambda a: a.astype(np.int64)),
        "dataset 'states' has dtype int64, expected float32",
    ),
    "num_objects dtype": (
        replace("num_objects", lambda a: a.astype(np.float32)),
        "dataset 'num_objects' has dtype float32, expected an integer dtype",
    ),
    "contacts dtype": (
        replace("contacts", lambda a: a.astype(np.float32)),
        "dataset 'contacts' has dtype float32, expected uint8",
    ),
    "episodes": (replace("obs", lambda a: a[:3]), "'obs' has 3 episodes but 'states' has 5"),
    "objects": (replace("adjacency", lambda a: a[:, :2]), "'adjacency' has 2 object slots but 'states' has 3"),
    "action steps": (replace("actions", lambda a: a[:, :-1]), "'actions' has 10 steps but 'states' has 12"),
    "mask size": (replace("masks", lambda a: a[:, :, :4, :4]), "'masks' has 4 rows but 'obs' has 8"),
    "obs rank": (
        replace("obs", lambda a: a[..., 0]),
        "dataset 'obs' has shape (5, 12, 8, 8), expected (E, T, H, W, 3)",
    ),
    "obs channels": (replace("obs", lambda a: a[..., :2]), "dataset 'obs' has size 2 on axis 4, expected 3"),
    "num_objects range": (replace("num_objects", lambda a: a * 0), "'num_objects' must lie in [1, 3]"),
    "missing attr": (lambda h5: h5.attrs.__delitem__("scene"), "missing required attr 'scene'"),
    "state_features order": (
        set_attr("state_features", json.dumps(["y", "x", "vx", "vy", "angle"])),
        "attr 'state_features' must start with x, y, vx, vy",
    ),
    "state_features count": (
        set_attr("state_features", json.dumps(FEATURES[:4])),
        "attr 'state_features' names 4 features but 'states' has 5",
    ),
    "config json": (set_attr("config", "{not json"), "attr 'config' is not valid JSON"),
    "config type": (set_attr("config", "[1, 2]"), "attr 'config' must be a JSON dict, got list"),
    "newer schema": (set_attr("schema_version", 7), "schema_version 7 is newer than this causal-wm supports (1)"),
    "schema type": (set_attr("schema_version", "1"), "attr 'schema_version' must be an integer"),
}


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_files_are_refused_naming_the_key(full, case):
    path, _ = full
    mutate, expected = BAD_CASES[case]
    with h5py.File(path, "a") as h5:
        mutate(h5)
    with pytest.raises(DatasetError) as err:
        validate(path)
    msg = str(err.value)
    assert msg.startswith(str(path)) and expected in msg and "\n" not in msg


def test_non_square_frames_are_refused(full):
    path, _ = full
    with h5py.File(path, "a") as h5:
        del h5["masks"]
        replace("obs", lambda a: a[:, :, :, :4])(h5)
    with pytest.raises(DatasetError, match=r"'obs' has 8x4 frames, expected square"):
        validate(path)


def test_truncated_file_is_refused(full):
    path, _ = full
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(DatasetError) as err:
        validate(path)
    msg = str(err.value)
    assert msg.startswith(f"{path}: cannot be read as HDF5 (truncated or not an HDF5 file): ")
    assert "truncated" in msg.split("):", 1)[1]  # h5py's own reason follows


def test_non_hdf5_and_missing_files_are_refused(tmp_path):
    path = tmp_path / "notes.h5"
    path.write_text("these are not the episodes you are looking for\n")
    with pytest.raises(DatasetError, match=r"notes\.h5: cannot be read as HDF5"):
        validate(path)
    with pytest.raises(DatasetError, match=r"nope\.h5: no such file"):
        open_dataset(tmp_path / "nope.h5")


def test_foreign_hdf5_is_refused(tmp_path):
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as h5:
        h5["images"] = np.zeros((2, 4, 4), np.uint8)
        h5["labels"] = np.zeros(2, np.int64)
    with pytest.raises(DatasetError, match=r"not a causal-wm dataset: .*'states'.*found 'images', 'labels'"):
        validate(path)


# --------------------------------------------------------------------------------------------- merge


def chunk_bytes(ds):
    """{chunk offset: (filter mask, raw bytes)} of every stored chunk."""
    infos = [ds.id.get_chunk_info(i) for i in range(ds.id.get_num_chunks())]
    return {info.chunk_offset: ds.id.read_direct_chunk(info.chunk_offset) for info in infos}


def test_copy_episodes_merges_shards_byte_for_byte(tmp_path, monkeypatch):
    arrays = random_arrays(seed=7)
    direct = write_file(tmp_path / "direct.h5", arrays)
    shards = [
        write_file(tmp_path / f"shard{i}.h5", {k: v[a:b] for k, v in arrays.items()})
        for i, (a, b) in enumerate([(0, 2), (2, 5)])
    ]
    sliced, copy_slices = [], data._copy_slices
    monkeypatch.setattr(data, "_copy_slices", lambda s, d, at: (sliced.append(s.name), copy_slices(s, d, at)))
    merged = tmp_path / "merged.h5"
    with h5py.File(merged, "w") as dst:
        layout(dst, arrays)
        start = 0
        for shard in shards:
            with h5py.File(shard) as src:
                start += copy_episodes(src, dst, start)
        write_attrs(dst, scene="billiards", config=CONFIG, state_features=FEATURES)
    assert start == E
    assert set(sliced) == {"/num_objects"}  # shard chunking (2,)/(3,) differs from (5,): decompressed copy
    validate(merged)
    with h5py.File(direct) as a, h5py.File(merged) as b:
        assert set(a) == set(b) == set(arrays)
        for k in arrays:
            np.testing.assert_array_equal(b[k][()], arrays[k])
            assert chunk_bytes(a[k]) == chunk_bytes(b[k]), k
        assert len(chunk_bytes(b["obs"])) == E * 2  # 12 frames in chunks of 10


def test_copy_episodes_refuses_mismatched_layout(tmp_path):
    src = write_file(tmp_path / "src.h5", random_arrays(3))
    with h5py.File(tmp_path / "dst.h5", "w") as dst, h5py.File(src) as s:
        layout(dst, random_arrays(4))
        with pytest.raises(DatasetError, match=r"cannot copy '\w+'"):
            copy_episodes(s, dst, 2)  # 3 episodes do not fit at offset 2 of 4


# ------------------------------------------------------------------------------------------ reading


def test_episode_and_window_round_trip(full):
    path, arrays = full
    with open_dataset(path) as ds:
        assert len(ds) == E and ds.info.num_episodes == E
        for e in range(E):
            got = ds.episode(e)
            assert set(got) == set(arrays)
            for k, v in arrays.items():
                np.testing.assert_array_equal(got[k], v[e])
        win = ds.window(3, 4, 3)
        for k in ("states", "obs", "masks", "contacts"):
            np.testing.assert_array_equal(win[k], arrays[k][3, 4:7])
        np.testing.assert_array_equal(win["actions"], arrays["actions"][3, 4:6])
        for k in ("adjacency", "influence", "num_objects"):
            np.testing.assert_array_equal(win[k], arrays[k][3])
        assert set(ds.episode(1, keys="states")) == {"states"}
        assert ds.window(0, T - 2, 2, keys=["actions"])["actions"].shape == (1,)
        with pytest.raises(IndexError):
            ds.window(0, T - 2, 3)
        with pytest.raises(IndexError):
            ds.episode(E)


def test_missing_key_names_it(state_only):
    path, _ = state_only
    with open_dataset(path) as ds, pytest.raises(DatasetError, match=r"has no 'contacts'"):
        ds.episode(0, keys=["states", "contacts"])


def test_open_dataset_is_lazy(full):
    path, _ = full
    ds = open_dataset(path)
    assert set(ds._dsets) == set(data.REQUIRED_DATASETS) | set(data.OPTIONAL_DATASETS)
    assert all(isinstance(v, h5py.Dataset) for v in ds._dsets.values())
    assert not any(isinstance(v, np.ndarray) for v in vars(ds).values())
    with ds:
        assert ds._file.id.valid
    assert not ds._file.id.valid


# ------------------------------------------------------------------------------------------ summary


def summary_file(path, config):
    """2 episodes, 3 steps, 3 slots with known speeds, edges and contact onsets (padding made noisy)."""
    states = np.zeros((2, 3, 3, 4), np.float32)  # (E, T, N, F)
    states[0, :, 0, 0] = [0, 3, 6]  # ep 0, object 0: 3 units/step
    states[0, :, 2, 0] = [0, 100, 300]  # ep 0, object 2 is padding: ignored
    states[1, :, 0, :2] = [[0, 0], [3, 4], [6, 8]]  # ep 1, object 0: 5 units/step
    adjacency = np.zeros((2, 3, 3), np.uint8)
    adjacency[0, 0, 1] = adjacency[0, 1, 1] = adjacency[0, 0, 2] = 1  # only 0->1 counts: 1 of 2 pairs
    adjacency[1, 0, 1] = adjacency[1, 1, 2] = adjacency[1, 2, 0] = 1  # 3 of 6 pairs
    contacts = np.zeros((2, 3, 3, 3), np.uint8)
    contacts[0, [0, 2], 0, 1] = 1  # on, off, on: 1 onset (t=0 is no onset)
    contacts[0, 1, 1, 2] = 1  # padding pair: ignored
    contacts[1, 1, 0, 2] = 1  # 1 onset
    contacts[1, 1:, 1, 2] = 1  # 1 onset
    contacts |= contacts.transpose(0, 1, 3, 2)
    with h5py.File(path, "w") as h5:
        create_layout(h5, num_episodes=2, steps=3, max_objects=3, num_features=4, with_influence=False)
        h5["states"][...], h5["adjacency"][...], h5["contacts"][...] = states, adjacency, contacts
        h5["num_objects"][...] = [2, 3]
        write_attrs(
            h5, scene="toy", config=config, state_features=FEATURES[:4], stats={"mean_mass": 1.25, "episodes": 999}
        )
    return path


def test_summary_hand_built(tmp_path, monkeypatch):
    path = summary_file(tmp_path / "toy.h5", {"arena_size": 10.0, "image_size": 20})
    with open_dataset(path) as ds:
        s = ds.summary()
        monkeypatch.setattr(data, "_BLOCK_BYTES", 1)  # one episode per block: same streamed result
        assert ds.summary() == s
    assert s["scene"] == "toy" and s["episodes"] == 2 and s["steps"] == 3
    assert (s["objects_min"], s["objects_mean"], s["objects_max"]) == (2, 2.5, 3)
    assert s["edge_density"] == pytest.approx(4 / 8)
    # distances 3+3 (ep 0) + 5+5 (ep 1) over 2*2 + 3*2 object-steps = 1.6 units, x 20 px / 10 units
    assert s["mean_speed"] == pytest.approx(3.2) and s["speed_unit"] == "px/frame"
    assert s["collisions_per_episode"] == pytest.approx(3 / 2)
    assert s["mean_mass"] == 1.25  # merged from the stats attr; computed keys win
    assert json.loads(json.dumps(s)) == s  # `causal-wm info --json` prints it
    table = format_summary(s)
    assert "toy" in table and "3.2" in table and "px/frame" in table and "mean_mass" in table
    width = max(map(len, s))
    for row, key in zip(table.splitlines()[1:-1], s, strict=True):  # aligned value column
        assert row.startswith(key.ljust(width) + "  ") and row[width + 2] != " "


def test_summary_state_units_without_arena_size(tmp_path):
    path = summary_file(tmp_path / "toy.h5", {"image_size": 20})
    with open_dataset(path) as ds:
        s = ds.summary()
    assert s["mean_speed"] == pytest.approx(1.6) and s["speed_unit"] == "state units/step"


# -------------------------------------------------------------------------------------------- torch


def test_window_dataset_items(full):
    path, arrays = full
    ds = WindowDataset(path, length=3)
    assert isinstance(ds, torch.utils.data.Dataset)
    assert len(ds) == E * (T - 3 + 1)
    item = ds[2 * 10 + 4]  # episode 2, start 4
    assert set(item) == {"obs", "states", "actions", "num_objects"}
    assert item["obs"].dtype == torch.uint8 and item["obs"].shape == (3, S, S, 3)
    assert item["states"].dtype == torch.float32 and item["states"].shape == (3, N, F)
    assert item["actions"].dtype == torch.int64 and item["actions"].shape == (2,)
    assert item["num_objects"].dtype == torch.int64 and item["num_objects"].shape == ()
    np.testing.assert_array_equal(item["obs"].numpy(), arrays["obs"][2, 4:7])
    np.testing.assert_array_equal(item["actions"].numpy(), arrays["actions"][2, 4:6])
    assert int(item["num_objects"]) == arrays["num_objects"][2]
    with pytest.raises(IndexError):
        ds[len(ds)]

    sub = WindowDataset(path, length=2, keys=("states", "adjacency"), episodes=[4, 1])
    assert len(sub) == 2 * (T - 1)
    np.testing.assert_array_equal(sub[T - 1]["states"].numpy(), arrays["states"][1, 0:2])
    np.testing.assert_array_equal(sub[0]["adjacency"].numpy(), arrays["adjacency"][4])

    clone = pickle.loads(pickle.dumps(ds))  # open handle is dropped and reopened
    assert ds._file is not None and clone._file is None
    torch.testing.assert_close(clone[7], ds[7])


def test_window_dataset_with_dataloader_workers(full):
    path, arrays = full
    ds = WindowDataset(path, length=2, keys=("states", "actions"))
    loader = torch.utils.data.DataLoader(ds, batch_size=8, num_workers=2)
    batches = list(loader)
    assert batches[0]["states"].shape == (8, 2, N, F)
    states = torch.cat([b["states"] for b in batches]).numpy()
    expected = np.stack([arrays["states"][e, t : t + 2] for e in range(E) for t in range(T - 1)])
    np.testing.assert_array_equal(states, expected)


def test_window_dataset_refuses_missing_keys(state_only):
    path, _ = state_only
    with pytest.raises(DatasetError) as err:
        WindowDataset(path)
    assert str(err.value) == (
        f"{path} has no 'obs' (a state-only file?): use --encoder state or regenerate without --no-images"
    )
    with pytest.raises(ValueError, match="window length"):
        WindowDataset(path, length=T + 1, keys=("states",))


def test_import_does_not_load_torch():
    code = "import sys, causal_wm.data; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_write_json_writes_strict_json(tmp_path):
    from causal_wm.config import write_json

    obj = {"auroc": float("nan"), "n": np.int64(3), "x": np.float32(np.inf), "v": np.array([1.5, np.nan]), "t": (1, 2)}
    path = write_json(tmp_path / "r.json", obj)

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    assert json.loads(path.read_text(), parse_constant=refuse) == {
        "auroc": None,
        "n": 3,
        "x": None,
        "v": [1.5, None],
        "t": [1, 2],
    }


@pytest.mark.parametrize(
    ("stem", "expected"),
    [
        ("results/table", "results/table.json"),
        ("results/edge_recovery_springs5_m0.3-3_dec10", "results/edge_recovery_springs5_m0.3-3_dec10.json"),
        ("results/table.json", "results/table.json"),
        ("results/table.md", "results/table.json"),
    ],
)
def test_stem_path_keeps_dots_inside_an_output_stem(stem, expected):
    from causal_wm.config import stem_path

    assert stem_path(stem, ".json") == Path(expected)
