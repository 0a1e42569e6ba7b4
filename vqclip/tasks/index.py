"""The search index: image embeddings per model, keyed by file content hash, updated incrementally.

Layout of one index, `<folder>/.vqclip-index/<model-key>/` by default:
  embeddings.safetensors  (N, D) float32 "embeddings" and (N, 32) uint8 "sha256" rows
  files.json              relative path -> size, mtime_ns and sha256 of the file last seen there
The embeddings are the truth (keyed by content); files.json only saves re-hashing unchanged files.
Each file is replaced atomically, so a crash leaves the old index or the new one, never half.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vqclip.models.clip import Perceptor
from vqclip.models.sources import clip_label
from vqclip.tasks.common import (
    INDEX_DIRNAME,
    ProgressCallback,
    Skipped,
    embed_pixels,
    load_images,
)

log = logging.getLogger(__name__)

FORMAT = "vqclip-index"
VERSION = 1
EMBEDDINGS_FILE = "embeddings.safetensors"
FILES_FILE = "files.json"
# A file modified this soon before it was hashed may change again within the file system's
# timestamp granularity without its mtime moving, so its stat record is not trusted (as git does).
RACY_NS = 2_000_000_000
# Bump when decode_for_clip changes: the same file would embed differently.
PREPROCESS_VERSION = 1
SAMPLES_PER_TENSOR = 1024


def model_key(perceptor: Perceptor, info: dict[str, Any]) -> str:
    """A folder name for this model's index: a readable slug and a fingerprint of its weights.

    The fingerprint hashes the preprocessing and an evenly strided sample of every weight
    tensor, so retrained or random weights under the same name never share an index, and it
    costs milliseconds where hashing a large weights file would cost seconds.
    """
    digest = hashlib.sha256()
    header = {"version": PREPROCESS_VERSION, "size": perceptor.input_size,
              "mean": perceptor.mean.flatten().tolist(), "std": perceptor.std.flatten().tolist()}
    digest.update(json.dumps(header, sort_keys=True).encode())
    for name, tensor in sorted(perceptor.model.state_dict().items()):
        flat = tensor.detach().reshape(-1)
        step = max(1, flat.numel() // SAMPLES_PER_TENSOR)
        sample = flat[::step][:SAMPLES_PER_TENSOR].float().cpu().numpy()
        digest.update(f"{name}{tuple(tensor.shape)}{tensor.dtype}".encode())
        digest.update(sample.tobytes())
    name = clip_label(str(info.get("name") or perceptor.name).rstrip("/"))
    if info.get("pretrained") and not Path(str(info["pretrained"])).is_file():
        name = f"{name}-{info['pretrained']}"
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.")[:48] or "clip"
    return f"{slug}-{digest.hexdigest()[:12]}"


def default_index_dir(folder: Path, key: str) -> Path:
    """Where a folder's index for one model lives unless --index-dir says otherwise."""
    return folder / INDEX_DIRNAME / key


@dataclass
class EmbeddingStore:
    """One model's embeddings by content hash, plus the stat records of the files last seen."""

    directory: Path
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> EmbeddingStore:
        """Read an index; a missing or damaged one starts empty (it is only a cache)."""
        store = cls(directory)
        path = directory / EMBEDDINGS_FILE
        if not path.is_file():
            return store
        try:
            from safetensors.numpy import load

            tensors = load(path.read_bytes())
            hashes, embeddings = tensors["sha256"], tensors["embeddings"]
            if hashes.shape[0] != embeddings.shape[0] or hashes.shape[1:] != (32,) \
                    or embeddings.ndim != 2:
                raise ValueError("the hashes and embeddings do not pair up")
            store.vectors = {bytes(row).hex(): vec for row, vec in zip(hashes, embeddings, strict=True)}
            files = json.loads((directory / FILES_FILE).read_text())
            records = files.get("files") if isinstance(files, dict) else None
            store.files = {rel: record for rel, record in records.items() if isinstance(record, dict)
                           } if isinstance(records, dict) else {}
        except FileNotFoundError:
            store.files = {}
        except Exception as err:  # noqa: BLE001 - a broken cache is rebuilt, not fatal
            log.warning("ignoring the damaged index in %s (%s); rebuilding it", directory, err)
            store.vectors, store.files = {}, {}
        return store

    def save(self, model: dict[str, Any]) -> None:
        """Write the embeddings, then the stat records, each by temp file + rename."""
        from safetensors.numpy import save

        from vqclip.files import atomic_write, write_json_atomic

        self.directory.mkdir(parents=True, exist_ok=True)
        hashes = sorted(self.vectors)
        dim = next(iter(self.vectors.values())).shape[0] if hashes else 0
        tensors = {
            "sha256": np.array([list(bytes.fromhex(h)) for h in hashes], dtype=np.uint8).reshape(-1, 32),
            "embeddings": np.stack([self.vectors[h] for h in hashes]).astype(np.float32)
            if hashes else np.zeros((0, dim), np.float32),
        }
        metadata = {"format": FORMAT, "version": str(VERSION), "model": json.dumps(model, sort_keys=True)}
        atomic_write(self.directory / EMBEDDINGS_FILE, save(tensors, metadata=metadata), overwrite=True)
        write_json_atomic(self.directory / FILES_FILE,
                          {"format": FORMAT, "version": VERSION, "files": self.files})


@dataclass
class IndexResult:
    """Embeddings of every usable image, in discovery order, and what the update did."""

    paths: list[Path]
    embeddings: torch.Tensor  # (N, D) float32, unit length
    embedded: int  # files whose content had no embedding yet
    reused: int  # files served from the index
    skipped: list[Skipped]
    directory: Path
    saved: bool  # False when the index could not be written (results are still right)
    save_error: str | None = None


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path.resolve())


def update_index(
    perceptor: Perceptor,
    model: dict[str, Any],
    paths: list[Path],
    *,
    root: Path,
    directory: Path,
    batch_size: int = 32,
    on_progress: ProgressCallback | None = None,
) -> IndexResult:
    """Embed the images under `root` that the index lacks, save it, return all embeddings.

    Files whose size and mtime match their record are not even read; others are hashed,
    and only content never seen before is decoded and embedded. Records and embeddings of
    files no longer present are dropped.
    """
    store = EmbeddingStore.load(directory)
    digests: dict[Path, str] = {}
    records: dict[str, dict[str, Any]] = {}
    skipped: list[Skipped] = []
    to_read: list[Path] = []
    for path in paths:
        try:
            stat = path.stat()  # first: a symlink loop fails here, not in resolving its name
        except OSError as err:
            skipped.append(Skipped(path, f"cannot read: {err.strerror or err}"))
            continue
        rel = _relative(path, root)
        old = store.files.get(rel)
        trusted = (
            isinstance(old, dict)
            and old.get("size") == stat.st_size
            and old.get("mtime_ns") == stat.st_mtime_ns
            and old.get("seen_ns", 0) - stat.st_mtime_ns > RACY_NS
            and old.get("sha256") in store.vectors
        )
        if trusted:
            digests[path], records[rel] = old["sha256"], old
        else:
            to_read.append(path)
            records[rel] = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}

    embedded = 0
    done = 0
    if on_progress is not None:
        on_progress(0, len(to_read))
    for batch in load_images(to_read, perceptor.input_size, batch_size=batch_size, hash_files=True,
                             needs_pixels=lambda digest: digest not in store.vectors):
        fresh = [item for item in batch if item.pixels is not None and item.sha256 not in store.vectors]
        if fresh:
            vectors = embed_pixels(perceptor, [item.pixels for item in fresh]).numpy()
            for item, vector in zip(fresh, vectors, strict=True):
                store.vectors[item.sha256] = vector
            embedded += len(fresh)
        seen_ns = time.time_ns()
        for item in batch:
            rel = _relative(item.path, root)
            if item.error is not None or item.sha256 is None:
                skipped.append(Skipped(item.path, item.error or "unreadable"))
                records.pop(rel, None)
            else:
                digests[item.path] = item.sha256
                records[rel].update(sha256=item.sha256, seen_ns=seen_ns)
        done += len(batch)
        if on_progress is not None:
            on_progress(done, len(to_read))

    used = [path for path in paths if path in digests]
    changed = embedded > 0 or records != store.files or len(store.vectors) != len(set(digests.values()))
    store.files = records
    store.vectors = {h: store.vectors[h] for h in set(digests.values())}
    saved, save_error = True, None
    if changed:
        try:
            store.save(model)
        except OSError as err:
            saved, save_error = False, f"{err.strerror or err}: {getattr(err, 'filename', '') or directory}"
    dim = len(next(iter(store.vectors.values()))) if store.vectors else 0
    embeddings = (torch.from_numpy(np.stack([store.vectors[digests[p]] for p in used]))
                  if used else torch.zeros(0, dim))
    return IndexResult(used, embeddings, embedded, len(used) - embedded, skipped, directory,
                       saved, save_error)
