"""--candidates N: race N seeds for a few steps, let CLIP score them, keep the best (DALL-E's recipe).

DALL-E (Ramesh et al., 2021) samples many images and lets CLIP rerank them. Here the N
candidates (seeds SEED..SEED+N-1) run together as a batch does for `candidate_steps`; each is
then scored by the weighted prompt loss over every CLIP judge, on one fixed set of cutouts
(the same crops and augmentations for every candidate and every run, so the ranking is
reproducible), and the lowest score continues alone to the full step count.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from vqclip.errors import VqclipError
from vqclip.files import atomic_write
from vqclip.images import tensor_to_pil
from vqclip.run.engine import Engine
from vqclip.run.events import Event
from vqclip.steer.targets import Judge

SCORE_SEED = 20_210_105  # the cutouts every candidate is scored on (DALL-E's announcement date)
THUMBNAIL_SIDE = 128  # longest side of a candidate's thumbnail, in pixels
NOTE_FILE = "candidates.json"


class CandidatesInterrupted(VqclipError):
    """A stop was requested before the race ended: nothing was written (no folder exists yet)."""

    exit_code = 130

    def __init__(self, step: int, steps: int) -> None:
        super().__init__(f"interrupted during the candidate race, at step {step} of {steps}: no run "
                         "folder was made (the winner's is made when the race ends); run the "
                         "command again to start over")
        self.step = step


def score_candidates(engine: Engine) -> list[float]:
    """Each image's weighted prompt loss over the judges, lower is better: the prompt losses of
    the stage the last step used, times each judge's weight, on cutouts drawn from SCORE_SEED."""
    images = engine.shown_images()
    with engine.autocast():
        return score_images(images, engine.judges, max(engine.step - 1, 0))


def score_images(images: torch.Tensor, judges: list[Judge], stage_step: int) -> list[float]:
    """Each of `images`' weighted prompt loss over `judges` at the stage of `stage_step`, on the
    same cutouts for every image (drawn from SCORE_SEED); lower is better. Under the caller's
    autocast, if any."""
    scores = torch.zeros(len(images), dtype=torch.float64)
    rng = torch.Generator(device=images.device)
    with torch.no_grad():
        for judge in judges:
            cutouts = []
            for image in images:
                rng.manual_seed(SCORE_SEED)  # every candidate seen through the same cutouts
                cutouts.append(judge.cutouts(image[None], rng))
            embeddings = judge.perceptor.encode_image(torch.cat(cutouts))
            per_image = embeddings.view(len(images), -1, embeddings.shape[-1])
            for loss in judge.stage_at(stage_step).prompt_losses:
                values = torch.stack([loss(each) for each in per_image]).double().cpu()
                scores += judge.weight * values
    return scores.tolist()


def lowest(scores: list[float]) -> int:
    """The index of the lowest score (the first of equal ones)."""
    return min(range(len(scores)), key=lambda index: (scores[index], index))


@dataclass
class Race:
    """The outcome of the race: every candidate's seed and score, their images, and which won."""

    steps: int
    seeds: list[int]
    scores: list[float]
    images: torch.Tensor  # (N, 3, H, W) in [0, 1] on the CPU, as scored

    @property
    def winner_index(self) -> int:
        return lowest(self.scores)

    @property
    def winner(self) -> int:
        return self.seeds[self.winner_index]

    def note(self) -> dict[str, Any]:
        """What the winner's run folder (candidates.json) and its PNG record say of the race;
        thumbnails relative to the run folder."""
        return {
            "steps": self.steps,
            "winner": self.winner,
            "score": "weighted CLIP prompt loss on fixed cutouts; lower is better",
            "candidates": [{"seed": seed, "score": round(score, 6), "thumbnail": f"candidates/{seed}.png"}
                           for seed, score in zip(self.seeds, self.scores, strict=True)],
        }

    def write(self, run_dir: Path) -> None:
        """candidates.json and candidates/SEED.png (each candidate as scored, thumbnail-sized)."""
        folder = run_dir / "candidates"
        folder.mkdir(exist_ok=True)
        for seed, image in zip(self.seeds, self.images, strict=True):
            picture = tensor_to_pil(image)
            picture.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            buffer = io.BytesIO()
            picture.save(buffer, format="PNG")
            atomic_write(folder / f"{seed}.png", buffer.getvalue(), overwrite=True)
        atomic_write(run_dir / NOTE_FILE, json.dumps(self.note(), indent=2).encode(), overwrite=True)


def read_note(run_dir: Path) -> dict[str, Any] | None:
    """The race note of a run folder that was a race's winner (None for any other run)."""
    path = Path(run_dir) / NOTE_FILE
    if not path.is_file():
        return None
    try:
        note = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return note if isinstance(note, dict) else None


def json_entries(note: dict[str, Any], run_dir: Path) -> list[dict[str, Any]]:
    """The note's candidates for --json, with thumbnails as paths one can open."""
    return [{**each, "thumbnail": str(run_dir / each["thumbnail"])} for each in note["candidates"]]


class EventLog:
    """Keeps the events of a race, to write the winner's into its folder once it is known."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.events.append(event)

    def of_image(self, index: int) -> list[Event]:
        """The events of image `index` and those shared by all, in order."""
        return [event for event in self.events if getattr(event, "index", index) == index]
