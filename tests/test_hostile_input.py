"""Hostile input: bombs and special files, markup in user text, interpolation, forged records."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin
from typer.testing import CliRunner

from tests.test_tasks import bomb_png
from vqclip.cli.app import app

runner = CliRunner()


def generate(tiny_sets, out: Path, *args: str, prompt: str | None = "a red circle"):
    sets = [item for s in tiny_sets for item in ("--set", s)]
    return runner.invoke(app, ["generate", *([prompt] if prompt is not None else []), *sets, "-o",
                               str(out), "--size", "32x32", "--steps", "1", "--cutn", "2", *args])


def one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    return lines[0]


# --- images given to generate ------------------------------------------------------------------

@pytest.mark.parametrize("flag", ["--init-image", "--image-prompt"])
def test_a_bomb_or_a_fifo_as_an_input_image_is_exit_2(tiny_sets, tmp_path, flag) -> None:
    bomb = bomb_png(tmp_path / "bomb.png")
    line = one_error_line(generate(tiny_sets, tmp_path / "out", flag, str(bomb)))
    assert "bomb.png" in line and "decompression bomb" in line
    fifo = tmp_path / "f.png"
    os.mkfifo(fifo)
    line = one_error_line(generate(tiny_sets, tmp_path / "out", flag, str(fifo)))
    assert "f.png" in line and "not a regular file" in line


# --- user text is printed as text, never as rich markup ---------------------------------------

def test_paths_and_values_with_brackets_are_printed_as_written(tiny_sets, tmp_path) -> None:
    line = one_error_line(generate(tiny_sets, tmp_path, "--init-image", str(tmp_path / "[/x].png")))
    assert "[/x].png" in line
    line = one_error_line(generate(tiny_sets, tmp_path, "--init-image", "/nowhere/[bold]a.png"))
    assert "/nowhere/[bold]a.png" in line
    line = one_error_line(generate(tiny_sets, tmp_path, "-s", "size=[64]"))
    assert "size=[64]" in line


def test_an_interrupted_run_in_a_folder_with_brackets_exits_130(tiny_sets, tmp_path,
                                                               monkeypatch) -> None:
    from vqclip.run.engine import Engine

    run = Engine.run

    def stopped_at_once(self, callbacks):
        self.request_stop()  # as the first Ctrl-C would
        return run(self, callbacks)

    monkeypatch.setattr(Engine, "run", stopped_at_once)
    result = generate(tiny_sets, tmp_path / "out[/x]")
    assert result.exit_code == 130, result.output
    assert "vqclip resume '" + str(tmp_path / "out[/x]") + "/" in result.stderr  # quoted for a shell


def test_labels_and_prompts_with_brackets_print_in_tables(tiny_clip, tmp_path) -> None:
    Image.new("RGB", (20, 20), "red").save(tmp_path / "red.png")
    clip = ["-s", f"clip.model=local-dir:{tiny_clip}", "-s", "clip.pretrained=null",
            "--device", "cpu"]
    classified = runner.invoke(app, ["classify", str(tmp_path / "red.png"), "-l", "[/x]", "-l",
                                     "[bold]red", *clip])
    assert classified.exit_code == 0, classified.output
    assert "[/x]" in classified.stdout and "[bold]red" in classified.stdout
    scored = runner.invoke(app, ["score", str(tmp_path / "red.png"), "-p", "[/x] red", *clip])
    assert scored.exit_code == 0, scored.output
    assert "[/x] red" in scored.stdout


# --- interpolation stays literal; --from takes settings, not where to write -------------------

def test_interpolation_in_prompts_stays_literal_everywhere(tiny_sets, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VQCLIP_TEST_SECRET", "hunter2")
    secret = "${oc.env:VQCLIP_TEST_SECRET}"
    first = generate(tiny_sets, tmp_path / "a", "--json", "-s", f"negative={secret}",
                     prompt=f"a red circle {secret}")
    assert first.exit_code == 0, first.output
    data = json.loads(first.stdout)
    shown = runner.invoke(app, ["show", data["image"], "--json"])
    record = json.loads(shown.stdout)
    assert record["prompt"] == f"a red circle {secret}"
    assert record["config"]["negative"] == secret
    assert "hunter2" not in Path(data["image"]).read_bytes().decode("latin-1")

    again = runner.invoke(app, ["generate", "--from", data["image"], "-o", str(tmp_path / "b"),
                                "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["prompt"] == f"a red circle {secret}"

    prompts = tmp_path / "prompts.txt"
    prompts.write_text(f"a blue square {secret} --steps 1\n")
    sets = [item for s in tiny_sets for item in ("--set", s)]
    batch = runner.invoke(app, ["batch", str(prompts), *sets, "-o", str(tmp_path / "batch"),
                                "-s", "size=[32,32]", "-s", "cutn=2", "--json"])
    assert batch.exit_code == 0, batch.output
    image = json.loads(batch.stdout)["items"][0]["image"]
    assert json.loads(runner.invoke(app, ["show", image, "--json"]).stdout)["prompt"] == \
        f"a blue square {secret}"


def test_interpolation_in_a_config_file_is_resolved_and_a_bad_one_is_exit_2(
        tiny_sets, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VQCLIP_TEST_COLOR", "green")
    good = tmp_path / "good.yaml"
    good.write_text("prompt: a ${oc.env:VQCLIP_TEST_COLOR} circle\n")
    result = generate(tiny_sets, tmp_path, "-c", str(good), "--json", prompt=None)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["prompt"] == "a green circle"
    bad = tmp_path / "bad.yaml"
    bad.write_text("prompt: ${oc.env:VQCLIP_TEST_NOT_SET}\n")
    line = one_error_line(generate(tiny_sets, tmp_path, "-c", str(bad), prompt=None))
    assert "bad.yaml" in line and "VQCLIP_TEST_NOT_SET" in line


def test_from_never_takes_the_output_folder_from_the_image(tiny_sets, tmp_path,
                                                           monkeypatch) -> None:
    first = generate(tiny_sets, tmp_path / "theirs", "--json")
    assert first.exit_code == 0, first.output
    image = json.loads(first.stdout)["image"]
    monkeypatch.chdir(tmp_path)
    again = runner.invoke(app, ["generate", "--from", image, "--json"])
    assert again.exit_code == 0, again.output
    assert Path(json.loads(again.stdout)["run_dir"]).resolve().is_relative_to(tmp_path / "outputs")
    assert len(list((tmp_path / "theirs").glob("*/*"))) == 1


# --- forged records ----------------------------------------------------------------------------

@pytest.mark.parametrize("chunk", ["[1, 2]", '"text"', "null", "{}", '{"config": []}',
                                   '{"config": {"prompt": "x", "size": "big"}}'])
def test_a_record_of_the_wrong_shape_is_exit_2(tiny_sets, tmp_path, chunk) -> None:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("vqclip", chunk)
    forged = tmp_path / "forged.png"
    Image.new("RGB", (8, 8)).save(forged, pnginfo=info)
    for args in (["show", str(forged)], ["show", str(forged), "--json"],
                 ["generate", "--from", str(forged), "-o", str(tmp_path / "out")]):
        line = one_error_line(runner.invoke(app, args))
        assert "forged.png" in line and "not a settings record" in line
    assert not (tmp_path / "out").exists()


# --- the smaller ones --------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["--lr", "inf"], "lr=inf"), (["--lr", "nan"], "lr=nan"), (["-s", "steps=1e30"], "steps"),
    (["-s", "steps=100000000000000000000"], "steps=100000000000000000000"),
    (["-s", "cut_pow=inf"], "cut_pow=inf"),
])
def test_unbounded_numbers_are_exit_2(tiny_sets, tmp_path, args, message) -> None:
    assert message in one_error_line(generate(tiny_sets, tmp_path, *args))
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("args", "message"), [
    (["--rotate", "nan"], "rotate nan"), (["--pan", "inf", "0"], "pan inf 0"),
    (["--pan", "0", "nan"], "pan 0 nan"),
])
def test_zoom_refuses_endless_moves_before_any_frame(tiny_sets, tmp_path, args, message) -> None:
    sets = [item for s in tiny_sets for item in ("--set", s)]
    result = runner.invoke(app, ["zoom", "a red circle", *sets, "-o", str(tmp_path), "--size",
                                 "32x32", "--frames", "2", "--steps", "1", *args])
    assert message in one_error_line(result)
    assert not list(tmp_path.iterdir())


@pytest.fixture
def finished_run(tiny_sets, tmp_path) -> Path:
    result = generate(tiny_sets, tmp_path / "runs", "--json")
    assert result.exit_code == 0, result.output
    return Path(json.loads(result.stdout)["run_dir"])


@pytest.mark.parametrize("damage", [b"", b"garbage", b"PK\x03\x04 torn zip"])
def test_a_damaged_state_is_exit_2_without_torch_advice(finished_run, damage) -> None:
    (finished_run / "state.pt").write_bytes(damage)
    line = one_error_line(runner.invoke(app, ["resume", str(finished_run)]))
    assert "state.pt is damaged" in line and "weights_only" not in line


def test_a_second_process_on_a_run_folder_is_refused(finished_run) -> None:
    from vqclip.outputs.run_folder import lock_run_dir

    held = lock_run_dir(finished_run)  # as a resume in progress holds it
    try:
        line = one_error_line(runner.invoke(app, ["resume", str(finished_run), "--steps", "2"]))
    finally:
        held.release()
    assert "in use by another vqclip process" in line
    assert runner.invoke(app, ["resume", str(finished_run), "--steps", "2"]).exit_code == 0


def test_a_long_prompt_is_named_once_in_the_log(tiny_sets, tmp_path) -> None:
    prompt = "a red circle " + "very " * 20_000  # 100 kB
    result = generate(tiny_sets, tmp_path, "--json", "--steps", "3", prompt=prompt)
    assert result.exit_code == 0, result.output
    log = Path(json.loads(result.stdout)["run_dir"]) / "log.jsonl"
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert log.stat().st_size < len(prompt) + 2000
    terms = [line for line in lines if line.get("event") == "loss_terms"]
    assert terms == [{"event": "loss_terms", "step": 0, "terms": {"#0": f"text:{prompt.strip()}"}}]
    steps = [line for line in lines if "loss" in line]
    assert [line["step"] for line in steps] == [0, 1, 2]
    assert all(set(line["losses"]) == {"#0"} and {"seconds"} <= set(line) for line in steps)


def test_a_malformed_search_index_is_rebuilt(tiny_clip, tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (20, 20), "red").save(folder / "red.png")
    clip = ["-s", f"clip.model=local-dir:{tiny_clip}", "-s", "clip.pretrained=null",
            "--device", "cpu", "--json"]
    first = runner.invoke(app, ["search", "red", str(folder), *clip])
    assert first.exit_code == 0, first.output
    index = Path(json.loads(first.stdout)["index"])
    (index / "files.json").write_text(json.dumps({"files": ["not", "records"]}))
    again = runner.invoke(app, ["search", "red", str(folder), *clip])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["results"] == json.loads(first.stdout)["results"]
