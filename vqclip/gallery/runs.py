"""What a gallery shows of one run folder, read back through the tree's checks; a damaged part is
noted as a problem of that run, never an error of the gallery."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from vqclip.gallery.tree import Tree, real_path
from vqclip.outputs.lossplot import LossLog, parse_log
from vqclip.outputs.run_folder import slugify
from vqclip.outputs.video import FORMATS
from vqclip.run.candidates import NOTE_FILE

GALLERY_DIR = "gallery"  # thumbnails and run pages, beside index.html
RUN_FILES = ("config.yaml", "log.jsonl")  # a folder holding both is a run folder
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's, where PyYAML has it


@dataclass
class Candidate:
    """One seed of a --candidates race, as candidates.json records it."""

    seed: int
    score: float
    thumbnail: Path | None  # candidates/SEED.png, when it is a regular file of the run folder


@dataclass
class Race:
    """A --candidates race whose winner this run is."""

    steps: int
    winner: int
    candidates: list[Candidate]


@dataclass
class RunEntry:
    """One run folder as the gallery shows it."""

    folder: Path
    rel: str  # posix path from the gallery root
    config: dict[str, Any]
    config_text: str | None
    log: LossLog
    image: Path | None  # final.png, else the last frame
    frames: list[Path]
    video: Path | None
    race: Race | None = None
    problems: list[str] = field(default_factory=list)  # what is damaged or refused, for the page
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
        prompt = self.config.get("prompt")
        if isinstance(prompt, str) and prompt:
            return prompt
        story = self.config.get("story")
        return " ^ ".join(str(item["prompt"]) for item in story if isinstance(item, dict)
                          and isinstance(item.get("prompt"), str)) if isinstance(story, list) else ""

    @property
    def title(self) -> str:
        """The prompt; the folder's name when no prompt could be read."""
        return self.prompt or self.folder.name

    @property
    def seed(self) -> int | None:
        seed = self.config.get("seed")
        return seed if isinstance(seed, int) and not isinstance(seed, bool) else None

    @property
    def steps(self) -> int | None:
        """The step count the run was started for."""
        steps = self.config.get("steps")
        return steps if isinstance(steps, int) and not isinstance(steps, bool) else None

    @property
    def done(self) -> int:
        """Steps done: one more than the last step index logged, as the progress bar counts."""
        return self.log.steps[-1] + 1 if self.log.steps else 0

    @property
    def size(self) -> str:
        size = self.config.get("size")
        if isinstance(size, list) and len(size) == 2 and all(isinstance(s, int) for s in size):
            return f"{size[0]}×{size[1]}"
        return "?"

    @property
    def seconds(self) -> float | None:
        """Time to the last step logged, over every resumed part."""
        return self.log.seconds

    @property
    def resumed(self) -> bool:
        return bool(self.log.resumes)

    @property
    def interrupted(self) -> bool:
        """Stopped before its step count (interrupted, or still running)."""
        return self.steps is not None and self.done < self.steps

    @property
    def models(self) -> str:
        """"generator / CLIP model(s)": registry names, or the checkpoint's file name."""
        generator = self.config.get("generator", "vqgan")
        if generator == "vqgan":
            vqgan = _mapping(self.config.get("vqgan"))
            generator = vqgan.get("model") or Path(str(vqgan.get("checkpoint"))).name
        clip = _mapping(self.config.get("clip"))
        models = clip.get("models")
        ensemble = [m for m in models if isinstance(m, dict)] if isinstance(models, list) else []
        judges = ensemble or [clip]  # an ensemble replaces model/pretrained
        return f"{generator} / " + ", ".join(
            str(j.get("model")) + (f" ({j['pretrained']})" if j.get("pretrained") else "")
            for j in judges)


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def find_runs(tree: Tree) -> tuple[list[Path], list[Path]]:
    """Run folders and manifests at or under the root, in path order. Links to folders are not
    followed; the gallery's own folder and frames folders are not searched."""
    runs: list[Path] = []
    manifests: list[Path] = []
    for here, dirs, files in os.walk(tree.root):
        path = Path(here)
        if all(name in files for name in RUN_FILES):
            runs.append(path)
            dirs[:] = []
            continue
        dirs[:] = sorted(d for d in dirs if d not in (GALLERY_DIR, "frames"))
        if "manifest.jsonl" in files:
            manifests.append(path / "manifest.jsonl")
    return runs, manifests


def _config(tree: Tree, folder: Path, problems: list[str]) -> tuple[dict[str, Any], str | None]:
    data = tree.read_bytes(folder / "config.yaml")
    if data is None:
        problems.append("config.yaml is not a regular file inside the gallery's folder: not read")
        return {}, None
    try:
        text = data.decode("utf-8")
        config = yaml.load(text, Loader=SAFE_LOADER)
    except (UnicodeDecodeError, yaml.YAMLError):
        problems.append("config.yaml is not YAML text")
        return {}, None
    if not isinstance(config, dict):
        problems.append("config.yaml is not a mapping of settings")
        return {}, text
    return config, text


def _check(run: RunEntry) -> None:
    """Note the settings the gallery shows that do not have the type vqclip writes."""
    config = run.config
    if "prompt" in config and config["prompt"] is not None and not isinstance(config["prompt"], str):
        run.problems.append(f"config.yaml: prompt {config['prompt']!r} is not text")
    if "size" in config and run.size == "?":
        run.problems.append(f"config.yaml: size {config['size']!r} is not [width, height]")
    for key, value in (("seed", run.seed), ("steps", run.steps)):
        if key in config and value is None and config[key] is not None:
            run.problems.append(f"config.yaml: {key} {config[key]!r} is not a whole number")


def _race(tree: Tree, folder: Path) -> Race | None:
    """The race candidates.json records, when it is well formed; thumbnails only from the folder."""
    data = tree.read_bytes(folder / NOTE_FILE)
    if data is None:
        return None
    try:
        note = json.loads(data)
        candidates = [Candidate(int(c["seed"]), float(c["score"]), _thumbnail(tree, folder, c))
                      for c in note["candidates"]]
        return Race(int(note["steps"]), int(note["winner"]), candidates)
    except (ValueError, TypeError, KeyError, OverflowError):
        return None


def _thumbnail(tree: Tree, folder: Path, candidate: dict[str, Any]) -> Path | None:
    name = candidate.get("thumbnail")
    if not isinstance(name, str) or not name or Path(name).is_absolute() or ".." in Path(name).parts:
        return None
    path = folder / name
    real, real_folder = tree.regular_file(path), real_path(folder)
    return path if real is not None and real_folder is not None and real_folder in real.parents else None


def read_run(tree: Tree, folder: Path) -> RunEntry:
    """Read a run folder back: config, log, final image (or last frame), frames, video, race."""
    problems: list[str] = []
    config, text = _config(tree, folder, problems)
    if tree.regular_file(folder / "log.jsonl") is None:
        problems.append("log.jsonl is not a regular file inside the gallery's folder: not read")
    frames = tree.files_in(folder / "frames", ".png")
    final = folder / "final.png"
    if final.exists() or final.is_symlink():
        image = final if tree.regular_file(final) is not None else None
        if image is None:
            problems.append("final.png is not a regular file inside the gallery's folder: not shown")
    else:
        image = frames[-1] if frames else None
    videos = [folder / f"progress{suffix}" for suffix in FORMATS]
    run = RunEntry(
        folder=folder, rel=folder.relative_to(tree.root).as_posix() if folder != tree.root else ".",
        config=config, config_text=text, log=parse_log(tree.lines(folder / "log.jsonl")),
        image=image, frames=frames,
        video=next((v for v in videos if tree.regular_file(v) is not None), None),
        race=_race(tree, folder), problems=problems)
    _check(run)
    return run
