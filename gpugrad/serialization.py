"""Checkpoints: ``gpugrad.save(obj, path)`` and ``gpugrad.load(path)``, without pickle.

A checkpoint is one valid safetensors file. Every tensor (and NumPy array) in `obj` is a
safetensors entry, named by its place in the structure ("conv1.weight", "state.0.exp_avg"), so
other safetensors tools can read the weights. Everything else -- the nesting of dicts, lists and
tuples, Python scalars, strings, None, and the placeholders that point at the entries -- is one
JSON string in the safetensors ``__metadata__`` under the key "gpugrad", tagged with the format
version "gpugrad-checkpoint/1".

JSON encoding of a value (every JSON object is a tagged node, so nothing is ambiguous):
    None, bool, int, str, finite float -> themselves
    list                                -> JSON array of encoded items
    tuple                               -> {"$type": "tuple", "items": [...]}
    dict                                -> {"$type": "dict", "items": [[key, value], ...]}
                                           (keys encoded too, so int keys stay ints;
                                           "ordered": true for an OrderedDict)
    nan / inf float                     -> {"$type": "float", "value": "nan" | "inf" | "-inf"}
    Tensor                              -> {"$type": "tensor", "entry": name, "requires_grad": b}
                                           ("parameter": true for an nn.Parameter)
    NumPy array / NumPy scalar          -> {"$type": "ndarray" | "npscalar", "entry": name}
    NumPy dtype, gpugrad device         -> {"$type": "dtype" | "device", "value": "float32"}
The same tensor object reached twice is stored once and loads as one object. A Parameter
loads as a Parameter and an OrderedDict as an OrderedDict (files written before those flags
existed load them as a Tensor and a dict, as they did).

Loading reads bytes, parses JSON and builds arrays: it executes nothing from the file. Writing
is atomic: a temporary file in the target's folder is written, fsynced and renamed onto the
target, so a crash mid-save leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import struct
from collections import OrderedDict
from pathlib import Path

import numpy as np

from gpugrad.fileio import fsync_dir

FORMAT = "gpugrad-checkpoint/1"
METADATA_KEY = "gpugrad"

_WRITE_CHUNK = 1 << 22
# The dtype spellings `save` writes: names, and the explicit form of big-endian dtypes.
_DTYPE_NAMES = frozenset(
    [np.dtype(c).name for c in "?bBhHiIlLqQefdFD"]
    + [np.dtype(c).newbyteorder(">").str for c in "bBhHiIlLqQefdFD"]
)


class CheckpointError(RuntimeError):
    """A file is not a readable gpugrad checkpoint (truncated, corrupt, pickle, foreign)."""


def _tensor_class():
    # Imported lazily so that this module loads even before (and without importing) tensor.py.
    from gpugrad.tensor import Tensor

    return Tensor


def _parameter_class():
    from gpugrad.nn.parameter import Parameter

    return Parameter


# ----------------------------------------------------------------------------- encoding


class _Encoder:
    def __init__(self):
        self.Tensor = _tensor_class()
        self.arrays: dict[str, np.ndarray] = {}
        self.entry_of_id: dict[int, str] = {}
        self.keep_alive: list = []  # ids are only unique among live objects
        self.active: set[int] = set()  # containers on the current path, to catch cycles

    def entry_name(self, where: str) -> str:
        name = where or "tensor"
        if name in self.arrays:
            k = 1
            while f"{name}#{k}" in self.arrays:
                k += 1
            name = f"{name}#{k}"
        return name

    def store(self, obj, array: np.ndarray, where: str) -> str:
        name = self.entry_of_id.get(id(obj))
        if name is not None:
            return name
        if array.dtype.byteorder not in ("=", "|", "<"):
            array = array.astype(array.dtype.newbyteorder("<"))
        name = self.entry_name(where)
        # Not np.ascontiguousarray, which turns 0-d arrays into 1-d ones.
        self.arrays[name] = array if array.flags.c_contiguous else array.copy()
        self.entry_of_id[id(obj)] = name
        self.keep_alive.append(obj)
        return name

    def encode(self, obj, where: str):
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, np.generic):
            # Before the float check: np.float64 subclasses float but should come back as itself.
            array = np.asarray(obj)
            _check_storable(array, where)
            return {"$type": "npscalar", "entry": self.store(obj, array, where)}
        if isinstance(obj, int):
            return int(obj)
        if isinstance(obj, float):
            if math.isfinite(obj):
                return obj
            return {"$type": "float", "value": repr(obj)}
        if isinstance(obj, self.Tensor):
            array = obj.detach().numpy()
            _check_storable(array, where)
            name = self.store(obj, array, where)
            node = {"$type": "tensor", "entry": name, "requires_grad": bool(obj.requires_grad)}
            if isinstance(obj, _parameter_class()):
                node["parameter"] = True
            return node
        if isinstance(obj, np.ndarray):
            _check_storable(obj, where)
            return {"$type": "ndarray", "entry": self.store(obj, obj, where)}
        if isinstance(obj, np.dtype):
            return {"$type": "dtype", "value": obj.str if obj.byteorder == ">" else obj.name}
        from gpugrad.backend import device

        if isinstance(obj, device):
            return {"$type": "device", "value": str(obj)}
        if isinstance(obj, (list, tuple, dict)):
            if id(obj) in self.active:
                raise ValueError(f"save: {_show(where)} contains itself; cannot save a cycle")
            self.active.add(id(obj))
            try:
                return self.encode_container(obj, where)
            finally:
                self.active.discard(id(obj))
        raise TypeError(
            f"save: cannot store a {type(obj).__module__}.{type(obj).__qualname__} at "
            f"{_show(where)}; checkpoints hold tensors, NumPy arrays, Python scalars, strings, "
            f"None, and dicts/lists/tuples of them"
        )

    def encode_container(self, obj, where: str):
        if isinstance(obj, list):
            return [self.encode(v, _join(where, i)) for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"$type": "tuple", "items": [self.encode(v, _join(where, i))
                                                for i, v in enumerate(obj)]}
        items = []
        for key, value in obj.items():
            if not _is_key(key):
                raise TypeError(
                    f"save: dict key {key!r} at {_show(where)} has type {type(key).__name__}; "
                    f"keys must be str, int, float, bool, None or tuples of them"
                )
            items.append([self.encode(key, where), self.encode(value, _join(where, key))])
        if isinstance(obj, OrderedDict):
            return {"$type": "dict", "items": items, "ordered": True}
        return {"$type": "dict", "items": items}


def _is_key(key) -> bool:
    if key is None or isinstance(key, (str, int, float, bool)):
        return True
    return isinstance(key, tuple) and all(_is_key(k) for k in key)


def _check_storable(array: np.ndarray, where: str) -> None:
    if array.dtype.kind not in "biuf" or array.dtype.itemsize > 8:
        raise TypeError(
            f"save: the array at {_show(where)} has dtype {array.dtype}; checkpoints store bool, "
            f"integer and float (16/32/64-bit) arrays"
        )


def _join(where: str, key) -> str:
    key = str(key)
    return f"{where}.{key}" if where else key


def _show(where: str) -> str:
    return f"obj.{where}" if where else "the top level"


# ----------------------------------------------------------------------------- saving


def save(obj, path) -> None:
    """Save `obj` (a tensor, or nested dicts/lists/tuples of tensors, arrays and scalars) to
    `path` as one safetensors file, atomically."""
    import safetensors.numpy

    encoder = _Encoder()
    structure = {"format": FORMAT, "root": encoder.encode(obj, "")}
    metadata = {METADATA_KEY: json.dumps(structure, allow_nan=False, separators=(",", ":"))}
    data = safetensors.numpy.save(encoder.arrays, metadata=metadata)
    _atomic_write(Path(path), data)


def _temp_prefix(path: Path) -> str:
    return f".{path.name}.tmp-"


def _atomic_write(path: Path, data: bytes) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    _remove_stale_temps(path)
    tmp = folder / f"{_temp_prefix(path)}{os.getpid()}-{secrets.token_hex(4)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        # Also on KeyboardInterrupt: never leave our own half-written file behind.
        if tmp.exists():
            tmp.unlink()
        raise
    fsync_dir(folder)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view[:_WRITE_CHUNK])
        view = view[written:]


def _remove_stale_temps(path: Path) -> None:
    """Delete temp files left by earlier saves of `path` whose process no longer runs."""
    folder = path.parent if str(path.parent) else Path(".")
    prefix = _temp_prefix(path)
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        raise FileNotFoundError(f"save: folder {folder} does not exist (saving {path})") from None
    for name in names:
        if not name.startswith(prefix):
            continue
        pid_text = name[len(prefix):].split("-", 1)[0]
        if not pid_text.isdigit():
            continue
        pid = int(pid_text)
        # A live process (or another thread of ours) may be saving to the same target now.
        if _process_alive(pid):
            continue
        try:
            os.unlink(folder / name)
        except FileNotFoundError:
            pass


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    except OSError:
        return False
    return True


# ----------------------------------------------------------------------------- loading


def load(path, map_location=None):
    """Load a checkpoint written by `save`. Tensors land on the CPU unless `map_location`
    (a device or device string such as "cuda:0") says otherwise."""
    from gpugrad import backend

    path = Path(path)
    device = backend.as_device(map_location) if map_location is not None else backend.CPU
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(f"load: no checkpoint at {path}") from None
    except IsADirectoryError:
        raise CheckpointError(f"load: {path} is a directory, not a checkpoint file") from None
    structure = _read_structure(data, path)
    arrays = _read_arrays(data, path)
    try:
        return _Decoder(arrays, path, device).decode(structure["root"])
    except RecursionError:
        raise CheckpointError(f"{path}: checkpoint structure is nested too deeply") from None


def _read_structure(data: bytes, path: Path) -> dict:
    """Validate the safetensors header and return our decoded JSON structure."""
    if len(data) < 8:
        raise CheckpointError(f"{path}: file is {len(data)} bytes, too short to be a checkpoint")
    (header_len,) = struct.unpack("<Q", data[:8])
    if header_len > len(data) - 8 or data[8:9] != b"{":
        raise CheckpointError(f"{path}: {_diagnose_foreign(data, header_len)}")
    try:
        header = json.loads(data[8 : 8 + header_len])
    except (UnicodeDecodeError, RecursionError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
    metadata = header.get("__metadata__") or {}
    text = metadata.get(METADATA_KEY) if isinstance(metadata, dict) else None
    if text is None:
        raise CheckpointError(
            f"{path}: a safetensors file but not a gpugrad checkpoint (no {METADATA_KEY!r} "
            f"metadata with format {FORMAT!r}); read plain safetensors files with "
            f"safetensors.numpy.load_file"
        )
    try:
        structure = json.loads(text)
    except (TypeError, RecursionError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: corrupt checkpoint metadata ({e})") from None
    fmt = structure.get("format") if isinstance(structure, dict) else None
    if fmt != FORMAT:
        raise CheckpointError(
            f"{path}: checkpoint format {fmt!r} is not supported; this gpugrad reads {FORMAT!r}"
        )
    if "root" not in structure:
        raise CheckpointError(f"{path}: corrupt checkpoint metadata (no 'root')")
    return structure


def _diagnose_foreign(data: bytes, header_len: int) -> str:
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return (
            f"this is a Python pickle (protocol {data[1]}), not a gpugrad checkpoint; refusing "
            f"to unpickle, since loading a pickle can run arbitrary code"
        )
    if data[:4] == b"PK\x03\x04":
        return (
            "this is a zip archive (e.g. a torch.save checkpoint, which holds a pickle), not a "
            "gpugrad checkpoint; refusing to unpickle"
        )
    if data[8:9] == b"{":
        return (
            f"truncated or corrupt: the safetensors header claims {header_len} bytes but the "
            f"file has only {len(data) - 8} after the length field"
        )
    return "not a safetensors file (bad header); the file is corrupt or of another format"


def _read_arrays(data: bytes, path: Path) -> dict:
    import safetensors.numpy
    from safetensors import SafetensorError

    try:
        return safetensors.numpy.load(data)
    except SafetensorError as e:
        raise CheckpointError(f"{path}: truncated or corrupt tensor data ({e})") from None
    except (KeyError, ValueError) as e:  # unknown dtype name, shape/size mismatch
        raise CheckpointError(f"{path}: corrupt tensor entry ({e!r})") from None


class _Decoder:
    def __init__(self, arrays: dict, path: Path, device):
        self.arrays = arrays
        self.path = path
        self.device = device
        self.made: dict[str, tuple] = {}  # entry -> (kind, object): shared tensors stay shared

    def fail(self, why: str):
        raise CheckpointError(f"{self.path}: corrupt checkpoint metadata ({why})")

    def decode(self, node):
        if node is None or isinstance(node, (bool, int, float, str)):
            return node
        if isinstance(node, list):
            return [self.decode(v) for v in node]
        if not isinstance(node, dict) or not isinstance(node.get("$type"), str):
            self.fail(f"unexpected node {str(node)[:80]}")
        kind = node["$type"]
        if kind == "dict":
            result = OrderedDict() if node.get("ordered") is True else {}
            for pair in self._items(node):
                if not isinstance(pair, list) or len(pair) != 2:
                    self.fail("dict item is not a [key, value] pair")
                key = self.decode(pair[0])
                if not _is_key(key):
                    self.fail(f"dict key {key!r} is not hashable")
                result[key] = self.decode(pair[1])
            return result
        if kind == "tuple":
            return tuple(self.decode(v) for v in self._items(node))
        if kind == "float":
            value = node.get("value")
            if value not in ("nan", "inf", "-inf"):
                self.fail(f"bad special float {value!r}")
            return float(value)
        if kind in ("tensor", "ndarray", "npscalar"):
            return self._entry(node, kind)
        if kind == "dtype":
            # Only plain dtype names: np.dtype() would hand other strings to Python's parser.
            value = node.get("value")
            if not isinstance(value, str) or value not in _DTYPE_NAMES:
                self.fail(f"bad dtype {value!r}")
            return np.dtype(value)
        if kind == "device":
            from gpugrad.backend import device

            try:
                return device(str(node.get("value")))
            except ValueError:
                self.fail(f"bad device {node.get('value')!r}")
        self.fail(f"unknown node type {kind!r}")

    def _items(self, node) -> list:
        items = node.get("items")
        if not isinstance(items, list):
            self.fail(f"{node['$type']} node without an items list")
        return items

    def _entry(self, node, kind: str):
        name = node.get("entry")
        if not isinstance(name, str):
            self.fail(f"{kind} node with a bad entry name {name!r}")
        if name in self.made:
            made_kind, obj = self.made[name]
            if made_kind != kind:
                self.fail(f"entry {name!r} is read both as a {made_kind} and as a {kind}")
            return obj
        array = self.arrays.get(name)
        if array is None:
            self.fail(f"{kind} refers to entry {name!r}, which the file does not hold")
        if not array.flags.writeable:
            array = array.copy()
        if kind == "ndarray":
            obj = array
        elif kind == "npscalar":
            if array.ndim != 0:
                self.fail(f"scalar entry {name!r} has shape {array.shape}")
            obj = array[()]
        else:
            requires_grad = bool(node.get("requires_grad", False))
            if requires_grad and array.dtype.kind != "f":
                self.fail(f"entry {name!r} of dtype {array.dtype} cannot require grad")
            obj = self._tensor(array, requires_grad)
            if node.get("parameter") is True:
                obj = _parameter_class()(obj, requires_grad=requires_grad)
        self.made[name] = (kind, obj)
        return obj

    def _tensor(self, array: np.ndarray, requires_grad: bool):
        import gpugrad
        from gpugrad import backend

        if self.device == backend.CPU and not requires_grad:
            return gpugrad.from_numpy(array)
        return gpugrad.tensor(array, device=self.device, requires_grad=requires_grad)
