"""Fixtures shared by the data tests. Nothing here may reach the internet."""

from pathlib import Path

import pytest

from gpugrad.data import download

# The module's own mirror list, captured before any test blanks it.
_PUBLISHED_MIRRORS = {name: list(urls) for name, urls in download.MIRRORS.items()}

SHARED_DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@pytest.fixture(autouse=True)
def _no_internet_mirrors(monkeypatch):
    # A test that downloads must point the mirrors at its loopback server; any other download
    # attempt fails with "no mirrors configured" instead of going to the internet.
    monkeypatch.setattr(download, "MIRRORS", {"mnist": [], "fashion-mnist": []})


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist" / "train-labels-idx1-ubyte.gz").is_file():
        pytest.skip(f"the offline dataset copies are not at {SHARED_DATA}")
    return SHARED_DATA.resolve()


@pytest.fixture
def published_mirrors() -> dict:
    return _PUBLISHED_MIRRORS
