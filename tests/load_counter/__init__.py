"""Model loads counted per process, across the processes a command starts (sitecustomize.py)."""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

FOLDER = Path(__file__).parent


def counting_env(env: dict[str, str], log: Path) -> dict[str, str]:
    """`env` with every Python process started from it counting its model loads into `log`."""
    paths = [str(FOLDER), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(paths), "VQCLIP_COUNT_LOADS": str(log)}


def loads_by_process(log: Path) -> dict[int, Counter]:
    """{pid: Counter of load_vqgan and load_perceptor calls} from `log`."""
    loads: dict[int, Counter] = {}
    for line in log.read_text().splitlines() if log.exists() else []:
        pid, name = line.split()
        loads.setdefault(int(pid), Counter())[name] += 1
    return loads
