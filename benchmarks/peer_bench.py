"""vqclip against nerdyrodent/VQGAN-CLIP at identical settings, side by side; prints a table.

Needs the peer harness of shared/peer-bench laid out in /tmp/peerbench (its README says how:
`MIRROR=... bash shared/peer-bench/install.sh`). Both tools use full-size random weights
(imagenet f16 16384 VQGAN, ViT-B/32) on the CPU with the same thread count; each setting runs
the peer, then vqclip, so both see the same machine load.

    python benchmarks/peer_bench.py --grid 128:8 256:16 --steps 4
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", nargs="+", default=["128:8", "256:16"], help="SIDE:CUTN pairs")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per setting and tool")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peer", type=Path, default=Path(HARNESS), help="the harness's bench_peer.sh")
    args = parser.parse_args()
    if not args.peer.exists():
        sys.exit(f"{args.peer} not found: set up shared/peer-bench first (see its README)")

    torch.set_num_threads(args.threads)
    device = resolve_device("cpu")
    vqgan, perceptor = build_models("full", device)
    rows = []
    for item in args.grid:
        side, cutn = (int(x) for x in item.split(":"))
        peer = peer_seconds(args.peer, side, cutn, args.steps, args.threads)
        ours = statistics.median(time_steps(vqgan, perceptor, side, cutn, args.steps, device, "fp32"))
        rows.append((f"{side}x{side}", cutn, peer, ours, peer / ours))

    print(f"CPU, {args.threads} threads, fp32, full-size random weights, torch {torch.__version__}")
    print(f"{'size':>9} {'cutn':>5} {'peer s/step':>12} {'vqclip s/step':>14} {'speed-up':>9}")
    for size, cutn, peer, ours, ratio in rows:
        print(f"{size:>9} {cutn:>5} {peer:>12.3f} {ours:>14.3f} {ratio:>8.2f}x")


if __name__ == "__main__":
    main()
