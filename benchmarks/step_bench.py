"""Seconds per generation step for a grid of sizes and cutout counts; prints a table.

Full-size architectures use random weights (shapes and FLOPs are what set the speed):
the imagenet f16 16384 VQGAN and open_clip's ViT-B-32-quickgelu. `--model tiny` uses the
tiny test architectures; `--model half` that VQGAN at half its width with the tiny CLIP.
`--batch-sizes 1 4` also times K images optimized together (`--batch-size K`) and converts
each to images per hour at `--image-steps` steps per image. Each row is printed as soon as it
is measured, so a run stopped by a time limit keeps the rows it finished.

    python benchmarks/step_bench.py --model full --grid 128:8 256:16 --steps 6
    python benchmarks/step_bench.py --model tiny --grid 64:8 --batch-sizes 1 2 4 8
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time

import torch

from vqclip.device import allow_tf32, autocast_dtype, resolve_device
from vqclip.models.clip import Perceptor
from vqclip.models.vqgan import VQGAN, VQGANSpec
from vqclip.run.capture import CapturedStep
from vqclip.run.config import PRECISIONS
from vqclip.run.engine import Engine
from vqclip.run.events import StepEvent
from vqclip.steer.augment import augment_strengths
from vqclip.steer.cutouts import Cutouts
from vqclip.steer.generators import VQGANGenerator
from vqclip.steer.losses import PromptLoss, WeightedRegularizer
from vqclip.steer.optimizers import make_optimizer
from vqclip.steer.prompts import Prompt
from vqclip.steer.schedules import make_scheduler
from vqclip.steer.targets import Judge, Stage

FULL_VQGAN = VQGANSpec(embed_dim=256, n_embed=16384, z_channels=256, resolution=256, in_channels=3,
                       out_ch=3, ch=128, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2,
                       attn_resolutions=(16,))
HALF_VQGAN = VQGANSpec(embed_dim=256, n_embed=1024, z_channels=256, resolution=256, in_channels=3,
                       out_ch=3, ch=64, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=2,
                       attn_resolutions=(16,))
TINY_VQGAN = VQGANSpec(embed_dim=32, n_embed=64, z_channels=32, resolution=32, in_channels=3,
                       out_ch=3, ch=32, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=())
TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def build_models(kind: str, device: torch.device) -> tuple[VQGAN, Perceptor]:
    """Random-weight VQGAN and CLIP of the named size, frozen on `device`."""
    import open_clip

    torch.manual_seed(0)
    spec = {"full": FULL_VQGAN, "half": HALF_VQGAN, "tiny": TINY_VQGAN}[kind]
    vqgan = VQGAN(spec).to(device).eval().requires_grad_(False)
    if kind == "full":
        clip = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None, device=device)
        tokenizer = open_clip.get_tokenizer("ViT-B-32-quickgelu")
        size = 224
    else:
        clip = open_clip.CLIP(**TINY_CLIP).to(device)
        tokenizer = open_clip.get_tokenizer("ViT-B-32")
        tokenizer.context_length = TINY_CLIP["text_cfg"]["context_length"]
        size = 32
    clip.eval().requires_grad_(False)
    mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)
    return vqgan, Perceptor(clip, tokenizer, size, mean, std, kind)


def build_engine(vqgan: VQGAN, perceptor: Perceptor, side: int, cutn: int, steps: int,
                 device: torch.device, precision: str, batch_size: int = 1, *,
                 schedule: str = "constant", decaying_init: bool = False) -> Engine:
    """An engine for `steps` steps at side x side with `cutn` cutouts and `batch_size` images,
    as generate builds it; `decaying_init` adds an init loss whose weight falls linearly."""
    rngs = [torch.Generator(device=device).manual_seed(seed) for seed in range(batch_size)]
    dtype = autocast_dtype(precision, device)
    step_vqgan, step_perceptor = ((vqgan, perceptor) if dtype is None else
                                  (vqgan.autocast_copy(dtype), perceptor.autocast_copy(dtype)))
    generator = VQGANGenerator.from_random_tokens(vqgan, side, side, rngs, step_vqgan)
    cutouts = Cutouts(perceptor.input_size, cutn, augmentations=["flip", "affine", "noise"],
                      strengths=augment_strengths())
    optimizer = make_optimizer("adam", generator.parameters(), 0.1, {})
    target = perceptor.encode_text(["a red circle"])[0]
    stage = Stage(0, "a red circle", [PromptLoss(Prompt("a red circle"), target)])
    judge = Judge(step_perceptor, cutouts, [stage])
    scheduler = make_scheduler(schedule, optimizer, steps, {})
    regularizers = [WeightedRegularizer("init", 0.5, "linear")] if decaying_init else []
    return Engine(generator, [judge], optimizer, scheduler, rngs, steps=steps, save_every=0,
                  regularizers=regularizers, autocast_dtype=autocast_dtype(precision, device))


def set_step_body(engine: Engine, device: torch.device, *, compiled: bool, captured: bool) -> None:
    """As generate chooses it: the forward compiled (CUDA graphs too on CUDA), or on CUDA the
    step body recorded as one CUDA graph, or eager."""
    if compiled:
        engine.forward = torch.compile(engine.forward,
                                       mode="reduce-overhead" if device.type == "cuda" else None)
    elif captured and device.type == "cuda":
        engine.step_body = CapturedStep(engine.train_step)


def time_steps(vqgan: VQGAN, perceptor: Perceptor, side: int, cutn: int, steps: int,
               device: torch.device, precision: str, warmup: int = 1,
               batch_size: int = 1, *, compiled: bool = False, captured: bool = False,
               busy: bool = False) -> tuple[list[float], float | None]:
    """Per-step seconds of `steps` engine steps at side x side (after `warmup` untimed ones),
    and with `busy` on CUDA the share of the wall time the GPU was busy over `steps` more
    steps (kernel time by the profiler, which slows the host a little: a lower bound).

    A step's time ends when its losses reach the host, which the loop does once the next
    step is queued: no extra synchronization that would drain the queue."""
    total = steps + warmup + (steps if busy else 0)
    engine = build_engine(vqgan, perceptor, side, cutn, total, device, precision, batch_size)
    set_step_body(engine, device, compiled=compiled, captured=captured)
    stamps: list[float] = []

    def on_event(event: object) -> None:
        if isinstance(event, StepEvent) and event.index == 0:
            stamps.append(time.perf_counter())

    start = time.perf_counter()
    engine.run([on_event], until=steps + warmup)
    times = [b - a for a, b in zip([start, *stamps], stamps, strict=False)]
    share = gpu_busy_share(engine, total) if busy and device.type == "cuda" else None
    return times[warmup:], share


def gpu_busy_share(engine: Engine, until: int) -> float:
    """Kernel time over wall time of the engine's steps up to `until`, by torch.profiler."""
    from torch.profiler import ProfilerActivity, profile

    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        start = time.perf_counter()
        engine.run([], until=until)
        torch.cuda.synchronize()
        wall = time.perf_counter() - start
    kernel_us = sum(event.self_device_time_total for event in prof.key_averages())
    return kernel_us / 1e6 / wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "half", "full"], default="full")
    parser.add_argument("--grid", nargs="+", default=["128:8", "256:16"],
                        help="SIDE:CUTN pairs")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per setting")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the step's forward (reduce-overhead on CUDA)")
    parser.add_argument("--capture", action="store_true",
                        help="record the step as one CUDA graph (CUDA only; eager elsewhere)")
    parser.add_argument("--busy", action="store_true",
                        help="add the GPU's busy share of the wall time (CUDA profiler)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per setting")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1],
                        help="images optimized together (K of --batch-size)")
    parser.add_argument("--image-steps", type=int, default=300,
                        help="steps per image, for the images-per-hour column")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    allow_tf32(device, args.precision)
    vqgan, perceptor = build_models(args.model, device)
    captured = args.capture and device.type == "cuda" and not args.compile
    if args.capture and not captured:
        print(f"--capture: CUDA graphs need a CUDA device and no --compile; timing the "
              f"{'compiled' if args.compile else 'eager'} step", file=sys.stderr)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"model={args.model} device={device} ({name}) precision={args.precision} "
          f"compile={args.compile} capture={captured} threads={args.threads} "
          f"torch={torch.__version__} image_steps={args.image_steps}")
    if device.type != "cuda":
        print("peak GiB on the CPU is the process's maximum resident set size so far")
    print(f"{'size':>9} {'cutn':>5} {'K':>3} {'s/step':>8} {'steps/s':>8} {'images/h':>9} "
          f"{'vs K=1':>7} {'peak GiB':>9} {'GPU busy':>8}", flush=True)
    for item in args.grid:
        side, cutn = (int(x) for x in item.split(":"))
        single = None  # images per hour of K=1: K separate runs make images at its rate
        for batch_size in sorted(set(args.batch_sizes)):
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            times, share = time_steps(vqgan, perceptor, side, cutn, args.steps, device,
                                      args.precision, args.warmup, batch_size,
                                      compiled=args.compile, captured=captured, busy=args.busy)
            if device.type == "cuda":
                peak = torch.cuda.max_memory_allocated() / 2**30
            else:
                peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
            median = statistics.median(times)
            per_hour = 3600 * batch_size / (median * args.image_steps)
            if batch_size == 1:
                single = per_hour
            gain = f"{per_hour / single:.2f}x" if single else "-"
            size = f"{side}x{side}"
            busy = "-" if share is None else f"{share:.0%}"
            print(f"{size:>9} {cutn:>5} {batch_size:>3} {median:>8.4f} {1 / median:>8.2f} "
                  f"{per_hour:>9.1f} {gain:>7} {peak:>9.2f} {busy:>8}", flush=True)


if __name__ == "__main__":
    main()
