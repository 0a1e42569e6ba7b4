"""Seed and config sweeps: one run per combination, a resumable manifest and a contact sheet."""

from __future__ import annotations

import copy
import itertools
import json
import math
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from vqclip.errors import UsageError
from vqclip.files import write_json_atomic
from vqclip.models.loading import check_offline
from vqclip.outputs.run_folder import slugify
from vqclip.outputs.sheet import contact_sheet, save_image_atomic
from vqclip.run.prepare import prepare
from vqclip.series.items import (
    SeriesEngine,
    SeriesResult,
    StopSwitch,
    WorkItem,
    check_single_image,
    item_key,
    new_series_dir,
    run_items,
)
from vqclip.series.manifest import MANIFEST_NAME, Manifest

if TYPE_CHECKING:
    from vqclip.run.events import Callback

MAX_RUNS = 10_000  # a typo such as "1-100000" should fail fast, not queue a week of work
SHEET_NAME = "sheet.png"
SETTINGS_NAME = "sweep.json"  # what the sweep runs: found again by the same command


def parse_seeds(text: str) -> list[int]:
    """"1-8", "1,3,5" or a mix ("1-3,7") → seeds in the order given, without repeats."""
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        match = re.fullmatch(r"(\d+)(?:\s*-\s*(\d+))?", part)
        if not match:
            raise UsageError(f"--seeds {text!r}: expected N, A-B or a comma list such as 1,3,5")
        first = int(match.group(1))
        last = int(match.group(2)) if match.group(2) is not None else first
        if last < first:
            raise UsageError(f"--seeds {text!r}: range {part} runs backwards")
        if last - first + len(seeds) >= MAX_RUNS:
            raise UsageError(f"--seeds {text!r}: more than {MAX_RUNS} seeds")
        seeds.extend(s for s in range(first, last + 1) if s not in seeds)
    return seeds


def _split_top_level(text: str) -> list[str]:
    """Split on commas that are not inside [...] or {...}, so "[32,32],[64,64]" is two values."""
    parts, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "{": 1, "]": -1, "}": -1}.get(char, 0)
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts]


def parse_sweep(text: str) -> tuple[str, list[str]]:
    """"KEY=V1,V2,..." → (KEY, [V1, V2, ...]); values stay dotlist text ("size=[32,32],[64,64]")."""
    key, sep, values = text.partition("=")
    key = key.strip()
    if not sep or not re.fullmatch(r"[A-Za-z_][\w.]*", key):
        raise UsageError(f"--sweep {text!r}: expected KEY=V1,V2,...")
    parts = _split_top_level(values)
    if not all(parts):
        raise UsageError(f"--sweep {text!r}: empty value")
    return key, parts


def format_value(value: Any) -> str:
    """A Python value as dotlist text: lists as [a,b], None as null, booleans lower-case."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | tuple):
        return "[" + ",".join(format_value(v) for v in value) + "]"
    return str(value)


def expand(seeds: list[int] | None, sweeps: dict[str, list[Any]]) -> list[list[str]]:
    """Every combination of swept values (first key slowest) × seeds (fastest), as dotlists."""
    for key, values in sweeps.items():
        if not values:
            raise UsageError(f"--sweep {key}: no values")
    count = math.prod(len(values) for values in sweeps.values()) * max(1, len(seeds or ()))
    if count > MAX_RUNS:  # counted before any combination is made: 100**4 of them fill the memory
        raise UsageError(f"sweep of {count} runs is more than {MAX_RUNS}")
    combos = list(itertools.product(*([f"{k}={format_value(v)}" for v in vs] for k, vs in sweeps.items())))
    seed_items = [[f"seed={s}"] for s in seeds] if seeds else [[]]
    overrides = [[*combo, *seed] for combo in combos for seed in seed_items]
    return overrides


@dataclass
class SweepGrid:
    """Where each run sits on the sheet: rows are swept values, columns seeds (or the last key)."""

    row_labels: list[str] | None
    col_labels: list[str]
    positions: list[tuple[int, int]]  # (row, col) of each override list, in expand() order


def sweep_grid(seeds: list[int], sweeps: dict[str, list[Any]]) -> SweepGrid:
    """Lay out expand(seeds, sweeps): seeds across when there are several, else the last key."""
    keys = list(sweeps)
    seeds_across = len(seeds) > 1 or not keys
    row_keys = keys if seeds_across else keys[:-1]
    row_combos = list(itertools.product(*(sweeps[k] for k in row_keys)))
    if seeds_across:
        col_labels = [f"seed {s}" for s in seeds]
    else:
        col_labels = [f"{keys[-1]}={format_value(v)}" for v in sweeps[keys[-1]]]
    row_labels = [" ".join(f"{k}={format_value(v)}" for k, v in zip(row_keys, combo, strict=True))
                  for combo in row_combos] if row_keys else None
    # expand() orders runs as (row combo, column) with the column varying fastest in both layouts
    positions = [(i // len(col_labels), i % len(col_labels))
                 for i in range(len(row_combos) * len(col_labels))]
    return SweepGrid(row_labels, col_labels, positions)


@dataclass
class SweepResult(SeriesResult):
    """A series result with the sweep's contact sheet (None when no run has finished)."""

    sheet: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """The --json object of a sweep."""
        return {**super().to_json(), "sheet": str(self.sheet) if self.sheet else None}


def run_sweep(
    build: Callable[[list[str]], DictConfig],
    *,
    seeds: list[int] | None,
    sweeps: dict[str, list[Any]],
    folder: Path | None = None,
    callbacks: Iterable[Callback] = (),
    report: Callable[[dict[str, Any]], None] | None = None,
    stop: StopSwitch | None = None,
    cell_size: int = 128,
    engine: SeriesEngine | None = None,
) -> SweepResult:
    """Run every (swept values × seed) combination into one folder, then draw its contact sheet.

    `build(overrides)` returns the validated config with the dotlist `overrides` applied last.
    With `engine` (local worker processes), the runs share out over it. Without `folder`, the
    sweep folder that `out` names or an earlier one of the same settings is
    resumed (runs already ok in its manifest are skipped), else a new
    `<out>/<date>/<NNNN>-sweep-<slug>/` is made. Without `seeds`, every run shares one seed.
    Every run's config is checked as a single run's is (`prepare`) before the folder is made.
    """
    base = build([])
    check_single_image(base)
    if not seeds:
        seeds = [base.seed if base.seed is not None else secrets.randbelow(2**31)]
    overrides = expand(seeds, sweeps)
    configs = [build(o) for o in overrides]
    # A bad value, input image or model of any run fails now, before any folder or run is
    # made; then, offline, a model not on this machine.
    for cfg in configs:
        prepare(cfg, available=False)
    for cfg in configs:
        check_offline(cfg)
    settings = sweep_settings(base, seeds, sweeps)
    if folder is None:
        folder = find_sweep(base, settings)
    if folder is None:
        folder = new_series_dir(base.out, "sweep", base.prompt)
        write_json_atomic(folder / SETTINGS_NAME, settings)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    items = [
        WorkItem(index=i, key=item_key(i, " ".join(o)), label=" ".join(o) or f"seed {seeds[0]}",
                 make_config=lambda cfg=cfg: copy.deepcopy(cfg), info={"overrides": o})
        for i, (o, cfg) in enumerate(zip(overrides, configs, strict=True))
    ]
    series = run_items(items, folder, callbacks=callbacks, report=report, stop=stop, engine=engine)
    sheet = write_sweep_sheet(folder, items, sweep_grid(seeds, sweeps), cell_size=cell_size)
    return SweepResult(**vars(series), sheet=sheet)


def sweep_settings(base: DictConfig, seeds: list[int], sweeps: dict[str, list[Any]]) -> dict[str, Any]:
    """What makes two sweeps the same: seeds, swept values and every setting but where they go."""
    config = OmegaConf.to_container(base, resolve=True)
    config.pop("out")
    settings = {"seeds": seeds, "sweeps": {key: [format_value(v) for v in values]
                                           for key, values in sweeps.items()}, "config": config}
    return json.loads(json.dumps(settings, sort_keys=True))


def _recorded_settings(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / SETTINGS_NAME).read_text())
    except (OSError, ValueError):
        return None


def find_sweep(base: DictConfig, settings: dict[str, Any]) -> Path | None:
    """The sweep folder to resume: the one `out` names, else the newest one of the same settings.

    A folder given as `out` that holds another sweep, or a batch, is an error: resuming it would
    mix two experiments in one manifest and sheet.
    """
    given = Path(base.out)
    if (given / MANIFEST_NAME).is_file():
        recorded = _recorded_settings(given)
        if recorded is None:
            raise UsageError(f"{given} holds a manifest but is not a sweep folder; give another -o")
        if recorded != settings:
            raise UsageError(f"{given} holds a sweep of other settings; resume it with the command that "
                             "made it, or give another -o")
        return given
    for folder in sorted(given.glob(f"*/*-sweep-{slugify(base.prompt)}"), reverse=True):
        if _recorded_settings(folder) == settings:
            return folder
    return None


def write_sweep_sheet(folder: Path, items: list[WorkItem], grid: SweepGrid, *,
                      cell_size: int = 128) -> Path | None:
    """Draw `folder/sheet.png` from the manifest's finished runs (replacing an older sheet)."""
    latest = {r["key"]: r for r in Manifest(folder / MANIFEST_NAME).records()
              if r.get("status") == "ok" and "key" in r}
    rows = max(r for r, _ in grid.positions) + 1
    cols = len(grid.col_labels)
    cells: list[list[Path | None]] = [[None] * cols for _ in range(rows)]
    captions = [[""] * cols for _ in range(rows)]
    for item, (row, col) in zip(items, grid.positions, strict=True):
        record = latest.get(item.key)
        if record and Path(record["image"]).is_file():
            cells[row][col] = Path(record["image"])
            captions[row][col] = f"loss {record['final_loss']:.3f}"
    if not any(any(row) for row in cells):
        return None
    image = contact_sheet(cells, row_labels=grid.row_labels, col_labels=grid.col_labels,
                          captions=captions, cell_size=cell_size)
    # the sheet is an index of the folder's runs, redrawn when a resumed sweep adds some
    return save_image_atomic(image, folder / SHEET_NAME, overwrite=True)
