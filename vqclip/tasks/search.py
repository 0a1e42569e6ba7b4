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
    sheet: Path | None = None  # the contact sheet of the hits, where one was written

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
            "sheet": None if self.sheet is None else str(self.sheet),
        }


@dataclass(frozen=True)
class SearchQuery:
    """A search checked before any model loads: the folder and its images, the one query (a
    text or an image file), how many hits to keep and where to draw them, if anywhere."""

    folder: Path
    images: list[Path]
    text: str | None
    image: Path | None
    top: int
    sheet: Path | None


def check_search(folder: str | Path, *, text: str | None = None, image: str | Path | None = None,
                 top: int = 10, sheet: str | Path | None = None) -> SearchQuery:
    """Every rule of a search's inputs: exactly one query, of text that is not blank or of an
    image file; `top` 0 or more; a folder holding images; a `sheet` that is not a folder."""
    folder = Path(folder)
    if text is None and image is None:
        raise UsageError("no query: give a text QUERY or --image IMAGE")
    if text is not None and image is not None:
        raise UsageError("search by one query: with --image, not a text QUERY as well")
    if text is not None and not text.strip():
        raise UsageError("the text query is empty")
    if image is not None and not Path(image).is_file():
        raise UsageError(f"query image not found: {image}")
    check_top(top)
    if not folder.is_dir():
        raise UsageError(f"folder not found: {folder}" if not folder.exists() else f"not a folder: {folder}")
    if sheet is not None and Path(sheet).is_dir():
        raise UsageError(f"--sheet {sheet} is a folder; give a file name such as hits.png")
    images = images_in_folder(folder)
    if not images:
        raise UsageError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {folder}")
    return SearchQuery(folder, images, text, None if image is None else Path(image), top,
                       None if sheet is None else Path(sheet))


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
    """`check_search`, then `rank_folder`: the folder ranked against the query."""
    query = check_search(folder, text=text, image=image, top=top)
    return rank_folder(perceptor, model, query, index_dir=index_dir, batch_size=batch_size,
                       on_progress=on_progress)


def rank_folder(
    perceptor: Perceptor,
    model: dict[str, Any],
    query: SearchQuery,
    *,
    index_dir: str | Path | None = None,
    batch_size: int = 32,
    on_progress: ProgressCallback | None = None,
) -> SearchResult:
    """Index the query's folder (only new or changed files are embedded) and rank it.

    `top` 0 returns every image. An image query that lies in the folder is left out of its
    own results. With a `sheet` and at least one hit, the hits' contact sheet is written there.
    """
    # the query is embedded before any indexing work, so an unreadable query image fails fast
    if query.image is not None:
        query_vector = _embed_query_image(perceptor, query.image)
        asked = {"image": str(query.image)}
    else:
        query_vector = encode_texts(perceptor, [query.text])[0]
        asked = {"text": query.text}
    folder, paths = query.folder, query.images
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
    if query.image is not None:
        own = query.image.resolve()
        candidates = [i for i in candidates if index.paths[i].resolve() != own]
    hits: list[SearchHit] = []
    if candidates:
        similarity = index.embeddings[candidates] @ query_vector
        order = similarity.argsort(descending=True, stable=True).tolist()
        if query.top:
            order = order[:query.top]
        hits = [SearchHit(rank, index.paths[candidates[i]], float(similarity[i]))
                for rank, i in enumerate(order, start=1)]
    result = SearchResult(asked, hits, len(index.paths), index.embedded, index.skipped, directory,
                          index.saved, index.save_error, model, key)
    if query.sheet is not None and hits:
        result.sheet = write_hits_sheet(result, query.sheet)
    return result


def _embed_query_image(perceptor: Perceptor, path: Path) -> torch.Tensor:
    """The (D,) embedding of the query image; a UsageError naming it if it is unusable."""
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
