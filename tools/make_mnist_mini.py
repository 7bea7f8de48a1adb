"""Build the MNIST subset embedded in gpugrad (gpugrad/data/mnist_mini/) from the full dataset.

    python tools/make_mnist_mini.py [--src ../shared/data/mnist] [--out gpugrad/data/mnist_mini]

Picks, with a fixed seed, the same number of images of every digit from the training and the
test set (1 000 and 200 per digit by default), keeps them in their original order, and writes
them as gzipped IDX files with the original names plus a MANIFEST.json (counts, seed, source
and output MD5s). Sampling across the whole test set matters: its first 5 000 images are
cleaner than the last 5 000, so a prefix would be an easier test set than MNIST's.

Deterministic: the same source files give the same arrays, and with the same zlib the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gpugrad.data.download import MD5S, md5_of_file  # noqa: E402
from gpugrad.data.idx import encode_idx, read_idx_images, read_idx_labels  # noqa: E402

SPLITS = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def stratified_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """`per_class` random indices of every label value, sorted into the original order."""
    rng = np.random.default_rng(seed)
    picked = []
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        if len(members) < per_class:
            raise ValueError(f"only {len(members)} images of digit {digit}, need {per_class}")
        picked.append(rng.choice(members, size=per_class, replace=False))
    return np.sort(np.concatenate(picked))


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def build(src: Path, out: Path, train_per_class: int, test_per_class: int, seed: int) -> dict:
    for name in sum(SPLITS.values(), ()):
        got = md5_of_file(src / name)
        if got != MD5S["mnist"][name]:
            raise SystemExit(f"{src / name}: MD5 {got} is not the published {MD5S['mnist'][name]}")
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "description": "Stratified random subset of MNIST, built by tools/make_mnist_mini.py",
        "source": "MNIST by Yann LeCun, Corinna Cortes and Christopher J. C. Burges",
        "licence": "CC BY-SA 3.0 (as usually given for MNIST)",
        "seed": seed,
        "source_md5": {name: MD5S["mnist"][name] for name in sum(SPLITS.values(), ())},
        "splits": {},
        "files": {},
    }
    for split, (images_name, labels_name) in SPLITS.items():
        per_class = train_per_class if split == "train" else test_per_class
        images = read_idx_images(src / images_name)
        labels = read_idx_labels(src / labels_name)
        # Different seeds per split, so the two draws are independent.
        keep = stratified_indices(labels, per_class, seed + (0 if split == "train" else 1))
        manifest["splits"][split] = {
            "count": int(len(keep)),
            "per_class": per_class,
            "source_count": int(len(labels)),
            "indices_sha256": hashlib.sha256(keep.astype("<i8").tobytes()).hexdigest(),
        }
        for name, array in ((images_name, images[keep]), (labels_name, labels[keep])):
            data = encode_idx(array, compress=True)
            _write_atomic(out / name, data)
            manifest["files"][name] = {
                "bytes": len(data),
                "md5": hashlib.md5(data).hexdigest(),
                "shape": list(array.shape),
            }
    _write_atomic(out / "MANIFEST.json", (json.dumps(manifest, indent=2) + "\n").encode())
    return manifest


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=REPO.parent / "shared" / "data" / "mnist")
    parser.add_argument("--out", type=Path, default=REPO / "gpugrad" / "data" / "mnist_mini")
    parser.add_argument("--train-per-class", type=int, default=1000)
    parser.add_argument("--test-per-class", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    manifest = build(args.src, args.out, args.train_per_class, args.test_per_class, args.seed)
    total = sum(f["bytes"] for f in manifest["files"].values())
    for name, info in manifest["files"].items():
        print(f"{args.out / name}: {info['bytes']} bytes, shape {info['shape']}")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
