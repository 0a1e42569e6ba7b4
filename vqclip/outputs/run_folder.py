"""Run folders and everything written into them, each file atomically and never overwritten."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import yaml
from filelock import FileLock, Timeout

from vqclip.errors import UsageError
from vqclip.files import atomic_write, remove_temporaries
from vqclip.images import tensor_to_pil
from vqclip.outputs.lossplot import write_loss_plot
from vqclip.outputs.metadata import png_info
from vqclip.run.events import DoneEvent, Event, ImageEvent, PromptSwitchEvent, StepEvent

LONG_TERM = 200  # loss terms with longer names (a long prompt) appear in step lines as "#N"


def slugify(text: str, max_length: int = 40) -> str:
    """Lower-case words joined by hyphens, safe in any file system."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_length].rstrip("-") or "untitled"


def create_numbered_dir(root: str | Path, label: str, today: dt.date | None = None) -> Path:
    """Make `<root>/<date>/<NNNN>-<label>/`, numbered after the highest there; never reused."""
    day_dir = Path(root) / (today or dt.date.today()).isoformat()
    day_dir.mkdir(parents=True, exist_ok=True)
    numbers = [int(m.group(1)) for p in day_dir.iterdir() if (m := re.match(r"^(\d{4,})-", p.name))]
    number = max(numbers, default=0) + 1
    while True:
        folder = day_dir / f"{number:04d}-{label}"
        try:
            folder.mkdir()  # exclusive: a concurrent run that took this name makes us move on
            return folder
        except FileExistsError:
            number += 1


def create_run_dir(out: str | Path, seed: int, prompt: str, today: dt.date | None = None) -> Path:
    """Make a run folder `<out>/<date>/<NNNN>-<seed>-<slug>/`."""
    return create_numbered_dir(out, f"{seed}-{slugify(prompt)}", today)


def lock_run_dir(run_dir: Path) -> FileLock:
    """Hold `run_dir/.lock` while a process writes the folder; a usage error if another holds it."""
    lock = FileLock(str(run_dir / ".lock"), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise UsageError(f"{run_dir} is in use by another vqclip process; "
                         "wait for it to end, or stop it first") from None
    return lock


def refuse_foreign_entries(run_dir: Path) -> None:
    """A usage error naming the first symbolic link or special file (FIFO, device, socket) in
    `run_dir` or below: a run continued in the folder reads and writes only its own files."""
    for folder, dirs, files in os.walk(run_dir):
        for name in [*dirs, *files]:
            entry = Path(folder) / name
            if entry.is_symlink():
                raise UsageError(f"{entry} is a symbolic link; a run folder holds only its own files")
            if not (entry.is_dir() or entry.is_file()):
                raise UsageError(f"{entry} is not a regular file; a run folder holds only its own files")


def png_bytes(image: torch.Tensor, record: dict[str, Any] | None = None) -> bytes:
    """Encode a [0, 1] image tensor as PNG, with the run record in its text chunks if given."""
    buffer = io.BytesIO()
    pil = tensor_to_pil(image)
    pil.save(buffer, format="PNG", pnginfo=png_info(record) if record else None)
    return buffer.getvalue()


class RunWriter:
    """Listens to engine events and writes the run folder: frames, log, state, final image, loss plot.

    A state.pt is written at the start and after each frame (the frame first), so a process
    killed at any moment leaves a state to resume from; frames newer than that state are
    redone by the resume and replaced.
    """

    def __init__(
        self,
        run_dir: Path,
        config: dict[str, Any],
        record: dict[str, Any],
        state: Callable[[], dict[str, Any]],
        *,
        resumed_at: int | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.record = record
        self.state = state
        self.final_path = run_dir / "final.png"
        config_text = yaml.safe_dump(config, sort_keys=False).encode()
        if resumed_at is None:
            (run_dir / "frames").mkdir()
            atomic_write(run_dir / "config.yaml", config_text)
        else:
            (run_dir / "frames").mkdir(exist_ok=True)
            for folder in (run_dir, run_dir / "frames"):
                remove_temporaries(folder)
            for frame in (run_dir / "frames").glob("*.png"):
                if frame.stem.isdigit() and int(frame.stem) >= resumed_at:
                    frame.unlink()  # made after the saved state: the resume makes it again
            # The earlier final image stays, under the step it was made at.
            if self.final_path.exists():
                os.replace(self.final_path, run_dir / f"final-{resumed_at:06d}.png")
            atomic_write(run_dir / "config.yaml", config_text, overwrite=True)
        # O_NOFOLLOW: a log.jsonl turned into a link since the check is refused, not followed
        log_fd = os.open(run_dir / "log.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        self._log = open(log_fd, "a", encoding="utf-8")  # noqa: SIM115
        self._terms: dict[str, str] = {}  # long loss-term names and their "#N" in step lines
        if resumed_at is None:
            self.save_state()
        else:
            self._write_line({"event": "resume", "step": resumed_at, "steps": config["steps"]})

    def _write_line(self, line: dict[str, Any]) -> None:
        self._log.write(json.dumps(line) + "\n")
        self._log.flush()

    def _term(self, name: str, step: int) -> str:
        """How step lines name a loss term: itself, or when long "#N", named once by a line
        {"event": "loss_terms", "step": ..., "terms": {"#N": name}} before its first use."""
        if len(name) <= LONG_TERM:
            return name
        if name not in self._terms:
            self._terms[name] = f"#{len(self._terms)}"
            self._write_line({"event": "loss_terms", "step": step, "terms": {self._terms[name]: name}})
        return self._terms[name]

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            losses = {self._term(name, event.step): value for name, value in event.losses.items()}
            self._write_line({"step": event.step, "loss": event.loss,
                              "seconds": round(event.seconds, 4), "losses": losses})
        elif isinstance(event, PromptSwitchEvent):
            self._write_line({"event": "prompt_switch", "step": event.step, "prompt": event.prompt})
        elif isinstance(event, ImageEvent):
            atomic_write(self.run_dir / "frames" / f"{event.step:06d}.png", png_bytes(event.image))
            self.save_state()
        elif isinstance(event, DoneEvent):
            self._log.close()
            self.save_state()
            atomic_write(self.final_path, png_bytes(event.image, self.record))
            write_loss_plot(self.run_dir)

    def save_state(self) -> None:
        """Write state.pt (replacing the previous one of this run) for resuming."""
        buffer = io.BytesIO()
        torch.save(self.state(), buffer)
        atomic_write(self.run_dir / "state.pt", buffer.getvalue(), overwrite=True)
