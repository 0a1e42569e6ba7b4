"""The README agrees with the code: its pictures are what the commands beside them make (`make
docs-images`), its flag table gives the schema's defaults, and its library example runs."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from vqclip.outputs.metadata import read_record
from vqclip.run.config import build_config

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
    from vqclip.run.config import GenerateConfig

    readme = (DOCS.parent / "README.md").read_text()
    defaults = GenerateConfig()
    for row in (f"| `--steps N` | optimization steps (default {defaults.steps}) |",
                f"| `--lr X` | learning rate (default {defaults.lr}) |",
                f"| `--cutn N` | cutouts per step (default {defaults.cutn}) |",
                f"(default {defaults.size[0]}x{defaults.size[1]})",
                f"every N steps (default {defaults.save_every})",
                f"(default `{defaults.out}`)"):
        assert row in readme, row


def test_the_library_example_runs_as_written(tmp_path, monkeypatch, one_thread) -> None:
    """The README's Library block, run in an empty folder: an image, labels, scores and hits."""
    readme = (DOCS.parent / "README.md").read_text()
    section = readme[readme.index("## Library"):]
    start = section.index("```python\n") + len("```python\n")
    code = section[start:section.index("\n```", start)]
    monkeypatch.chdir(tmp_path)
    names: dict = {}
    exec(compile(code, "README.md", "exec"), names)  # noqa: S102 - the documented example itself
    result = names["result"]
    assert Path(result.image).is_file() and result.steps == 50 and len(names["steps"]) >= 50
    assert names["labels"].results[0].labels[0].label == "a red circle"
    image = Path(result.image).resolve()
    assert Path(names["scores"].results[0].image).resolve() == image
    assert image in [Path(hit.path).resolve() for hit in names["hits"].hits]
