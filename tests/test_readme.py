"""The README agrees with the code: its pictures are what the commands beside them make (`make
docs-images`), and its flag table gives the schema's defaults."""

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


def test_readme_flag_table_gives_the_schema_defaults() -> None:
    from vqclip.config import GenerateConfig

    readme = (DOCS.parent / "README.md").read_text()
    defaults = GenerateConfig()
    for row in (f"| `--steps N` | optimization steps (default {defaults.steps}) |",
                f"| `--lr X` | learning rate (default {defaults.lr}) |",
                f"| `--cutn N` | cutouts per step (default {defaults.cutn}) |",
                f"(default {defaults.size[0]}x{defaults.size[1]})",
                f"every N steps (default {defaults.save_every})",
                f"(default `{defaults.out}`)"):
        assert row in readme, row
