"""The README's pictures are what the commands beside them make (`make docs-images`)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from vqclip.config import build_config
from vqclip.metadata import read_record

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_shapes_picture_records_the_documented_command() -> None:
    record = read_record(DOCS / "shapes-red-circle.png")
    documented, _ = build_config(preset="shapes", flags={"prompt": "a red circle", "seed": 1})
    expected = OmegaConf.to_container(documented, resolve=True)
    recorded = dict(record["config"])
    assert recorded.pop("out") == "build/docs-runs"
    expected.pop("out")
    assert recorded == expected
