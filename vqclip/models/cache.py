"""The weights cache: its layout under $VQCLIP_HOME, sha256 pins, model locks and manifests.

Layout (see docs/models.md):
    $VQCLIP_HOME/models.yaml                  the user's own registry (optional)
    $VQCLIP_HOME/pins.json                    sha256 pinned on first download, kept across `rm`
    $VQCLIP_HOME/models/NAME/source/          downloaded or imported originals
    $VQCLIP_HOME/models/NAME/converted/       config.json + model.safetensors + manifest.json
    $VQCLIP_HOME/partial/                     resumable .part files of cut downloads
    $VQCLIP_HOME/locks/                       lock files
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import filelock

from vqclip.errors import DownloadError
from vqclip.files import write_json_atomic
from vqclip.models.download import check_writable, remove_partials

_TRUE = {"1", "true", "yes", "on"}
MANIFEST = "manifest.json"


def vqclip_home() -> Path:
    """The cache root: $VQCLIP_HOME, else ~/.cache/vqclip."""
    home = os.environ.get("VQCLIP_HOME")
    return Path(home).expanduser() if home else Path.home() / ".cache" / "vqclip"


def offline_requested(offline: bool | None = None) -> bool:
    """`offline` when given, else VQCLIP_OFFLINE or HF_HUB_OFFLINE set to a true value."""
    if offline is not None:
        return offline
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE
        for var in ("VQCLIP_OFFLINE", "HF_HUB_OFFLINE")
    )


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from `path`; {} when the file is absent or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def file_record(path: Path, sha256: str) -> dict[str, Any]:
    """What a manifest or pin keeps about a file."""
    return {"sha256": sha256, "size": path.stat().st_size}


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Cache:
    """Paths and bookkeeping of one cache root."""

    home: Path

    @classmethod
    def default(cls) -> Cache:
        """The cache at vqclip_home()."""
        return cls(vqclip_home())

    @property
    def pins_file(self) -> Path:
        return self.home / "pins.json"

    @property
    def partial_dir(self) -> Path:
        return self.home / "partial"

    @property
    def lock_dir(self) -> Path:
        return self.home / "locks"

    def model_dir(self, name: str) -> Path:
        """The folder that holds everything cached for model `name`."""
        return self.home / "models" / name

    def source_dir(self, name: str) -> Path:
        """Where downloaded or imported originals of `name` live."""
        return self.model_dir(name) / "source"

    def converted_dir(self, name: str) -> Path:
        """Where the safetensors conversion of `name` lives."""
        return self.model_dir(name) / "converted"

    def cached_names(self) -> list[str]:
        """Names with a folder in the cache."""
        root = self.home / "models"
        return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []

    # -- locks -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def model_lock(self, name: str) -> Iterator[None]:
        """Hold the lock of model `name` (download, conversion, import and removal take it)."""
        check_writable(self.lock_dir)
        with filelock.FileLock(str(self.lock_dir / f"model-{name}.lock")):
            yield

    # -- pins --------------------------------------------------------------------------------

    def pin(self, name: str, role: str) -> str | None:
        """The sha256 pinned for `role` ("config" or "checkpoint") of model `name`."""
        record = read_json(self.pins_file).get(name, {}).get(role)
        return record.get("sha256") if isinstance(record, dict) else None

    def set_pin(self, name: str, role: str, record: dict[str, Any]) -> None:
        """Record the sha256 of a file the first time it is downloaded or imported."""
        check_writable(self.lock_dir)
        with filelock.FileLock(str(self.lock_dir / "pins.lock")):
            pins = read_json(self.pins_file)
            pins.setdefault(name, {})[role] = {**record, "pinned": now()}
            write_json_atomic(self.pins_file, pins)

    def drop_pins(self, name: str) -> bool:
        """Forget the pins of model `name`; True if there were any."""
        if not self.pins_file.exists():
            return False
        check_writable(self.lock_dir)
        with filelock.FileLock(str(self.lock_dir / "pins.lock")):
            pins = read_json(self.pins_file)
            found = pins.pop(name, None) is not None
            if found:
                write_json_atomic(self.pins_file, pins)
        return found

    # -- converted models --------------------------------------------------------------------

    def manifest(self, name: str) -> dict[str, Any]:
        """The manifest of the converted files of `name`; {} when there is none."""
        return read_json(self.converted_dir(name) / MANIFEST)

    def converted_files(self, name: str) -> tuple[Path, Path] | None:
        """(config.json, model.safetensors) of `name` if converted and complete, else None."""
        manifest = self.manifest(name)
        files = manifest.get("files", {})
        config, weights = manifest.get("config"), manifest.get("weights")
        if not (isinstance(files, dict) and config in files and weights in files):
            return None
        folder = self.converted_dir(name)
        for filename, record in files.items():
            path = folder / filename
            if not path.is_file() or path.stat().st_size != record.get("size"):
                return None
        return folder / config, folder / weights

    def place_converted(self, name: str, build: Any, source: dict[str, Any]) -> tuple[Path, Path]:
        """Run `build(tmp_dir) -> (config, weights)` and move its folder into place atomically."""
        from vqclip.files import sha256_file

        model_dir = self.model_dir(name)
        check_writable(model_dir)
        tmp = Path(tempfile.mkdtemp(dir=model_dir, prefix=".converting-"))
        try:
            config, weights = (Path(p) for p in build(tmp))
            files = {p.name: file_record(p, sha256_file(p)) for p in sorted(tmp.iterdir())}
            manifest = {
                "name": name,
                "config": config.name,
                "weights": weights.name,
                "files": files,
                "source": source,
                "converted": now(),
            }
            write_json_atomic(tmp / MANIFEST, manifest)
            target = self.converted_dir(name)
            if target.exists():
                shutil.rmtree(target)
            os.rename(tmp, target)
        except OSError as err:
            if err.errno == errno.ENOSPC:
                raise DownloadError(f"disk full while converting {name} in {model_dir}; free "
                                    "some space (or set VQCLIP_HOME) and try again") from None
            raise DownloadError(
                f"cannot write the converted {name} into {model_dir}: {err.strerror or err}"
            ) from None
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target / config.name, target / weights.name

    def remove(self, name: str, *, unpin: bool = False) -> int:
        """Delete everything cached for `name` (its pins only with `unpin`); bytes freed."""
        folder = self.model_dir(name)
        freed = folder_size(folder)
        with self.model_lock(name):
            for dest in _source_candidates(self.source_dir(name)):
                remove_partials(dest, self.partial_dir)
            if folder.exists():
                shutil.rmtree(folder)
        if unpin:
            self.drop_pins(name)
        return freed


def _source_candidates(source_dir: Path) -> list[Path]:
    names = ["config.yaml", "config.json", "checkpoint.ckpt", "checkpoint.safetensors"]
    return [source_dir / n for n in names]


def folder_size(folder: Path) -> int:
    """Bytes of all files under `folder` (0 if absent)."""
    if not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
