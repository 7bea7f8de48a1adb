"""The Dockerfiles cannot be built here (no Docker engine): check what can be checked by reading."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILES = sorted((ROOT / "docker").glob("Dockerfile.*"))


def test_both_dockerfiles_exist():
    assert {p.name for p in DOCKERFILES} == {"Dockerfile.cpu", "Dockerfile.cuda"}


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_every_copied_path_exists(dockerfile):
    copies = re.findall(r"^COPY\s+(.+?)\s+\S+\s*$", dockerfile.read_text(), flags=re.M)
    assert copies, "no COPY lines"
    for line in copies:
        for source in line.split():
            assert (ROOT / source).exists(), f"{dockerfile.name}: COPY source {source} missing"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_installs_the_package_and_has_a_command(dockerfile):
    text = dockerfile.read_text()
    assert re.search(r"pip install .*-e \"\.\[", text)
    assert re.search(r"^CMD ", text, flags=re.M)
    assert "torch==" not in text or "torch==2.13.0" in text


def test_cuda_image_uses_an_nvidia_cuda_runtime_base_and_the_cuda12_extra():
    text = (ROOT / "docker" / "Dockerfile.cuda").read_text()
    assert re.search(r"^FROM nvidia/cuda:12[\d.]+-runtime", text, flags=re.M)
    assert "cuda12" in text
