"""A static gallery page of run folders: index.html, thumbnails and one page per run, opened from disk."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vqclip.errors import UsageError
from vqclip.files import atomic_write
from vqclip.gallery.groups import find_groups
from vqclip.gallery.index import index_page
from vqclip.gallery.run_page import run_page
from vqclip.gallery.runs import GALLERY_DIR, RunEntry, find_runs, read_run
from vqclip.gallery.scores import attach_scores, read_scores
from vqclip.gallery.thumbs import Thumbnails
from vqclip.gallery.tree import Tree

INDEX_NAME = "index.html"


@dataclass
class GalleryResult:
    """Where the page is, and what this pass did."""

    index: Path
    runs: int
    sweeps: int
    batches: int
    thumbnails_made: int
    thumbnails_kept: int
    damaged: list[RunEntry] = field(default_factory=list)  # runs shown with their problems

    def to_json(self) -> dict[str, Any]:
        """The CLI's --json object."""
        return {"index": str(self.index), "runs": self.runs, "sweeps": self.sweeps,
                "batches": self.batches, "thumbnails_made": self.thumbnails_made,
                "thumbnails_kept": self.thumbnails_kept,
                "damaged": [{"run": run.rel, "problems": run.problems} for run in self.damaged]}


def _own_folder(root: Path) -> Path:
    """root/gallery, made if missing; refused when it is a link or not a folder, so that nothing
    is written or deleted through it."""
    folder = root / GALLERY_DIR
    try:
        folder.mkdir()
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise UsageError(f"{folder} is not a folder (a link or a file): the gallery writes its "
                             "pages and thumbnails there; move it away") from None
    return folder


def build_gallery(path: str | Path, *, scores: list[Path] = ()) -> GalleryResult:
    """Write `path/index.html` and `path/gallery/` for every run folder at or under `path`.

    Thumbnails already made for an unchanged image are kept, so rerunning on a grown folder
    only makes the new ones. `scores` are `vqclip score --json` files whose similarities the
    cards show. Only regular files whose real path is under `path` are read or linked; a run
    with a damaged or refused part is shown with its problems listed."""
    if not Path(path).is_dir():
        raise UsageError(f"{path}: not a folder")
    tree = Tree(Path(path))
    recorded = [read_scores(score_file) for score_file in scores]
    folders, manifests = find_runs(tree)
    runs = [read_run(tree, folder) for folder in folders]
    if not runs:
        raise UsageError(f"{path}: no run folders (with config.yaml and log.jsonl) at or under it")
    for similarities in recorded:
        attach_scores(runs, similarities)
    groups = find_groups(tree, manifests, runs)
    folder = _own_folder(tree.root)
    thumbs = Thumbnails(folder, tree)
    thumb_of = {}
    for run in runs:
        made = thumbs.thumbnail(run.image, run.id) if run.image is not None else None
        if made is not None:
            thumb_of[run.id] = made
        elif run.image is not None:
            run.problems.append(f"{run.image.name} is not an image: not shown")
            run.image = None
    thumbs.remove_unused()
    pages = {folder / f"{run.id}.html": run for run in runs}
    for page, run in pages.items():
        atomic_write(page, run_page(run).encode(), overwrite=True)
    for page in folder.glob("*.html"):
        if page not in pages:  # a run folder that was deleted
            page.unlink()
    index = tree.root / INDEX_NAME
    atomic_write(index, index_page(tree.root.name, groups, thumb_of, tree.root).encode(), overwrite=True)
    kinds = [group.kind for group in groups]
    return GalleryResult(Path(path) / INDEX_NAME, len(runs), kinds.count("sweep"), kinds.count("batch"),
                         len(thumbs.made), len(thumbs.kept), [run for run in runs if run.problems])
