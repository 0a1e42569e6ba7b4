"""CLIP scores recorded by `vqclip score --json`, attached to the gallery's runs."""

from __future__ import annotations

import json
from pathlib import Path

from vqclip.errors import UsageError
from vqclip.gallery.runs import RunEntry


def read_scores(path: Path) -> dict[Path, dict[str, float]]:
    """The similarities of a `vqclip score --json` file, by resolved image path and prompt."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
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
