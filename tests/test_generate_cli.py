"""`vqclip generate` end to end on tiny models: files, JSON, metadata, errors, reproducibility."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from typer.testing import CliRunner

from vqclip.cli.app import app

runner = CliRunner()


def generate(tiny_sets: list[str], out: Path, *args: str, prompt: str = "a red circle"):
    sets = [item for s in tiny_sets for item in ("--set", s)]
    return runner.invoke(app, ["generate", prompt, *sets, "-o", str(out), *args])


def pixels(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


def test_generate_writes_every_file_and_one_json_object(tiny_sets, tmp_path) -> None:
    result = generate(tiny_sets, tmp_path, "--steps", "4", "--save-every", "2", "--size", "32x48",
                      "--seed", "7", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # nothing but one JSON object on stdout
    assert {"image", "run_dir", "prompt", "seed", "steps", "size", "final_loss", "seconds"} <= set(data)
    assert (data["prompt"], data["seed"], data["steps"], data["size"]) == ("a red circle", 7, 4, [32, 48])

    run_dir = Path(data["run_dir"])
    assert run_dir.parent.parent == tmp_path
    assert run_dir.name.startswith("0001-7-a-red-circle")
    with Image.open(data["image"]) as image:
        assert image.size == (32, 48)
    assert sorted(p.name for p in (run_dir / "frames").iterdir()) == ["000000.png", "000002.png"]
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["seed"] == 7 and config["steps"] == 4
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines] == [0, 1, 2, 3]
    assert all({"loss", "seconds"} <= set(line) for line in lines)
    state = torch.load(run_dir / "state.pt", weights_only=True)
    assert state["step"] == 4
    assert not list(run_dir.rglob("*.tmp"))


def test_local_dir_clip_runs_with_the_default_pretrained_setting(tiny_vqgan, tiny_clip, tmp_path) -> None:
    config, checkpoint = tiny_vqgan
    sets = [f"vqgan.config={config}", f"vqgan.checkpoint={checkpoint}", f"clip.model=local-dir:{tiny_clip}",
            "device=cpu"]
    result = generate(sets, tmp_path, "--steps", "1", "--size", "32x32", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(Image.open(json.loads(result.stdout)["image"]).info["vqclip"])
    assert record["config"]["clip"]["pretrained"] is None


def test_seed_is_recorded_when_not_given(tiny_sets, tmp_path) -> None:
    result = generate(tiny_sets, tmp_path, "--steps", "1", "--size", "32x32", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data["seed"], int)
    assert f"-{data['seed']}-" in Path(data["run_dir"]).name


def test_same_seed_gives_identical_pixels_and_new_folders(tiny_sets, tmp_path) -> None:
    runs = []
    for _ in range(2):
        result = generate(tiny_sets, tmp_path, "--steps", "3", "--size", "32x32", "--seed", "3",
                          "--json")
        assert result.exit_code == 0, result.output
        runs.append(json.loads(result.stdout))
    assert runs[0]["run_dir"] != runs[1]["run_dir"]  # never reused or overwritten
    assert np.array_equal(pixels(Path(runs[0]["image"])), pixels(Path(runs[1]["image"])))
    assert Path(runs[0]["image"]).read_bytes() == Path(runs[1]["image"]).read_bytes()


def test_metadata_round_trips_through_show(tiny_sets, tmp_path) -> None:
    result = generate(tiny_sets, tmp_path, "--steps", "2", "--size", "32x32", "--seed", "11",
                      "--json", prompt="photo: a cat | dog:-0.5")
    image = Path(json.loads(result.stdout)["image"])
    shown = runner.invoke(app, ["show", str(image), "--json"])
    assert shown.exit_code == 0, shown.output
    record = json.loads(shown.stdout)
    assert record["prompt"] == "photo: a cat | dog:-0.5"
    assert record["seed"] == 11
    saved = yaml.safe_load((image.parent / "config.yaml").read_text())
    assert record["config"] == saved
    assert len(record["models"]["vqgan"]["checkpoint_sha256"]) == 64
    with Image.open(image) as png:
        assert png.info["parameters"].splitlines()[0] == "photo: a cat | dog:-0.5"
        assert "Seed: 11" in png.info["parameters"]
    plain = runner.invoke(app, ["show", str(image)])
    assert "Steps: 2, Sampler: adam, Seed: 11, Size: 32x32" in plain.stdout


def test_from_image_reproduces_and_flags_override(tiny_sets, tmp_path) -> None:
    first = json.loads(generate(tiny_sets, tmp_path, "--steps", "3", "--size", "32x32", "--seed", "5",
                                "--json").stdout)
    again = runner.invoke(app, ["generate", "--from", first["image"], "-o", str(tmp_path), "--json"])
    assert again.exit_code == 0, again.output
    second = json.loads(again.stdout)
    assert second["seed"] == 5 and second["prompt"] == "a red circle"
    assert np.array_equal(pixels(Path(first["image"])), pixels(Path(second["image"])))
    longer = runner.invoke(app, ["generate", "--from", first["image"], "--steps", "4", "-o",
                                 str(tmp_path), "--json"])
    assert json.loads(longer.stdout)["steps"] == 4


@pytest.mark.parametrize(
    ("size", "message"),
    [("33x32", "nearby valid sizes: 32x32, 34x32"), ("0x32", "size=[0, 32]"),
     ("99999x32", "between 1 and 4096"), ("big", "WIDTHxHEIGHT")],
)
def test_bad_size_is_refused_with_exit_2(tiny_sets, tmp_path, size, message) -> None:
    result = generate(tiny_sets, tmp_path, "--size", size, "--steps", "1")
    assert result.exit_code == 2
    assert message in result.stderr
    assert "Traceback" not in result.output
    assert not any(tmp_path.iterdir())  # no run folder for a refused run


def test_config_error_names_key_and_file(tiny_sets, tmp_path) -> None:
    bad = tmp_path / "exp.yaml"
    bad.write_text("cutn: 8\ncut_powr: 2\n")
    result = generate(tiny_sets, tmp_path / "out", "-c", str(bad))
    assert result.exit_code == 2
    assert "exp.yaml" in result.stderr and "cut_powr" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_missing_model_file_is_a_clear_error(tiny_sets, tmp_path) -> None:
    sets = [s for s in tiny_sets if not s.startswith("vqgan.checkpoint")]
    sets.append(f"vqgan.checkpoint={tmp_path / 'nope.ckpt'}")
    result = generate(sets, tmp_path, "--steps", "1")
    assert result.exit_code == 2
    assert "vqgan.checkpoint: file not found" in result.stderr


def test_unsafe_checkpoint_is_refused_and_nothing_runs(tiny_sets, tmp_path) -> None:
    from tests.tiny_models import write_malicious_checkpoint

    marker = tmp_path / "pwned"
    evil = write_malicious_checkpoint(tmp_path / "evil.ckpt", marker)
    sets = [s for s in tiny_sets if not s.startswith("vqgan.checkpoint")]
    sets.append(f"vqgan.checkpoint={evil}")
    result = generate(sets, tmp_path / "out", "--steps", "1")
    assert result.exit_code == 2
    assert "evil.ckpt" in result.stderr
    assert not marker.exists()


def test_unknown_optimizer_lists_valid_names(tiny_sets, tmp_path) -> None:
    result = generate(tiny_sets, tmp_path, "--steps", "1", "--size", "32x32",
                      "--set", "optimizer.name=adamx")
    assert result.exit_code == 2
    assert "valid: adagrad, adam, adamw" in result.stderr


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("vqclip ")


def test_video_flag_writes_a_decodable_progress_video(tiny_sets, tmp_path) -> None:
    from vqclip.outputs.video import video_frame_count

    result = generate(tiny_sets, tmp_path, "--steps", "4", "--save-every", "1", "--size", "32x32",
                      "--video", "mp4", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert Path(data["video"]) == Path(data["run_dir"]) / "progress.mp4"
    assert video_frame_count(Path(data["video"])) >= 5  # 4 frames and the final image


@pytest.mark.parametrize(("args", "frames"), [
    ([], 25),  # save_every chosen: steps 0..47 every 2nd, 2 s at 12 fps, plus the final image
    (["--save-every", "24"], 3),
    (["-s", "save_every=16"], 4),
])
def test_video_has_two_seconds_unless_save_every_is_given(tiny_sets, tmp_path, args, frames) -> None:
    result = generate(tiny_sets, tmp_path, "--steps", "48", "--size", "32x32", "-s", "cutn=1",
                      "--video", "gif", "--json", *args)
    assert result.exit_code == 0, result.output
    run_dir = Path(json.loads(result.stdout)["run_dir"])
    assert len(list((run_dir / "frames").iterdir())) + 1 == frames


def test_seeds_and_sweep_flags_make_one_run_each_and_a_sheet(tiny_sets, tmp_path) -> None:
    result = generate(tiny_sets, tmp_path, "--steps", "1", "--size", "32x32", "--seeds", "1-2",
                      "--sweep", "lr=0.1,0.2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] == 4 and data["failed"] == 0
    with Image.open(data["sheet"]) as sheet:
        assert sheet.width > sheet.height / 2  # a grid, not a single column


def test_offline_missing_default_models_fail_fast_with_how_to_get_them(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VQCLIP_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["generate", "a lighthouse", "--offline", "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "vqclip models download imagenet_f16_16384" in result.stderr
    without_vqgan = runner.invoke(app, ["generate", "a lighthouse", "--offline", "-o", str(tmp_path),
                                        "--set", "generator=pixel", "--size", "32x32"])
    assert without_vqgan.exit_code == 2
    assert "vqclip models download ViT-B-32-quickgelu/openai" in without_vqgan.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [(["--video", "mp4", "--seeds", "1-2"], "cannot go with --seeds"),
     (["--video", "mp4", "--fps", "0"], "fps=0: must be"),
     (["--video", "avi"], "video='avi': unknown name; valid: mp4, gif, webp")],
)
def test_bad_video_options_are_refused_before_any_work(tiny_sets, tmp_path, args, message) -> None:
    result = generate(tiny_sets, tmp_path, "--steps", "1", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert not any(tmp_path.iterdir())


def test_generate_help_groups_options_shows_schema_defaults_and_examples() -> None:
    from vqclip.run.config import GenerateConfig

    result = runner.invoke(app, ["generate", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    text = result.stdout
    for panel in ("Settings", "Prompt", "Image", "Optimization", "Output", "Performance"):
        assert f"─ {panel} ─" in text
    defaults = GenerateConfig()
    assert f"Optimization steps. [default: ({defaults.steps})]" in text
    assert f"[default: ({defaults.size[0]}x{defaults.size[1]})]" in text
    assert f"[default: ({defaults.out})]" in text
    assert "WxH" in text and "KEY=VALUE" in text and "<list[" not in text and "<float" not in text
    assert 'Examples:' in text and 'vqclip generate "a red circle" --preset shapes' in text


def test_from_works_from_another_folder_and_notices_a_changed_input(tiny_sets, tmp_path, monkeypatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(work / "start.png")
    Image.new("RGB", (32, 32), (30, 30, 200)).save(work / "aim.png")
    monkeypatch.chdir(work)
    first = generate(tiny_sets, tmp_path / "runs", "--steps", "1", "--size", "32x32", "--json",
                     "--init-image", "start.png", "--image-prompt", "aim.png:0.5")
    assert first.exit_code == 0, first.output
    image = json.loads(first.stdout)["image"]
    record = json.loads(Image.open(image).info["vqclip"])
    assert record["config"]["init_image"] == str(work / "start.png")
    assert record["config"]["image_prompts"] == [f"{work / 'aim.png'}:0.5"]
    assert set(record["inputs"]) == {str(work / "start.png"), str(work / "aim.png")}

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = runner.invoke(app, ["generate", "--from", image, "--json"])
    assert again.exit_code == 0, again.output
    assert Path(json.loads(again.stdout)["run_dir"]).resolve().is_relative_to(elsewhere.resolve())
    assert "changed" not in again.stderr

    Image.new("RGB", (32, 32), (30, 200, 30)).save(work / "start.png")
    changed = runner.invoke(app, ["generate", "--from", image, "--json"])
    assert changed.exit_code == 0, changed.output
    assert f"warning: {work / 'start.png'} has changed since {image} was made" in changed.stderr


def test_every_shared_option_names_its_flags() -> None:
    """typer 0.27 names an option shared through an Annotated alias after its metavar when the
    alias gives no flag ("--DEVICE"): every shared alias names its flags itself."""
    import typing

    from vqclip.cli import options

    aliases = {name: value for name, value in vars(options).items()
               if typing.get_origin(value) is typing.Annotated}
    assert aliases
    for name, alias in aliases.items():
        option = typing.get_args(alias)[1]
        flags = [d for d in (option.default, *option.param_decls) if isinstance(d, str) and d.startswith("-")]
        assert any(flag.startswith("--") for flag in flags), name
