"""A static gallery page of run folders: index.html, thumbnails and one page per run, opened from disk."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqclip.errors import UsageError
from vqclip.files import atomic_write
from vqclip.gallery.page import index_page, run_page
from vqclip.gallery.runs import (
    GALLERY_DIR,
    attach_scores,
    find_runs,
    find_sweeps,
    read_run,
    read_scores,
)
from vqclip.gallery.thumbs import Thumbnails

INDEX_NAME = "index.html"


@dataclass
class GalleryResult:
    """Where the page is, and what this pass did."""

    index: Path
    runs: int
    sweeps: int
    thumbnails_made: int
    thumbnails_kept: int

    def to_json(self) -> dict[str, Any]:
        """The CLI's --json object."""
        return {"index": str(self.index), "runs": self.runs, "sweeps": self.sweeps,
                "thumbnails_made": self.thumbnails_made, "thumbnails_kept": self.thumbnails_kept}


def build_gallery(path: str | Path, *, scores: list[Path] = ()) -> GalleryResult:
    """Write `path/index.html` and `path/gallery/` for every run folder at or under `path`.

    Thumbnails already made for an unchanged image are kept, so rerunning on a grown folder
    only makes the new ones. `scores` are `vqclip score --json` files whose similarities the
    cards show."""
    root = Path(path)
    if not root.is_dir():
        raise UsageError(f"{path}: not a folder")
    recorded = [read_scores(score_file) for score_file in scores]
    runs = [read_run(folder, root) for folder in find_runs(root)]
    if not runs:
        raise UsageError(f"{path}: no run folders (with config.yaml and log.jsonl) at or under it")
    for similarities in recorded:
        attach_scores(runs, similarities)
    sweeps = find_sweeps(root, runs)
    folder = root / GALLERY_DIR
    folder.mkdir(exist_ok=True)
    thumbs = Thumbnails(folder)
    thumb_of = {run.id: thumbs.thumbnail(run.image, run.id) for run in runs if run.image is not None}
    thumbs.remove_unused()
    pages = {folder / f"{run.id}.html": run for run in runs}
    for page, run in pages.items():
        atomic_write(page, run_page(run).encode(), overwrite=True)
    for page in folder.glob("*.html"):
        if page not in pages:  # a run folder that was deleted
            page.unlink()
    title = root.resolve().name
    index = root / INDEX_NAME
    atomic_write(index, index_page(title, runs, sweeps, thumb_of, root).encode(), overwrite=True)
    return GalleryResult(index, len(runs), len(sweeps), len(thumbs.made), len(thumbs.kept))
