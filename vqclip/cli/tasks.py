"""`vqclip classify`, `vqclip search` and `vqclip score`: each parses its arguments, makes one
call of `vqclip.classify`, `vqclip.search` or `vqclip.score` (which check every input and the
CLIP before it loads) and prints the result, as a table or --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vqclip.cli.command import run_command
from vqclip.cli.options import ConfigFiles, JsonFlag, Offline, Preset, Quiet, SetItems, Verbose
from vqclip.errors import UsageError

Device = Annotated[str | None, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
BatchSize = Annotated[int, typer.Option("--batch-size", help="Images per CLIP batch.")]
Images = Annotated[
    list[str],
    typer.Argument(metavar="IMAGE", show_default=False,
                   help="Image files, folders (searched recursively) or globs such as 'shots/*.png'."),
]

_stderr = Console(stderr=True, highlight=False, soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add the classify, search and score commands to the vqclip app."""
    app.command("classify")(classify)
    app.command("search")(search)
    app.command("score")(score)


@contextmanager
def _progress(description: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A transient rich progress bar on stderr, drawn from the first report of the work on, or
    None when stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeRemainingColumn(), console=_stderr, transient=True)
    shown: list[TaskID] = []  # the bar's task, once the work has started (not while CLIP loads)

    def update(done: int, total: int) -> None:
        if not shown:
            progress.start()
            shown.append(progress.add_task(description, total=total))
        progress.update(shown[0], completed=done, total=total)

    try:
        yield update
    finally:
        progress.stop()


def _report_skipped(skipped: list[Any], quiet: bool) -> None:
    if not quiet:
        for item in skipped:
            _stderr.print(f"skipped {item.path}: {item.reason}", markup=False, soft_wrap=True)


def _print_table(table: Table) -> None:
    # on a terminal rich fits the table to the window; piped, paths stay whole on one line
    console = Console(highlight=False)
    if not console.is_terminal:
        console = Console(highlight=False, width=4096)
    console.print(table)


def classify(
    images: Images,
    label: Annotated[
        list[str] | None, typer.Option("--label", "-l", help="A class label (repeatable).")
    ] = None,
    labels_file: Annotated[
        Path | None,
        typer.Option("--labels-file", help="Text file of labels, one per line (# comments allowed)."),
    ] = None,
    template: Annotated[
        list[str] | None,
        typer.Option("--template", "-t", help='Prompt around each label, e.g. "a photo of a {}." '
                     "Repeat to ensemble (embeddings averaged per label). Default: the label alone."),
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", help="Labels shown per image (0: all).")] = 5,
    batch_size: BatchSize = 32,
    config: ConfigFiles = None,
    preset: Preset = None,
    set_: SetItems = None,
    device: Device = None,
    offline: Offline = False,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Zero-shot classify images: the most probable labels per image (or --json)."""

    def body() -> None:
        import vqclip

        with _progress("classifying", not quiet) as on_progress:
            result = vqclip.classify(images, label or [], labels_file=labels_file,
                                     templates=template or [], top=top, batch_size=batch_size,
                                     device=device, preset=preset, config_files=config or [],
                                     sets=set_ or [], on_progress=on_progress)
        _report_skipped(result.skipped, quiet)
        if json_output:
            typer.echo(json.dumps(result.to_json()))
            return
        table = Table("image", "label", "probability")
        for index, item in enumerate(result.results):
            if index:
                table.add_section()
            for rank, lp in enumerate(item.labels):
                table.add_row(escape(str(item.image)) if rank == 0 else "", escape(lp.label),
                              f"{lp.probability:.1%}")
        _print_table(table)

    run_command(body, verbose=verbose, offline=offline)


def search(
    query: Annotated[
        str | None,
        typer.Argument(metavar="QUERY", show_default=False,
                       help="The text to search for (quoted); left out with --image."),
    ] = None,
    folder: Annotated[
        str | None,
        typer.Argument(metavar="DIR", show_default=False, help="The folder to search (recursive)."),
    ] = None,
    image: Annotated[
        Path | None,
        typer.Option("--image", "-i", help="Search by this image instead of a text query "
                     "(the image itself is left out of the results)."),
    ] = None,
    top: Annotated[int, typer.Option("--top", "-k", help="Hits to show (0: all).")] = 10,
    sheet: Annotated[
        Path | None, typer.Option("--sheet", help="Also write a contact sheet of the hits here (PNG).")
    ] = None,
    index_dir: Annotated[
        Path | None,
        typer.Option("--index-dir", help="Keep DIR's index here instead of in DIR/.vqclip-index "
                     "(for a read-only DIR; use one per folder)."),
    ] = None,
    batch_size: BatchSize = 32,
    config: ConfigFiles = None,
    preset: Preset = None,
    set_: SetItems = None,
    device: Device = None,
    offline: Offline = False,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Rank the images in DIR (recursive) by CLIP similarity to a text or an --image.

    Embeddings are cached per model in DIR/.vqclip-index/<model-key>/ (or --index-dir), keyed
    by each file's sha256, so a later search only embeds new or changed files. Files that
    cannot be read are listed on stderr and skipped.
    """

    def body() -> None:
        import vqclip

        # the arguments' order: QUERY DIR, or DIR alone after --image
        if query is None or (folder is None and image is None):
            raise UsageError("expected QUERY DIR (quote a query of several words) or --image IMAGE DIR")
        text, directory = (None, query) if folder is None else (query, folder)
        with _progress("indexing", not quiet) as on_progress:
            result = vqclip.search(directory, text=text, image=image, top=top, sheet=sheet,
                                   index_dir=index_dir, batch_size=batch_size, device=device,
                                   preset=preset, config_files=config or [], sets=set_ or [],
                                   on_progress=on_progress)
        _report_skipped(result.skipped, quiet)
        if not quiet:
            _stderr.print(f"indexed {result.indexed} images: {result.embedded} embedded now, "
                          f"{result.indexed - result.embedded} from the index, {len(result.skipped)} "
                          f"skipped ({result.index_dir})", markup=False, soft_wrap=True)
        if not result.index_saved:
            _stderr.print(f"warning: could not write the index ({result.index_error}); "
                          "the next search embeds these files again", markup=False, soft_wrap=True)
        if sheet is not None and result.sheet is None and not quiet:
            _stderr.print("no hits, so no contact sheet was written", markup=False)
        if json_output:
            typer.echo(json.dumps(result.to_json()))
            return
        table = Table("rank", "similarity", "image")
        for hit in result.hits:
            table.add_row(str(hit.rank), f"{hit.similarity:.4f}", escape(str(hit.path)))
        _print_table(table)
        if result.sheet is not None and not quiet:
            _stderr.print(f"contact sheet: {result.sheet}", markup=False, soft_wrap=True)

    run_command(body, verbose=verbose, offline=offline)


def score(
    images: Images,
    prompt: Annotated[
        list[str] | None, typer.Option("--prompt", "-p", help="A text to score against (repeatable).")
    ] = None,
    batch_size: BatchSize = 32,
    config: ConfigFiles = None,
    preset: Preset = None,
    set_: SetItems = None,
    device: Device = None,
    offline: Offline = False,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """CLIP cosine similarity of every image with every --prompt (a table, or --json)."""

    def body() -> None:
        import vqclip

        with _progress("scoring", not quiet) as on_progress:
            result = vqclip.score(images, prompt or [], batch_size=batch_size, device=device,
                                  preset=preset, config_files=config or [], sets=set_ or [],
                                  on_progress=on_progress)
        _report_skipped(result.skipped, quiet)
        if json_output:
            typer.echo(json.dumps(result.to_json()))
            return
        table = Table("image", *(escape(prompt) for prompt in result.prompts))
        for row in result.results:
            table.add_row(escape(str(row.image)), *(f"{s:.4f}" for s in row.similarities))
        _print_table(table)

    run_command(body, verbose=verbose, offline=offline)
