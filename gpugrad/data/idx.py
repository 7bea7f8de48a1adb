"""Reading and writing IDX files, the container format of MNIST and Fashion-MNIST.

An IDX file is a header of big-endian 32-bit integers followed by the raw array:
two zero bytes, a type code byte, a dimension count byte, one 32-bit size per dimension,
then prod(sizes) items in row-major order. MNIST images use magic 2051 (0x00000803: unsigned
bytes, 3 dims) and labels magic 2049 (0x00000801: unsigned bytes, 1 dim). Files may be
gzip-compressed; we decide by the gzip magic bytes, not by the file name.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from gpugrad.fileio import write_bytes_atomic

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type code -> big-endian NumPy dtype.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_IDX_CODES = {dt.newbyteorder("="): code for code, dt in _IDX_DTYPES.items()}


class IDXError(ValueError):
    """An IDX file is corrupt, truncated or not the kind of IDX file expected."""


def _decompress(raw: bytes, source: str) -> bytes:
    if not raw.startswith(_GZIP_MAGIC):
        return raw
    try:
        return gzip.decompress(raw)
    except EOFError as e:
        raise IDXError(f"{source}: gzip stream is truncated ({e})") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as e:
        raise IDXError(f"{source}: corrupt gzip data ({e})") from None


def parse_idx(raw: bytes, source: str = "<bytes>", expect_magic: int | None = None) -> np.ndarray:
    """Parse the bytes of an IDX file (optionally gzipped) into a native-endian NumPy array.

    `source` names the file in error messages. When `expect_magic` is given, the header's magic
    number must equal it (2051 for image files, 2049 for label files).
    """
    data = _decompress(raw, source)
    if len(data) < 4:
        raise IDXError(f"{source}: file is {len(data)} bytes, too short for an IDX header")
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    magic = int.from_bytes(data[:4], "big")
    if zero0 != 0 or zero1 != 0 or code not in _IDX_DTYPES or ndim == 0:
        raise IDXError(
            f"{source}: not an IDX file (magic number {magic} = 0x{magic:08x}; expected "
            f"0x0000TTDD with a known type code TT and DD >= 1 dimensions)"
        )
    if expect_magic is not None and magic != expect_magic:
        raise IDXError(f"{source}: IDX magic number is {magic}, expected {expect_magic}")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IDXError(
            f"{source}: truncated header ({len(data)} bytes, a {ndim}-d IDX header needs "
            f"{header_len})"
        )
    dims = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _IDX_DTYPES[code]
    expected = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    actual = len(data) - header_len
    if actual < expected:
        raise IDXError(
            f"{source}: truncated: header declares shape {dims} ({expected} data bytes) but only "
            f"{actual} data bytes follow"
        )
    if actual > expected:
        raise IDXError(
            f"{source}: {actual - expected} unexpected trailing bytes after the {expected} data "
            f"bytes declared by shape {dims}"
        )
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_len)
    # astype copies, which also makes the result writable and native-endian.
    return array.reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path, expect_magic: int | None = None) -> np.ndarray:
    """Read an IDX file (raw or gzipped) from disk; errors name the file."""
    path = Path(path)
    return parse_idx(path.read_bytes(), str(path), expect_magic)


def read_idx_images(path) -> np.ndarray:
    """Read an IDX image file (magic 2051) as a uint8 array of shape (N, rows, cols)."""
    return read_idx(path, IMAGES_MAGIC)


def read_idx_labels(path) -> np.ndarray:
    """Read an IDX label file (magic 2049) as a uint8 array of shape (N,)."""
    return read_idx(path, LABELS_MAGIC)


def encode_idx(array: np.ndarray, compress: bool = False) -> bytes:
    """The bytes of an IDX file holding `array` (gzipped when `compress`).

    Compression is deterministic (no timestamp or file name in the gzip header), so the same
    array always gives the same bytes with the same zlib.
    """
    array = np.asarray(array)
    code = _IDX_CODES.get(array.dtype.newbyteorder("="))
    if code is None:
        raise TypeError(f"encode_idx: IDX cannot store dtype {array.dtype}")
    if array.ndim == 0 or array.ndim > 255:
        raise ValueError(f"encode_idx: IDX needs 1 to 255 dimensions, got {array.ndim}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    body = np.ascontiguousarray(array, dtype=_IDX_DTYPES[code]).tobytes()
    data = header + body
    if compress:
        data = gzip.compress(data, compresslevel=9, mtime=0)
    return data


def write_idx(path, array: np.ndarray, compress: bool | None = None) -> None:
    """Write `array` as an IDX file, gzipped when the name ends in .gz (or when `compress`)."""
    path = Path(path)
    if compress is None:
        compress = path.suffix == ".gz"
    write_bytes_atomic(path, encode_idx(array, compress))
