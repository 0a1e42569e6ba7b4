"""The optimization loop and its parts: loss goes down, cutouts, clamps, stop requests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from vqclip.run.build import build
from vqclip.run.config import build_config
from vqclip.run.events import DoneEvent, ImageEvent, StepEvent
from vqclip.run.execute import Run
from vqclip.run.prepare import prepare
from vqclip.steer.generators import clamp_with_grad
from vqclip.steer.losses import PromptLoss, spherical_distance
from vqclip.steer.prompts import Prompt


def make_run(tiny_sets, tmp_path, *items: str) -> Run:
    cfg, _ = build_config(
        dotlist=[*tiny_sets, "prompt=a red circle", "size=[32,32]", "cutn=8", f"out={tmp_path}",
                 "seed=0", "save_every=0", *items]
    )
    return build(prepare(cfg))


def test_loss_goes_down_over_30_steps(tiny_sets, tmp_path) -> None:
    run = make_run(tiny_sets, tmp_path, "steps=30", "augment.noise=0")
    events: list[StepEvent] = []
    run.execute([lambda e: events.append(e) if isinstance(e, StepEvent) else None])
    losses = [e.loss for e in events]
    assert len(losses) == 30
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 1e-3


def test_stop_request_ends_after_current_step(tiny_sets, tmp_path) -> None:
    run = make_run(tiny_sets, tmp_path, "steps=50", "save_every=1")
    seen: list = []

    def stop_at_three(event) -> None:
        seen.append(event)
        if isinstance(event, StepEvent) and event.step == 2:
            run.engine.request_stop()

    result = run.execute([stop_at_three])
    assert result.interrupted and result.steps == 3
    assert isinstance(seen[-1], DoneEvent)
    assert [e.step for e in seen if isinstance(e, ImageEvent)] == [0, 1, 2]
    assert result.image.exists()


def test_latent_stays_inside_codebook_range(tiny_sets, tmp_path) -> None:
    run = make_run(tiny_sets, tmp_path, "steps=5", "lr=5.0")
    run.execute()
    generator = run.engine.generator
    assert torch.all(generator.z >= generator.z_min - 1e-6)
    assert torch.all(generator.z <= generator.z_max + 1e-6)


def test_clamp_with_grad_passes_only_gradients_back_into_range() -> None:
    x = torch.tensor([-0.5, 0.5, 1.5], requires_grad=True)
    clamp_with_grad(x).backward(torch.tensor([-1.0, 1.0, -1.0]))
    # below range: descent along -grad moves x up (toward range): kept;
    # above range: descent moves x up (away from range): dropped.
    assert x.grad.tolist() == [-1.0, 1.0, 0.0]


def test_spherical_distance_of_orthogonal_and_equal_vectors() -> None:
    a = torch.tensor([[1.0, 0.0]])
    b = torch.tensor([[0.0, 1.0]])
    assert spherical_distance(a, a).item() == pytest.approx(0.0)
    assert spherical_distance(a, b).item() == pytest.approx(2 * (math.pi / 4) ** 2)


def test_negative_weight_pushes_away_and_stop_cuts_the_pull() -> None:
    target = torch.tensor([1.0, 0.0])
    emb = torch.nn.functional.normalize(torch.tensor([[0.6, 0.8]]), dim=-1).requires_grad_(True)
    PromptLoss(Prompt("t", weight=-2.0), target)(emb).backward()
    toward = emb.grad.clone()
    emb.grad = None
    PromptLoss(Prompt("t", weight=2.0), target)(emb).backward()
    assert torch.allclose(toward, -emb.grad)
    emb.grad = None
    PromptLoss(Prompt("t", weight=1.0, stop=10.0), target)(emb).backward()
    assert torch.count_nonzero(emb.grad) == 0


def test_low_memory_gives_the_same_image(tiny_sets, tmp_path) -> None:
    plain = make_run(tiny_sets, tmp_path, "steps=3").execute()
    low = make_run(tiny_sets, tmp_path, "steps=3", "low_memory=true")
    assert low.engine.generator.step_vqgan.decoder.checkpoint_stages
    result = low.execute()
    with Image.open(plain.image) as a, Image.open(result.image) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_final_image_is_decoded_once_eagerly_in_fp32(tiny_sets, tmp_path) -> None:
    from torch._dynamo.testing import CompileCounter

    run = make_run(tiny_sets, tmp_path, "steps=2", "precision=bf16")
    generator = run.engine.generator
    counter = CompileCounter()
    generator.step_vqgan.decoder.compile(backend=counter)
    compiled: list[int] = []
    done = run.engine.run([lambda e: compiled.append(counter.frame_count)
                           if isinstance(e, (StepEvent, DoneEvent)) else None])
    # Compiled once for the training steps; the final decode (no grad) compiles nothing more.
    assert compiled[0] >= 1 and compiled[-1] == compiled[0]
    assert generator.step_vqgan is not generator.vqgan  # the step's weights are a bf16 copy
    assert run.engine.judges[0].perceptor.model.visual.conv1.weight.dtype == torch.bfloat16
    low = make_run(tiny_sets, tmp_path, "steps=2", "precision=bf16", "low_memory=true")
    assert low.engine.generator.step_vqgan is low.engine.generator.vqgan  # no second copy held
    with torch.no_grad():
        fp32 = generator.exact_image()
    assert torch.equal(done[0].image, fp32[0])  # not the bf16 decode of the training steps
