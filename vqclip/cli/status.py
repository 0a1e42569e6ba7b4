"""What a run is doing around its steps, on stderr: the race of --candidates and its winner."""

from __future__ import annotations

from typing import Any

from vqclip.run.events import Event


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
