"""Continuing a stopped run: its folder locked, its saved state read and checked."""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from filelock import FileLock
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vqclip.errors import UsageError, first_line
from vqclip.outputs.run_folder import lock_run_dir, refuse_foreign_entries
from vqclip.run.config import config_schema, literal, validate

STATE_KEYS = {"step", "parameters", "initial", "optimizer", "scheduler", "rng", "config"}


@dataclass
class ResumePoint:
    """A run folder, locked against other processes, and the state read from its state.pt
    (with weights_only=True)."""

    run_dir: Path
    state: dict[str, Any]
    lock: FileLock

    @classmethod
    def load(cls, run_dir: Path) -> ResumePoint:
        """Lock `run_dir` and read its state.pt; a usage error if the folder is in use, holds a
        symbolic link or special file, or the state is missing or unreadable."""
        path = Path(run_dir) / "state.pt"
        if not path.is_file():
            raise UsageError(f"{run_dir} has no state.pt to resume from")
        refuse_foreign_entries(Path(run_dir))
        lock = lock_run_dir(Path(run_dir))
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, EOFError, RuntimeError, OSError, ValueError):
            lock.release()
            raise UsageError(f"{path} is damaged (not a state vqclip wrote)") from None
        if not isinstance(state, dict) or not STATE_KEYS <= state.keys():
            lock.release()
            raise UsageError(f"{path} is not a vqclip run state (it lacks step, parameters or config)")
        return cls(Path(run_dir), state, lock)

    def config(self, *, steps: int | None = None, device: str | None = None) -> DictConfig:
        """The config the run was started with, with `steps` optionally raised and `device`
        optionally replaced; a usage error naming state.pt if that config is invalid, and one
        for a finished run (final.png made) that `steps` does not take further."""
        path = self.run_dir / "state.pt"
        try:
            cfg = OmegaConf.merge(config_schema(), literal(self.state["config"]))
            validate(cfg, dict.fromkeys(cfg.keys(), str(path)))
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None)
            raise UsageError(f"{path} holds an invalid config: {f'{key}: ' if key else ''}"
                             f"{first_line(err)}") from None
        if device is not None:
            cfg.device = device
        done = self.state["step"]
        if steps is not None and steps < done:
            raise UsageError(f"--steps {steps} is below the {done} steps already done")
        if done >= (steps if steps is not None else cfg.steps) and (self.run_dir / "final.png").is_file():
            raise UsageError(f"{self.run_dir} already finished at step {done}; nothing was changed "
                             f"(give --steps above {done} to continue it)")
        if steps is not None:
            cfg.steps = steps
        return cfg

    def check_device(self, device: torch.device) -> None:
        """Refuse to continue on another kind of device than the run's: a CUDA random generator
        and a CPU one have different states (a saved `device: auto` can resolve to either)."""
        saved = self.state.get("device", device.type)  # a state.pt from before it was saved
        if saved != device.type:
            raise UsageError(f"{self.run_dir} ran on {saved} and would continue on {device.type}: "
                             f"its random state only continues on {saved}; pass --device {saved}")
