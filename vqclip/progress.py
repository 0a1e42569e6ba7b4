"""A rich progress bar on stderr (step, steps/s, loss, ETA), shown only on a terminal; the image
preview, when there is one, is drawn under it."""

from __future__ import annotations

from collections.abc import Iterable

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from vqclip.engine import DoneEvent, Event, StepEvent


class _ProgressAbove(Progress):
    """A Progress that draws `below` (the preview) under its bars, in the same live display."""

    def __init__(self, *columns: object, below: RenderableType | None, **options: object) -> None:
        self.below = below  # set first: the base class may draw while it is set up
        super().__init__(*columns, **options)

    def get_renderables(self) -> Iterable[RenderableType]:
        yield from super().get_renderables()
        if self.below is not None:
            yield self.below


class ProgressBar:
    """Engine callback that drives a rich progress bar; use as a context manager."""

    def __init__(self, total: int, console: Console, *, start: int = 0,
                 description: str = "generating", below: RenderableType | None = None) -> None:
        self.progress = _ProgressAbove(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]} it/s"),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            below=below,
            # a redraw with the image costs twice one without: 4 a second keep the display's
            # share of the CPU below that of the bar alone at rich's default of 10
            refresh_per_second=10 if below is None else 4,
        )
        self.start = start
        self.task = self.progress.add_task(description, total=total, completed=start, rate="-",
                                           loss="-")

    def __enter__(self) -> ProgressBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def __call__(self, event: Event) -> None:
        if isinstance(event, StepEvent):
            done_here = event.step + 1 - self.start
            rate = done_here / event.seconds if event.seconds > 0 else 0.0
            self.progress.update(self.task, completed=event.step + 1, rate=f"{rate:.2f}",
                                 loss=f"{event.loss:.4f}")
        elif isinstance(event, DoneEvent):
            self.progress.update(self.task, completed=event.step)
