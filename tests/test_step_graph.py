"""The step is graph-safe: no graph breaks, no host syncs, one compile per run, and the same
image whether it runs eagerly or as one compiled graph (tiny models, CPU).

Measured on the tiny models after 8 steps, eager against dynamo + AOT autograd: the images are
identical in fp32 and under bf16 (largest difference 0.0); the test allows 1e-4."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))
from step_bench import build_engine, build_models  # noqa: E402
from step_ops import OpCounter, SyncMethods  # noqa: E402

CPU = torch.device("cpu")
STEPS = 8


@pytest.fixture(scope="module")
def models(one_thread):
    return build_models("tiny", CPU)


def engine(models, precision: str = "fp32", batch_size: int = 1):
    """A tiny engine with a cosine lr schedule and a linearly decaying init loss weight."""
    return build_engine(*models, 32, 4, STEPS, CPU, precision, batch_size, schedule="cosine",
                        decaying_init=True)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_forward_has_no_graph_break(models, precision) -> None:
    subject = engine(models, precision)
    torch._dynamo.reset()
    assert torch._dynamo.explain(subject.forward)(subject.draw_numbers()).graph_break_count == 0


def test_step_body_has_no_host_sync(models) -> None:
    subject = engine(models, batch_size=2)
    subject.run([], until=1)  # optimizer state made
    counter = OpCounter()
    body = subject.train_step

    def counted(numbers):
        counter.in_step = True
        try:
            return body(numbers)
        finally:
            counter.in_step = False

    subject.step_body = counted
    with SyncMethods(counter), counter:
        subject.run([], until=3)
    assert sum(counter.ops.values()) > 100  # the counter saw the steps
    assert not counter.step_syncs
    # outside the body: one read-back of each step's losses (on CUDA one step late)
    assert counter.syncs == {"tolist": 2}


def test_compiled_run_compiles_once_and_draws_the_same_image_as_eager(models) -> None:
    eager = engine(models)
    eager.run([])
    compiled = engine(models)
    torch._dynamo.reset()
    counter = CompileCounterWithBackend("aot_eager")  # dynamo and AOT autograd, no inductor
    compiled.forward = torch.compile(compiled.forward, backend=counter)
    compiled.run([])
    assert compiled.step == STEPS and counter.frame_count == 1  # schedule and weight change
    difference = (eager.images() - compiled.images()).abs().max().item()
    assert difference <= 1e-4, difference
