"""--candidates N: race N seeds, keep the one CLIP scores best, finish it as that seed alone."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from vqclip.cli.app import app
from vqclip.outputs.metadata import read_record
from vqclip.run.build import build
from vqclip.run.candidates import CandidatesInterrupted, score_candidates
from vqclip.run.config import build_config
from vqclip.run.execute import Run
from vqclip.run.prepare import prepare
from vqclip.run.resume import ResumePoint

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = ["prompt=a red circle", "size=[32,32]", "cutn=4", "steps=6", "save_every=2"]


def make_run(tiny_sets, out, *items: str) -> Run:
    cfg, _ = build_config(dotlist=[*tiny_sets, *BASE, f"out={out}", *items])
    return build(prepare(cfg))


def pixels(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32)


def test_candidates_keep_the_best_scoring_seed_and_record_every_one(tiny_sets, tmp_path) -> None:
    result = make_run(tiny_sets, tmp_path / "race", "seed=20", "candidates=4",
                      "candidate_steps=3").execute()
    note = json.loads((result.run_dir / "candidates.json").read_text())
    seeds = [each["seed"] for each in note["candidates"]]
    scores = [each["score"] for each in note["candidates"]]
    assert seeds == [20, 21, 22, 23] and note["steps"] == 3
    assert len(set(scores)) == 4  # different seeds, different scores: the choice means something
    assert result.winner == note["winner"] == seeds[int(np.argmin(scores))] == result.seed
    # each score is what that seed scores when it runs alone to step 3
    for seed, score in zip(seeds, scores, strict=True):
        alone = make_run(tiny_sets, tmp_path / "alone", f"seed={seed}")
        alone.engine.run([], until=3)
        assert score_candidates(alone.engine) == pytest.approx([score], abs=1e-4)
    # one run folder, the winner's, with a thumbnail of every candidate
    assert [p.name for p in (tmp_path / "race").rglob("config.yaml")] == ["config.yaml"]
    for each in note["candidates"]:
        with Image.open(result.run_dir / each["thumbnail"]) as thumbnail:
            assert thumbnail.size == (32, 32)
    record = read_record(result.image)
    assert record["seed"] == result.winner
    assert record["candidates"] == note
    config = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert config["seed"] == result.winner and config["candidates"] == 1
    assert sorted(p.name for p in (result.run_dir / "frames").iterdir()) == [
        "000000.png", "000002.png", "000004.png"]
    log = [json.loads(line) for line in (result.run_dir / "log.jsonl").read_text().splitlines()]
    assert [line["step"] for line in log] == list(range(6))


@pytest.mark.parametrize("items", [[], ["ema=0.9"]])
def test_the_kept_candidate_is_the_image_its_seed_makes_alone(tiny_sets, tmp_path, items) -> None:
    race = make_run(tiny_sets, tmp_path / "race", "seed=30", "candidates=3", "candidate_steps=2",
                    *items).execute()
    alone = make_run(tiny_sets, tmp_path / "alone", f"seed={race.winner}", *items).execute()
    assert abs(race.final_loss - alone.final_loss) < 1e-4
    assert np.abs(pixels(race.image) - pixels(alone.image)).max() <= 2


def test_generate_json_lists_every_candidate_and_the_winner(tiny_sets, tmp_path) -> None:
    args = ["generate", "a red circle", "--size", "32x32", "--steps", "4", "--cutn", "2", "--seed", "5",
            "--candidates", "3", "-o", str(tmp_path), "-q", "--json"]
    for item in tiny_sets:
        args += ["-s", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert [each["seed"] for each in data["candidates"]] == [5, 6, 7]
    assert data["winner"] == data["seed"]
    best = min(data["candidates"], key=lambda each: each["score"])
    assert best["seed"] == data["winner"]
    assert all(Image.open(each["thumbnail"]).size == (32, 32) for each in data["candidates"])
    assert "batch" not in data


@pytest.mark.parametrize(("extra", "key"), [
    (["--candidates", "0"], "candidates"),
    (["--candidates", "2", "--batch-size", "2"], "batch_size"),
    (["--candidates", "2", "--seeds", "1-2"], "candidates"),
    (["--candidates", "2", "--sweep", "lr=0.1,0.2"], "candidates"),
    (["--candidates", "2", "--steps", "5", "-s", "candidate_steps=6"], "candidate_steps"),
    (["-s", "ema=1.0"], "ema"),
])
def test_bad_candidates_are_a_usage_error_before_any_work(tiny_sets, tmp_path, extra, key) -> None:
    args = ["generate", "a red circle", "--size", "32x32", "-o", str(tmp_path), *extra]
    for item in tiny_sets:
        args += ["-s", item]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert key in result.stderr and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


def test_a_race_interrupted_leaves_no_folder(tiny_sets, tmp_path) -> None:
    run = make_run(tiny_sets, tmp_path, "seed=3", "candidates=2", "candidate_steps=4")

    def stop_at_step_one(event) -> None:
        if getattr(event, "step", None) == 1:
            run.request_stop()

    with pytest.raises(CandidatesInterrupted, match="step 2 of 4"):
        run.execute([stop_at_step_one])
    assert not any(tmp_path.rglob("*.png")) and not any(tmp_path.rglob("state.pt"))


def test_a_candidates_run_interrupted_after_the_race_resumes_to_the_same_image(tiny_sets, tmp_path) -> None:
    run = make_run(tiny_sets, tmp_path / "race", "seed=40", "candidates=3", "candidate_steps=2")

    def stop_at_step_three(event) -> None:
        if getattr(event, "step", None) == 3:
            run.request_stop()

    stopped = run.execute([stop_at_step_three])
    assert stopped.interrupted and stopped.steps == 4 and stopped.winner == stopped.seed
    point = ResumePoint.load(stopped.run_dir)
    resumed = build(prepare(point.config()), resume=point).execute()
    assert resumed.steps == 6 and resumed.seed == stopped.winner and resumed.winner == stopped.winner
    assert read_record(resumed.image)["candidates"]["winner"] == stopped.winner
    whole = make_run(tiny_sets, tmp_path / "whole", "seed=40", "candidates=3", "candidate_steps=2").execute()
    assert whole.winner == stopped.winner
    assert np.abs(pixels(resumed.image) - pixels(whole.image)).max() <= 2
