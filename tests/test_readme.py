"""The README agrees with the code: its pictures are what the commands beside them make (`make
docs-images`: every setting a picture records is what its command gives now), its flag table
gives the schema's defaults, and its library example runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from vqclip.outputs.metadata import read_record
from vqclip.run.config import build_config

DOCS = Path(__file__).resolve().parents[1] / "docs"


def as_recorded(current: Any, recorded: Any) -> Any:
    """`current` cut to the keys that `recorded` has, at every depth: a key added to the schema
    since a picture was made (an option with a default) is passed over; a key the picture has
    and the schema lost shows as NOT_IN_SCHEMA."""
    if isinstance(current, dict) and isinstance(recorded, dict):
        return {key: as_recorded(current[key], value) if key in current else NOT_IN_SCHEMA
                for key, value in recorded.items()}
    if isinstance(current, list) and isinstance(recorded, list) and len(current) == len(recorded):
        return [as_recorded(now, then) for now, then in zip(current, recorded, strict=True)]
    return current


NOT_IN_SCHEMA = "<not in the schema>"


def test_a_pictures_check_passes_over_keys_added_since_but_not_changed_or_lost_ones() -> None:
    now = {"steps": 3, "pixel": {"scale": 1, "smooth": True}, "losses": [{"name": "tv", "power": 2}]}
    assert as_recorded(now, {"steps": 3, "pixel": {"scale": 1}, "losses": [{"name": "tv"}]}) == \
        {"steps": 3, "pixel": {"scale": 1}, "losses": [{"name": "tv"}]}
    assert as_recorded(now, {"steps": 4}) != {"steps": 4}
    assert as_recorded(now, {"steps": 3, "cut": 1}) != {"steps": 3, "cut": 1}


def test_shapes_picture_records_the_documented_command() -> None:
    record = read_record(DOCS / "shapes-red-circle.png")
    documented, _ = build_config(preset="shapes", flags={"prompt": "a red circle", "seed": 1})
    recorded = dict(record["config"])
    assert recorded.pop("out") == "build/docs-runs"
    assert as_recorded(OmegaConf.to_container(documented, resolve=True), recorded) == recorded


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


def test_make_demo_installs_vqclip_alone_and_says_how_to_reach_it() -> None:
    import subprocess

    root = DOCS.parent
    plan = subprocess.run(["make", "-n", "-B", "demo"], cwd=root, capture_output=True, text=True,
                          check=True)
    installs = [line for line in plan.stdout.splitlines() if "pip install" in line]
    assert installs == [".venv/bin/python -m pip install --progress-bar on -e ."]  # no dev or ray extras
    assert "source .venv/bin/activate" in plan.stdout and ".venv/bin/vqclip" in plan.stdout
    tests = subprocess.run(["make", "-n", "-B", "venv"], cwd=root, capture_output=True, text=True,
                           check=True)
    assert "-e '.[dev,ray]'" in tests.stdout  # the test tools come on top, for make test
    readme = (root / "README.md").read_text()
    set_up = readme[readme.index("## Set up"):readme.index("## The shapes world")]
    assert "source .venv/bin/activate" in set_up and ".venv/bin/vqclip" in set_up


def test_the_parameters_sample_shows_the_current_shapes_preset() -> None:
    readme = (DOCS.parent / "README.md").read_text()
    preset, _ = build_config(preset="shapes")
    line = next(line for line in readme.splitlines() if line.startswith("Steps: "))
    assert line.startswith(f"Steps: {preset.steps}, ")
    assert f"Cutn: {preset.cutn}, " in line and f"Lr: {preset.lr}, " in line
