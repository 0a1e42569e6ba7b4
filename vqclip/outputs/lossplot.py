"""Loss curves as SVG: a run's log.jsonl, its story switches and resume points, or many runs overlaid."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

from vqclip.files import atomic_write

PLOT_NAME = "loss.svg"
# Okabe & Ito (2008), distinct for the common color-vision deficiencies; their yellow, faint on
# white, is replaced by a wine red
COLORS = ["#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#882255", "#000000"]


@dataclass
class LossLog:
    """One run's losses by step, with the steps where the prompt switched or the run resumed."""

    steps: list[int] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    switches: list[tuple[int, str]] = field(default_factory=list)  # (step, prompt)
    resumes: list[int] = field(default_factory=list)
    seconds: float | None = None  # time to the last logged step, over every resumed part

    @property
    def final_loss(self) -> float | None:
        """The loss of the last step logged (None before the first step)."""
        return self.losses[-1] if self.losses else None


@dataclass
class Curve:
    """A line to draw: its legend label and its points."""

    label: str
    steps: list[int]
    losses: list[float]


def read_log(path: Path) -> LossLog:
    """Read a log.jsonl; a step logged twice (resumed from an earlier state) keeps its last loss."""
    if not path.is_file():
        return LossLog()
    return parse_log(path.read_bytes().decode("utf-8", errors="replace").splitlines())


def _count(value: object) -> int | None:
    """A step number: a whole, finite, non-negative JSON number (not a string, not true)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if value >= 0 else None


def _finite(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def parse_log(lines: Iterable[str]) -> LossLog:
    """The losses of log.jsonl lines; a line torn by a killed run, or whose step is not a step
    number, is left out."""
    by_step: dict[int, float] = {}
    log = LossLog()
    earlier_parts = last = 0.0  # a resumed run's clock restarts at 0
    for text in lines:
        try:
            line = json.loads(text)
        except ValueError:
            continue
        if not isinstance(line, dict) or (step := _count(line.get("step"))) is None:
            continue
        event = line.get("event")
        if event == "prompt_switch":
            log.switches.append((step, str(line.get("prompt", ""))))
        elif event == "resume":
            log.resumes.append(step)
            earlier_parts, last = earlier_parts + last, 0.0
        elif event is None and isinstance(line.get("loss"), int | float):
            by_step[step] = float(line["loss"])
            if (seconds := _finite(line.get("seconds"))) is not None:
                last = seconds
                log.seconds = earlier_parts + last
    log.steps = sorted(by_step)
    log.losses = [by_step[s] for s in log.steps]
    return log


def loss_svg(curves: list[Curve], *, switches: list[tuple[int, str]] = (), resumes: list[int] = (),
             width: int = 480, height: int = 200, title: str = "loss",
             axes: tuple[int, float, float] | None = None) -> str:
    """An SVG of the curves on shared axes, with dashed lines at switches and resumes.

    The loss of step index s (0-based, as log.jsonl counts) is drawn at s + 1, the count of
    steps done when it is known, as the progress bar counts: a 100-step run ends at step 100.
    Switches and resumes are drawn at the count of steps done before them. `axes` (last step,
    lowest loss, highest loss) replaces the curves' own extent, to compare plots."""
    left, right, top, bottom = 52, 12, 22, 28
    max_step, low, high = extent(curves) if axes is None else axes
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(step: float) -> float:
        return left + plot_w * step / max_step

    def y(value: float) -> float:
        return top + plot_h * (high - value) / (high - low)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="loss-plot" width="{width}" '
             f'height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" '
             f'font-size="10">',
             f"<title>{escape(title)}</title>",
             f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff" '
             f'stroke="#ccc"/>']
    for value in (high, (high + low) / 2, low):
        parts.append(f'<text x="{left - 4}" y="{y(value) + 3:.1f}" text-anchor="end">'
                     f"{value:.3g}</text>")
    parts.append(f'<text x="{left}" y="{height - 8}">0</text>')
    parts.append(f'<text x="{width - right}" y="{height - 8}" text-anchor="end">step {max_step}</text>')
    marks = [(s, f"prompt: {p}", "#888") for s, p in switches] + [(s, "resumed", "#d55e00")
                                                                  for s in resumes]
    for step, label, color in marks:
        parts.append(f'<line class="mark" x1="{x(step):.1f}" x2="{x(step):.1f}" y1="{top}" '
                     f'y2="{top + plot_h}" stroke="{color}" stroke-dasharray="4 3">'
                     f"<title>{escape(label)} (step {step})</title></line>")
    for i, curve in enumerate(curves):
        color = COLORS[i % len(COLORS)]
        path = " ".join(f"{x(s + 1):.1f},{y(v):.1f}" for s, v in zip(curve.steps, curve.losses, strict=True)
                        if math.isfinite(v))
        parts.append(f'<polyline class="curve" fill="none" stroke="{color}" stroke-width="1.5" '
                     f'points="{path}"><title>{escape(curve.label)}</title></polyline>')
        if len(curves) > 1:
            row_y = top + 10 + 12 * i
            parts.append(f'<text x="{width - right - 4}" y="{row_y}" text-anchor="end" '
                         f'fill="{color}">{escape(curve.label)}</text>')
    parts.append(f'<text x="{left}" y="{top - 8}">{escape(title)}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def extent(curves: list[Curve]) -> tuple[int, float, float]:
    """The last step (counted from 1) and the lowest and highest finite loss of the curves."""
    points = [(s + 1, v) for c in curves for s, v in zip(c.steps, c.losses, strict=True)
              if math.isfinite(v)]
    return (max((s for s, _ in points), default=1),
            min((v for _, v in points), default=0.0), max((v for _, v in points), default=1.0))


def run_plot(log: LossLog, title: str = "loss") -> str:
    """One run's curve with its switches and resume points marked."""
    return loss_svg([Curve(title, log.steps, log.losses)], switches=log.switches,
                    resumes=log.resumes, title=title)


def write_loss_plot(run_dir: Path) -> Path:
    """Draw `run_dir/log.jsonl` as `run_dir/loss.svg` (redrawn when a resumed run ends again)."""
    path = run_dir / PLOT_NAME
    svg = run_plot(read_log(run_dir / "log.jsonl"))
    atomic_write(path, svg.encode(), overwrite=True)
    return path
