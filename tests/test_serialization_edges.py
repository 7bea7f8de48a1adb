"""gg.load edges: a deeply nested header or a directory is a CheckpointError naming the path."""

import struct

import pytest

import gpugrad as gg
from gpugrad.serialization import CheckpointError


def _safetensors(header: bytes) -> bytes:
    header += b" " * (-len(header) % 8)
    return struct.pack("<Q", len(header)) + header


def test_deeply_nested_header_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "deep.safetensors"
    path.write_bytes(_safetensors(b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"))
    with pytest.raises(CheckpointError, match="deep.safetensors: corrupt safetensors header"):
        gg.load(path)


def test_a_directory_is_a_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match=f"{tmp_path} is a directory"):
        gg.load(tmp_path)
