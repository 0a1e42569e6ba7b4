"""`vqclip gallery`: the page of a sweep, a batch, a race's winner and other runs, read as HTML and
rendered in headless Chromium; damaged and hostile run folders."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
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


def tiny(tiny_sets: list[str]) -> list[str]:
    return [item for s in tiny_sets for item in ("--set", s)]


def generate(tiny_sets: list[str], out: Path, prompt: str, *args: str) -> dict:
    result = runner.invoke(app, ["generate", prompt, *tiny(tiny_sets), "--size", "32x32", "--steps", "3",
                                 "--save-every", "1", "-o", str(out), "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def outputs(tiny_sets, tmp_path_factory) -> Path:
    """An outputs tree: a sweep of 2 seeds × 2 learning rates, a batch of two prompts, a race of
    3 candidates with a video that was then resumed, and one run with a hostile prompt."""
    root = tmp_path_factory.mktemp("outputs")
    generate(tiny_sets, root, "a red circle", "--seeds", "1-2", "--sweep", "lr=0.05,0.2")
    generate(tiny_sets, root, HOSTILE, "--seed", "9")
    race = generate(tiny_sets, root, "a green triangle", "--seed", "20", "--candidates", "3",
                    "--video", "gif")
    resumed = runner.invoke(app, ["resume", race["run_dir"], "--steps", "4"])
    assert resumed.exit_code == 0, resumed.output
    prompts = root / "prompts.txt"
    prompts.write_text("a blue square --seed 3\na yellow star --seed 4\n")
    batch = runner.invoke(app, ["batch", str(prompts), *tiny(tiny_sets), "--set", "steps=3", "--set",
                                "size=[32,32]", "--set", "save_every=1", "-o", str(root / "batch-demo")])
    assert batch.exit_code == 0, batch.output
    return root


@pytest.fixture(scope="module")
def page(outputs) -> Path:
    result = runner.invoke(app, ["gallery", str(outputs)])
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{outputs / 'index.html'}\n"
    assert "8 runs, 1 sweep, 1 batch;" in result.stderr
    return outputs / "index.html"


def visible_cards(dom: Elements) -> list[dict]:
    return [card for card in dom.select("article", "card") if "hidden" not in card]


def card_of(page: Path, words: str) -> tuple[dict, Elements]:
    """The index card whose prompt holds `words`, and its run page."""
    index = Elements(page.read_text())
    card = next(c for c in index.select("article", "card") if words in c["data-prompt"])
    href = next(a["href"] for a in index.select("a", inside="card")
                if words.replace(" ", "-") in a["href"])
    return card, Elements((page.parent / href).read_text())


def test_the_page_groups_the_sweep_batch_and_single_runs_and_shows_prompts_as_text(page) -> None:
    dom = Elements(page.read_text())
    groups = dom.select("section", "group")
    assert [g["data-kind"] for g in groups] == ["sweep", "batch", "runs"]
    text = "".join(dom.text)
    assert re.search(r"Sweep \S*sweep-a-red-circle\s*4 runs", text)
    assert re.search(r"Batch batch-demo\s*2 runs", text) and re.search(r"Single runs\s*2 runs", text)
    assert [c["data-prompt"] for c in dom.select("article", "card", inside="group")][4:6] == [
        "a blue square", "a yellow star"]  # the batch's cards, in its order
    cells = dom.select("td", "cell", inside="grid")
    assert len(cells) == 4
    assert [th.get("scope") for th in dom.select("th", inside="grid")].count("col") == 2  # seeds across
    assert [th.get("scope") for th in dom.select("th", inside="grid")].count("row") == 2  # lr down
    assert len(dom.select("polyline", "curve", inside="overlay")) == 4
    assert "lr=0.05 seed=1" in text and "lr=0.2 seed=2" in text  # the settings of each cell
    assert HOSTILE in text  # shown as text
    assert len(dom.select("script")) == 1  # the page's own, and no other
    for img in dom.select("img"):
        assert (page.parent / img["src"]).is_file()
    for link in dom.select("a"):
        assert (page.parent / link["href"]).is_file()


def _y_labels(svg_html: str) -> list[str]:
    return re.findall(r'text-anchor="end">([^<]+)</text>', svg_html)[:3]


def run_html(page: Path, words: str) -> str:
    index = Elements(page.read_text())
    href = next(a["href"] for a in index.select("a", inside="card") if words in a["href"])
    return (page.parent / href).read_text()


def test_a_series_cards_share_their_loss_axes_and_steps_end_at_the_step_count(page) -> None:
    html = page.read_text()
    sweep = html.split('data-kind="batch"')[0]
    shared = re.findall(r'<div class="curve shared-axes">(.*?)</div>', sweep, re.S)
    own = re.findall(r'<div class="curve own-axes">(.*?)</div>', sweep, re.S)
    assert len(shared) == len(own) == 4
    assert len({tuple(_y_labels(svg)) for svg in shared}) == 1  # one loss scale for the 4 cards
    assert len({tuple(_y_labels(svg)) for svg in own}) > 1  # each its own
    assert all("step 3</text>" in svg for svg in shared + own)  # 3 steps: the axis ends at 3
    assert '<body class="shared-axes">' in html
    single = html.split('data-kind="runs"')[1]
    assert 'class="curve own-axes"' not in single  # runs of no series keep one curve


def test_badges_say_resumed_winner_and_video(page) -> None:
    index = page.read_text()
    badges = re.search(r'data-prompt="a green triangle".*?</article>', index, re.S).group(0)
    assert re.findall(r'class="badge (\w+)"', badges) == ["resumed", "winner", "video"]
    assert 'title="resumed after step 3"' in badges and ">best of 3<" in badges
    assert "badge" not in re.search(r'data-prompt="a yellow star".*?</article>', index, re.S).group(0)


def test_a_candidates_runs_page_shows_the_race_and_the_real_candidate_count(page) -> None:
    _, run = card_of(page, "green triangle")
    figures = run.select("figure", inside="candidates")
    assert len(figures) == 3 and sum("winner" in f["class"] for f in figures) == 1
    text = "".join(run.text)
    scores = [float(s) for s in re.findall(r"score (\d\.\d{4})", text)]
    assert len(scores) == 3 and scores == sorted(scores)  # best first
    assert "seed 20" in text and "(kept)" in text and "3 seeds raced for" in text
    assert "candidates: 3  # from candidates.json" in text and "candidates: 1" not in text
    video = run.select("img", "video")[0]
    assert video["width"] == "512" and video["src"].endswith("progress.gif")  # 32 px × 16
    assert "4/4" in text  # steps after the resume


def test_a_run_page_has_the_full_image_frames_loss_plot_and_config(page) -> None:
    card, run = card_of(page, "script")
    assert card["data-seconds"] and float(card["data-loss"]) > 0
    images = [img["src"] for img in run.select("img")]
    assert images[0].endswith("final.png") and len(images) == 1 + 3 + 1  # final, 3 frames, final
    captions = re.findall(r"<figcaption>([^<]*)</figcaption>", run_html(page, "script"))
    assert captions == ["step 0", "step 1", "step 2", "step 3 (final)"]  # as the bar counts: 3 of 3
    assert len(run.select("polyline", "curve")) == 1
    text = "".join(run.text)
    assert "lr: 0.1" in text and HOSTILE in text and len(run.select("script")) == 0


def test_a_sweep_galleried_directly_is_titled_by_its_folder(outputs, tmp_path) -> None:
    sweep = shutil.copytree(next(outputs.glob("*/*-sweep-a-red-circle")), tmp_path / "lr-sweep")
    result = runner.invoke(app, ["gallery", str(sweep)])
    assert result.exit_code == 0, result.output
    assert "4 runs, 1 sweep, 0 batches;" in result.stderr
    text = "".join(Elements((sweep / "index.html").read_text()).text)
    assert "Sweep lr-sweep" in text and "Sweep ." not in text


def test_rerunning_on_a_grown_folder_only_thumbnails_the_new_images(outputs, page, tiny_sets,
                                                                     tmp_path) -> None:
    tree = shutil.copytree(outputs, tmp_path / "tree")
    thumbs = sorted((tree / "gallery").glob("*.jpg"))
    stamps = [p.stat().st_mtime_ns for p in thumbs]
    again = build_gallery(tree)
    assert (again.thumbnails_made, again.thumbnails_kept) == (0, 8)
    assert again.sweeps == 1 and again.batches == 1  # found in the copy, whose manifests name the original
    generate(tiny_sets, tree, "a green square", "--seed", "5")
    grown = build_gallery(tree)
    assert (grown.runs, grown.thumbnails_made, grown.thumbnails_kept) == (9, 1, 8)
    assert [p.stat().st_mtime_ns for p in thumbs] == stamps
    assert "a green square" in (tree / "index.html").read_text()


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


@pytest.fixture
def hostile_tree(outputs, tmp_path) -> tuple[Path, Path]:
    """A tree of one good run, the batch with a `\\xff` manifest line, and damaged copies of the
    good run; beside it an outside folder with a secret and an image."""
    good = next(p.parent for p in outputs.glob("*/*script*/final.png"))
    root, outside = tmp_path / "tree", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    (outside / "passwd").write_text("root:x:0:0:SECRET-OUTSIDE\n")
    Image.new("RGB", (8, 8), (255, 0, 255)).save(outside / "outside.png")

    def copy(name: str) -> Path:
        return shutil.copytree(good, root / name)

    copy("good")
    batch = shutil.copytree(outputs / "batch-demo", root / "batch-demo")
    with open(batch / "manifest.jsonl", "ab") as manifest:
        manifest.write(b'{"key": "\xff", "index": 9, "status": "ok"}\n')
    (copy("not-an-image") / "final.png").write_bytes(b"not a png")
    for name, key, value in (("prompt-123", "prompt", "123"), ("size-5", "size", "5")):
        config = copy(name) / "config.yaml"
        config.write_text(re.sub(rf"(?m)^{key}:.*(\n(?:  |- ).*)*$", f"{key}: {value}", config.read_text()))
    for name, line in (("step-abc", '{"step": "abc", "loss": 1.0}'),
                       ("step-infinity", '{"step": Infinity, "loss": 1.0, "seconds": Infinity}')):
        with open(copy(name) / "log.jsonl", "a") as log:
            log.write(line + "\n")
    loop = copy("frame-loop") / "frames" / "000009.png"
    loop.symlink_to(loop.name)
    os.mkfifo(copy("frame-fifo") / "frames" / "000010.png")
    fifo = copy("final-fifo") / "final.png"
    fifo.unlink()
    os.mkfifo(fifo)
    links = copy("links-out")
    for name, target in (("config.yaml", outside / "passwd"), ("final.png", outside / "outside.png")):
        (links / name).unlink()
        (links / name).symlink_to(target)
    (links / "frames" / "000011.png").symlink_to(outside / "outside.png")
    (root / "linked-folder").symlink_to(shutil.copytree(good, outside / "run"))  # not followed
    short = copy("interrupted")
    (short / "log.jsonl").write_text("".join((short / "log.jsonl").read_text().splitlines(True)[:2]))
    return root, outside


def _alarm(signum, frame):
    raise TimeoutError("the gallery hung")


def test_damaged_and_hostile_runs_are_marked_and_the_rest_is_made(hostile_tree) -> None:
    root, outside = hostile_tree
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)  # a FIFO opened for reading waits for a writer: fail instead of hanging
    try:
        result = runner.invoke(app, ["gallery", str(root), "--json"])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["runs"] == 13 and report["batches"] == 1
    problems = {entry["run"]: " ".join(entry["problems"]) for entry in report["damaged"]}
    assert set(problems) == {"not-an-image", "prompt-123", "size-5", "final-fifo", "links-out"}
    assert "final.png is not an image" in problems["not-an-image"]
    assert "prompt 123 is not text" in problems["prompt-123"]
    assert "size 5 is not [width, height]" in problems["size-5"]
    assert "final.png is not a regular file" in problems["final-fifo"]
    assert "config.yaml is not a regular file" in problems["links-out"]
    assert "warning: prompt-123: config.yaml: prompt 123 is not text\n" in result.stderr

    written = [root / "index.html", *(root / "gallery").glob("*.html")]
    html = "".join(page.read_text() for page in written)
    assert "SECRET-OUTSIDE" not in html and "root:x:0" not in html
    for page in written:
        for element in Elements(page.read_text()).select("img") + Elements(page.read_text()).select("a"):
            target = (page.parent / (element.get("src") or element.get("href"))).resolve()
            assert root.resolve() in target.parents and not target.is_relative_to(outside.resolve())
    assert not list((root / "gallery").glob("links-out-*.jpg"))  # no thumbnail of the outside image
    assert (outside / "passwd").read_text() == "root:x:0:0:SECRET-OUTSIDE\n"  # nothing written there

    index = Elements((root / "index.html").read_text())
    cards = {c["data-order"]: c for c in index.select("article", "card")}
    assert len(cards) == 13 and len(index.select("li", "damaged")) == 5
    assert len(index.select("li", "interrupted")) == 1
    assert "2/3" in "".join(index.text)  # the interrupted copy: 2 of its 3 steps
    assert "links-out" in [t.strip() for t in index.text]  # no prompt read: titled by its folder
    for name in ("frame-loop", "frame-fifo"):
        run = Elements(next((root / "gallery").glob(f"{name}-*.html")).read_text())
        assert [img["alt"] for img in run.select("img")][1:-1] == ["frame 000000", "frame 000001",
                                                                 "frame 000002"]


def test_a_gallery_folder_that_links_out_is_refused(outputs, tmp_path) -> None:
    good = next(p.parent for p in outputs.glob("*/*script*/final.png"))
    root = tmp_path / "tree"
    shutil.copytree(good, root / "run")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "keep.jpg").write_bytes(b"x")
    (root / "gallery").symlink_to(tmp_path / "elsewhere")
    result = runner.invoke(app, ["gallery", str(root)])
    assert result.exit_code == 2 and "gallery is not a folder (a link or a file)" in result.output
    assert os.listdir(tmp_path / "elsewhere") == ["keep.jpg"] and not (root / "index.html").exists()


@needs_chromium
def test_chromium_renders_the_groups_curves_badges_and_filters_and_runs_no_prompt(page, tmp_path) -> None:
    url = page.resolve().as_uri()
    dom = Elements(dump_dom(url))
    assert [g["data-kind"] for g in dom.select("section", "group")] == ["sweep", "batch", "runs"]
    assert len(dom.select("td", "cell", inside="grid")) == 4
    assert len(dom.select("polyline", "curve", inside="overlay")) == 4
    assert len(visible_cards(dom)) == 8
    assert [s.get("src") for s in dom.select("script")] == [None]  # the hostile prompt stayed text
    assert HOSTILE in "".join(dom.text)
    assert dom.select("body")[0]["class"] == "shared-axes"
    assert len(dom.select("li", "badge")) == 3

    own = Elements(dump_dom(url + "#axes=own"))  # the switch off: each card its own axes
    assert own.select("body")[0]["class"] == ""

    hostile = Elements(dump_dom(url + "#q=SCRIPT"))
    assert [c["data-prompt"] for c in visible_cards(hostile)] == [HOSTILE.lower()]
    assert len(hostile.select("td", "filtered", inside="grid")) == 4
    assert "1 of 8 runs" in "".join(hostile.text)

    by_loss = Elements(dump_dom(url + "#sort=loss"))  # sorted within each group, groups kept apart
    sweep_losses = [float(c["data-loss"]) for c in by_loss.select("article", "card")][:4]
    assert sweep_losses == sorted(sweep_losses)
    assert {c["data-prompt"] for c in by_loss.select("article", "card")[:4]} == {"a red circle"}

    race = next(a["href"] for a in dom.select("a", inside="card") if "green-triangle" in a["href"])
    run = Elements(dump_dom((page.parent / race).resolve().as_uri()))
    assert len(run.select("figure", "candidate")) == 3 and len(run.select("figure", "winner")) == 1
    assert run.select("img", "video")[0]["width"] == "512"
    assert "candidates: 3  # from candidates.json" in "".join(run.text)

    shot = screenshot(url, tmp_path / "gallery.png")
    with Image.open(shot) as image:
        assert image.size == (1100, 1300)
        assert len(image.convert("RGB").getcolors(1100 * 1300)) > 50  # drawn, not a blank page
