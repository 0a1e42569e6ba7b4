"""Progress on stderr: on a terminal a rich bar (step, recent steps/s, loss, elapsed, ETA) with the image
preview, when there is one, drawn under it; elsewhere (a log file) a plain line now and then."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from vqclip.run.events import DoneEvent, Event, StepEvent


class _ProgressAbove(Progress):
    """A Progress that draws `below` (the preview) under its bars, in the same live display."""

    def __init__(self, *columns: object, below: RenderableType | None, **options: object) -> None:
        self.below = below  # set first: the base class may draw while it is set up
        super().__init__(*columns, **options)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield from super().get_renderables()
        if self.below is not None:
            yield self.below


class RecentRateColumn(ProgressColumn):
    """Steps per second over the last half minute: the rate the ETA beside it is computed from."""

    def render(self, task: Task) -> Text:
        return Text(f"{task.speed:.2f} it/s" if task.speed else "- it/s")


class ProgressBar:
    """Engine callback that drives a rich progress bar; use as a context manager.

    Without `total`, each run's own step count is used, and a run that starts over (the next
    item of a batch or sweep) starts the bar over."""

    def __init__(self, total: int | None, console: Console, *, start: int = 0,
                 description: str = "generating", below: RenderableType | None = None) -> None:
        self.progress = _ProgressAbove(
            TextColumn("[bold]{task.description}"),
            BarColumn(bar_width=None),  # what the labelled columns leave: 80 columns fit them all
            MofNCompleteColumn(),
            RecentRateColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TextColumn("elapsed"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            expand=True,
            below=below,
            # a redraw with the image costs twice one without: 4 a second keep the display's
            # share of the CPU below that of the bar alone at rich's default of 10
            refresh_per_second=10 if below is None else 4,
        )
        self.task = self.progress.add_task(description, total=total, completed=start, loss="-")

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def describe(self, description: str) -> None:
        """Change the text before the bar (a series names its item there)."""
        self.progress.update(self.task, description=description)

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            if event.step + 1 <= self.progress.tasks[0].completed:  # another run began
                self.progress.reset(self.task, total=event.steps or None, completed=event.step)
            elif self.progress.tasks[0].total is None:
                self.progress.update(self.task, total=event.steps or None)
            self.progress.update(self.task, completed=event.step + 1, loss=f"{event.loss:.4f}")
        elif isinstance(event, DoneEvent):
            self.progress.update(self.task, completed=event.step)


def _clock_time(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class ProgressLines:
    """Engine callback for stderr that is not a terminal (SLURM, nohup, CI logs): one plain line
    after the first step, then every `every` seconds and at the last step, with the recent rate.

    Without `total`, each run's own step count is used, and a run that starts over (the next
    item of a batch or sweep) starts the lines and the rate over.
    """

    WINDOW = 30.0  # seconds of steps the rate is measured over

    def __init__(self, total: int | None, write: Callable[[str], None], *, every: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.write, self.every, self.clock = total, write, every, clock
        self.samples: deque[tuple[float, int]] = deque()
        self.last_line: float | None = None

    def rate(self) -> float | None:
        """Steps per second over the last WINDOW seconds (None before two steps)."""
        (first_time, first_step), (last_time, last_step) = self.samples[0], self.samples[-1]
        if last_time <= first_time:
            return None
        return (last_step - first_step) / (last_time - first_time)

    def __call__(self, event: Event) -> None:
        if not isinstance(event, StepEvent):
            return
        now, done = self.clock(), event.step + 1
        total = self.total or event.steps
        if self.samples and done <= self.samples[-1][1]:  # another run began
            self.samples.clear()
            self.last_line = None
        self.samples.append((now, done))
        while now - self.samples[0][0] > self.WINDOW and len(self.samples) > 2:
            self.samples.popleft()
        due = self.last_line is None or now - self.last_line >= self.every or done == total
        if not due:
            return
        self.last_line = now
        rate = self.rate()
        speed = f"{rate:.2f} it/s" if rate else "- it/s"
        eta = f"ETA {_clock_time((total - done) / rate)}" if rate else "ETA -"
        self.write(f"step {done}/{total}  {speed}  loss {event.loss:.4f}  {eta}")
