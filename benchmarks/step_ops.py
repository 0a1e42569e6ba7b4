"""What one generation step asks of the host: launching ops, graph breaks, host syncs, compiles.

Prints one table row per (size, precision):
- ops: aten ops per step that launch a kernel, counted by a TorchDispatchMode below autograd
  and autocast (what reaches a device kernel: every aten op but views, allocations and scalar
  read-backs; `prim` metadata queries are not ops). Counted over one whole loop iteration
  (the step, the optimizer, the schedule, the clamp and the loss read-back) as the
  difference between two runs of the loop that end one step apart. At sizes over
  `--real-max` the step runs on fake tensors (shapes only, nothing computed): the ops
  dispatched are the same, which the rows at both sizes show. One difference is made up for:
  under bf16, torch's meta kernel of group norm's backward returns an fp32 input gradient where
  the CPU kernel returns bf16, and autograd casts it back; those casts are not counted.
- syncs: host syncs per loop iteration, and `in step` those inside the step body
  (`Engine.train_step`; the rest is the read-back of the step's losses): scalar read-backs
  (`item`, `bool(tensor)`, `nonzero`, `equal`, which dispatch `_local_scalar_dense` or
  `nonzero`) and `tolist`/`numpy` (seen by a TorchFunctionMode: on the CPU they read memory
  without dispatching an op). On CUDA each of them waits for the queue to drain.
- breaks: graph breaks of the engine's forward (decode, quantize, cutouts, CLIP, losses) by
  `torch._dynamo.explain`, given the step's random numbers.
- compiles: dynamo compiles of that forward over a `--compile-steps` run with a cosine lr
  schedule and a linearly decaying `init` loss weight (torch._dynamo's CompileCounter backend:
  one count per graph dynamo produces, recompiles included); on the tiny models, since what
  recompiles is Python values changing per step, not the models' size.

Full-size architectures with random weights (imagenet f16 16384 VQGAN, ViT-B-32-quickgelu),
one image, one prompt, flip + affine + noise, Adam.

    python benchmarks/step_ops.py --sizes 64 512 --cutn 32
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections import Counter
from pathlib import Path

import torch
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).parent))
from step_bench import build_engine, build_models  # noqa: E402

from vqclip.device import allow_tf32, resolve_device  # noqa: E402

aten = torch.ops.aten
# Ops that launch no kernel: allocations and metadata changes (views are found by schema).
NO_KERNEL = {aten.empty.memory_format, aten.empty_strided.default, aten.empty_like.default,
             aten.new_empty.default, aten.new_empty_strided.default, aten._unsafe_view.default,
             aten.lift_fresh.default, aten.resize_.default, aten.set_.source_Storage_storage_offset}
SYNC_OPS = {aten._local_scalar_dense.default, aten.nonzero.default, aten.is_nonzero.default,
            aten.equal.default}
SYNC_METHODS = {"tolist", "numpy"}


class OpCounter(TorchDispatchMode):
    """Counts kernel-launching aten ops and sync ops by name."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.syncs: Counter[str] = Counter()
        self.step_syncs: Counter[str] = Counter()  # those inside the engine's step body
        self.in_step = False
        # Input gradients of group norms on fake tensors: torch's meta kernel returns them in
        # fp32 for a bf16 input where the CPU kernel returns bf16, and autograd casts them back.
        self.fake_promoted: list[torch.Tensor] = []

    def sync(self, name: str) -> None:
        self.syncs[name] += 1
        if self.in_step:
            self.step_syncs[name] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in SYNC_OPS:
            self.sync(str(func))
            if any(isinstance(a, FakeTensor) for a in args):
                return _fake_scalar(func, args)
        elif func is aten._to_copy.default and any(args[0] is t for t in self.fake_promoted):
            pass  # the cast back of a fake group-norm gradient: no real kernel returns it promoted
        elif func.namespace == "aten" and not func.is_view and func not in NO_KERNEL:
            self.ops[str(func)] += 1
        out = func(*args, **(kwargs or {}))
        if func is aten.native_group_norm_backward.default and isinstance(out[0], FakeTensor) \
                and out[0].dtype != args[1].dtype:
            self.fake_promoted.append(out[0])
        return out


def _fake_scalar(func, args):
    """A stand-in answer for a read-back of a fake tensor (nothing was computed): one, which
    every divisor read back (an optimizer's step count) can be."""
    if func is aten.nonzero.default:
        return func(*args)
    if func is aten.equal.default:
        return False
    return 1.0 if args[0].dtype.is_floating_point else 1


class SyncMethods(TorchFunctionMode):
    """Counts tensor methods that copy to the host without dispatching an op on the CPU."""

    def __init__(self, counter: OpCounter) -> None:
        super().__init__()
        self.counter = counter

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in SYNC_METHODS:
            self.counter.sync(name)
            if isinstance(args[0], FakeTensor):
                return torch.zeros(args[0].shape).tolist()
        return func(*args, **(kwargs or {}))


def count_run(engine, until: int, fake_mode: FakeTensorMode | None) -> OpCounter:
    """Ops and syncs of `engine.run` up to step `until` (in `fake_mode` when given)."""
    counter = OpCounter()
    step_body = engine.train_step

    def counted_step(*args):
        counter.in_step = True
        try:
            return step_body(*args)
        finally:
            counter.in_step = False

    engine.train_step = counted_step
    try:
        with fake_mode or contextlib.nullcontext(), SyncMethods(counter), counter:
            engine.run([], until=until)
    finally:
        del engine.train_step
    return counter


def make_engine(vqgan, perceptor, side: int, cutn: int, steps: int, device, precision: str,
                fake_mode: FakeTensorMode | None = None):
    """The step_bench engine with a cosine schedule and a linearly decaying init loss; on fake
    tensors (its latent made in `fake_mode`) when given."""
    with fake_mode or contextlib.nullcontext():
        return build_engine(vqgan, perceptor, side, cutn, steps, device, precision,
                            schedule="cosine", decaying_init=True)


def ops_per_step(vqgan, perceptor, side: int, cutn: int, device, precision: str,
                 fake: bool) -> tuple[int, int, int, Counter[str]]:
    """(launching ops, syncs, syncs in the step body, ops by name) of one loop iteration, by
    two runs one step apart."""
    fake_mode = FakeTensorMode(allow_non_fake_inputs=True) if fake else None
    engine = make_engine(vqgan, perceptor, side, cutn, 10, device, precision, fake_mode)
    count_run(engine, 1, fake_mode)  # first-step work (optimizer state) stays out of the count
    one = count_run(engine, 2, fake_mode)
    two = count_run(engine, 4, fake_mode)
    ops = two.ops - one.ops
    syncs = sum(two.syncs.values()) - sum(one.syncs.values())
    step_syncs = sum(two.step_syncs.values()) - sum(one.step_syncs.values())
    # Counter subtraction drops negatives; a name absent from `two` would be a counting bug.
    return sum(two.ops.values()) - sum(one.ops.values()), syncs, step_syncs, ops + Counter()


def graph_breaks(vqgan, perceptor, side: int, cutn: int, device, precision: str) -> int:
    """Graph breaks of the engine's forward, by torch._dynamo.explain."""
    engine = make_engine(vqgan, perceptor, side, cutn, 10, device, precision)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(engine.forward)(engine.draw_numbers())
    return explanation.graph_break_count


def compiles(device, precision: str, steps: int) -> int:
    """Dynamo compiles of the engine's forward over a run of `steps` steps (tiny models)."""
    from torch._dynamo.testing import CompileCounter

    vqgan, perceptor = build_models("tiny", device)
    engine = build_engine(vqgan, perceptor, 32, 4, steps, device, precision, schedule="cosine",
                          decaying_init=True)
    torch._dynamo.reset()
    counter = CompileCounter()
    engine.forward = torch.compile(engine.forward, backend=counter)
    engine.run([])
    return counter.frame_count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 512])
    parser.add_argument("--cutn", type=int, default=32)
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--real-max", type=int, default=128,
                        help="largest side computed for real; larger ones run on fake tensors")
    parser.add_argument("--compile-steps", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--top", type=int, default=0, help="also list the N most frequent ops")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    vqgan, perceptor = build_models("full", device)
    print(f"step_ops: full-size architectures, random weights, cutn={args.cutn}, device={device}, "
          f"torch={torch.__version__}")
    print(f"{'size':>9} {'precision':>9} {'tensors':>7} {'ops':>6} {'syncs':>6} {'in step':>7} "
          f"{'breaks':>7} {'compiles':>9}", flush=True)
    for precision in args.precisions:
        allow_tf32(device, precision)
        breaks = graph_breaks(vqgan, perceptor, 64, args.cutn, device, precision)
        compiled = compiles(device, precision, args.compile_steps)
        for side in args.sizes:
            fake = side > args.real_max
            ops, syncs, step_syncs, by_name = ops_per_step(vqgan, perceptor, side, args.cutn, device,
                                               precision, fake)
            size = f"{side}x{side}"
            print(f"{size:>9} {precision:>9} {'fake' if fake else 'real':>7} {ops:>6} "
                  f"{syncs:>6} {step_syncs:>7} {breaks:>7} {compiled:>9}", flush=True)
            for name, count in by_name.most_common(args.top):
                print(f"{'':>12}{count:>5}  {name}")


if __name__ == "__main__":
    main()
