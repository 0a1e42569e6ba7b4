"""Batches: prompt-file parsing, shards, failures recorded, reruns skip done items, manifests."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from vqclip.cli.runs import register
from vqclip.errors import UsageError
from vqclip.series.batch import parse_batch, parse_shard, select_shard, shard_from_env
from vqclip.series.items import item_key
from vqclip.series.manifest import Manifest

runner = CliRunner()
pytestmark = pytest.mark.usefixtures("one_thread")
FAST = ["steps=2", "size=[32,32]", "cutn=2", "save_every=0"]


def invoke(tiny_sets: list[str], *args: str, stdin: str | None = None, env: dict | None = None):
    app = typer.Typer()
    register(app)
    sets = [item for s in [*tiny_sets, *FAST] for item in ("-s", s)]
    return runner.invoke(app, ["batch", *args, *sets], input=stdin, env=env)


def manifest_lines(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


def finished_runs(folder: Path) -> list[Path]:
    return sorted(p.parent for p in folder.glob("*/*/final.png"))


def test_prompt_lines_take_flags_and_unknown_flags_fail_the_item() -> None:
    items = parse_batch(
        "# a comment\n\n"
        "a red circle --seed 3 --steps 100\n"
        '"a blue square" -s lr=0.2 --size 32x48 --set=cutn=4\n'
        "photo: a cat | dog:-0.5 --bogus 3\n"
        "a cat's toy --init-image '#000000' --preset shapes --lr 0.05 --cutn=8\n"
        "x --seed abc\n"
    )
    assert [i.index for i in items] == [0, 1, 2, 3, 4]
    assert [i.line for i in items] == [3, 4, 5, 6, 7]
    assert items[0].values == {"prompt": "a red circle", "seed": 3, "steps": 100}
    assert items[1].values == {"prompt": "a blue square", "size": [32, 48]}
    assert items[1].sets == ["lr=0.2", "cutn=4"]
    assert items[2].values["prompt"] == "photo: a cat | dog:-0.5"
    assert items[2].error.startswith("flag='--bogus': unknown name; valid: --prompt, ")
    assert items[3].values == {"prompt": "a cat's toy", "init_image": "#000000", "lr": 0.05, "cutn": 8}
    assert items[3].preset == "shapes" and items[3].error is None
    assert "--seed 'abc': expected a whole number" in items[4].error


def test_prompt_lines_take_image_prompts_switches_and_the_other_generate_flags() -> None:
    [item] = parse_batch("a cat --negative 'blurry | text:0.5' --image-prompt a.png --image-prompt b.png:0.5 "
                         "--noise-prompt 3:0.2 --init-weight 0.5 --init-noise pixels --switch-every 10 "
                         "--low-memory --device cpu --max-memory 2GiB --compile\n")
    assert item.error is None
    assert item.values == {
        "prompt": "a cat", "negative": "blurry | text:0.5", "image_prompts": ["a.png", "b.png:0.5"],
        "noise_prompts": ["3:0.2"], "init_weight": 0.5, "init_noise": "pixels", "switch_every": 10,
        "low_memory": True, "device": "cpu", "max_memory": "2GiB", "compile": True,
    }


def test_every_generate_flag_of_one_image_works_on_a_prompt_line() -> None:
    from typer.main import get_command

    from vqclip.cli.app import app
    from vqclip.run.flags import LINE_FLAGS
    from vqclip.series.batch import OTHER_FLAGS

    generate = get_command(app).commands["generate"]
    options = {name for param in generate.params for name in param.opts if name.startswith("--")}
    # Flags about the whole command rather than one image stay on the command line.
    command_level = {"--from", "--config", "--seeds", "--sweep", "--video", "--fps", "--out", "--batch-size",
                     "--offline", "--json", "--quiet", "--verbose", "--preview", "--help",
                     "--workers", "--threads", "--devices", "--candidates"}
    per_line = {*LINE_FLAGS, *OTHER_FLAGS}
    assert options - command_level - per_line == set()


def test_yaml_list_items_are_prompts_or_mappings_of_config_keys() -> None:
    items = parse_batch("- a red circle\n- prompt: a blue square\n  seed: 4\n  clip.model: RN50\n"
                        "  preset: draft\n- 42\n")
    assert items[0].values == {"prompt": "a red circle"}
    assert items[1].values == {"prompt": "a blue square", "seed": 4, "clip": {"model": "RN50"}}
    assert items[1].preset == "draft"
    assert items[2].error and "expected a prompt or a mapping" in items[2].error


def test_item_keys_depend_on_text_and_position_only() -> None:
    first = parse_batch("a\nb\n")
    again = parse_batch("# header added\na\n\nb\n")
    edited = parse_batch("a\nb --seed 2\n")
    assert [i.key for i in first] == [i.key for i in again]
    assert first[0].key == edited[0].key and first[1].key != edited[1].key
    assert first[0].key == item_key(0, "a")


def test_shards_are_disjoint_and_cover_the_batch() -> None:
    items = parse_batch("\n".join(f"prompt {n}" for n in range(10)))
    shards = [select_shard(items, (i, 3)) for i in range(3)]
    indexes = [sorted(item.index for item in shard) for shard in shards]
    assert sorted(sum(indexes, [])) == list(range(10))
    assert indexes[1] == [1, 4, 7]
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "1", "-1/2", "1/0"):
        with pytest.raises(UsageError):
            parse_shard(bad)


def test_shard_comes_from_slurm_or_rank_variables() -> None:
    assert shard_from_env({}) is None
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}) == (2, 4)
    # --array=1-4 numbers tasks from 1
    assert shard_from_env({"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_COUNT": "4",
                           "SLURM_ARRAY_TASK_MIN": "1"}) == (0, 4)
    assert shard_from_env({"RANK": "1", "WORLD_SIZE": "2"}) == (1, 2)
    with pytest.raises(UsageError, match="RANK"):
        shard_from_env({"RANK": "2", "WORLD_SIZE": "2"})
    with pytest.raises(UsageError, match="SLURM_ARRAY_TASK_ID"):
        shard_from_env({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "2"})


def test_bad_line_fails_alone_is_recorded_and_a_rerun_skips_done_items(tiny_sets, tmp_path) -> None:
    batch = tmp_path / "prompts.txt"
    batch.write_text("a red circle --seed 3\na blue square --bogus 1\na green star --steps 1\n")
    out = tmp_path / "out"
    result = invoke(tiny_sets, str(batch), "-o", str(out))
    assert result.exit_code == 1, result.output
    assert "flag='--bogus': unknown name" in result.stderr
    lines = manifest_lines(out)
    assert [(r["index"], r["status"]) for r in lines] == [(0, "ok"), (1, "failed"), (2, "ok")]
    assert lines[0]["seed"] == 3 and Path(lines[0]["image"]).is_file()
    assert lines[2]["steps"] == 1 and isinstance(lines[2]["seed"], int)
    assert "unknown name" in lines[1]["error"] and lines[1]["line"] == 2 and "image" not in lines[1]
    assert result.stdout.split() == [lines[0]["image"], lines[2]["image"]]
    assert len(finished_runs(out)) == 2

    rerun = invoke(tiny_sets, str(batch), "-o", str(out), "--json")
    assert rerun.exit_code == 1  # the bad item is tried again and fails again
    data = json.loads(rerun.stdout)
    assert (data["ok"], data["failed"], data["skipped"]) == (0, 1, 2)
    assert len(finished_runs(out)) == 2  # nothing ran twice

    batch.write_text("a red circle --seed 3\na blue square --seed 1\na green star --steps 1\n")
    fixed = invoke(tiny_sets, str(batch), "-o", str(out), "--json")
    assert fixed.exit_code == 0, fixed.output
    assert json.loads(fixed.stdout)["ok"] == 1
    assert len(finished_runs(out)) == 3


def test_shards_from_env_split_one_batch_into_one_manifest(tiny_sets, tmp_path) -> None:
    batch = tmp_path / "prompts.yaml"
    batch.write_text("- a red circle\n- prompt: a blue square\n  seed: 9\n- a green star\n")
    out = tmp_path / "out"
    for task in ("1", "2"):  # sbatch --array=1-2
        env = {"SLURM_ARRAY_TASK_ID": task, "SLURM_ARRAY_TASK_COUNT": "2", "SLURM_ARRAY_TASK_MIN": "1"}
        result = invoke(tiny_sets, str(batch), "-o", str(out), env=env)
        assert result.exit_code == 0, result.output
    lines = manifest_lines(out)
    assert sorted((r["index"], r["shard"]) for r in lines) == [(0, "0/2"), (1, "1/2"), (2, "0/2")]
    assert {r["status"] for r in lines} == {"ok"}
    assert next(r["seed"] for r in lines if r["index"] == 1) == 9
    assert len(finished_runs(out)) == 3
    # the whole batch afterwards finds everything done
    again = invoke(tiny_sets, str(batch), "-o", str(out), "--json", env={})
    assert again.exit_code == 0 and json.loads(again.stdout)["skipped"] == 3


def test_stdin_batch_and_default_folder(tiny_sets, tmp_path) -> None:
    result = invoke(tiny_sets, "-", "--shard", "0/1", "-s", f"out={tmp_path}", "--json",
                    stdin="a red circle --seed 1\n")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert Path(data["manifest"]) == tmp_path / "batch-stdin" / "manifest.jsonl"
    assert data["items"][0]["seed"] == 1 and data["shard"] == "0/1"


def test_empty_batch_and_bad_batch_settings_are_usage_errors(tiny_sets, tmp_path) -> None:
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n\n")
    assert invoke(tiny_sets, str(empty)).exit_code == 2
    one = tmp_path / "one.txt"
    one.write_text("a red circle\n")
    result = invoke(tiny_sets, str(one), "-s", "nonsense=1", "-o", str(tmp_path / "o"))
    assert result.exit_code == 2 and "nonsense" in result.stderr


def _append_many(path: str, writer: int) -> None:
    manifest = Manifest(path)
    for n in range(40):
        manifest.append({"key": f"{writer}-{n}", "status": "ok", "pad": "x" * 2000})


def test_concurrent_appends_keep_every_line_whole(tmp_path) -> None:
    path = tmp_path / "manifest.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_append_many, args=(str(path), w)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    lines = path.read_text().splitlines()
    assert len(lines) == 120 and all(json.loads(line)["status"] == "ok" for line in lines)
    assert len(Manifest(path).latest()) == 120


def test_torn_last_line_is_skipped_and_healed(tmp_path) -> None:
    path = tmp_path / "manifest.jsonl"
    path.write_text('{"key": "a", "status": "ok"}\n{"key": "b", "sta')
    manifest = Manifest(path)
    assert manifest.latest().keys() == {"a"}
    manifest.append({"key": "c", "status": "ok"})
    assert manifest.latest().keys() == {"a", "c"}


def test_a_stop_request_ends_the_batch_after_the_current_item(tiny_sets, tmp_path) -> None:
    from vqclip.series.batch import BatchSettings, run_batch
    from vqclip.series.items import StopSwitch

    items = parse_batch("a red circle\na blue square\na green star\n")
    settings = BatchSettings(sets=[*tiny_sets, *FAST])
    stop = StopSwitch()
    result = run_batch(items, tmp_path, settings, stop=stop, report=lambda record: stop.request())
    assert result.interrupted and [r["index"] for r in result.records] == [0]
    assert result.records[0]["status"] == "ok"  # the stop came after it had finished


def test_batch_takes_device_offline_and_video_like_generate(tiny_sets, tmp_path, monkeypatch) -> None:
    from vqclip.outputs.video import video_frame_count

    monkeypatch.delenv("VQCLIP_OFFLINE", raising=False)
    batch = tmp_path / "prompts.txt"
    batch.write_text("a red circle --seed 1\na blue square --seed 2 --device cpu\n")
    sets = [s for s in tiny_sets if not s.startswith("device=")]
    app = typer.Typer()
    register(app)
    args = [item for s in [*sets, *FAST, "save_every=1"] for item in ("-s", s)]
    result = runner.invoke(app, ["batch", str(batch), "-o", str(tmp_path / "out"), "--device", "cpu",
                                 "--offline", "--video", "mp4", "--json", *args])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout.splitlines()[-1])["items"]
    assert len(items) == 2
    for item in items:
        assert video_frame_count(Path(item["video"])) >= 3  # frames 0 and 1, then the final image
        assert "device: cpu" in (Path(item["run_dir"]) / "config.yaml").read_text()
    assert os.environ["VQCLIP_OFFLINE"] == "1"


def test_batch_video_has_two_seconds_unless_save_every_is_given(tiny_sets, tmp_path) -> None:
    batch = tmp_path / "prompts.txt"
    batch.write_text("a red circle --seed 1\na blue square --seed 2 --save-every 24\n")
    app = typer.Typer()
    register(app)
    args = [item for s in [*tiny_sets, "size=[32,32]", "cutn=1"] for item in ("-s", s)]
    result = runner.invoke(app, ["batch", str(batch), "-o", str(tmp_path / "out"), "--steps", "48",
                                 "--video", "gif", "--json", *args])
    assert result.exit_code == 0, result.output
    items = sorted(json.loads(result.stdout.splitlines()[-1])["items"], key=lambda item: item["index"])
    # steps 0..46 every 2nd (2 s at 12 fps) and the final image; every 24th step and the final image
    assert [len(list((Path(item["run_dir"]) / "frames").iterdir())) + 1 for item in items] == [25, 3]
    assert all(Path(item["video"]).is_file() for item in items)
