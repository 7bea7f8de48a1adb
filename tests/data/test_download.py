"""Downloads against a local HTTP server on 127.0.0.1 (never the internet)."""

import functools
import hashlib
import http.server
import shutil
import threading

import numpy as np
import pytest

from gpugrad.data import MNIST, DownloadError, FashionMNIST, download
from gpugrad.data.idx import encode_idx


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """Serves tmp_path/served over HTTP; yields (folder, base URL, list of requested paths)."""
    served = tmp_path / "served"
    served.mkdir()
    requests = []

    class Handler(_QuietHandler):
        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(served))
    )
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{httpd.server_address[1]}/", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def test_download_file_verifies_md5(server, tmp_path):
    served, url, _ = server
    payload = b"some bytes " * 1000
    (served / "f.bin").write_bytes(payload)
    out = tmp_path / "out"
    path = download.download_file("f.bin", out, [url], _md5(payload), quiet=True)
    assert path == out / "f.bin" and path.read_bytes() == payload
    assert [p.name for p in out.iterdir()] == ["f.bin"]  # no partial files left


def test_md5_mismatch_deletes_the_file_and_says_so(server, tmp_path):
    served, url, _ = server
    (served / "f.bin").write_bytes(b"tampered")
    out = tmp_path / "out"
    expected = _md5(b"original")
    with pytest.raises(DownloadError, match=f"f.bin.*MD5 mismatch.*expected {expected}.*got "
                                            f"{_md5(b'tampered')}.*deleted"):
        download.download_file("f.bin", out, [url], expected, quiet=True)
    assert list(out.iterdir()) == []


def test_falls_back_to_the_next_mirror(server, tmp_path):
    served, url, requests = server
    (served / "good").mkdir()
    (served / "bad").mkdir()
    (served / "good" / "f.bin").write_bytes(b"right")
    (served / "bad" / "f.bin").write_bytes(b"wrong")
    mirrors = [url + "missing/", url + "bad/", url + "good/"]
    path = download.download_file("f.bin", tmp_path / "out", mirrors, _md5(b"right"), quiet=True)
    assert path.read_bytes() == b"right"
    assert requests == ["/missing/f.bin", "/bad/f.bin", "/good/f.bin"]


def test_all_mirrors_failing_lists_every_reason(server, tmp_path):
    _, url, _ = server
    with pytest.raises(DownloadError, match=r"(?s)missing/f\.bin: HTTP Error 404.*"
                                            r"127\.0\.0\.1:1/f\.bin"):
        download.download_file("f.bin", tmp_path, [url + "missing/", "http://127.0.0.1:1/"],
                               "0" * 32, timeout=5, quiet=True)
    with pytest.raises(DownloadError, match="no mirrors configured"):
        download.download_file("f.bin", tmp_path, [], "0" * 32, quiet=True)


def _serve_fake_dataset(served, name, monkeypatch, n=4):
    """Put a tiny dataset on the server and make MIRRORS/MD5S describe it."""
    rng = np.random.default_rng(0)
    md5s = {}
    for prefix in ("train", "t10k"):
        files = {
            f"{prefix}-images-idx3-ubyte.gz": encode_idx(
                rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), compress=True),
            f"{prefix}-labels-idx1-ubyte.gz": encode_idx(np.arange(n, dtype=np.uint8), True),
        }
        for filename, data in files.items():
            (served / filename).write_bytes(data)
            md5s[filename] = _md5(data)
    monkeypatch.setitem(download.MD5S, name, md5s)


def test_dataset_download_true(server, tmp_path, monkeypatch):
    served, url, requests = server
    _serve_fake_dataset(served, "fashion-mnist", monkeypatch)
    monkeypatch.setitem(download.MIRRORS, "fashion-mnist", [url])
    root = tmp_path / "root"
    dataset = FashionMNIST(root, train=False, download=True)
    assert len(dataset) == 4 and dataset.targets.tolist() == [0, 1, 2, 3]
    assert sorted(p.name for p in (root / "FashionMNIST" / "raw").iterdir()) == sorted(
        download.MD5S["fashion-mnist"])
    # Present files are not fetched again.
    count = len(requests)
    FashionMNIST(root, train=True, download=True)
    assert len(requests) == count == 4


def test_dataset_download_with_a_bad_mirror_file(server, tmp_path, monkeypatch):
    served, url, _ = server
    _serve_fake_dataset(served, "mnist", monkeypatch)
    table = dict(download.MD5S["mnist"], **{"t10k-labels-idx1-ubyte.gz": "f" * 32})
    monkeypatch.setitem(download.MD5S, "mnist", table)
    monkeypatch.setitem(download.MIRRORS, "mnist", [url])
    with pytest.raises(DownloadError, match="t10k-labels-idx1-ubyte.gz.*MD5 mismatch"):
        MNIST(tmp_path, train=False, download=True)
    assert not (tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").exists()
    assert not any(p.name.startswith(".") for p in (tmp_path / "MNIST" / "raw").iterdir())


def test_real_mnist_files_with_the_published_md5s(server, tmp_path, monkeypatch, shared_data):
    served, url, _ = server
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
                 "train-labels-idx1-ubyte.gz"):
        shutil.copy(shared_data / "mnist" / name, served / name)
    monkeypatch.setitem(download.MIRRORS, "mnist", [url])
    raw = tmp_path / "MNIST" / "raw"
    # The train images (10 MB) are left out of the fetch to keep the test fast.
    download.download_dataset("mnist", raw, [n for n in download.MD5S["mnist"]
                                             if n != "train-images-idx3-ubyte.gz"], quiet=True)
    dataset = MNIST(tmp_path, train=False)
    assert len(dataset) == 10000 and dataset.targets[:3].tolist() == [7, 2, 1]


def test_default_mirrors_are_the_published_ones(published_mirrors):
    assert published_mirrors["mnist"][0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"
    assert len(published_mirrors["mnist"]) >= 2  # a fallback
    assert published_mirrors["fashion-mnist"][0] == (
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/")
    assert download.MD5S["mnist"]["train-images-idx3-ubyte.gz"] == (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873")
    assert download.MD5S["fashion-mnist"]["train-images-idx3-ubyte.gz"] == (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d")
