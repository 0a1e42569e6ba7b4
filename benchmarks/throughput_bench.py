"""Many images: start-up seconds per item with models reused or not, and a batch's images per
hour run in sequence, by local worker processes and by Ray actors; prints two tables.

Start-up: the full-size architectures (imagenet f16 16384 VQGAN, ViT-B-32-quickgelu) with
random weights, written in vqclip's real formats to a temporary folder and loaded through the
normal path, `--items` items of one step each; per item, the seconds of `build` (models
loaded, memory planned, engine assembled) when every item starts afresh (as before models were
reused) and when one `Models` holds what the first item loaded.

Throughput: `vqclip batch` of `--batch` shapes-preset items (the preset's own steps unless
`--steps`), as separate processes timed from start to exit: in sequence, with `--workers 1`
and `--workers 2`, and with `--ray --ray-actors 2` when Ray is installed.

    python benchmarks/throughput_bench.py
    python benchmarks/throughput_bench.py --skip-startup --batch 8 --steps 50
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from vqclip.models.held import Models
from vqclip.run.build import build
from vqclip.run.config import build_config
from vqclip.run.prepare import prepare


def write_full_models(folder: Path) -> list[str]:
    """Random-weight full-size VQGAN and CLIP in the formats vqclip loads; their config items."""
    import open_clip
    from safetensors.torch import save_file

    from vqclip.models.vqgan import VQGAN, save_vqgan

    sys.path.insert(0, str(Path(__file__).parent))
    from step_bench import FULL_VQGAN  # noqa: E402

    torch.manual_seed(0)
    config, weights = save_vqgan(VQGAN(FULL_VQGAN).eval(), folder / "vqgan")
    # The model as its file holds it (a Perceptor folds constants into the weights it runs).
    clip = open_clip.create_model("ViT-B-32-quickgelu", pretrained=None)
    clip_dir = folder / "clip"
    clip_dir.mkdir()
    model_cfg = open_clip.get_model_config("ViT-B-32-quickgelu")
    preprocess = {"size": 224, "mean": [0.48145466, 0.4578275, 0.40821073],
                  "std": [0.26862954, 0.26130258, 0.27577711], "interpolation": "bicubic",
                  "resize_mode": "shortest"}
    (clip_dir / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": model_cfg, "preprocess_cfg": preprocess}))
    save_file({k: v.contiguous() for k, v in clip.state_dict().items()},
              str(clip_dir / "open_clip_model.safetensors"))
    return [f"vqgan.config={config}", f"vqgan.checkpoint={weights}", f"clip.model=local-dir:{clip_dir}",
            "clip.pretrained=null"]


def startup(items: int) -> list[tuple[int, float, float]]:
    """(item, seconds to build afresh, seconds to build with what the process kept) per item."""
    with tempfile.TemporaryDirectory() as tmp:
        models = write_full_models(Path(tmp))
        configs = [build_config(dotlist=[*models, f"prompt=item {i}", "size=[64,64]", "cutn=1", "steps=1",
                                         f"seed={i}", f"out={tmp}/runs", "device=cpu"])[0]
                   for i in range(items)]
        fresh = []
        for cfg in configs:
            start = time.perf_counter()
            build(prepare(cfg))
            fresh.append(time.perf_counter() - start)
        kept = []
        models = Models()  # held across the items, as a batch holds them
        for cfg in configs:
            start = time.perf_counter()
            build(prepare(cfg), models)
            kept.append(time.perf_counter() - start)
    return [(i + 1, a, b) for i, (a, b) in enumerate(zip(fresh, kept, strict=True))]


def throughput(count: int, steps: int | None) -> list[tuple[str, float]]:
    """(how, seconds) for `vqclip batch` of `count` shapes items, each way it can run."""
    ways = [("in sequence", []), ("--workers 1", ["--workers", "1"]),
            ("--workers 2", ["--workers", "2", "--threads", str(max(1, (os.cpu_count() or 2) // 2))])]
    if importlib.util.find_spec("ray") is not None:
        ways.append(("--ray, 2 actors", ["--ray", "--ray-actors", "2"]))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        prompts = Path(tmp) / "prompts.txt"
        colors, shapes = ["red", "blue", "green", "yellow"], ["circle", "square"]
        prompts.write_text("".join(f"a {c} {s} --seed {i}\n"
                                   for i, (c, s) in enumerate((c, s) for c in colors for s in shapes))
                           if count == 8 else "".join(f"a red circle --seed {i}\n" for i in range(count)))
        for name, args in ways:
            out = Path(tmp) / name.replace(" ", "_").replace("-", "").replace(",", "")
            extra = ["--steps", str(steps)] if steps else []
            command = [sys.executable, "-m", "vqclip", "batch", str(prompts), "--preset", "shapes",
                       "-o", str(out), "-q", *extra, *args]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1"})
            seconds = time.perf_counter() - start
            if done.returncode != 0:
                print(f"{name}: exit {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
                continue
            rows.append((name, seconds))
            print(f"{name:>16} {seconds:8.1f} s {count / seconds * 3600:10.0f} images/h", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=4, help="items of the start-up measurement")
    parser.add_argument("--batch", type=int, default=8, help="shapes items of the throughput runs")
    parser.add_argument("--steps", type=int, default=None, help="steps per item (default: the preset's)")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads")
    if not args.skip_startup:
        print("start-up per item, full-size architectures (seconds of build):")
        print(f"{'item':>5} {'afresh':>8} {'kept':>8}")
        for item, fresh, kept in startup(args.items):
            print(f"{item:>5} {fresh:8.2f} {kept:8.2f}", flush=True)
    if not args.skip_throughput:
        print(f"batch of {args.batch} shapes items:")
        print(f"{'how':>16} {'wall':>10} {'rate':>17}")
        throughput(args.batch, args.steps)


if __name__ == "__main__":
    main()
