"""Before the first step: will the run fit in memory, and if not, what would."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from vqclip.errors import UsageError
from vqclip.run.engine import Engine
from vqclip.run.memory import (
    LOW_MEMORY_SLACK,
    SLACK,
    StepMemory,
    available_bytes,
    fake_bytes,
    gib,
    resident_bytes,
    simulate_peak,
)


def measure(engine: Engine, device: torch.device, *, low_memory: bool,
            split_cutouts: bool = False, start: Callable[[], object] | None = None) -> StepMemory:
    """Resident memory now and one simulated step of `engine` (or `start()`, making the
    generator at its start image, where that takes more). The engine's generator may be a
    stand-in of fake tensors.

    `low_memory` says whether the models recompute activations (it sets the allocator slack).
    With `split_cutouts` a second simulation at cutn 1 tells the share that grows with cutn,
    which only suggestions of smaller settings need.
    """
    parameters = engine.generator.parameters()
    step = simulate_peak(lambda: engine.forward()[2], parameters)
    if start is not None:
        step = max(step, simulate_peak(start))
    cutouts = [judge.cutouts for judge in engine.judges]
    cutn = cutouts[0].cutn
    cutout_part = 0
    if split_cutouts and cutn > 1:
        for item in cutouts:
            item.cutn = 1
        try:
            single = simulate_peak(lambda: engine.forward()[2], parameters)
        finally:
            for item in cutouts:
                item.cutn = cutn
        cutout_part = max(step - single, 0) * cutn // (cutn - 1)
    slack = LOW_MEMORY_SLACK if low_memory else SLACK
    # a stand-in generator of fake tensors: its parameters and their starting copy, made real
    resident = resident_bytes(device) + fake_bytes([*parameters, *engine.initial])
    return StepMemory(resident, int(step * slack), int(cutout_part * slack))


@dataclass
class MemoryPlan:
    """The memory a run will use and its budget; `without_low_memory` is set when low memory
    had to be switched on (what the run would have needed without it)."""

    memory: StepMemory
    budget: int
    without_low_memory: int | None = None

    @property
    def switched_low_memory(self) -> bool:
        return self.without_low_memory is not None

    def note(self) -> str | None:
        """What the user should be told before the run starts, if anything."""
        if self.without_low_memory is None:
            return None
        return (f"--low-memory switched on: the run needs about {gib(self.without_low_memory)} "
                f"without it and {gib(self.memory.total)} with it; {gib(self.budget)} is available")


def plan(engine: Engine, device: torch.device, *, size: tuple[int, int], size_multiple: int,
         low_memory: bool, set_low_memory: Callable[[bool], None],
         max_memory: int | None = None, start: Callable[[], object] | None = None) -> MemoryPlan:
    """Check that the run fits `max_memory` (or the device's free memory) before it starts,
    and before `start()` (making the generator at its start image) runs.

    Switches on low memory when that makes it fit; otherwise a usage error names the largest
    size, cutn (and batch size) that would fit.
    """
    memory = measure(engine, device, low_memory=low_memory, start=start)
    budget = max_memory if max_memory is not None else memory.resident + available_bytes(device)
    if memory.total <= budget:
        return MemoryPlan(memory, budget)
    if not low_memory:
        set_low_memory(True)
        lean = measure(engine, device, low_memory=True, start=start)
        if lean.total <= budget:
            return MemoryPlan(lean, budget, without_low_memory=memory.total)
    if memory.resident >= budget:
        raise UsageError(f"{gib(budget)} of memory is less than the {gib(memory.resident)} that "
                         f"the models, the image's parameters and the program take before "
                          "the first step")
    memory = measure(engine, device, low_memory=True, split_cutouts=True, start=start)
    advice = smaller_settings(memory, budget, size=size, size_multiple=size_multiple,
                              cutn=engine.judges[0].cutouts.cutn, batch_size=engine.batch_size)
    raise UsageError(f"the run needs about {gib(memory.total)} of memory but {gib(budget)} is "
                     f"available on {device.type}; largest that fits: {advice} (with --low-memory)")


def smaller_settings(memory: StepMemory, budget: int, *, size: tuple[int, int],
                     size_multiple: int, cutn: int, batch_size: int = 1) -> str:
    """'--size WxH or --cutn N' (or '--batch-size K'): the largest of each that fits `budget`,
    the others unchanged."""
    options = []
    if batch_size > 1:  # each image of a batch adds an equal share of the step
        fitting_batch = (budget - memory.resident) * batch_size // max(memory.step, 1)
        if 1 <= fitting_batch < batch_size:
            options.append(f"--batch-size {fitting_batch}")
    fitting_size = memory.largest_size(*size, size_multiple, budget)
    if fitting_size is not None:
        options.append(f"--size {fitting_size[0]}x{fitting_size[1]}")
    fitting_cutn = memory.largest_cutn(cutn, budget)
    if fitting_cutn is not None:
        options.append(f"--cutn {fitting_cutn}")
    return " or ".join(options) if options else "a smaller size and cutn"
