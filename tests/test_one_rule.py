"""Each rule is written once: the same bad input gives the same line through every door (the
commands, the library, prompt-file lines, sweeps and zooms) before any model loads; a flag has
one config key, records one path, and the library reruns an image and writes its video as the
command does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

import vqclip
from vqclip.cli.app import app
from vqclip.errors import UsageError, VqclipError

runner = CliRunner()
NOTHING_TO_AIM = ("nothing to aim for: give a text prompt, an image prompt or a noise prompt "
                  "(a negative prompt alone aims at nothing)")


def error_line(args: list[str], code: int = 2) -> str:
    """The one line a command prints on stderr for bad input (without its "error: " prefix)."""
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0].removeprefix("error: ")


def test_a_negative_alone_is_refused_with_one_line_by_generate_library_sweep_zoom_and_batch(
        tmp_path: Path) -> None:
    out = tmp_path / "runs"
    common = ["--preset", "shapes", "-o", str(out)]
    assert error_line(["generate", "--negative", "blurry", *common]) == NOTHING_TO_AIM
    assert error_line(["generate", "--negative", "blurry", "--seeds", "1-2", *common]) == NOTHING_TO_AIM
    assert error_line(["zoom", "", "-s", "negative=blurry", "--frames", "1", *common]) == NOTHING_TO_AIM
    with pytest.raises(UsageError) as raised:
        vqclip.generate(preset="shapes", negative="blurry", out=str(out))
    assert str(raised.value) == NOTHING_TO_AIM
    assert not out.exists()  # nothing was started
    lines = tmp_path / "lines.txt"
    lines.write_text("--negative blurry --steps 1\n")
    result = runner.invoke(app, ["batch", str(lines), "--preset", "shapes", "-o", str(out), "--json",
                                 "-q"])
    assert result.exit_code == 1, result.output
    assert [item["error"] for item in json.loads(result.stdout)["items"]] == [NOTHING_TO_AIM]


def test_an_image_or_noise_prompt_alone_aims_at_something() -> None:
    from vqclip.run.config import build_config
    from vqclip.run.prepare import check_aim

    for flags in ({"image_prompts": ["ref.png"]}, {"noise_prompts": ["3"]}, {"prompt": "a cat"}):
        cfg, _ = build_config(preset="shapes", flags={**flags, "negative": "blurry"})
        check_aim(cfg)


def test_a_bad_video_format_reads_the_same_through_generate_batch_zoom_and_the_writer(
        tmp_path: Path) -> None:
    expected = "video='avi': unknown name; valid: mp4, gif, webp"
    out = tmp_path / "runs"
    common = ["--preset", "shapes", "-o", str(out)]
    assert error_line(["generate", "a cat", "--video", "avi", *common]) == expected
    lines = tmp_path / "lines.txt"
    lines.write_text("a cat\n")
    assert error_line(["batch", str(lines), "--video", "avi", *common]) == expected
    assert error_line(["zoom", "a cat", "--video", "zoom.avi", *common]) == expected
    from vqclip.outputs.video import write_video

    with pytest.raises(VqclipError) as raised:
        write_video([tmp_path / "f.png"], tmp_path / "progress.avi")
    assert str(raised.value) == expected
    assert not out.exists()


@pytest.mark.parametrize(("args", "key"), [
    (["generate", "a", "--preset", "shape"], "preset='shape'"),
    (["generate", "a", "--preset", "shapes", "-s", "stpes=3"], "--set: key='stpes'"),
    (["generate", "a", "--preset", "shapes", "-s", "optimizer.name=adma"], "optimizer.name='adma'"),
    (["generate", "a", "--preset", "shapes", "-s", "precision=fp16"], "precision='fp16'"),
    (["generate", "a", "--preset", "shapes", "-s", "vqgan.model=shapes_vqgn"], "vqgan.model='shapes_vqgn'"),
    (["generate", "a", "--preset", "shapes", "--video", "mp5"], "video='mp5'"),
    (["generate", "a", "--preset", "shapes", "-s", "steps.foo=1"], "--set: key='steps.foo'"),
    (["generate", "a", "--preset", "shapes", "--offline", "-s", "clip.model=ViT-Q-99"],
     "clip.model='ViT-Q-99'"),
    (["models", "path", "nosuch"], "model='nosuch'"),
])
def test_every_unknown_name_has_the_one_wording(tmp_path: Path, args: list[str], key: str) -> None:
    line = error_line([*args, *(["-o", str(tmp_path)] if args[0] == "generate" else [])])
    assert re.search(rf"{re.escape(key)}: unknown name; (did you mean .*\? )?valid: \S", line), line


def test_an_unknown_flag_of_a_prompt_file_line_has_the_one_wording() -> None:
    from vqclip.series.batch import parse_line

    item = parse_line("a cat --stpes 3", index=0)
    assert item.error is not None and item.error.startswith(
        "flag='--stpes': unknown name; did you mean '--steps' ")


def test_a_negative_top_reads_the_same_through_classify_search_and_the_library(tmp_path: Path) -> None:
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    expected = "--top -1: must be 0 (all) or more"
    missing = ["-s", "clip.model=no-such-clip"]  # loading it would fail otherwise: the check comes first
    assert error_line(["classify", str(tmp_path / "a.png"), "-l", "a", "--top", "-1", *missing]) == expected
    assert error_line(["search", "a", str(tmp_path), "--top", "-1", *missing]) == expected
    for call in (lambda: vqclip.classify([tmp_path / "a.png"], ["a"], model="no-such-clip", top=-1),
                 lambda: vqclip.search(tmp_path, text="a", model="no-such-clip", top=-1)):
        with pytest.raises(UsageError) as raised:
            call()
        assert str(raised.value) == expected


def test_a_flag_names_one_config_key_for_every_command_and_prompt_file_line() -> None:
    from typer.main import get_command

    from vqclip.run.flags import FLAGS, LINE_FLAGS, flag_values
    from vqclip.series.batch import parse_line

    by_param = {flag.param: flag for flag in FLAGS.values()}
    commands = get_command(app).commands
    seen = set()
    for name in ("generate", "batch", "zoom"):
        for param in commands[name].params:
            flag = by_param.get(param.name)
            if flag is not None and param.param_type_name == "option":
                assert flag.name in param.opts, (name, param.opts, flag.name)
                seen.add(flag.name)
    assert seen >= set(FLAGS) - {"--prompt", "--cut-pow"}  # the prompt is an argument
    line = parse_line("a cat --steps 7 --size 64x32 --low-memory --image-prompt a.png", index=0)
    assert line.values == {"prompt": "a cat", **flag_values(
        {"steps": "7", "size": "64x32", "low_memory": True, "image_prompt": ["a.png"]}, LINE_FLAGS)}


def test_every_engine_keeps_its_records_by_one_path(tmp_path: Path) -> None:
    from vqclip.errors import ConfigError
    from vqclip.series.items import Ledger, WorkItem, run_items
    from vqclip.series.manifest import MANIFEST_NAME, Manifest
    from vqclip.series.pool import _died

    def bad_config():
        raise ConfigError("steps=0: must be at least 1")

    item = WorkItem(index=0, key="k0", label="a cat", make_config=bad_config, info={"line": 1})
    reported = []
    result = run_items([item], tmp_path, extra={"shard": "0/1"}, report=reported.append)
    in_process = Manifest(tmp_path / MANIFEST_NAME).records()[-1]
    assert reported == result.records == [in_process]
    assert in_process["status"] == "failed" and in_process["error"] == "steps=0: must be at least 1"

    class Killed:
        pid, exitcode = 1234, -9

    ledger = Ledger(Manifest(tmp_path / "pool" / MANIFEST_NAME), "s1", {"shard": "0/1"})
    pooled = _died(ledger, item.head(), Killed(), number=3)
    assert pooled == ledger.manifest.records()[-1]
    assert set(pooled) - set(in_process) == {"worker"} and set(in_process) - set(pooled) == set()
    assert pooled["error"] == "worker process 1234 died while running it (killed by SIGKILL)"


def test_the_library_reruns_an_image_and_writes_its_video_as_the_command_does(
        tiny_sets, tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from vqclip.outputs.video import video_frame_count

    sets = [arg for item in tiny_sets for arg in ("-s", item)]
    made = runner.invoke(app, ["generate", "a red circle", *sets, "--steps", "2", "--size", "32x32", "--seed",
                               "5", "--video", "gif", "-o", str(tmp_path / "cli"), "--json"])
    assert made.exit_code == 0, made.output
    first = json.loads(made.stdout)
    again = vqclip.generate(from_image=first["image"], video="gif", out=str(tmp_path / "lib"))
    assert (again.seed, again.prompt, again.steps) == (5, "a red circle", 2)
    assert again.video == again.run_dir / "progress.gif" and again.to_json()["video"] == str(again.video)
    assert video_frame_count(again.video) == video_frame_count(Path(first["video"]))
    with Image.open(first["image"]) as one, Image.open(again.image) as two:
        assert np.array_equal(np.asarray(one), np.asarray(two))
