"""Sweeps: seed and value parsing, one run per combination, resume, and the labelled sheet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vqclip.errors import UsageError, VqclipError
from vqclip.outputs.sheet import contact_sheet, save_image_atomic, sheet_layout
from vqclip.run.config import build_config
from vqclip.series.sweep import expand, parse_seeds, parse_sweep, run_sweep, sweep_grid

pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["steps=2", "size=[32,32]", "save_every=0", "prompt=a red circle"]


def test_parse_seeds_ranges_and_lists() -> None:
    assert parse_seeds("1-4") == [1, 2, 3, 4]
    assert parse_seeds("1,3,5") == [1, 3, 5]
    assert parse_seeds("0, 7-8 ,3,7") == [0, 7, 8, 3]
    for bad in ("", "a", "5-3", "1-", "0-99999999"):
        with pytest.raises(UsageError):
            parse_seeds(bad)


def test_parse_sweep_keeps_lists_whole() -> None:
    assert parse_sweep("lr=0.05,0.1") == ("lr", ["0.05", "0.1"])
    assert parse_sweep("size=[32,32],[64,48]") == ("size", ["[32,32]", "[64,48]"])
    for bad in ("lr", "=1,2", "lr=1,,2"):
        with pytest.raises(UsageError):
            parse_sweep(bad)


def test_expand_is_the_cartesian_product_times_seeds() -> None:
    overrides = expand([1, 2], {"lr": [0.1, 0.2], "size": [[32, 32], "[64,64]"]})
    assert len(overrides) == 8
    assert overrides[0] == ["lr=0.1", "size=[32,32]", "seed=1"]
    assert overrides[1] == ["lr=0.1", "size=[32,32]", "seed=2"]
    assert overrides[-1] == ["lr=0.2", "size=[64,64]", "seed=2"]
    assert expand(None, {"cutn": [1, 2]}) == [["cutn=1"], ["cutn=2"]]
    assert expand([3], {}) == [["seed=3"]]


def test_grid_puts_seeds_across_or_else_the_last_key() -> None:
    grid = sweep_grid([1, 2], {"lr": [0.1, 0.2], "cutn": [1, 2]})
    assert grid.col_labels == ["seed 1", "seed 2"]
    assert grid.row_labels == ["lr=0.1 cutn=1", "lr=0.1 cutn=2", "lr=0.2 cutn=1", "lr=0.2 cutn=2"]
    assert grid.positions[:3] == [(0, 0), (0, 1), (1, 0)]
    single = sweep_grid([7], {"lr": [0.1, 0.2], "cutn": [1, 2, 3]})
    assert single.row_labels == ["lr=0.1", "lr=0.2"]
    assert single.col_labels == ["cutn=1", "cutn=2", "cutn=3"]


def make_image(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (20, 10)) -> Path:
    Image.new("RGB", size, color).save(path)
    return path


def test_contact_sheet_size_blanks_labels_and_errors(tmp_path) -> None:
    red = make_image(tmp_path / "red.png", (255, 0, 0))
    blue = make_image(tmp_path / "blue.png", (0, 0, 255), (64, 64))
    cells = [[red, None, blue], [None, blue, red]]
    labels = {"row_labels": ["seed 1", "seed 2"], "col_labels": ["a", "b", "c"],
              "captions": [["x", "", "z"], ["", "y", ""]]}
    sheet = contact_sheet(cells, cell_size=48, **labels)
    layout = sheet_layout(2, 3, cell_size=48, **labels)
    assert sheet.size == layout.size
    assert layout.left > 0 and layout.top > 0 and layout.caption_height > 0
    assert sheet.size[0] == layout.left + 3 * 48 + 4 * 4
    pixels = np.asarray(sheet)
    x, y = layout.cell_origin(0, 0)
    assert tuple(pixels[y + 24, x + 24]) == (255, 0, 0)  # scaled up to the cell's width
    x, y = layout.cell_origin(0, 1)
    assert tuple(pixels[y + 24, x + 24]) == (232, 232, 232)  # None is a blank cell
    assert (pixels[: layout.top, layout.left:] < 128).any()  # column labels drawn
    assert (pixels[layout.top:, : layout.left] < 128).any()  # row labels drawn
    plain = contact_sheet([[red]], cell_size=32)
    assert plain.size == (32 + 2 * 4, 32 + 2 * 4)
    with pytest.raises(VqclipError, match="row labels"):
        contact_sheet(cells, row_labels=["only one"])
    with pytest.raises(VqclipError, match="cannot read"):
        contact_sheet([[tmp_path / "missing.png"]])
    out = save_image_atomic(plain, tmp_path / "sheet.png")
    with pytest.raises(VqclipError, match="already exists"):
        save_image_atomic(plain, out)


def test_sweep_runs_every_combination_once_and_draws_a_labelled_sheet(tiny_sets, tmp_path) -> None:
    def build(overrides: list[str]):
        return build_config(dotlist=[*tiny_sets, *FAST, f"out={tmp_path}", *overrides])[0]

    sweeps = {"lr": [0.1, 0.2], "cutn": [1, 2]}
    result = run_sweep(build, seeds=[1, 2], sweeps=sweeps, cell_size=32)
    assert len(result.ok) == 8 and not result.failed
    folder = result.folder
    assert folder.parent.parent == tmp_path and "-sweep-a-red-circle" in folder.name
    runs = sorted(p.parent for p in folder.glob("*/*/final.png"))
    assert len(runs) == 8
    configs = {(r["overrides"][0], r["overrides"][1], r["seed"]) for r in result.ok}
    assert len(configs) == 8
    ran = json.loads(json.dumps(result.to_json()))
    assert ran["sheet"] == str(folder / "sheet.png")

    grid = sweep_grid([1, 2], sweeps)
    layout = sheet_layout(4, 2, row_labels=grid.row_labels, col_labels=grid.col_labels,
                          captions=[[""]], cell_size=32)
    with Image.open(result.sheet) as sheet:
        assert sheet.size == layout.size
        assert sheet.size[0] == layout.left + 2 * 32 + 3 * 4
        assert sheet.size[1] == layout.top + 4 * (32 + layout.caption_height) + 5 * 4

    again = run_sweep(build, seeds=[1, 2], sweeps=sweeps, folder=folder, cell_size=32)
    assert again.records == [] and len(again.skipped) == 8
    assert len(list(folder.glob("*/*/final.png"))) == 8


def test_a_bad_swept_key_fails_before_any_run(tiny_sets, tmp_path) -> None:
    def build(overrides: list[str]):
        return build_config(dotlist=[*tiny_sets, *FAST, f"out={tmp_path}", *overrides])[0]

    with pytest.raises(UsageError, match="nonsense"):
        run_sweep(build, seeds=[1], sweeps={"nonsense": [1, 2]})
    assert list(tmp_path.iterdir()) == []


def test_a_sweep_resumes_from_the_same_command_or_its_folder(tiny_sets, tmp_path) -> None:
    from typer.testing import CliRunner

    from vqclip.cli.app import app

    def sweep(*args: str):
        sets = [item for s in [*tiny_sets, *FAST] for item in ("-s", s)]
        return CliRunner().invoke(app, ["generate", "a red circle", "--seeds", "1-3", *sets, "--json", *args])

    first = sweep("-o", str(tmp_path))
    assert first.exit_code == 0, first.output
    folder = Path(json.loads(first.stdout)["folder"])
    manifest = folder / "manifest.jsonl"
    lines = manifest.read_text().splitlines(keepends=True)
    manifest.write_text("".join(lines[:2]))  # as if stopped before the third run finished

    again = sweep("-o", str(tmp_path))
    assert again.exit_code == 0, again.output
    data = json.loads(again.stdout)
    assert Path(data["folder"]) == folder and (data["skipped"], data["ok"]) == (2, 1)

    given = sweep("-o", str(folder))
    assert given.exit_code == 0, given.output
    assert Path(json.loads(given.stdout)["folder"]) == folder and json.loads(given.stdout)["skipped"] == 3
    assert [p for p in tmp_path.rglob("*-sweep-*") if p.is_dir()] == [folder]

    other = sweep("-o", str(folder), "-s", "lr=0.3")
    assert other.exit_code == 2 and "holds a sweep of other settings" in other.stderr
