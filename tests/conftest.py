"""Shared fixtures: tiny models in the real formats, offline hubs, the `slow` marker."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("VQCLIP_OFFLINE", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

from tests.models_http import FileServer, use_home  # noqa: E402
from tests.tiny_clip import write_tiny_clip  # noqa: E402
from tests.tiny_models import write_taming_vqgan  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", help="also run tests marked slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="needs real weights or a long run; use --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_vqgan(tmp_path_factory: pytest.TempPathFactory):
    """(model.yaml, last.ckpt) of a tiny taming-format VQGAN with random weights."""
    return write_taming_vqgan(tmp_path_factory.mktemp("tiny_vqgan"))


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory):
    """Folder of a tiny open_clip model (local-dir layout) with random weights."""
    return write_tiny_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_sets(tiny_vqgan, tiny_clip) -> list[str]:
    """`--set` items that point generate at the tiny models."""
    config, checkpoint = tiny_vqgan
    return [
        f"vqgan.config={config}",
        f"vqgan.checkpoint={checkpoint}",
        f"clip.model=local-dir:{tiny_clip}",
        "clip.pretrained=null",
        "device=cpu",
    ]


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models: one thread beats two, whose hand-offs cost more than the work."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 serving test files (tests/models_http.py)."""
    with FileServer() as srv:
        yield srv


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh VQCLIP_HOME for one test."""
    return use_home(tmp_path / "home", monkeypatch)
