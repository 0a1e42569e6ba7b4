"""One run of `generate` or `resume` on stderr: the models loading, the memory note, the progress
bar and preview (or progress lines in a log), the result; its first Ctrl-C or SIGTERM stops it."""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

from vqclip.cli.command import Interruption, stderr, stop_on_first_interrupt
from vqclip.library import Observer
from vqclip.run.events import Callback
from vqclip.series.items import StopSwitch

if TYPE_CHECKING:
    from vqclip.run.candidates import CandidatesInterrupted
    from vqclip.run.execute import GenerateResult, Run


def say(line: str) -> None:
    """A plain line on stderr (never markup)."""
    stderr.print(line, markup=False)


class RunDisplay(Observer):
    """The observer a command hands to `vqclip.generate` or `vqclip.resume`, with `stop` as its
    stop switch; use as a context manager, which takes down whatever it still shows on the way
    out (a spinner or bar when the call raised)."""

    def __init__(self, *, quiet: bool, json_output: bool, preview: bool) -> None:
        from vqclip.cli.preview import wanted

        self.quiet = quiet
        self.show_progress = not quiet and sys.stderr.isatty()
        self.show_preview = wanted(quiet=quiet, json_output=json_output, no_preview=not preview)
        self.stop = StopSwitch()
        self.interruption = Interruption()
        self.preview: Any = None
        self._shown = ExitStack()  # the spinner while models load, the bar and signals while it runs

    def __enter__(self) -> RunDisplay:
        return self

    def __exit__(self, *exc: object) -> None:
        self._shown.close()

    def loading(self, models: str) -> None:
        """On a terminal: a spinner naming the models (a plain line when a download will show
        its own bar); nothing elsewhere or with --quiet."""
        if not self.show_progress:
            return
        if "to download" in models:  # the download's own progress bar shows below this line
            say(f"loading {models}")
        else:
            self._shown.enter_context(stderr.status(f"loading {models}", spinner="dots"))

    def loaded(self, models: str, seconds: float) -> None:
        """On a terminal, a line with the time loading took."""
        self._shown.close()
        if self.show_progress:
            say(f"loaded {models} and planned memory in {seconds:.1f} s")

    def started(self, run: Run) -> Sequence[Callback]:
        """Say the memory note, let the first Ctrl-C or SIGTERM stop the run, and show its
        progress: a bar (with the preview under it) on a terminal, plain lines in a log."""
        note = run.memory.note() if run.memory is not None else None
        if note and not self.quiet:
            stderr.print(escape(note))
        if run.start is not None and run.resume is None and not self.quiet:
            say(f"starting from the {run.start['picked']}, the lowest CLIP loss of "
                f"{len(run.start['choices'])} starts")
        self.interruption = self._shown.enter_context(stop_on_first_interrupt(self.stop.request))
        if self.show_progress:
            return self._bar(run)
        if self.quiet:
            return []
        from vqclip.cli.progress import ProgressLines
        from vqclip.cli.status import RaceReport

        if not _racing(run):
            return [ProgressLines(run.engine.steps, say)]
        say(RaceReport(run, say).title() + " before finishing the best")
        return [ProgressLines(run.engine.steps, say), RaceReport(run, say)]

    def _bar(self, run: Run) -> list[Callback]:
        from vqclip.cli.preview import Preview
        from vqclip.cli.progress import ProgressBar
        from vqclip.cli.status import RaceReport

        if self.show_preview:
            self.preview = Preview(lambda: run.engine.images()[0])
        bar = self._shown.enter_context(ProgressBar(run.engine.steps, stderr, start=run.engine.step,
                                                    below=self.preview))
        callbacks: list[Callback] = [bar]
        if _racing(run):
            race = RaceReport(run, say, bar.describe)
            bar.describe(race.title())
            callbacks.append(race)
        return callbacks + ([self.preview] if self.preview is not None else [])

    def ended(self, run: Run) -> None:
        """Take the bar down (the last picture stays, above the summary) and give Ctrl-C and
        SIGTERM back."""
        self._shown.close()
        if self.preview is not None:
            stderr.print(self.preview)

    def race_interrupted(self, err: CandidatesInterrupted) -> int:
        """Say that the race of --candidates was stopped; the exit code."""
        if not self.quiet:
            stderr.print(escape(str(err)), soft_wrap=True)
        return self.interruption.exit_code

    def result(self, result: GenerateResult, *, json_output: bool) -> int:
        """Print the result (the image paths, or --json) on stdout and a summary on stderr; after
        an interruption, how to continue. The exit code."""
        results = result.batch or [result]
        if json_output:
            typer.echo(json.dumps(result.to_json()))
        else:
            for each in results:
                typer.echo(str(each.image))
        if not self.quiet and (self.show_progress or not sys.stdout.isatty()):
            say_summary(results)  # on a terminal it stays where the bar was
        if not result.interrupted:
            return 0
        if not self.quiet:
            how = (f"vqclip resume {shlex.quote(str(result.run_dir))}" if len(results) == 1 else
                   "vqclip resume FOLDER, for each of "
                   + " ".join(shlex.quote(str(e.run_dir)) for e in results))
            stderr.print(f"interrupted at step {result.steps}; image and state saved. "
                         f"Continue with: {escape(how)}", soft_wrap=True)
        return self.interruption.exit_code


def _racing(run: Run) -> bool:
    return run.spec.config.candidates > 1 and run.resume is None


def say_summary(results: list[GenerateResult]) -> None:
    """What a run made, on stderr once the bar is gone: stdout (the result) may be redirected."""
    for each in results:
        say(f"{'stopped' if each.interrupted else 'done'} after {each.steps} steps in "
            f"{each.seconds:.1f} s, final loss {each.final_loss:.4f}: {each.image} "
            f"(run folder {each.run_dir})")
