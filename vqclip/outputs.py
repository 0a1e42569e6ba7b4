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

from vqclip.atomic import atomic_write
from vqclip.engine import DoneEvent, Event, ImageEvent, PromptSwitchEvent, StepEvent
from vqclip.images import tensor_to_pil
from vqclip.lossplot import write_loss_plot
from vqclip.metadata import png_info


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


def png_bytes(image: torch.Tensor, record: dict[str, Any] | None = None) -> bytes:
    """Encode a [0, 1] image tensor as PNG, with the run record in its text chunks if given."""
    buffer = io.BytesIO()
    pil = tensor_to_pil(image)
    pil.save(buffer, format="PNG", pnginfo=png_info(record) if record else None)
    return buffer.getvalue()


class RunWriter:
    """Listens to engine events and writes the run folder: frames, log, state, final image, loss plot."""

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
            # The earlier final image stays, under the step it was made at.
            if self.final_path.exists():
                os.replace(self.final_path, run_dir / f"final-{resumed_at:06d}.png")
            atomic_write(run_dir / "config.yaml", config_text, overwrite=True)
        self._log = open(run_dir / "log.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        if resumed_at is not None:
            self._write_line({"event": "resume", "step": resumed_at, "steps": config["steps"]})

    def _write_line(self, line: dict[str, Any]) -> None:
        self._log.write(json.dumps(line) + "\n")
        self._log.flush()

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            self._write_line({"step": event.step, "loss": event.loss,
                              "seconds": round(event.seconds, 4), "losses": event.losses})
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
