"""Getting a named VQGAN into the cache: download or import, check, convert, pin, verify.

A `.ckpt` is loaded once through the safe loader and converted to config.json +
model.safetensors (the inference parts only); later loads read the conversion, with no pickle.
A sha256 is pinned only after the file has loaded safely, so a refused or mismatched download
is never trusted on the next run.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vqclip.errors import ModelError, VqclipError
from vqclip.files import sha256_file
from vqclip.models.cache import Cache, file_record, folder_size
from vqclip.models.download import check_writable, fetch_file, is_url

if TYPE_CHECKING:
    from vqclip.models.entry import ModelEntry

log = logging.getLogger(__name__)

ROLES = ("config", "checkpoint")


def _how_to_get(name: str) -> str:
    return (f"get it with `vqclip models download {name}` (online), or adopt files you "
            f"downloaded yourself with `vqclip models import {name} --config FILE "
            "--checkpoint FILE`")


def _source_name(role: str, url_or_path: str) -> str:
    """File name of a source in the cache; the suffix tells load_vqgan the format."""
    lowered = url_or_path.lower()
    if role == "config":
        return "config.json" if ".json" in lowered else "config.yaml"
    return "checkpoint.safetensors" if ".safetensors" in lowered else "checkpoint.ckpt"


def _expected(entry: ModelEntry, cache: Cache, role: str) -> tuple[str | None, str]:
    """(sha256 to check against, where it comes from) for a role of an entry."""
    known = entry.sha256 if role == "checkpoint" else entry.config_sha256
    if known:
        return known, "registry"
    pinned = cache.pin(entry.name, role)
    return (pinned, "pinned on first download") if pinned else (None, "not pinned yet")


def _local_record(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _source_matches(manifest: dict[str, Any], entry: ModelEntry, cache: Cache) -> bool:
    """True when the conversion was made from the sources the entry names now."""
    source = manifest.get("source", {})
    for role, origin in (("config", entry.config), ("checkpoint", entry.checkpoint[0])):
        record = source.get(role, {})
        if origin and not is_url(origin):
            path = Path(origin)
            if not path.is_file() or record.get("path") != str(path):
                return False
            stat = path.stat()
            if (record.get("size"), record.get("mtime_ns")) != (stat.st_size, stat.st_mtime_ns):
                return False
        else:
            expected, _ = _expected(entry, cache, role)
            if expected and record.get("sha256") != expected:
                return False
    return True


def ensure_vqgan(
    entry: ModelEntry, cache: Cache, *, offline: bool, progress: bool = True
) -> tuple[Path, Path]:
    """(config, checkpoint) of `entry` ready for load_vqgan, fetching and converting if needed."""
    if entry.path is not None:
        config, weights = entry.path / "config.json", entry.path / "model.safetensors"
        if not (config.is_file() and weights.is_file()):
            raise ModelError(f"model {entry.name!r}: {entry.path} lacks config.json and "
                             "model.safetensors (bundled weights not built yet?)")
        return config, weights
    config_src, ckpt_src = entry.config or "", entry.checkpoint[0]
    local = not any(is_url(s) for s in (config_src, ckpt_src))
    if local and config_src.endswith(".json") and ckpt_src.endswith(".safetensors"):
        return Path(config_src), Path(ckpt_src)  # already in our format: nothing to convert

    # Fast path without a lock, so a read-only cache (a shared, prepared one) works.
    found = cache.converted_files(entry.name)
    if found and _source_matches(cache.manifest(entry.name), entry, cache):
        return found
    if offline and not local and not _sources_present(entry, cache):
        raise _not_here_offline(entry, cache)
    with cache.model_lock(entry.name):
        found = cache.converted_files(entry.name)  # another process may have finished it
        if found and _source_matches(cache.manifest(entry.name), entry, cache):
            return found
        sources: dict[str, _Source] = {}
        try:
            for role in ROLES:
                sources[role] = _obtain(entry, cache, role, offline, progress)
            return _convert(entry, cache, sources)
        except VqclipError:
            _discard_untrusted(sources)
            raise


def check_on_this_machine(entry: ModelEntry, cache: Cache) -> None:
    """What offline mode needs of a named VQGAN: bundled, given as local files, converted in the
    cache, or its downloaded originals there; else a ModelError saying how to get it."""
    if entry.path is not None or not any(is_url(s) for s in (entry.config or "", entry.checkpoint[0])):
        return
    found = cache.converted_files(entry.name)
    if found and _source_matches(cache.manifest(entry.name), entry, cache):
        return
    if not _sources_present(entry, cache):
        raise _not_here_offline(entry, cache)


def _not_here_offline(entry: ModelEntry, cache: Cache) -> ModelError:
    return ModelError(f"model {entry.name!r} is not in the cache ({cache.model_dir(entry.name)}) "
                      f"and offline mode is on; {_how_to_get(entry.name)}")


def _sources_present(entry: ModelEntry, cache: Cache) -> bool:
    folder = cache.source_dir(entry.name)
    return all(
        (folder / _source_name(role, src)).is_file()
        for role, src in (("config", entry.config or ""), ("checkpoint", entry.checkpoint[0]))
        if is_url(src)
    )


@dataclass
class _Source:
    path: Path
    record: dict[str, Any]  # what the manifest keeps about it
    pin: dict[str, Any] | None  # set when this file should be pinned after a safe load
    owned: bool  # a file in our cache that may be deleted if it proves bad


def _obtain(entry: ModelEntry, cache: Cache, role: str, offline: bool, progress: bool) -> _Source:
    """The local file for `role`: the user's own path, the cached copy, or a fresh download."""
    origins = [entry.config] if role == "config" else list(entry.checkpoint)
    first = origins[0] or ""
    if not is_url(first):
        path = Path(first)
        if not path.is_file():
            raise ModelError(f"model {entry.name!r}: {role} file {path} does not exist "
                             f"(from {entry.origin})")
        if role == "config":
            _check_config(path)
        return _Source(path, _local_record(path), None, owned=False)
    dest = cache.source_dir(entry.name) / _source_name(role, first)
    expected, _ = _expected(entry, cache, role)
    if offline and not dest.is_file():
        raise ModelError(f"model {entry.name!r}: {role} is not in the cache and offline mode "
                         f"is on; {_how_to_get(entry.name)}")
    urls = [u for u in origins if u and is_url(u)]
    result = fetch_file(
        urls, dest, sha256=expected, size=entry.size if role == "checkpoint" else None,
        partial_dir=cache.partial_dir, lock_dir=cache.lock_dir, progress=progress,
    )
    record = {**file_record(dest, result.sha256), "url": result.url}
    source = _Source(dest, record, None if expected else record, owned=True)
    if role == "config":
        # Checked before the checkpoint download: a wrong config costs kilobytes, not a gigabyte.
        _check_config(dest, discard=None if expected else dest)
    return source


def _check_config(path: Path, discard: Path | None = None) -> None:
    """ModelError unless `path` is a VQGAN config (taming YAML or our JSON)."""
    from vqclip.models.vqgan import spec_from_json, spec_from_taming_yaml

    try:
        if path.suffix.lower() == ".json":
            spec_from_json(path)
        else:
            spec_from_taming_yaml(path)
    except ModelError:
        if discard is not None:
            discard.unlink(missing_ok=True)
        raise


def _discard_untrusted(sources: dict[str, _Source]) -> None:
    """Delete our unpinned copies after a failure: a file is kept only once it has loaded."""
    for source in sources.values():
        if source.owned and source.pin is not None:
            source.path.unlink(missing_ok=True)


def _convert(entry: ModelEntry, cache: Cache, sources: dict[str, _Source]) -> tuple[Path, Path]:
    """Safe-load the sources once, save the inference parts as safetensors, pin what loaded."""
    from vqclip.models.vqgan import load_vqgan, save_vqgan

    started = time.perf_counter()
    model = load_vqgan(sources["config"].path, sources["checkpoint"].path)
    loaded = time.perf_counter() - started
    record = {role: source.record for role, source in sources.items()}
    result = cache.place_converted(entry.name, lambda tmp: save_vqgan(model, tmp), record)
    for role, source in sources.items():
        if source.pin is not None:
            cache.set_pin(entry.name, role, source.pin)
    log.info("converted %s to safetensors (loaded the original in %.1f s)", entry.name, loaded)
    return result


def import_vqgan(
    entry: ModelEntry, cache: Cache, *, config: Path, checkpoint: Path
) -> tuple[Path, Path]:
    """Adopt hand-downloaded files for `entry`: check their sha256, copy, convert, pin."""
    if entry.path is not None:
        raise ModelError(f"model {entry.name!r} ships with vqclip ({entry.path}); nothing to import")
    if not entry.urls:
        raise ModelError(f"model {entry.name!r} already points at local files ({entry.origin}); "
                         "nothing to import")
    for label, path in (("--config", config), ("--checkpoint", checkpoint)):
        if not path.is_file():
            raise ModelError(f"{label}: file not found: {path}")
    _check_config(config)
    actual = {"config": sha256_file(config), "checkpoint": sha256_file(checkpoint)}
    for role in ROLES:
        expected, origin = _expected(entry, cache, role)
        if expected and actual[role] != expected:
            raise ModelError(f"{role} {config if role == 'config' else checkpoint} does not "
                             f"match model {entry.name!r}: expected sha256 {expected} "
                             f"({origin}), got {actual[role]}")
    folder = cache.source_dir(entry.name)
    check_writable(folder)
    with cache.model_lock(entry.name):
        sources: dict[str, _Source] = {}
        try:
            for role, given in (("config", config), ("checkpoint", checkpoint)):
                origin = entry.config if role == "config" else entry.checkpoint[0]
                dest = folder / _source_name(role, origin or given.name)
                expected, _ = _expected(entry, cache, role)
                record = {**file_record(given, actual[role]), "imported_from": str(given)}
                sources[role] = _Source(dest, record, None if expected else record, owned=True)
                _place_copy(given, dest)
            return _convert(entry, cache, sources)
        except VqclipError:
            _discard_untrusted(sources)
            raise


def _place_copy(src: Path, dest: Path) -> None:
    """Hard-link `src` to `dest` when possible, else copy it; either way atomically."""
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.import")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    except OSError as err:
        from vqclip.errors import DownloadError

        raise DownloadError(f"cannot copy {src} into {dest.parent}: {err.strerror or err}") from None
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class FileCheck:
    """The verdict on one cached file."""

    path: Path
    status: str  # "ok", "corrupt", "missing", "unpinned"
    expected: str | None
    actual: str | None


def verify_vqgan(entry: ModelEntry, cache: Cache) -> list[FileCheck]:
    """Recompute the sha256 of every cached file of `entry` and compare with what is expected."""
    checks = []
    folder = cache.source_dir(entry.name)
    for role, origin in (("config", entry.config), ("checkpoint", (entry.checkpoint or [""])[0])):
        if not origin or not is_url(origin):
            continue
        path = folder / _source_name(role, origin)
        if path.is_file():
            expected, _ = _expected(entry, cache, role)
            checks.append(_check(path, expected, "unpinned"))
    manifest = cache.manifest(entry.name)
    for filename, record in manifest.get("files", {}).items():
        checks.append(_check(cache.converted_dir(entry.name) / filename, record.get("sha256")))
    return checks


def _check(path: Path, expected: str | None, unknown: str = "ok") -> FileCheck:
    if not path.is_file():
        return FileCheck(path, "missing", expected, None)
    actual = sha256_file(path)
    if expected is None:
        return FileCheck(path, unknown, None, actual)
    return FileCheck(path, "ok" if actual == expected else "corrupt", expected, actual)


def vqgan_status(entry: ModelEntry, cache: Cache) -> dict[str, Any]:
    """What `models list` shows for a VQGAN entry: cached, size, how it is verified."""
    if entry.path is not None:
        present = (entry.path / "model.safetensors").is_file()
        return {"cached": present, "size": folder_size(entry.path) or None,
                "verified": "bundled", "path": str(entry.path)}
    local = not entry.urls
    converted = cache.converted_files(entry.name)
    cached_bytes = folder_size(cache.model_dir(entry.name))
    if local:
        verified = "local files"
    elif entry.sha256:
        verified = "sha256 in registry"
    else:
        verified = "pinned on first download"
    return {
        "cached": converted is not None,
        "size": cached_bytes or entry.size,
        "verified": verified,
        "path": str(converted[0].parent) if converted else None,
    }
