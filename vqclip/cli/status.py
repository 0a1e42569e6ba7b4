"""What a run is doing around its steps, on stderr: the models it loads, the race of
--candidates and its winner."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from vqclip.run.events import Event


@contextmanager
def loading_models(cfg: Any, console: Console, *, terminal: bool, quiet: bool) -> Iterator[None]:
    """Say which models load (their size; bundled, cached or to download) while they load and
    memory is planned: a spinner on a terminal (a plain line when a download will show its own
    bar), then a line with the time it took. Nothing elsewhere or with --quiet."""
    if quiet or not terminal:
        yield
        return
    from vqclip.models.loading import describe_models

    models = describe_models(cfg)
    started = time.monotonic()
    if "to download" in models:  # the download's own progress bar shows below this line
        console.print(f"loading {models}", markup=False)
        yield
    else:
        with console.status(f"loading {models}", spinner="dots"):
            yield
    console.print(f"loaded {models} and planned memory in {time.monotonic() - started:.1f} s", markup=False)


class RaceReport:
    """Engine callback: names the race of --candidates while it runs (on the bar) and its winner
    once it is decided (a line that stays)."""

    def __init__(self, run: Any, say: Any, describe: Any = None) -> None:
        self.run, self.say, self.describe = run, say, describe
        self.count = max(run.spec.config.candidates, 1)
        self.told = False

    def title(self) -> str:
        """What the bar says during the race."""
        return f"racing {self.count} seeds"

    def __call__(self, event: Event) -> None:
        race = self.run.race
        if race is None or self.told:
            return
        self.told = True
        pairs = zip(race.seeds, race.scores, strict=True)
        scores = ", ".join(f"{seed}: {score:.4f}" for seed, score in pairs)
        self.say(f"seed {race.winner} won the race of {self.count} seeds after {race.steps} steps "
                 f"(CLIP loss, lower is better: {scores}); finishing it")
        if self.describe is not None:
            self.describe(f"seed {race.winner}")
