"""The library call a command makes: an Observer hears each stage of `vqclip.generate` and
`vqclip.resume`, a StopSwitch ends the run with its image and state saved, and a failed call
leaves the run folder free."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import vqclip
from vqclip.errors import UsageError
from vqclip.run.candidates import CandidatesInterrupted
from vqclip.run.events import StepEvent


class Recorder(vqclip.Observer):
    def __init__(self) -> None:
        self.heard: list[tuple] = []

    def loading(self, models: str) -> None:
        self.heard.append(("loading", models))

    def loaded(self, models: str, seconds: float) -> None:
        self.heard.append(("loaded", models, seconds >= 0))

    def started(self, run) -> list:
        self.heard.append(("started", run.engine.step, run.engine.steps))
        return [self.step]

    def step(self, event) -> None:
        if isinstance(event, StepEvent):
            self.heard.append(("step", event.step))

    def ended(self, run) -> None:
        self.heard.append(("ended",))


@pytest.fixture
def settings(tmp_path, tiny_vqgan, tiny_clip) -> dict:
    config, checkpoint = tiny_vqgan
    return {"vqgan": {"config": str(config), "checkpoint": str(checkpoint)}, "device": "cpu",
            "clip": {"model": f"local-dir:{tiny_clip}", "pretrained": None}, "size": "32x32",
            "cutn": 2, "seed": 5, "out": str(tmp_path / "out")}


def test_an_observer_hears_each_stage_a_stop_ends_the_run_and_resume_continues_it(
        settings, one_thread) -> None:
    stop = vqclip.StopSwitch()
    heard = Recorder()

    def stop_at_step_one(event) -> None:
        if isinstance(event, StepEvent) and event.step == 1:
            stop.request()

    stopped = vqclip.generate("a red circle", steps=6, observer=heard, stop=stop,
                              callbacks=[stop_at_step_one], **settings)
    assert stopped.interrupted and stopped.steps == 2
    assert (stopped.run_dir / "state.pt").is_file() and stopped.image.is_file()
    described = heard.heard[0][1]
    assert "VQGAN" in described and "CLIP local-dir:" in described
    assert heard.heard == [("loading", described), ("loaded", described, True), ("started", 0, 6),
                           ("step", 0), ("step", 1), ("ended",)]
    assert stop.current is None

    again = Recorder()
    resumed = vqclip.resume(stopped.run_dir, steps=4, observer=again)
    assert not resumed.interrupted and resumed.steps == 4 and resumed.run_dir == stopped.run_dir
    assert again.heard[2:] == [("started", 2, 4), ("step", 2), ("step", 3), ("ended",)]


def test_a_stop_asked_before_the_race_ends_it_at_once_and_the_observer_hears_the_end(
        settings, tmp_path) -> None:
    stop = vqclip.StopSwitch()
    stop.request()
    heard = Recorder()
    with pytest.raises(CandidatesInterrupted, match="step 0 of"):
        vqclip.generate("a red circle", steps=4, candidates=2, observer=heard, stop=stop, **settings)
    assert [entry[0] for entry in heard.heard] == ["loading", "loaded", "started", "ended"]
    assert not list(Path(settings["out"]).rglob("*.png"))


def test_a_resume_refused_on_its_device_leaves_the_folder_free_for_the_next(settings) -> None:
    first = vqclip.generate("a red circle", steps=1, **settings)
    state_path = first.run_dir / "state.pt"
    saved = state_path.read_bytes()
    # as a `device: auto` run made on CUDA leaves it: refused once the device is resolved
    state = torch.load(state_path, weights_only=True)
    torch.save({**state, "device": "cuda", "config": {**state["config"], "device": "auto"}}, state_path)
    refused = []
    for device, message in ((None, "ran on cuda"), ("cuda", "CUDA is not available")):
        with pytest.raises(UsageError, match=message) as error:
            vqclip.resume(first.run_dir, steps=2, device=device)
        refused.append(error)  # kept, as a caller may keep it, with the refused call's objects
        state_path.write_bytes(saved)
    # the folder is free because each call let it go, not because its lock was collected
    assert vqclip.resume(first.run_dir, steps=2).steps == 2 and len(refused) == 2
