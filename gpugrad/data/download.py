"""Downloading the original MNIST / Fashion-MNIST files, checked against their published MD5s.

Only the standard library is used (urllib). Each file is streamed into a temporary file in the
target folder, its MD5 is checked, and only then is it renamed onto its final name, so a killed
or corrupted download never leaves a file that later loads as data.

The mirror lists and MD5 tables are module-level dicts, looked up at call time, so a test (or a
user behind a proxy cache) can point them elsewhere:

    gpugrad.data.download.MIRRORS["mnist"] = ["http://127.0.0.1:8000/"]
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sys
import urllib.error
import urllib.request
from pathlib import Path

from gpugrad.fileio import fsync_dir

# Tried in order; every URL is mirror + file name.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        # The mirror PyTorch's torchvision uses; LeCun's original page is the fallback.
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": [
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ],
}

# The publishers' files, byte for byte.
MD5S: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

_CHUNK = 1 << 20
_TIMEOUT_S = 60.0


class DownloadError(RuntimeError):
    """No mirror delivered a file with the expected MD5."""


def md5_of_file(path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch_to(url: str, tmp: Path, timeout: float) -> str:
    """Stream `url` into `tmp`; return the MD5 of what was written."""
    digest = hashlib.md5()
    request = urllib.request.Request(url, headers={"User-Agent": "gpugrad"})
    with urllib.request.urlopen(request, timeout=timeout) as response, open(tmp, "wb") as f:
        for chunk in iter(lambda: response.read(_CHUNK), b""):
            digest.update(chunk)
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    return digest.hexdigest()


def download_file(
    filename: str,
    folder,
    mirrors: list[str],
    md5: str,
    timeout: float = _TIMEOUT_S,
    quiet: bool = False,
) -> Path:
    """Download `filename` from the first mirror that serves it with MD5 `md5` into `folder`.

    A file whose MD5 does not match is deleted and the next mirror is tried. Raises
    DownloadError listing every mirror's failure when none succeeds.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / filename
    failures = []
    for mirror in mirrors:
        url = mirror if mirror.endswith(filename) else mirror.rstrip("/") + "/" + filename
        tmp = folder / f".{filename}.part-{os.getpid()}-{secrets.token_hex(4)}"
        if not quiet:
            print(f"gpugrad: downloading {url}", file=sys.stderr)
        try:
            got = _fetch_to(url, tmp, timeout)
            if got != md5:
                failures.append(f"{url}: MD5 mismatch (expected {md5}, got {got}); file deleted")
                continue
            os.replace(tmp, target)
            fsync_dir(folder)
            return target
        except (urllib.error.URLError, OSError, ValueError) as e:
            # URLError covers HTTP errors and unreachable hosts; ValueError a malformed URL.
            failures.append(f"{url}: {e}")
        finally:
            if tmp.exists():
                tmp.unlink()
    raise DownloadError(
        f"could not download {filename} into {folder}:\n  " + "\n  ".join(failures)
        if failures
        else f"could not download {filename}: no mirrors configured"
    )


def download_dataset(name: str, folder, filenames=None, quiet: bool = False) -> list[Path]:
    """Download the files of dataset `name` ("mnist" or "fashion-mnist") missing from `folder`.

    Mirrors and MD5s come from the module-level MIRRORS and MD5S tables.
    """
    if name not in MD5S:
        raise ValueError(f"download_dataset: unknown dataset {name!r}; known: {sorted(MD5S)}")
    md5s = MD5S[name]
    folder = Path(folder)
    paths = []
    for filename in filenames if filenames is not None else md5s:
        if filename not in md5s:
            raise ValueError(f"download_dataset: {filename!r} is not a file of {name}")
        target = folder / filename
        if not target.exists():
            download_file(filename, folder, MIRRORS[name], md5s[filename], quiet=quiet)
        paths.append(target)
    return paths
