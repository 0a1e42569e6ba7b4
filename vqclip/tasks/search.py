"""Rank a folder's images by CLIP similarity to a text or an image, through the embedding index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vqclip.errors import UsageError
from vqclip.models.clip import Perceptor
from vqclip.tasks.common import (
    IMAGE_SUFFIXES,
    ProgressCallback,
    Skipped,
    check_top,
    embed_pixels,
    encode_texts,
    images_in_folder,
    load_images,
)
from vqclip.tasks.index import default_index_dir, model_key, update_index


@dataclass(frozen=True)
class SearchHit:
    """One ranked image and its cosine similarity to the query."""

    rank: int
    path: Path
    similarity: float


@dataclass
class SearchResult:
    """The ranked hits and what indexing the folder took."""

    query: dict[str, str]  # {"text": ...} or {"image": ...}
    hits: list[SearchHit]
    indexed: int  # usable images in the folder
    embedded: int  # of those, embedded in this call (new or changed content)
    skipped: list[Skipped]
    index_dir: Path
    index_saved: bool
    index_error: str | None
    model: dict[str, Any]
    model_key: str

    def to_json(self) -> dict[str, Any]:
        """The CLI's --json object."""
        return {
            "query": self.query,
            "results": [{"rank": h.rank, "image": str(h.path), "similarity": round(h.similarity, 6)}
                        for h in self.hits],
            "indexed": self.indexed,
            "embedded": self.embedded,
            "skipped": [s.to_json() for s in self.skipped],
            "index": str(self.index_dir),
            "index_saved": self.index_saved,
            "model": self.model,
            "model_key": self.model_key,
        }


def search_folder(
    perceptor: Perceptor,
    model: dict[str, Any],
    folder: str | Path,
    *,
    text: str | None = None,
    image: str | Path | None = None,
    top: int = 10,
    index_dir: str | Path | None = None,
    batch_size: int = 32,
    on_progress: ProgressCallback | None = None,
) -> SearchResult:
    """Index `folder` (only new or changed files are embedded) and rank it against the query.

    Exactly one of `text` and `image` is the query; `top` 0 returns every image. An image
    query that lies in the folder is left out of its own results.
    """
    folder = Path(folder)
    if (text is None) == (image is None):
        raise UsageError("give either a text query or an image query (--image), not both")
    if text is not None and not text.strip():
        raise UsageError("the text query is empty")
    check_top(top)
    if not folder.is_dir():
        raise UsageError(f"folder not found: {folder}" if not folder.exists() else f"not a folder: {folder}")
    # the query is checked before any indexing work, so a typo fails fast
    if image is not None:
        query_vector = _embed_query_image(perceptor, Path(image))
        query = {"image": str(image)}
    else:
        query_vector = encode_texts(perceptor, [text])[0]
        query = {"text": text}
    paths = images_in_folder(folder)
    if not paths:
        raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")

    key = model_key(perceptor, model)
    directory = Path(index_dir) / key if index_dir is not None else default_index_dir(folder, key)
    index = update_index(perceptor, model, paths, root=folder, directory=directory,
                         batch_size=batch_size, on_progress=on_progress)
    if not index.paths:
        first = index.skipped[0] if index.skipped else None
        detail = f": {first.path} ({first.reason})" if first else ""
        more = f" and {len(index.skipped) - 1} more" if len(index.skipped) > 1 else ""
        raise UsageError(f"none of the {len(paths)} images in {folder} could be read{detail}{more}")
    candidates = list(range(len(index.paths)))
    if image is not None:
        own = Path(image).resolve()
        candidates = [i for i in candidates if index.paths[i].resolve() != own]
    hits: list[SearchHit] = []
    if candidates:
        similarity = index.embeddings[candidates] @ query_vector
        order = similarity.argsort(descending=True, stable=True).tolist()
        if top:
            order = order[:top]
        hits = [SearchHit(rank, index.paths[candidates[i]], float(similarity[i]))
                for rank, i in enumerate(order, start=1)]
    return SearchResult(query, hits, len(index.paths), index.embedded, index.skipped, directory,
                        index.saved, index.save_error, model, key)


def _embed_query_image(perceptor: Perceptor, path: Path) -> torch.Tensor:
    """The (D,) embedding of the query image; a UsageError naming it if it is unusable."""
    if not path.is_file():
        raise UsageError(f"query image not found: {path}")
    (item,) = next(load_images([path], perceptor.input_size, batch_size=1))
    if item.pixels is None:
        raise UsageError(f"query image {path}: {item.error}")
    return embed_pixels(perceptor, [item.pixels])[0]


def write_hits_sheet(result: SearchResult, path: str | Path, *, columns: int = 5,
                     cell_size: int = 160) -> Path:
    """A contact sheet of the hits, best first, each captioned with rank and similarity."""
    from vqclip.outputs.sheet import contact_sheet, save_image_atomic

    if not result.hits:
        raise UsageError("no hits to put on a contact sheet")
    hits = result.hits
    rows = [hits[i:i + columns] for i in range(0, len(hits), columns)]
    cells: list[list[Path | None]] = [[h.path for h in row] for row in rows]
    captions = [[f"#{h.rank} {h.similarity:.3f} {h.path.name}" for h in row] for row in rows]
    sheet = contact_sheet(cells, captions=captions, cell_size=cell_size)
    return save_image_atomic(sheet, Path(path), overwrite=True)
