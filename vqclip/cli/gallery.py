"""`vqclip gallery`: a thin command over vqclip.gallery."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vqclip.cli.command import run_command
from vqclip.cli.options import JsonFlag, Quiet, Verbose


def gallery(
    path: Annotated[Path, typer.Argument(
        help="A run folder, a batch, sweep or zoom folder, or a whole outputs tree.",
        show_default=False)],
    scores: Annotated[list[Path] | None, typer.Option(
        "--scores", help="Show the CLIP scores of a `vqclip score --json` file (repeatable).")] = None,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Write PATH/index.html: cards, sweep grids and loss curves of the runs, opened from disk."""

    def body() -> None:
        from vqclip.gallery import build_gallery

        result = build_gallery(path, scores=scores or [])
        if not quiet:
            for run in result.damaged:
                typer.echo(_printable(f"warning: {run.rel}: " + "; ".join(run.problems)), err=True)
        if json_output:
            typer.echo(json.dumps(result.to_json()))
            return
        typer.echo(str(result.index))
        if quiet:
            return
        counts = [_count(result.runs, "run"), _count(result.sweeps, "sweep"),
                  _count(result.batches, "batch")]
        typer.echo(f"{', '.join(counts)}; {result.thumbnails_made} new thumbnails, "
                   f"{result.thumbnails_kept} kept", err=True)

    run_command(body, verbose=verbose)


def _printable(line: str) -> str:
    """A folder's name can hold control characters: they are shown escaped, never sent to the terminal."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in line)


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "es" if noun.endswith("ch") else "s")


def register(app: typer.Typer) -> None:
    """Add the `gallery` command to the vqclip app."""
    app.command("gallery")(gallery)
