"""classify, search and score: mechanics on the tiny CLIP, quality on the bundled shapes CLIP."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
import typer
from PIL import Image
from typer.testing import CliRunner

from vqclip.cli.tasks import register

SHAPES_CLIP = Path(__file__).resolve().parents[1] / "vqclip" / "weights" / "shapes_clip"
needs_shapes_clip = pytest.mark.skipif(
    not (SHAPES_CLIP / "open_clip_config.json").is_file(),
    reason="the trained shapes CLIP is not shipped yet (vqclip/weights/shapes_clip/open_clip_config.json)",
)

runner = CliRunner()


def make_app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """Test app holding only the task commands."""

    register(app)
    return app


APP = make_app()


def invoke(*args: str):
    return runner.invoke(APP, [str(a) for a in args])


@pytest.fixture(scope="module")
def clip_args(tiny_clip) -> list[str]:
    return ["-s", f"clip.model=local-dir:{tiny_clip}", "-s", "clip.pretrained=null", "--device", "cpu"]


def solid(path: Path, color: tuple[int, int, int], size: tuple[int, int] = (40, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """A folder of small solid images, one in a subfolder, plus a hidden one that is ignored."""
    folder = tmp_path / "photos"
    solid(folder / "red.png", (230, 20, 20))
    solid(folder / "green.jpg", (20, 200, 40), (30, 50))
    solid(folder / "sub" / "blue.webp", (20, 40, 220))
    solid(folder / ".hidden" / "ignored.png", (1, 2, 3))
    (folder / "notes.txt").write_text("not an image")
    return folder


def json_of(result) -> dict:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


# --- search: the index -------------------------------------------------------------------------

def test_second_search_embeds_nothing_and_a_changed_file_is_reembedded(photos, clip_args) -> None:
    first = invoke("search", "a red square", photos, "--json", *clip_args)
    data = json_of(first)
    assert (data["indexed"], data["embedded"], data["skipped"]) == (3, 3, [])
    assert "3 embedded now" in first.stderr
    assert {Path(r["image"]).name for r in data["results"]} == {"red.png", "green.jpg", "blue.webp"}
    assert Path(data["index"]).parent == photos / ".vqclip-index"

    again = json_of(invoke("search", "a red square", photos, "--json", *clip_args))
    assert (again["indexed"], again["embedded"]) == (3, 0)
    assert again["results"] == data["results"]

    solid(photos / "red.png", (250, 250, 0))  # same name and size, new content
    solid(photos / "sub" / "new.bmp", (9, 9, 9))
    changed = json_of(invoke("search", "a red square", photos, "--json", *clip_args))
    assert (changed["indexed"], changed["embedded"]) == (4, 2)

    (photos / "green.jpg").unlink()
    pruned = json_of(invoke("search", "a red square", photos, "--json", "--top", "0", *clip_args))
    assert (pruned["indexed"], pruned["embedded"], len(pruned["results"])) == (3, 0, 3)


def test_unchanged_files_are_not_even_read(photos, clip_args, tiny_clip, monkeypatch) -> None:
    from vqclip.run.config import build_config
    from vqclip.tasks import index as index_module
    from vqclip.tasks.clip import load_task_perceptor
    from vqclip.tasks.common import images_in_folder

    cfg, _ = build_config(dotlist=[f"clip.model=local-dir:{tiny_clip}", "clip.pretrained=null",
                                   "device=cpu"])
    perceptor, info = load_task_perceptor(cfg.clip, cfg.device)
    for path in images_in_folder(photos):  # old enough that their stat records are trusted
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    paths = images_in_folder(photos)
    directory = photos / ".vqclip-index" / index_module.model_key(perceptor, info)
    first = index_module.update_index(perceptor, info, paths, root=photos, directory=directory)
    read: list[Path] = []
    real_load = index_module.load_images
    monkeypatch.setattr(index_module, "load_images",
                        lambda to_read, *a, **k: read.extend(to_read) or real_load(to_read, *a, **k))
    second = index_module.update_index(perceptor, info, paths, root=photos, directory=directory)
    assert read == [] and second.embedded == 0
    assert torch.equal(first.embeddings, second.embeddings)


def test_damaged_index_is_rebuilt(photos, clip_args, tmp_path) -> None:
    index_dir = tmp_path / "elsewhere"
    data = json_of(invoke("search", "x", photos, "--json", "--index-dir", index_dir, *clip_args))
    assert Path(data["index"]).parent == index_dir and not (photos / ".vqclip-index").exists()
    (Path(data["index"]) / "embeddings.safetensors").write_bytes(b"garbage")
    again = json_of(invoke("search", "x", photos, "--json", "--index-dir", index_dir, *clip_args))
    assert again["embedded"] == 3 and again["results"] == data["results"]


def test_corrupt_file_is_skipped_and_reported(photos, clip_args) -> None:
    (photos / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    result = invoke("search", "a circle", photos, "--json", *clip_args)
    data = json_of(result)
    assert data["indexed"] == 3
    assert [s["image"] for s in data["skipped"]] == [str(photos / "broken.png")]
    assert "skipped" in result.stderr and "broken.png" in result.stderr
    assert all(Path(r["image"]).name != "broken.png" for r in data["results"])


def test_image_query_leaves_itself_out_and_writes_a_sheet(photos, clip_args, tmp_path) -> None:
    sheet = tmp_path / "hits.png"
    data = json_of(invoke("search", "--image", photos / "red.png", photos, "--top", "2",
                          "--sheet", sheet, "--json", *clip_args))
    assert data["query"] == {"image": str(photos / "red.png")}
    assert [r["rank"] for r in data["results"]] == [1, 2]
    assert all(Path(r["image"]).name != "red.png" for r in data["results"])
    assert data["sheet"] == str(sheet)
    with Image.open(sheet) as image:
        assert image.width > 0


@pytest.mark.parametrize("args, message", [
    (["only-one-arg"], "expected QUERY DIR"),
    (["query", "no/such/dir"], "folder not found"),
    (["query", "{photos}", "--top", "-1"], "--top"),
    (["--image", "no/such.png", "{photos}"], "query image not found"),
    (["--image", "{photos}/red.png", "query", "{photos}"], "not a text QUERY"),
])
def test_search_usage_errors_exit_2(photos, clip_args, args, message) -> None:
    result = invoke("search", *[a.format(photos=photos) for a in args], *clip_args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_search_of_a_folder_without_usable_images_exits_2(tmp_path, clip_args) -> None:
    (tmp_path / "empty").mkdir()
    result = invoke("search", "x", tmp_path / "empty", *clip_args)
    assert result.exit_code == 2 and "no images" in result.stderr and "empty" in result.stderr
    (tmp_path / "empty" / "bad.gif").write_bytes(b"GIF89a")
    result = invoke("search", "x", tmp_path / "empty", *clip_args)
    assert result.exit_code == 2 and "none of the 1 images" in result.stderr
    assert "bad.gif" in result.stderr


def test_search_prints_a_table_by_default(photos, clip_args) -> None:
    result = invoke("search", "green", photos, "--top", "1", "-q", *clip_args)
    assert result.exit_code == 0, result.output
    assert "similarity" in result.stdout and len(result.stdout.strip().splitlines()) == 5
    assert result.stderr == ""


# --- classify -----------------------------------------------------------------------------------

def test_classify_json_over_folders_and_globs(photos, clip_args, tmp_path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("# colors\nred\n\ngreen\n")
    data = json_of(invoke("classify", photos / "sub", str(photos / "*.png"), "-l", "blue",
                          "--labels-file", labels, "--top", "2", "--json", *clip_args))
    assert [Path(r["image"]).name for r in data["results"]] == ["blue.webp", "red.png"]
    for item in data["results"]:
        probabilities = [lp["probability"] for lp in item["labels"]]
        assert len(probabilities) == 2 and probabilities == sorted(probabilities, reverse=True)
        assert {lp["label"] for lp in item["labels"]} <= {"red", "green", "blue"}
    assert data["templates"] == ["{}"] and data["model"]["pretrained"] is None


def test_classify_probabilities_sum_to_one_and_table_prints(photos, clip_args) -> None:
    data = json_of(invoke("classify", photos, "-l", "a", "-l", "b", "-l", "c", "--top", "0", "--json",
                          *clip_args))
    for item in data["results"]:
        assert sum(lp["probability"] for lp in item["labels"]) == pytest.approx(1.0, abs=1e-4)
    table = invoke("classify", photos / "red.png", "-l", "warm", "-l", "cold", *clip_args)
    assert table.exit_code == 0 and "red.png" in table.stdout and "%" in table.stdout


def test_template_ensemble_is_the_renormalized_mean(tiny_clip) -> None:
    from vqclip.run.config import build_config
    from vqclip.tasks.clip import load_task_perceptor
    from vqclip.tasks.common import encode_texts, label_embeddings

    cfg, _ = build_config(dotlist=[f"clip.model=local-dir:{tiny_clip}", "clip.pretrained=null",
                                   "device=cpu"])
    perceptor, _ = load_task_perceptor(cfg.clip, cfg.device)
    templates = ["a photo of a {}", "a drawing of a {}"]
    got = label_embeddings(perceptor, ["cat", "dog"], templates)
    texts = encode_texts(perceptor, ["a photo of a dog", "a drawing of a dog"])
    want = torch.nn.functional.normalize(texts.mean(0), dim=-1)
    assert torch.allclose(got[1], want, atol=1e-5) and torch.allclose(got.norm(dim=-1), torch.ones(2))


@pytest.mark.parametrize("args, message", [
    (["{photos}"], "no labels"),
    (["{photos}", "-l", "a", "-l", "a"], "given twice"),
    (["no/such.png", "-l", "a"], "image not found: no/such.png"),
    (["{photos}/*.gif", "-l", "a"], "no images match"),
    (["{photos}", "-l", "a", "--template", "a photo"], "--template"),
    (["{photos}", "--labels-file", "no/labels.txt"], "cannot read labels file"),
])
def test_classify_usage_errors_exit_2(photos, clip_args, args, message) -> None:
    result = invoke("classify", *[a.format(photos=photos) for a in args], *clip_args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_classify_of_only_unreadable_images_exits_2(tmp_path, clip_args) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"nope")
    result = invoke("classify", tmp_path / "bad.jpg", "-l", "a", *clip_args)
    assert result.exit_code == 2 and "bad.jpg" in result.stderr


# --- score --------------------------------------------------------------------------------------

def test_score_json_is_images_by_prompts(photos, clip_args) -> None:
    data = json_of(invoke("score", photos, "-p", "red", "--prompt", "a blue thing", "--json", *clip_args))
    assert data["prompts"] == ["red", "a blue thing"] and len(data["results"]) == 3
    for item in data["results"]:
        assert [s["prompt"] for s in item["scores"]] == data["prompts"]
        assert all(-1.0 <= s["similarity"] <= 1.0 for s in item["scores"])


def test_score_without_prompts_exits_2(photos, clip_args) -> None:
    result = invoke("score", photos, *clip_args)
    assert result.exit_code == 2 and "no prompts" in result.stderr


# --- quality on the bundled shapes CLIP ---------------------------------------------------------

@pytest.fixture(scope="module")
def drawn(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Freshly drawn one-shape images: every shape in six colors, named color_shape.png."""
    from vqclip.shapes.data import draw_shape

    folder = tmp_path_factory.mktemp("drawn")
    for color in ("red", "orange", "yellow", "green", "blue", "purple"):
        for shape in ("circle", "square", "triangle", "star", "cross"):
            draw_shape(shape, color, size=64, radius=0.3).save(folder / f"{color}_{shape}.png")
    return folder


@needs_shapes_clip
def test_shapes_classify_gets_colors_right(drawn) -> None:
    from vqclip.shapes.data import article

    colors = ["red", "orange", "yellow", "green", "blue", "purple"]
    labels = [f"{article(c)} {c} shape" for c in colors]
    data = json_of(invoke("classify", drawn, *[x for lb in labels for x in ("-l", lb)], "--top", "1",
                          "--json", "--preset", "shapes", "--device", "cpu"))
    right = [Path(r["image"]).name.split("_")[0] in r["labels"][0]["label"].split() for r in data["results"]]
    assert len(right) == 30 and sum(right) / len(right) >= 0.9, data["results"]


@needs_shapes_clip
def test_shapes_search_finds_the_blue_circle(drawn, tmp_path) -> None:
    data = json_of(invoke("search", "a blue circle", drawn, "--index-dir", tmp_path, "--top", "3",
                          "--json", "--preset", "shapes", "--device", "cpu"))
    assert Path(data["results"][0]["image"]).name == "blue_circle.png", data["results"]


@needs_shapes_clip
def test_shapes_score_orders_matching_above_other(drawn) -> None:
    data = json_of(invoke("score", drawn / "blue_circle.png", drawn / "red_square.png",
                          "-p", "a blue circle", "--json", "--preset", "shapes", "--device", "cpu"))
    scores = {Path(r["image"]).name: r["scores"][0]["similarity"] for r in data["results"]}
    assert scores["blue_circle.png"] > scores["red_square.png"]


# --- a local-dir CLIP without a tag ----------------------------------------------------------------

@pytest.mark.parametrize("command", [
    ["classify", "{photos}", "-l", "red", "-l", "blue"],
    ["search", "a red square", "{photos}"],
    ["score", "{photos}", "-p", "red"],
])
def test_local_dir_clip_needs_no_pretrained_setting(photos, tiny_clip, command) -> None:
    """The default tag (openai) belongs to the default model, not to a folder that has its weights."""
    args = [arg.format(photos=photos) for arg in command]
    result = invoke(*args, "-s", f"clip.model=local-dir:{tiny_clip}", "--device", "cpu",
                    "--json")
    assert json_of(result)["results"]


def test_a_tag_set_for_a_local_dir_clip_says_why_it_is_refused(photos, tiny_clip) -> None:
    result = invoke("classify", photos, "-l", "red", "-s", f"clip.model=local-dir:{tiny_clip}",
                    "-s", "clip.pretrained=openai", "--device", "cpu")
    assert result.exit_code == 2
    assert "clip.pretrained=openai" in result.stderr and "carries its own weights" in result.stderr


# --- hostile folders ---------------------------------------------------------------------------

def bomb_png(path: Path, side: int = 100_000) -> Path:
    """A tiny PNG whose header claims side x side pixels (a decompression bomb's shape)."""
    import struct
    import zlib

    Image.new("L", (1, 1)).save(path)
    data = bytearray(path.read_bytes())
    header = b"IHDR" + struct.pack(">II", side, side) + bytes(data[24:29])
    data[12:33] = header + struct.pack(">I", zlib.crc32(header))
    path.write_bytes(bytes(data))
    return path


@pytest.fixture
def hostile(photos: Path) -> Path:
    """The photos plus a symlink to /dev/zero, a FIFO, a symlink loop and a bomb, all *.png."""
    (photos / "z.png").symlink_to("/dev/zero")
    os.mkfifo(photos / "f.png")
    (photos / "loop.png").symlink_to(photos / "loop.png")
    (photos / "sub" / "up").symlink_to(photos)  # a folder loop: not followed
    bomb_png(photos / "bomb.png")
    return photos


BAD = {"z.png": "not a regular file", "f.png": "not a regular file",
       "loop.png": "symbolic links", "bomb.png": "decompression bomb"}


@pytest.mark.parametrize("command", [("search", "a red square"), ("classify", "-l", "red", "-l", "blue"),
                                     ("score", "-p", "red")])
def test_special_files_and_bombs_in_a_folder_are_skipped_and_listed(hostile, clip_args,
                                                                    command) -> None:
    result = invoke(*command, hostile, "--json", *clip_args)
    data = json_of(result)
    skipped = {Path(s["image"]).name: s["reason"] for s in data["skipped"]}
    assert set(skipped) == set(BAD)
    for name, reason in BAD.items():
        assert reason in skipped[name], skipped
        assert name in result.stderr
    assert len(data["results"]) == 3
