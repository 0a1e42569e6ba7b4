"""The memory planner's estimate of one step against the measured peak; prints a table.

Each setting runs in a fresh process: the planner simulates one step, then two real steps
run. Side by side: the simulated peak as simulated, the planner's estimate (the simulated
peak with its allowance for the allocator), and what the steps took. On the CPU that is the
growth of the resident set (Linux VmHWM, reset just before the steps) over what was resident
before them; on CUDA `max_memory_allocated` over what was allocated before them (comparable
with the simulated peak) and `max_memory_reserved` over what was reserved before them (what
the estimate's allowance is for). Each row is printed as soon as its setting is measured.

    python benchmarks/memory_bench.py --model full --grid 128:8 256:16 384:16
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from step_bench import build_engine, build_models  # noqa: E402

from vqclip.device import resolve_device  # noqa: E402
from vqclip.run.build import set_low_memory  # noqa: E402
from vqclip.run.config import PRECISIONS  # noqa: E402
from vqclip.run.memory import resident_bytes, simulate_peak  # noqa: E402
from vqclip.run.planner import measure  # noqa: E402


def _vm_hwm() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def measure_one(model: str, side: int, cutn: int, low_memory: bool, device_name: str,
                precision: str) -> dict:
    """Simulated, estimated and measured peak bytes that one step adds, for one setting."""
    device = resolve_device(device_name)
    vqgan, perceptor = build_models(model, device)
    engine = build_engine(vqgan, perceptor, side, cutn, 2, device, precision)
    set_low_memory(engine.generator, engine.judges, low_memory)
    simulated = simulate_peak(lambda: engine.forward()[2], engine.generator.parameters())
    estimate = measure(engine, device, low_memory=low_memory)
    before = resident_bytes(device)
    if device.type == "cuda":
        reserved_before = torch.cuda.memory_reserved(device)
        torch.cuda.reset_peak_memory_stats(device)
    else:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS
    engine.run([])
    row = {"side": side, "cutn": cutn, "low_memory": low_memory, "simulated": simulated,
           "estimated": estimate.step}
    if device.type == "cuda":
        return {**row, "measured": torch.cuda.max_memory_allocated(device) - before,
                "reserved": torch.cuda.max_memory_reserved(device) - reserved_before}
    return {**row, "measured": _vm_hwm() - before, "reserved": None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["tiny", "half", "full"], default="full")
    parser.add_argument("--grid", nargs="+", default=["128:8", "256:16", "384:16"],
                        help="SIDE:CUTN pairs; add :low for --low-memory")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # a single setting, in this process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.one:
        side, cutn, *low = args.one.split(":")
        print(json.dumps(measure_one(args.model, int(side), int(cutn), bool(low), args.device,
                                     args.precision)))
        return
    measured = "allocated MiB" if args.device.startswith("cuda") else "RSS MiB"
    print(f"model={args.model} device={args.device} precision={args.precision} "
          f"torch={torch.__version__}")
    print(f"{'size':>9} {'cutn':>5} {'low-mem':>8} {'simulated MiB':>14} {'estimated MiB':>14} "
          f"{measured:>14} {'reserved MiB':>13} {'est/meas':>9}", flush=True)
    for item in args.grid:
        command = [sys.executable, __file__, "--model", args.model, "--device", args.device,
                   "--precision", args.precision, "--threads", str(args.threads), "--one", item]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = json.loads(output.strip().splitlines()[-1])
        size = f"{row['side']}x{row['side']}"
        reserved = "-" if row["reserved"] is None else f"{row['reserved'] / 2**20:.0f}"
        ratio = row["estimated"] / max(row["measured"], 1)
        print(f"{size:>9} {row['cutn']:>5} {'yes' if row['low_memory'] else 'no':>8} "
              f"{row['simulated'] / 2**20:>14.0f} {row['estimated'] / 2**20:>14.0f} "
              f"{row['measured'] / 2**20:>14.0f} {reserved:>13} {ratio:>9.2f}", flush=True)

if __name__ == "__main__":
    main()
