"""Peak memory of one generation step, simulated on fake tensors before the first step.

The simulation runs the step's own code (forward, losses, backward) on fake tensors: shapes
and dtypes flow through it and autocast and checkpointing behave as in the real run, but
nothing is computed or allocated. Every tensor the step creates is counted from its first op
until Python drops it, so the peak is the largest sum of live bytes.

What the allocator adds on top (caching, fragmentation) is a factor calibrated on the CPU
against the measured resident-set growth of full-size models (benchmarks/memory_bench.py):
1.15 for a plain step; 1.8 with --low-memory, whose recomputation frees and reallocates
every block's activations. The same factors serve CUDA until it is measured there.
"""

from __future__ import annotations

import os
import re
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from vqclip.errors import ConfigError

SLACK = 1.15  # allocator caching and fragmentation on top of the live tensor bytes
LOW_MEMORY_SLACK = 1.8
_UNITS = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}
_AMOUNT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*$", re.IGNORECASE)


def parse_bytes(text: str) -> int:
    """'8GiB', '8G', '512MB', '1.5g' or a plain byte count -> bytes (binary units)."""
    match = _AMOUNT.match(str(text))
    if not match:
        raise ConfigError(f"max_memory={text!r}: expected an amount such as 8GiB or 512MiB")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def gib(count: float) -> str:
    """Bytes as 'N.N GiB'."""
    return f"{count / 2**30:.1f} GiB"


class _LiveBytes(TorchDispatchMode):
    """Counts the bytes of every storage an op creates, for as long as a tensor refers to it.

    Storages that an op reads before any op made them (weights, the optimized parameters,
    prompt embeddings) existed before the step and are not counted, nor are views of them.
    """

    def __init__(self, fake_mode: FakeTensorMode) -> None:
        super().__init__()
        self.fake_mode = fake_mode
        self.live = 0
        self.peak = 0
        self._refs: dict[int, int] = {}
        self._resident: set[int] = set()
        self._fakes: dict[int, torch.Tensor] = {}  # keeps memoized fakes of real inputs alive

    def _release(self, key: int, nbytes: int) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            del self._refs[key]
            self.live -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        for tensor in tree_leaves((args, kwargs)):
            if not isinstance(tensor, torch.Tensor):
                continue
            if not isinstance(tensor, FakeTensor):  # the fake the op will see in its place
                tensor = self.fake_mode.from_tensor(tensor)
                self._fakes[id(tensor)] = tensor
            if tensor.untyped_storage()._cdata not in self._refs:
                self._resident.add(tensor.untyped_storage()._cdata)
        out = func(*args, **(kwargs or {}))
        for tensor in tree_leaves(out):
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key, nbytes = storage._cdata, storage.nbytes()
            if key in self._resident:
                continue
            if key not in self._refs:
                self._refs[key] = 0
                self.live += nbytes
                self.peak = max(self.peak, self.live)
            self._refs[key] += 1
            weakref.finalize(tensor, self._release, key, nbytes)
        return out


def simulate_peak(step: Callable[[], object], parameters: list[torch.Tensor] | None = None) -> int:
    """Peak bytes of the tensors created while `step()` runs and, given `parameters`, while
    the gradient of its result (a loss) with respect to them is computed.

    Nothing real is computed, no memory is taken, no random generator advances and no
    gradient is left on the parameters. Parameters may be fake tensors themselves.
    """
    fake_mode = next((p.fake_mode for p in parameters or () if isinstance(p, FakeTensor)),
                     None) or FakeTensorMode(allow_non_fake_inputs=True)
    with fake_mode:
        tracker = _LiveBytes(fake_mode)
        with tracker:
            result = step()
            if parameters is not None:
                torch.autograd.grad(result, parameters)
    return tracker.peak


def available_bytes(device: torch.device) -> int:
    """Memory a run can still take on `device`: free GPU memory, or the system's available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return free + cached
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory())
    return _meminfo_available()


def _meminfo_available() -> int:
    meminfo = Path("/proc/meminfo")
    if meminfo.is_file():
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def fake_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes that the fake tensors among `tensors` will take once they are real."""
    return sum(t.nbytes for t in tensors if isinstance(t, FakeTensor))


def resident_bytes(device: torch.device) -> int:
    """Memory the process holds now: allocated GPU memory, or the resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.memory_allocated(device)
    if device.type == "mps":
        return int(torch.mps.current_allocated_memory())
    statm = Path("/proc/self/statm")
    if statm.is_file():
        return int(statm.read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    import resource  # not on Windows, where /proc is missing too

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


@dataclass
class StepMemory:
    """Memory of a run: what is resident before it, and the simulated peak one step adds."""

    resident: int
    step: int  # allocator slack included
    cutout_part: int  # the share of `step` that grows with cutn; the rest grows with pixels

    @property
    def total(self) -> int:
        return self.resident + self.step

    def scaled(self, pixel_ratio: float, cutout_ratio: float) -> int:
        """Predicted total at pixel_ratio x the pixels and cutout_ratio x the cutouts."""
        image_part = self.step - self.cutout_part
        return int(self.resident + pixel_ratio * image_part + cutout_ratio * self.cutout_part)

    def largest_size(self, width: int, height: int, multiple: int,
                     budget: int) -> tuple[int, int] | None:
        """The largest size of the same aspect ratio (sides multiples of `multiple`) that fits."""
        for percent in range(95, 0, -5):
            w = int(width * percent / 100) // multiple * multiple
            h = int(height * percent / 100) // multiple * multiple
            if w >= multiple and h >= multiple and \
                    self.scaled(w * h / (width * height), 1.0) <= budget:
                return w, h
        return None

    def largest_cutn(self, cutn: int, budget: int) -> int | None:
        """The largest cutout count below `cutn` that fits at the same size."""
        for count in range(cutn - 1, 0, -1):
            if self.scaled(1.0, count / cutn) <= budget:
                return count
        return None
