"""Checkpoints under faults, beyond tests/test_serialization.py (which covers a killed bare save,
pickles, torch zips, truncation and random bytes):

- the training job killed (SIGKILL) in the middle of writing its checkpoint keeps the previous
  epoch's checkpoint whole; `--resume` then reproduces the uninterrupted run's losses exactly and
  the killed save's temp file is cleaned up;
- model + optimiser + RNG + loader state saved mid-training and loaded into fresh objects
  continue bit-identically;
- gg.load executes nothing (no compile/exec/import/unpickle, checked with an audit hook), and a
  crafted or corrupted file is a CheckpointError, never another exception.
"""

import json
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import safetensors.numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpugrad as gg
from gpugrad import backend, nn, optim
from gpugrad.data import DataLoader, TensorDataset
from gpugrad.nn import functional as F
from gpugrad.serialization import FORMAT, CheckpointError, load, save

CHECKPOINT = "checkpoint.safetensors"


def _temp_files(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{CHECKPOINT}.tmp-"))


# ----------------------------------------------------------------------------- killed training

_KILLED_CHILD = """
import json, os, sys, time
from gpugrad import serialization
{small_datasets}
real_write_all = serialization._write_all
saves = 0

def write_all(fd, data):
    # The second checkpoint (after epoch 2): write half of it, tell the parent, then hang.
    global saves
    saves += 1
    if saves == 2:
        os.write(fd, data[: len(data) // 2])
        open(sys.argv[2], "w").close()
        time.sleep(300)
    real_write_all(fd, data)

serialization._write_all = write_all
config = training.TrainConfig(**json.loads(sys.argv[1]))
training.train(config, log=lambda *args: None)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_training_killed_mid_checkpoint_resumes_exactly(
        tmp_path, run_training, uninterrupted_run, train_kwargs, child_small_datasets):
    out = tmp_path / "run"
    marker = tmp_path / "half-written"
    config = dict(train_kwargs, out=str(out), epochs=2)
    script = _KILLED_CHILD.format(small_datasets=child_small_datasets)
    child = subprocess.Popen([sys.executable, "-c", script, json.dumps(config), str(marker)])
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            assert child.poll() is None, "the training child exited before its second save"
            assert time.monotonic() < deadline, "the training child never reached its second save"
            time.sleep(0.05)
        stale = _temp_files(out)
        assert len(stale) == 1 and stale[0].startswith(f".{CHECKPOINT}.tmp-{child.pid}-")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL

    # The previous checkpoint (after epoch 1) is whole and loads.
    state = load(out / CHECKPOINT)
    assert state["epoch"] == 1
    assert set(state) >= {"model", "optimizer", "rng", "metrics"}
    with open(out / "metrics.json") as f:
        assert [e["epoch"] for e in json.load(f)["epochs"]] == [1]

    resumed = run_training(out, epochs=2, resume=True)
    assert [e["step_losses"] for e in resumed] == [e["step_losses"] for e in uninterrupted_run]
    assert [e["test_loss"] for e in resumed] == [e["test_loss"] for e in uninterrupted_run]
    assert _temp_files(out) == []  # the dead child's half file went with the next save


# ----------------------------------------------------------------------------- API-level resume

def _make_run():
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3))
    opt = optim.Adam(model.parameters(), lr=1e-2, weight_decay=1e-3)
    return model, opt


def _data():
    rng = np.random.default_rng(7)
    x = gg.from_numpy(rng.standard_normal((40, 6)).astype(np.float32))
    y = gg.from_numpy(rng.integers(0, 3, 40).astype(np.int64))
    return TensorDataset(x, y)


def _train_steps(model, opt, loader, epochs):
    losses = []
    for _ in range(epochs):
        for xb, yb in loader:
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    return losses


def test_state_dicts_resume_bit_identically(tmp_path, one_kernel_thread):
    gg.manual_seed(11)
    model, opt = _make_run()
    loader = DataLoader(_data(), batch_size=8, shuffle=True, seed=5)
    straight = _train_steps(model, opt, loader, epochs=4)

    gg.manual_seed(11)
    model, opt = _make_run()
    loader = DataLoader(_data(), batch_size=8, shuffle=True, seed=5)
    first = _train_steps(model, opt, loader, epochs=2)
    save({"model": model.state_dict(), "optimizer": opt.state_dict(),
          "rng": backend.get_rng_state(), "loader": loader.state_dict()}, tmp_path / "c.ckpt")
    del model, opt, loader

    gg.manual_seed(999)  # a different state, which the checkpoint must override
    model, opt = _make_run()
    loader = DataLoader(_data(), batch_size=8, shuffle=True, seed=0)
    state = load(tmp_path / "c.ckpt")
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    backend.set_rng_state(state["rng"])
    loader.load_state_dict(state["loader"])
    second = _train_steps(model, opt, loader, epochs=2)
    assert first + second == straight


# ----------------------------------------------------------------------------- executes nothing

_WATCHED_EVENTS = {"exec", "compile", "import", "pickle.find_class", "os.system", "os.exec",
                   "os.posix_spawn", "subprocess.Popen", "marshal.loads", "ctypes.dlopen",
                   "builtins.input"}
_audit = {"on": False, "events": []}


def _audit_hook(event, args):
    if _audit["on"] and event in _WATCHED_EVENTS:
        _audit["events"].append((event, repr(args)[:120]))


sys.addaudithook(_audit_hook)  # audit hooks cannot be removed; this one is off unless asked


def _load_watched(path):
    """load(path) with the audit hook recording; returns (result or exception, events)."""
    _audit["events"] = []
    _audit["on"] = True
    try:
        try:
            result = load(path)
        except Exception as e:  # noqa: BLE001 - the caller checks the type
            result = e
    finally:
        _audit["on"] = False
    return result, list(_audit["events"])


def _crafted(tmp_path, name, root, arrays=None):
    path = tmp_path / name
    arrays = {"w": np.zeros(2, np.float32)} if arrays is None else arrays
    metadata = {"gpugrad": json.dumps({"format": FORMAT, "root": root})}
    path.write_bytes(safetensors.numpy.save(arrays, metadata=metadata))
    return path


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_load_runs_no_code_for_any_file(tmp_path):
    valid = tmp_path / "valid.ckpt"
    save({"w": gg.randn(3, requires_grad=True), "dtype": gg.float16, "device": gg.device("cpu"),
          "opt": {"betas": (0.9, 0.99), "step": 3, "nan": float("nan")}}, valid)
    load(valid)  # warm up: lazy imports inside gpugrad/safetensors happen once, here
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"w": _Payload(str(marker))}, protocol=4))
    files = {
        "valid": valid,
        "pickle": evil,
        "dtype with a shape": _crafted(tmp_path, "d1", {"$type": "dtype", "value": "(2,)i4"}),
        "dtype with a record": _crafted(tmp_path, "d2", {"$type": "dtype",
                                                          "value": "i4,(2,)f8"}),
        "code in strings": _crafted(tmp_path, "s", {"$type": "dict", "items": [
            ["__import__('os').system('touch pwned')", {"$type": "device", "value": "cpu"}]]}),
    }
    for name, path in files.items():
        result, events = _load_watched(path)
        assert events == [], f"{name}: load raised audit events {events}"
        assert name == "valid" or isinstance(result, (CheckpointError, dict, np.dtype)), result
    assert not marker.exists()


CRAFTED = [
    ("requires_grad on an integer entry",
     {"$type": "tensor", "entry": "w", "requires_grad": True}, {"w": np.arange(3)}),
    ("entry name that is a list", {"$type": "tensor", "entry": ["w"]}, None),
    ("entry name that is a dict", {"$type": "ndarray", "entry": {"a": 1}}, None),
    ("scalar node on a 1-d entry", {"$type": "npscalar", "entry": "w"}, None),
    ("one entry read as a tensor and as an array",
     [{"$type": "tensor", "entry": "w"}, {"$type": "ndarray", "entry": "w"}], None),
    ("unparseable dtype", {"$type": "dtype", "value": "i4,("}, None),
    ("dict items that are not a list", {"$type": "dict", "items": {"a": 1}}, None),
]


@pytest.mark.parametrize("name, root, arrays", CRAFTED, ids=[c[0] for c in CRAFTED])
def test_crafted_metadata_is_a_checkpoint_error(tmp_path, name, root, arrays):
    path = _crafted(tmp_path, "crafted.ckpt", root, arrays)
    with pytest.raises(CheckpointError, match="crafted.ckpt"):
        load(path)


@pytest.fixture(scope="module")
def checkpoint_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "base.ckpt"
    save({"model": {"w": gg.randn(3, 2, requires_grad=True), "b": gg.zeros(2)},
          "optimizer": {"state": {0: {"step": 4, "exp_avg": gg.ones(3, 2)}},
                        "param_groups": [{"lr": 0.1, "betas": (0.9, 0.99), "params": [0]}]},
          "epoch": 3, "ints": gg.arange(4), "mask": gg.tensor([True, False]),
          "array": np.arange(3.0), "scalar": np.float32(2.5), "dtype": gg.float32}, path)
    return path.read_bytes()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(edits=st.lists(st.tuples(st.integers(min_value=0), st.integers(0, 255)),
                      min_size=1, max_size=4),
       cut=st.one_of(st.none(), st.integers(min_value=0)))
def test_corrupted_checkpoints_only_raise_checkpoint_error(tmp_path, checkpoint_bytes, edits,
                                                          cut):
    data = bytearray(checkpoint_bytes)
    header_end = 8 + int.from_bytes(data[:8], "little")
    for position, value in edits:
        data[position % header_end] = value  # the header: where structure lives
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    path = tmp_path / "fuzzed.ckpt"
    path.write_bytes(bytes(data))
    try:
        load(path)
    except CheckpointError as e:
        assert "fuzzed.ckpt" in str(e)
