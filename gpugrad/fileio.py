"""Atomic file writes: a temp file in the target's folder, fsync, rename, fsync the folder.

A reader (or a process killed halfway through the write) sees either the old file or the new
one, never a torn mix. Checkpoints use their own chunked writer (serialization.py) on the same
principle, with `fsync_dir` from here.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def fsync_dir(folder) -> None:
    """Make a rename in `folder` durable; directories cannot be opened for fsync on Windows."""
    if os.name == "nt":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)
    return path


def write_json_atomic(path, obj) -> Path:
    """`obj` as indented JSON, written atomically."""
    return write_bytes_atomic(path, (json.dumps(obj, indent=2) + "\n").encode())


def save_figure_atomic(fig, path, dpi: int = 100) -> Path:
    """A matplotlib figure as PNG, written atomically."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return write_bytes_atomic(path, buffer.getvalue())
