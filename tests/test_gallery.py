"""`vqclip gallery`: the page of a sweep and other runs, read as HTML and rendered in headless Chromium."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from tests.browser import Elements, dump_dom, needs_chromium, screenshot
from vqclip.cli.app import app
from vqclip.gallery import build_gallery

pytestmark = pytest.mark.usefixtures("one_thread")
HOSTILE = "<script>alert(1)</script> a blue square"
runner = CliRunner()


def generate(tiny_sets: list[str], out: Path, prompt: str, *args: str) -> dict:
    sets = [item for s in tiny_sets for item in ("--set", s)]
    result = runner.invoke(app, ["generate", prompt, *sets, "--size", "32x32", "--steps", "3",
                                 "--save-every", "1", "-o", str(out), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def outputs(tiny_sets, tmp_path_factory) -> Path:
    """An outputs tree: a sweep of 4 seeds × 2 learning rates, and one run with a hostile prompt."""
    root = tmp_path_factory.mktemp("outputs")
    generate(tiny_sets, root, "a red circle", "--seeds", "1-4", "--sweep", "lr=0.05,0.2")
    generate(tiny_sets, root, HOSTILE, "--seed", "9")
    return root


@pytest.fixture(scope="module")
def page(outputs) -> Path:
    result = runner.invoke(app, ["gallery", str(outputs)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{outputs / 'index.html'}\n"
    return outputs / "index.html"


def visible_cards(dom: Elements) -> list[dict]:
    return [card for card in dom.select("article", "card") if "hidden" not in card]


def test_the_page_has_the_sweep_grid_every_card_and_the_prompts_as_text(page) -> None:
    dom = Elements(page.read_text())
    cells = dom.select("td", "cell", inside="grid")
    assert len(cells) == 8
    assert [th.get("scope") for th in dom.select("th", inside="grid")].count("col") == 4  # seeds across
    assert [th.get("scope") for th in dom.select("th", inside="grid")].count("row") == 2  # lr down
    assert len(dom.select("polyline", "curve", inside="overlay")) == 8
    cards = dom.select("article", "card")
    assert len(cards) == 9 and len(dom.select("polyline", "curve", inside="card")) == 9
    assert {c["data-prompt"] for c in cards} == {"a red circle", HOSTILE.lower()}
    text = "".join(dom.text)
    assert "lr=0.05 seed=1" in text and "lr=0.2 seed=4" in text  # the settings of each cell
    assert HOSTILE in text  # shown as text
    assert len(dom.select("script")) == 1  # the page's own, and no other
    for img in dom.select("img"):
        assert (page.parent / img["src"]).is_file()
    for link in dom.select("a"):
        assert (page.parent / link["href"]).is_file()


def test_a_run_page_has_the_full_image_frames_loss_plot_and_config(page) -> None:
    index = Elements(page.read_text())
    hostile = next(c for c in index.select("article", "card") if "script" in c["data-prompt"])
    assert hostile["data-seconds"] and float(hostile["data-loss"]) > 0
    run_page = page.parent / next(a["href"] for a in index.select("a", inside="card")
                                  if "script" in a["href"])
    dom = Elements(run_page.read_text())
    images = [run_page.parent / img["src"] for img in dom.select("img")]
    assert images[0].name == "final.png" and all(p.is_file() for p in images)
    assert len(images) == 1 + 3  # the final image and a frame per step
    assert len(dom.select("polyline", "curve")) == 1
    text = "".join(dom.text)
    assert "lr: 0.1" in text and HOSTILE in text and len(dom.select("script")) == 0


def test_rerunning_on_a_grown_folder_only_thumbnails_the_new_images(outputs, page, tiny_sets,
                                                                     tmp_path) -> None:
    tree = shutil.copytree(outputs, tmp_path / "tree")
    thumbs = sorted((tree / "gallery").glob("*.jpg"))
    stamps = [p.stat().st_mtime_ns for p in thumbs]
    again = build_gallery(tree)
    assert (again.thumbnails_made, again.thumbnails_kept) == (0, 9)
    assert again.sweeps == 1  # found in the copy, whose manifest names the original's folders
    generate(tiny_sets, tree, "a green triangle", "--seed", "5")
    grown = build_gallery(tree)
    assert (grown.runs, grown.thumbnails_made, grown.thumbnails_kept) == (10, 1, 9)
    assert [p.stat().st_mtime_ns for p in thumbs] == stamps
    assert "a green triangle" in (tree / "index.html").read_text()


def test_one_run_folder_with_recorded_clip_scores(outputs, tmp_path) -> None:
    run_dir = next(p.parent for p in outputs.glob("*/*script*/final.png"))
    folder = shutil.copytree(run_dir, tmp_path / "run")
    scores = tmp_path / "scores.json"
    scores.write_text(json.dumps({"prompts": ["x", HOSTILE], "results": [
        {"image": str(folder / "final.png"),
         "scores": [{"prompt": "x", "similarity": 0.1}, {"prompt": HOSTILE, "similarity": 0.3125}]}]}))
    result = runner.invoke(app, ["gallery", str(folder), "--scores", str(scores), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["runs"] == 1
    dom = Elements((folder / "index.html").read_text())
    assert dom.select("article", "card")[0]["data-score"] == "0.3125"  # its own prompt's score
    assert "0.3125" in "".join(dom.text)
    assert (folder / dom.select("img")[0]["src"]).is_file()


def test_bad_paths_and_score_files_are_one_line_errors(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.json").write_text("{}")
    for args, words in ((["gallery", str(tmp_path / "missing")], "not a folder"),
                        (["gallery", str(tmp_path / "empty")], "no run folders"),
                        (["gallery", str(tmp_path), "--scores", str(tmp_path / "bad.json")],
                         "vqclip score --json")):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and words in result.output
        assert "Traceback" not in result.output


@needs_chromium
def test_chromium_renders_the_grid_curves_and_filters_and_runs_no_prompt(page, tmp_path) -> None:
    url = page.resolve().as_uri()
    dom = Elements(dump_dom(url))
    assert len(dom.select("td", "cell", inside="grid")) == 8
    assert len(dom.select("polyline", "curve", inside="overlay")) == 8
    assert len(visible_cards(dom)) == 9
    assert [s.get("src") for s in dom.select("script")] == [None]  # the hostile prompt stayed text
    assert HOSTILE in "".join(dom.text)

    circles = Elements(dump_dom(url + "#q=circle"))
    assert {c["data-prompt"] for c in visible_cards(circles)} == {"a red circle"}
    assert len(visible_cards(circles)) == 8
    hostile = Elements(dump_dom(url + "#q=SCRIPT"))
    assert [c["data-prompt"] for c in visible_cards(hostile)] == [HOSTILE.lower()]
    assert len(hostile.select("td", "filtered", inside="grid")) == 8
    assert "1 of 9 runs" in "".join(hostile.text)

    by_loss = Elements(dump_dom(url + "#sort=loss"))
    losses = [float(c["data-loss"]) for c in by_loss.select("article", "card")]
    in_folder_order = [float(c["data-loss"]) for c in dom.select("article", "card")]
    assert losses == sorted(losses) and losses != in_folder_order

    shot = screenshot(url, tmp_path / "gallery.png")
    with Image.open(shot) as image:
        assert image.size == (1100, 1300)
        assert len(image.convert("RGB").getcolors(1100 * 1300)) > 50  # drawn, not a blank page
