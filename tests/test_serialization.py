"""gpugrad.save / gpugrad.load: round trips, atomic writes, and refusing bad files."""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import safetensors.numpy

import gpugrad as gg
from gpugrad.serialization import FORMAT, CheckpointError, load, save


def _assert_same_tensor(a, b):
    assert isinstance(b, gg.Tensor)
    assert b.dtype == a.dtype and tuple(b.shape) == tuple(a.shape)
    assert b.device == gg.device("cpu")
    np.testing.assert_array_equal(b.numpy(), a.numpy())


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "int32", "uint8",
                                   "bool"])
@pytest.mark.parametrize("shape", [(), (0,), (3, 0, 2), (5,), (2, 3, 4)])
def test_tensor_round_trip(tmp_path, dtype, shape):
    rng = np.random.default_rng(0)
    array = np.asarray(rng.standard_normal(shape) * 50).astype(dtype)
    x = gg.from_numpy(array)
    save(x, tmp_path / "x.ckpt")
    _assert_same_tensor(x, load(tmp_path / "x.ckpt"))


def test_nested_structures_round_trip(tmp_path):
    w = gg.randn(4, 3, requires_grad=True)
    obj = {
        "model": {"conv1.weight": w, "conv1.bias": gg.zeros(4)},
        "optimizer": {
            "state": {0: {"step": 7, "exp_avg": gg.ones(4, 3)}, 1: {"step": 7}},
            "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "params": [0, 1],
                              "nesterov": False, "name": None}],
        },
        "epoch": 12,
        "big": 2**70,
        "loss": 0.1 + 0.2,
        "specials": [float("inf"), float("-inf")],
        "tuple_in_list": [(1, "a"), ()],
        "keys": {1.5: "float", True: "bool", None: "none", (1, "x"): "tuple", "1": "str"},
        "numpy": {"array": np.arange(6).reshape(2, 3), "f32": np.float32(2.5),
                  "i64": np.int64(-3), "flag": np.bool_(True)},
        "dtype": gg.float16,
        "device": gg.device("cpu"),
        "text": "héllo",
        "empty": {},
    }
    save(obj, tmp_path / "c.ckpt")
    back = load(tmp_path / "c.ckpt")
    assert back.keys() == obj.keys()
    _assert_same_tensor(w, back["model"]["conv1.weight"])
    assert back["model"]["conv1.weight"].requires_grad
    assert not back["model"]["conv1.bias"].requires_grad
    state = back["optimizer"]["state"]
    assert list(state) == [0, 1] and state[1] == {"step": 7}
    _assert_same_tensor(obj["optimizer"]["state"][0]["exp_avg"], state[0]["exp_avg"])
    assert back["optimizer"]["param_groups"] == obj["optimizer"]["param_groups"]
    assert isinstance(back["optimizer"]["param_groups"][0]["betas"], tuple)
    for key in ("epoch", "big", "loss", "specials", "tuple_in_list", "keys", "dtype", "device",
                "text", "empty"):
        assert back[key] == obj[key] and type(back[key]) is type(obj[key]), key
    assert [type(k) for k in back["keys"]] == [float, bool, type(None), tuple, str]
    assert type(back["tuple_in_list"][0]) is tuple
    np.testing.assert_array_equal(back["numpy"]["array"], obj["numpy"]["array"])
    for key in ("f32", "i64", "flag"):
        value = back["numpy"][key]
        assert type(value) is type(obj["numpy"][key]) and value == obj["numpy"][key]
    nan = load_after_save(tmp_path, float("nan"))
    assert isinstance(nan, float) and np.isnan(nan)


def load_after_save(tmp_path, obj):
    save(obj, tmp_path / "tmp.ckpt")
    return load(tmp_path / "tmp.ckpt")


def test_scalars_and_none_at_top_level(tmp_path):
    for obj in (None, True, 0, -5, 3.25, "s", [], ()):
        back = load_after_save(tmp_path, obj)
        assert back == obj and type(back) is type(obj)


def test_shared_tensors_stay_shared_and_views_are_saved_by_value(tmp_path):
    w = gg.randn(3, 5)
    t = w.T  # a non-contiguous view
    back = load_after_save(tmp_path, {"a": w, "b": [w], "t": t})
    assert back["a"] is back["b"][0]
    np.testing.assert_array_equal(back["t"].numpy(), w.numpy().T)
    assert len(safetensors.numpy.load_file(tmp_path / "tmp.ckpt")) == 2


def test_file_is_plain_safetensors_with_readable_names(tmp_path):
    w = gg.randn(2, 2)
    save({"fc": {"weight": w, "bias": gg.zeros(2)}, "step": 3}, tmp_path / "m.safetensors")
    tensors = safetensors.numpy.load_file(tmp_path / "m.safetensors")
    assert sorted(tensors) == ["fc.bias", "fc.weight"]
    np.testing.assert_array_equal(tensors["fc.weight"], w.numpy())
    from safetensors import safe_open

    with safe_open(tmp_path / "m.safetensors", framework="np") as f:
        structure = json.loads(f.metadata()["gpugrad"])
    assert structure["format"] == FORMAT == "gpugrad-checkpoint/1"


def test_loaded_tensors_are_writable(tmp_path):
    x = load_after_save(tmp_path, {"x": gg.ones(3)})["x"]
    x.add_(1)
    np.testing.assert_array_equal(x.numpy(), [2, 2, 2])


def test_map_location_cpu(tmp_path):
    back = load(_saved(tmp_path), map_location="cpu")
    assert back["w"].device == gg.device("cpu")


def _saved(tmp_path, name="m.ckpt"):
    path = tmp_path / name
    save({"w": gg.arange(6, dtype=gg.float32), "step": 1}, path)
    return path


@pytest.mark.parametrize("obj,error,match", [
    (object(), TypeError, r"cannot store a builtins\.object at the top level"),
    ({"a": [1, {2, 3}]}, TypeError, r"builtins\.set at obj\.a\.1"),
    ({"z": np.zeros(2, np.complex128)}, TypeError, r"obj\.z has dtype complex128"),
    ({"o": np.array([None])}, TypeError, r"dtype object"),
    ({object(): 1}, TypeError, "dict key"),
])
def test_unsupported_objects(tmp_path, obj, error, match):
    with pytest.raises(error, match=match):
        save(obj, tmp_path / "x.ckpt")
    assert list(tmp_path.iterdir()) == []


def test_cycles_are_refused(tmp_path):
    cycle = {"a": []}
    cycle["a"].append(cycle)
    with pytest.raises(ValueError, match="cycle"):
        save(cycle, tmp_path / "x.ckpt")


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at .*nope.ckpt"):
        load(tmp_path / "nope.ckpt")
    with pytest.raises(FileNotFoundError, match="folder .*missing does not exist"):
        save({"a": 1}, tmp_path / "missing" / "x.ckpt")


def test_truncated_files(tmp_path):
    path = _saved(tmp_path)
    data = path.read_bytes()
    header_len = int.from_bytes(data[:8], "little")
    for cut in (0, 5, 8, 30, 8 + header_len - 1, 8 + header_len, len(data) - 1):
        bad = tmp_path / f"cut{cut}.ckpt"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=f"cut{cut}.ckpt.*(short|truncated|corrupt)"):
            load(bad)


def test_random_bytes(tmp_path):
    rng = np.random.default_rng(1)
    for k in range(20):
        bad = tmp_path / f"r{k}"
        bad.write_bytes(rng.integers(0, 256, size=int(rng.integers(0, 4000)),
                                     dtype=np.uint8).tobytes())
        with pytest.raises(CheckpointError, match=f"r{k}"):
            load(bad)


def test_corrupt_metadata(tmp_path):
    arrays = {"w": np.zeros(2, np.float32)}

    def write(name, metadata):
        path = tmp_path / name
        path.write_bytes(safetensors.numpy.save(arrays, metadata=metadata))
        return path

    with pytest.raises(CheckpointError, match="not a gpugrad checkpoint"):
        load(write("plain", None))
    with pytest.raises(CheckpointError, match="format 'gpugrad-checkpoint/9' is not supported"):
        load(write("future", {"gpugrad": json.dumps({"format": "gpugrad-checkpoint/9",
                                                     "root": None})}))
    with pytest.raises(CheckpointError, match="corrupt checkpoint metadata"):
        load(write("badjson", {"gpugrad": "{not json"}))
    missing_entry = {"format": FORMAT, "root": {"$type": "tensor", "entry": "nope"}}
    with pytest.raises(CheckpointError, match="entry 'nope'"):
        load(write("missing", {"gpugrad": json.dumps(missing_entry)}))
    deep = '{"format": "%s", "root": %s}' % (FORMAT, "[" * 100000 + "]" * 100000)
    with pytest.raises(CheckpointError, match="corrupt checkpoint metadata|too deeply"):
        load(write("deep", {"gpugrad": deep}))
    unknown = {"format": FORMAT, "root": {"$type": "pickle", "items": []}}
    with pytest.raises(CheckpointError, match="unknown node type 'pickle'"):
        load(write("unknown", {"gpugrad": json.dumps(unknown)}))


class _Payload:
    """Unpickling this creates the marker file: proof that load executed the pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_pickle_is_refused_and_not_executed(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    path.write_bytes(pickle.dumps({"w": _Payload(str(marker))}, protocol=protocol))
    match = "refusing to unpickle" if protocol >= 2 else "not a safetensors file"
    with pytest.raises(CheckpointError, match=f"evil.pt.*{match}"):
        load(path)
    assert not marker.exists()


def test_torch_checkpoint_is_refused(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="zip archive.*refusing to unpickle"):
        load(path)


def _temp_files(folder, target):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{target}.tmp-"))


def test_save_leaves_no_temp_files_and_replaces_the_target(tmp_path):
    path = _saved(tmp_path)
    save({"w": gg.ones(2), "step": 2}, path)
    assert load(path)["step"] == 2
    assert [p.name for p in tmp_path.iterdir()] == ["m.ckpt"]


def test_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    from gpugrad import serialization

    path = _saved(tmp_path)

    def disk_full(fd, data):
        os.write(fd, data[:10])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(serialization, "_write_all", disk_full)
    with pytest.raises(OSError, match="No space"):
        save({"w": gg.zeros(100), "step": 2}, path)
    assert load(path)["step"] == 1
    assert _temp_files(tmp_path, "m.ckpt") == []


_CHILD = textwrap.dedent("""
    import os, sys, time
    import numpy as np
    from gpugrad import serialization

    def slow_write(fd, data):
        os.write(fd, data[: len(data) // 2])
        open(sys.argv[2], "w").close()  # tell the parent: half of the new file is on disk
        time.sleep(120)

    serialization._write_all = slow_write
    serialization.save({"step": 2, "w": np.full(1_000_000, 2.0)}, sys.argv[1])
""")


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_save_leaves_the_previous_checkpoint_whole(tmp_path):
    path = tmp_path / "run.ckpt"
    save({"step": 1, "w": np.full(1000, 1.0)}, path)
    marker = tmp_path / "half-written"
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path), str(marker)])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None, "the saving child exited early"
            assert time.monotonic() < deadline, "the child never started writing"
            time.sleep(0.02)
        stale = _temp_files(tmp_path, "run.ckpt")
        assert len(stale) == 1 and stale[0].startswith(f".run.ckpt.tmp-{child.pid}-")
        assert (tmp_path / stale[0]).stat().st_size > 4_000_000
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL
    back = load(path)
    assert back["step"] == 1 and back["w"].shape == (1000,)
    assert _temp_files(tmp_path, "run.ckpt") == stale  # the killed save's leftover
    save({"step": 3, "w": np.zeros(3)}, path)
    assert load(path)["step"] == 3
    assert _temp_files(tmp_path, "run.ckpt") == []  # cleaned by the next save


def test_temp_files_of_live_processes_are_kept(tmp_path):
    path = _saved(tmp_path)
    # Our own pid is alive (a concurrent save in another thread); a reaped child's is not.
    ours = tmp_path / f".m.ckpt.tmp-{os.getpid()}-abcd1234"
    dead_child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                                capture_output=True, text=True, check=True)
    theirs = tmp_path / f".m.ckpt.tmp-{dead_child.stdout.strip()}-abcd1234"
    other_target = tmp_path / ".other.ckpt.tmp-1-abcd1234"
    for p in (ours, theirs, other_target):
        p.write_bytes(b"partial")
    save({"step": 2}, path)
    assert ours.exists() and other_target.exists() and not theirs.exists()


@pytest.mark.skipif(not gg.backend.cuda_is_available(),
                    reason="needs CUDA (or NUMBA_ENABLE_CUDASIM=1)")
def test_cuda_tensors_load_on_cpu_unless_mapped(tmp_path):
    x = gg.arange(6, dtype=gg.float32, device="cuda")
    save({"x": x}, tmp_path / "c.ckpt")
    on_cpu = load(tmp_path / "c.ckpt")["x"]
    assert on_cpu.device == gg.device("cpu")
    np.testing.assert_array_equal(on_cpu.numpy(), np.arange(6, dtype=np.float32))
    mapped = load(tmp_path / "c.ckpt", map_location="cuda:0")["x"]
    assert mapped.device == gg.device("cuda", 0)
    np.testing.assert_array_equal(mapped.numpy(), np.arange(6, dtype=np.float32))


@pytest.mark.skipif(gg.backend.cuda_is_available(), reason="checks the no-CUDA error")
def test_map_location_cuda_without_cuda_is_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="cuda:0 requested but CUDA is unavailable"):
        load(_saved(tmp_path), map_location="cuda")


def test_parameters_and_ordered_dicts_load_as_what_was_saved(tmp_path):
    """A Parameter comes back as a Parameter (requires_grad kept, shared where it was shared)
    and an OrderedDict as an OrderedDict, as torch.load gives them back."""
    from collections import OrderedDict

    from gpugrad.nn import Parameter

    p = Parameter(gg.tensor([1.0, 2.0]))
    frozen = Parameter(gg.tensor([3.0]), requires_grad=False)
    obj = {"params": [p, frozen, p], "sd": OrderedDict([("b", gg.ones(1)), ("a", gg.zeros(1))]),
           "plain": {"z": 1, "y": 2}, "t": gg.tensor([4.0], requires_grad=True)}
    gg.save(obj, tmp_path / "c.safetensors")
    back = gg.load(tmp_path / "c.safetensors")
    q, frozen_back, q_again = back["params"]
    assert type(q) is Parameter and q.requires_grad and q is q_again
    assert type(frozen_back) is Parameter and not frozen_back.requires_grad
    np.testing.assert_array_equal(q.numpy(), [1.0, 2.0])
    assert type(back["sd"]) is OrderedDict and list(back["sd"]) == ["b", "a"]
    assert type(back["plain"]) is dict and list(back["plain"]) == ["z", "y"]
    assert type(back["t"]) is gg.Tensor and back["t"].requires_grad


def test_a_module_state_dict_round_trips_as_an_ordered_dict(tmp_path):
    from collections import OrderedDict

    model = gg.nn.Sequential(gg.nn.Linear(3, 2), gg.nn.ReLU(), gg.nn.Linear(2, 1))
    gg.save(model.state_dict(), tmp_path / "m.safetensors")
    sd = gg.load(tmp_path / "m.safetensors")
    assert type(sd) is OrderedDict and list(sd) == list(model.state_dict())
    fresh = gg.nn.Sequential(gg.nn.Linear(3, 2), gg.nn.ReLU(), gg.nn.Linear(2, 1))
    fresh.load_state_dict(sd)
    for a, b in zip(fresh.parameters(), model.parameters()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
