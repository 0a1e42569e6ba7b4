"""A live preview in the terminal: the image being made, drawn under the progress bar."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.segment import Segment

from vqclip.images import tensor_to_pil
from vqclip.run.events import DoneEvent, Event, ImageEvent, StepEvent

if TYPE_CHECKING:
    import torch

ROWS = 32  # most terminal rows of the image: a 64-pixel-high image at full resolution in half blocks
RESERVED_ROWS = 4  # rows the image leaves to the bar and the lines above it (80x24 shows 20 image rows)
EVERY = 3.0  # seconds between redraws when no frame is saved in between
DECODE_SHARE = 0.02  # at most this share of the run's time goes to decoding images for the preview


def wanted(*, quiet: bool, json_output: bool, no_preview: bool) -> bool:
    """Whether to draw the preview: stderr is a terminal, and nothing asks for silence.

    When stdout is a terminal too, the graphics query reads the terminal's answer from stdin,
    so stdin must be that terminal (a piped stdin gets no preview rather than a stalled query).
    """
    if quiet or no_preview or not sys.stderr.isatty():
        return False
    if not sys.stdout.isatty():
        return not json_output  # --json piped: a script reads the result, nobody watches
    return sys.stdin.isatty()


def image_class() -> type:
    """The terminal's best image renderable: sixel or kitty graphics where the terminal answers
    for them (asked once), else colored half blocks, which any 256-color terminal shows."""
    from textual_image import renderable  # on a terminal stdout this import asks the terminal

    return renderable.Image if sys.stdout.isatty() else renderable.HalfcellImage


class Preview:
    """Engine callback and rich renderable: the latest image, redrawn at each saved frame and
    every `every` seconds between frames (decoded from the engine's current latent; less often
    when a decode is slow, so that decoding takes at most DECODE_SHARE of the time)."""

    def __init__(self, snapshot: Callable[[], torch.Tensor], *, rows: int = ROWS,
                 every: float = EVERY, image_type: type | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.snapshot = snapshot
        self.rows = rows
        self.every = every
        self.image_type = image_type or image_class()
        self.clock = clock
        self.updates = 0
        self._shown: tuple[int, Any] | None = None  # (update, renderable), swapped as one
        self._shown_at = clock()
        self._gap = every
        # (update, (columns, rows), segments)
        self._rendered: tuple[int, tuple[int, int], list[Segment]] | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, ImageEvent | DoneEvent):
            self.show(event.image)
        elif isinstance(event, StepEvent) and self.clock() - self._shown_at >= self._gap:
            started = self.clock()
            image = self.snapshot()
            self._gap = max(self.every, (self.clock() - started) / DECODE_SHARE)
            self.show(image)

    def show(self, image: torch.Tensor) -> None:
        """Draw this (3, H, W) image from the next refresh on."""
        self.updates += 1
        self._shown = (self.updates, tensor_to_pil(image))
        self._shown_at = self.clock()

    def fit(self, picture: Any, columns: int, rows: int) -> tuple[int, int]:
        """(columns, rows) of the image in the terminal: one column per pixel and one row per two
        (a half block holds two pixels one above the other) where that fits, else scaled down
        to the rows and columns there are, keeping the aspect ratio."""
        width, height = picture.size
        rows = max(1, min(self.rows, rows - RESERVED_ROWS))
        scale = min(1.0, columns / width, 2 * rows / height)
        return max(1, round(width * scale)), max(1, round(height * scale / 2))

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        shown = self._shown  # drawn on the display's refresh thread while the loop runs on
        if shown is None:
            return
        # The progress display refreshes several times a second; the image changes far less often.
        update, picture = shown
        size = self.fit(picture, options.max_width, console.size.height)
        cached = self._rendered
        if cached is None or cached[:2] != (update, size):
            renderable = self.image_type(picture, width=size[0], height=size[1])
            cached = (update, size, list(console.render(renderable, options)))
            self._rendered = cached
        yield from cached[2]
