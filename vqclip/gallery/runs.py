"""What a gallery shows: the run folders under a path, read back, and the sweeps among them."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vqclip.errors import UsageError
from vqclip.outputs.lossplot import LossLog, read_log
from vqclip.outputs.run_folder import slugify
from vqclip.outputs.video import FORMATS
from vqclip.series.manifest import MANIFEST_NAME, Manifest

GALLERY_DIR = "gallery"  # thumbnails and run pages, beside index.html


@dataclass
class RunEntry:
    """One run folder as the gallery shows it."""

    folder: Path
    rel: str  # posix path from the gallery root
    config: dict[str, Any]
    config_text: str
    log: LossLog
    image: Path | None  # final.png, else the last frame
    frames: list[Path]
    video: Path | None
    score: float | None = None
    overrides: list[str] = field(default_factory=list)  # a sweep's settings that made this run

    @property
    def id(self) -> str:
        """A file-name-safe id, unique within the gallery."""
        digest = hashlib.sha256(self.rel.encode()).hexdigest()[:8]
        return f"{slugify(self.folder.name, 40)}-{digest}"

    @property
    def prompt(self) -> str:
        """The prompt, or the story's prompts joined by " ^ " (as the command line writes them)."""
        story = [item.get("prompt", "") for item in self.config.get("story") or []
                 if isinstance(item, dict)]
        return self.config.get("prompt") or " ^ ".join(story)

    @property
    def seconds(self) -> float | None:
        """Time to the last step logged, over every resumed part."""
        return self.log.seconds

    @property
    def models(self) -> str:
        """"generator / CLIP model(s)": registry names, or the checkpoint's file name."""
        generator = self.config.get("generator", "vqgan")
        if generator == "vqgan":
            vqgan = self.config.get("vqgan") or {}
            generator = vqgan.get("model") or Path(str(vqgan.get("checkpoint"))).name
        clip = self.config.get("clip") or {}
        ensemble = [m for m in clip.get("models") or [] if isinstance(m, dict)]
        judges = ensemble or [clip]  # an ensemble replaces model/pretrained
        return f"{generator} / " + ", ".join(
            str(j.get("model")) + (f" ({j['pretrained']})" if j.get("pretrained") else "")
            for j in judges)


@dataclass
class Sweep:
    """A sweep folder: its runs and the keys that vary between them."""

    folder: Path
    rel: str
    runs: list[RunEntry]


def is_run_folder(path: Path) -> bool:
    """A folder vqclip wrote a run into: it has the resolved config and the loss log."""
    return (path / "config.yaml").is_file() and (path / "log.jsonl").is_file()


def find_runs(root: Path) -> list[Path]:
    """Run folders at or under `root`, in path order (the gallery's own folder is skipped)."""
    if is_run_folder(root):
        return [root]
    found = []
    for here, dirs, _ in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d != GALLERY_DIR and d != "frames")
        path = Path(here)
        if path != root and is_run_folder(path):
            found.append(path)
            dirs[:] = []
    return found


def read_run(folder: Path, root: Path) -> RunEntry:
    """Read a run folder back: config, log, final image (or last frame), frames, video."""
    config_text = (folder / "config.yaml").read_text(encoding="utf-8")
    try:
        config = yaml.safe_load(config_text) or {}
    except yaml.YAMLError:
        config = {}
    frames = sorted((folder / "frames").glob("*.png")) if (folder / "frames").is_dir() else []
    final = folder / "final.png"
    videos = [folder / f"progress{suffix}" for suffix in FORMATS]
    return RunEntry(
        folder=folder, rel=folder.relative_to(root).as_posix() if folder != root else ".",
        config=config if isinstance(config, dict) else {}, config_text=config_text,
        log=read_log(folder / "log.jsonl"), image=final if final.is_file() else (frames or [None])[-1],
        frames=frames, video=next((v for v in videos if v.is_file()), None),
    )


def find_sweeps(root: Path, runs: list[RunEntry]) -> list[Sweep]:
    """Folders whose manifest records runs made with swept overrides, with those runs."""
    by_folder = {run.folder.resolve(): run for run in runs}
    sweeps = []
    manifests = sorted(root.rglob(MANIFEST_NAME)) if not is_run_folder(root) else []
    for manifest in manifests:
        latest: dict[str, dict[str, Any]] = {}
        for record in Manifest(manifest).records():
            if "key" in record:
                latest[record["key"]] = record
        members = []
        for record in sorted(latest.values(), key=lambda r: r.get("index", 0)):
            recorded = Path(str(record.get("run_dir", "")))
            # the manifest holds absolute paths; a series' runs sit at <folder>/<date>/<run>,
            # which still finds them when the tree was moved or copied
            run = by_folder.get(recorded.resolve()) or by_folder.get(
                (manifest.parent / recorded.parent.name / recorded.name).resolve())
            if record.get("status") == "ok" and "overrides" in record and run is not None:
                run.overrides = [str(o) for o in record["overrides"]]
                members.append(run)
        if members:
            folder = manifest.parent
            sweeps.append(Sweep(folder, folder.relative_to(root).as_posix(), members))
    return sweeps


def read_scores(path: Path) -> dict[Path, dict[str, float]]:
    """The similarities of a `vqclip score --json` file, by resolved image path and prompt."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {Path(r["image"]).resolve(): {s["prompt"]: float(s["similarity"]) for s in r["scores"]}
                for r in data["results"]}
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UsageError(f"--scores {path}: not the JSON of `vqclip score --json` ({err})") from None


def attach_scores(runs: list[RunEntry], scores: dict[Path, dict[str, float]]) -> None:
    """Give each run the recorded score of its image: against its own prompt, else the first."""
    for run in runs:
        similarities = scores.get(run.image.resolve()) if run.image is not None else None
        if similarities:
            run.score = similarities.get(run.prompt, next(iter(similarities.values())))
