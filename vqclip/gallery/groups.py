"""The series among a gallery's runs: batch, sweep and zoom folders, found by their manifests.

Manifests are read line by line through the tree's checks: a torn line, a line that is not
UTF-8 (`\\xff`) or not a JSON object is skipped, as a series skips it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqclip.gallery.runs import RunEntry
from vqclip.gallery.tree import Tree


@dataclass
class Group:
    """A series folder and its runs (in item order), or the runs of no series."""

    kind: str  # "sweep", "batch", "zoom" or "runs"
    folder: Path
    rel: str
    runs: list[RunEntry] = field(default_factory=list)

    @property
    def title(self) -> str:
        """What the page calls it: "Sweep <folder>", with the folder's own name at the root."""
        name = self.folder.name if self.rel == "." else self.rel
        return "Single runs" if self.kind == "runs" else f"{self.kind.capitalize()} {name}"


def records(tree: Tree, manifest: Path) -> list[dict[str, Any]]:
    """The manifest's JSON objects, in file order; any other line is skipped."""
    found = []
    for text in tree.lines(manifest):
        try:
            record = json.loads(text)
        except ValueError:
            continue
        if isinstance(record, dict):
            found.append(record)
    return found


def _kind(entries: list[dict[str, Any]]) -> str:
    if any(r.get("event") == "zoom" for r in entries):
        return "zoom"
    return "sweep" if any("overrides" in r for r in entries) else "batch"


def _run_of(record: dict[str, Any], folder: Path, by_folder: dict[str, RunEntry]) -> RunEntry | None:
    recorded = record.get("run_dir")
    if not isinstance(recorded, str) or not recorded:
        return None
    path = Path(recorded)
    # the manifest holds absolute paths; a series' runs sit at <folder>/<date>/<run>, which
    # still finds them when the tree was moved or copied
    return by_folder.get(str(path)) or by_folder.get(str(folder / path.parent.name / path.name))


def find_groups(tree: Tree, manifests: list[Path], runs: list[RunEntry]) -> list[Group]:
    """One group per series folder with runs in the gallery, then one of the runs left."""
    by_folder = {str(run.folder): run for run in runs}
    grouped: set[str] = set()
    groups = []
    for manifest in manifests:
        entries = records(tree, manifest)
        kind = _kind(entries)
        latest: dict[Any, dict[str, Any]] = {}
        for record in entries:
            item = record.get("key", record.get("index"))
            if isinstance(item, str | int) and "run_dir" in record:
                latest[item] = record
        folder = manifest.parent
        rel = folder.relative_to(tree.root).as_posix() if folder != tree.root else "."
        group = Group(kind, folder, rel)
        ordered = sorted(latest.values(), key=lambda r: r["index"] if isinstance(r.get("index"), int) else 0)
        for record in ordered:
            run = _run_of(record, folder, by_folder)
            if run is None or str(run.folder) in grouped:
                continue
            overrides = record.get("overrides")
            if kind == "sweep" and isinstance(overrides, list):
                run.overrides = [str(o) for o in overrides]
            grouped.add(str(run.folder))
            group.runs.append(run)
        if group.runs:
            groups.append(group)
    rest = [run for run in runs if str(run.folder) not in grouped]
    if rest:
        groups.append(Group("runs", tree.root, ".", rest))
    return groups
