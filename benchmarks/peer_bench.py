"""vqclip against nerdyrodent/VQGAN-CLIP at identical settings, side by side; prints a table.

Needs the peer harness of shared/peer-bench laid out in /tmp/peerbench (its README says how:
`MIRROR=... bash shared/peer-bench/install.sh`). Both tools use full-size random weights
(imagenet f16 16384 VQGAN, ViT-B/32) on the CPU with the same thread count. Each setting runs
the two tools alternately, `--repeats` times each (peer first, then vqclip first, and so on),
so that both see the same spells of machine load; the table gives each tool's median over the
repeats of its median seconds per step, their spread (lowest to highest), and the speed-up of
every peer/vqclip pair.

    python benchmarks/peer_bench.py --grid 128:8 256:16 --steps 4 --repeats 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from step_bench import build_models, time_steps  # noqa: E402

from vqclip.device import resolve_device  # noqa: E402

HARNESS = "/tmp/peerbench/bench_peer.sh"  # where shared/peer-bench's install.sh lays it out


def peer_seconds(peer: Path, side: int, cutn: int, steps: int, threads: int) -> float:
    """The peer's median seconds per step (its step 0 excluded by the harness)."""
    env = {**os.environ, "PEERBENCH_THREADS": str(threads)}
    out = subprocess.run([str(peer), str(side), str(cutn), str(steps)], env=env, check=True,
                         capture_output=True, text=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["s_per_iter_median"])


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", nargs="+", default=["128:8", "256:16"], help="SIDE:CUTN pairs")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per run")
    parser.add_argument("--repeats", type=int, default=2, help="runs per setting and tool")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer", type=Path, default=Path(HARNESS), help="the harness's bench_peer.sh")
    args = parser.parse_args()
    if not args.peer.exists():
        sys.exit(f"{args.peer} not found: set up shared/peer-bench first (see its README)")

    torch.set_num_threads(args.threads)
    device = resolve_device("cpu")
    vqgan, perceptor = build_models("full", device)
    print(f"CPU, {args.threads} threads, fp32, full-size random weights, torch {torch.__version__}, "
          f"{args.steps} timed steps per run, {args.repeats} runs per tool, alternating")
    print(f"{'size':>9} {'cutn':>5} {'peer s/step':>12} {'spread':>11} {'vqclip s/step':>14} "
          f"{'spread':>11} {'speed-up':>9} {'pairs':>11}", flush=True)
    for item in args.grid:
        side, cutn = (int(x) for x in item.split(":"))
        peer, ours = [], []
        for repeat in range(args.repeats):
            for tool in ("peer", "vqclip") if repeat % 2 == 0 else ("vqclip", "peer"):
                if tool == "peer":
                    peer.append(peer_seconds(args.peer, side, cutn, args.steps, args.threads))
                else:
                    ours.append(statistics.median(
                        time_steps(vqgan, perceptor, side, cutn, args.steps, device, "fp32")[0]))
        ratios = [p / o for p, o in zip(peer, ours, strict=True)]
        size = f"{side}x{side}"
        print(f"{size:>9} {cutn:>5} {statistics.median(peer):>12.2f} {spread(peer):>11} "
              f"{statistics.median(ours):>14.2f} {spread(ours):>11} "
              f"{statistics.median(peer) / statistics.median(ours):>8.2f}x "
              f"{spread(ratios):>11}", flush=True)


if __name__ == "__main__":
    main()
