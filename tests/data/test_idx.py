"""IDX parsing: real MNIST files, and every way a file can be damaged."""

import gzip
import struct

import numpy as np
import pytest

from gpugrad.data.idx import (
    IMAGES_MAGIC,
    LABELS_MAGIC,
    IDXError,
    encode_idx,
    parse_idx,
    read_idx,
    read_idx_images,
    read_idx_labels,
    write_idx,
)


def test_real_mnist_labels_and_images(shared_data):
    labels = read_idx_labels(shared_data / "mnist" / "train-labels-idx1-ubyte.gz")
    assert labels.shape == (60000,) and labels.dtype == np.uint8
    # The first training labels of MNIST, as everyone who has printed them knows them.
    assert labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert np.bincount(labels).tolist() == [
        5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949
    ]
    images = read_idx_images(shared_data / "mnist" / "t10k-images-idx3-ubyte.gz")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert images.flags.writeable
    # Digits are drawn in the centre: the top row of every test image is empty.
    assert images[:, 0, :].max() == 0 and images.max() == 255
    # The published statistics of the test set (the train set gives the usual 0.1307/0.3081).
    assert abs(images.mean() / 255 - 0.13251) < 1e-5
    assert abs((images / 255).std() - 0.31048) < 1e-5


def test_real_fashion_labels(shared_data):
    labels = read_idx_labels(shared_data / "fashion-mnist" / "t10k-labels-idx1-ubyte.gz")
    assert labels.shape == (10000,)
    assert np.bincount(labels).tolist() == [1000] * 10


def test_uncompressed_file_reads_like_the_gzipped_one(shared_data, tmp_path):
    gz = shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz"
    raw = tmp_path / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress(gz.read_bytes()))
    np.testing.assert_array_equal(read_idx_labels(raw), read_idx_labels(gz))


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("compress", [False, True])
def test_encode_parse_round_trip(dtype, compress):
    array = (np.arange(2 * 3 * 5) - 7).astype(dtype).reshape(2, 3, 5)
    back = parse_idx(encode_idx(array, compress=compress))
    assert back.dtype == np.dtype(dtype).newbyteorder("=")
    np.testing.assert_array_equal(back, array)


def test_header_is_big_endian_with_the_mnist_magic():
    data = encode_idx(np.zeros((7, 28, 28), np.uint8))
    assert struct.unpack(">IIII", data[:16]) == (IMAGES_MAGIC, 7, 28, 28)
    assert struct.unpack(">II", encode_idx(np.zeros(3, np.uint8))[:8]) == (LABELS_MAGIC, 3)


def test_write_idx_gzips_by_suffix(tmp_path):
    labels = np.array([3, 1, 4, 1, 5], np.uint8)
    write_idx(tmp_path / "l.gz", labels)
    write_idx(tmp_path / "l", labels)
    assert (tmp_path / "l.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "l").read_bytes()[:4] == b"\x00\x00\x08\x01"
    np.testing.assert_array_equal(read_idx_labels(tmp_path / "l.gz"), labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l", "l.gz"]  # no temp files left


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_truncated_data_names_the_file(tmp_path):
    data = encode_idx(np.ones((10, 28, 28), np.uint8))
    path = _write(tmp_path, "short-images", data[:-100])
    with pytest.raises(IDXError, match=r"short-images.*truncated.*\(10, 28, 28\)"):
        read_idx_images(path)


def test_trailing_bytes_are_an_error(tmp_path):
    path = _write(tmp_path, "long-labels", encode_idx(np.ones(4, np.uint8)) + b"xx")
    with pytest.raises(IDXError, match=r"long-labels.*2 unexpected trailing bytes"):
        read_idx_labels(path)


def test_truncated_header(tmp_path):
    path = _write(tmp_path, "cut-header", encode_idx(np.ones((2, 28, 28), np.uint8))[:10])
    with pytest.raises(IDXError, match=r"cut-header.*truncated header"):
        read_idx(path)


def test_truncated_gzip_stream(tmp_path):
    gz = encode_idx(np.arange(5000, dtype=np.uint8).reshape(50, 100) % 7, compress=True)
    path = _write(tmp_path, "cut.gz", gz[: len(gz) // 2])
    with pytest.raises(IDXError, match=r"cut\.gz.*gzip stream is truncated"):
        read_idx(path)


def test_corrupt_gzip_stream(tmp_path):
    gz = bytearray(encode_idx(np.arange(200, dtype=np.uint8), compress=True))
    gz[-6] ^= 0xFF  # inside the CRC32 trailer
    path = _write(tmp_path, "bad.gz", bytes(gz))
    with pytest.raises(IDXError, match=r"bad\.gz.*corrupt gzip"):
        read_idx(path)


def test_labels_file_given_as_images(shared_data):
    path = shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz"
    with pytest.raises(IDXError, match=r"t10k-labels-idx1-ubyte\.gz.*magic number is 2049, "
                                       r"expected 2051"):
        read_idx_images(path)


@pytest.mark.parametrize("data", [b"", b"\x00\x00", b"PK\x03\x04 a zip", b"\x00\x00\x42\x01xxxx"])
def test_not_idx(tmp_path, data):
    path = _write(tmp_path, "junk", data)
    with pytest.raises(IDXError, match="junk"):
        read_idx(path)


def test_encode_rejects_unsupported():
    with pytest.raises(TypeError, match="int64"):
        encode_idx(np.zeros(3, np.int64))
    with pytest.raises(ValueError, match="dimensions"):
        encode_idx(np.uint8(3))
