"""The cost of claiming one item of a series as its manifest grows; prints a table.

A manifest folder is filled with `--lines` outcome lines and as many claims (as a long batch
leaves them); then one process claims `--claims` new items in a row, and the table gives the
milliseconds per claim at each size. A claim reads only what the two files gained since the
previous one, so the figure should not grow with the size.

    python benchmarks/claims_bench.py
    python benchmarks/claims_bench.py --lines 0 1000 10000 50000 --claims 200
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from vqclip.series.claims import owner
from vqclip.series.manifest import CLAIMS_NAME, MANIFEST_NAME, Manifest


def fill(folder: Path, lines: int) -> None:
    """`lines` outcomes and claims by another (finished) session, written in one go."""
    me = owner()
    (folder / MANIFEST_NAME).write_text("".join(
        json.dumps({"key": f"old{n}", "index": n, "status": "ok", "session": "before"}) + "\n"
        for n in range(lines)))
    (folder / CLAIMS_NAME).write_text("".join(
        json.dumps({"key": f"old{n}", "session": "before", **me, "renewed": 0}) + "\n" for n in range(lines)))


def per_claim(lines: int, claims: int) -> tuple[float, float]:
    """(ms of the first claim, mean ms of the following ones) at `lines` earlier lines."""
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        fill(folder, lines)
        manifest = Manifest(folder / MANIFEST_NAME)
        started = time.perf_counter()
        manifest.claim("new0", "now", index=0)
        first = time.perf_counter() - started
        started = time.perf_counter()
        for number in range(1, claims):
            manifest.claim(f"new{number}", "now", index=number)
            manifest.append({"key": f"new{number}", "index": number, "status": "ok", "session": "now"})
        return first * 1000, (time.perf_counter() - started) / max(claims - 1, 1) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, nargs="+", default=[0, 1000, 4000, 10000])
    parser.add_argument("--claims", type=int, default=100)
    args = parser.parse_args()
    print("| manifest lines | first claim (ms, reads the files once) | each later claim + outcome (ms) |")
    print("|---:|---:|---:|")
    for lines in args.lines:
        first, later = per_claim(lines, args.claims)
        print(f"| {lines} | {first:.1f} | {later:.2f} |")


if __name__ == "__main__":
    main()
