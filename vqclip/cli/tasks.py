"""`vqclip classify`, `vqclip search` and `vqclip score`: thin commands over `vqclip.tasks`."""

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
from vqclip.cli.options import ConfigFiles, JsonFlag, Preset, Quiet, SetItems, Verbose
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


def _load_clip(preset: str | None, config: list[Path] | None, set_: list[str] | None,
               device: str | None) -> tuple[Any, dict[str, Any]]:
    from vqclip.run.config import build_config
    from vqclip.tasks.common import load_task_perceptor

    cfg, _ = build_config(preset=preset, config_files=config or [], flags={"device": device},
                          dotlist=set_ or [])
    return load_task_perceptor(cfg.clip, cfg.device)


@contextmanager
def _progress(description: str, enabled: bool) -> Iterator[Callable[[int, int], None] | None]:
    """A transient rich progress bar on stderr, or None when stderr is not a terminal."""
    if not enabled or not sys.stderr.isatty():
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), console=_stderr, transient=True) as progress:
        task = progress.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        yield update


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
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Zero-shot classify images: the most probable labels per image (or --json)."""

    def body() -> None:
        from vqclip.tasks.classify import check_labels, classify_images, read_labels_file
        from vqclip.tasks.common import check_templates, check_top, find_images

        paths = find_images(images)
        labels = check_labels([*(label or []), *(read_labels_file(labels_file) if labels_file else [])])
        templates = check_templates(template or [])
        check_top(top)
        perceptor, info = _load_clip(preset, config, set_, device)
        with _progress("classifying", not quiet) as on_progress:
            result = classify_images(perceptor, info, paths, labels, templates=templates, top=top,
                                     batch_size=batch_size, on_progress=on_progress)
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


    run_command(body, verbose=verbose)


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
        from vqclip.tasks.common import check_top
        from vqclip.tasks.search import search_folder, write_hits_sheet

        text, directory = query, folder
        if image is not None:
            if directory is not None:
                raise UsageError("with --image give only DIR, not a text QUERY as well")
            text, directory = None, query
        if directory is None:
            raise UsageError("expected QUERY DIR (quote a query of several words) or --image IMAGE DIR")
        if image is not None and not image.is_file():
            raise UsageError(f"query image not found: {image}")
        if not Path(directory).is_dir():
            raise UsageError(f"folder not found: {directory}")
        check_top(top)
        if sheet is not None and sheet.is_dir():
            raise UsageError(f"--sheet {sheet} is a folder; give a file name such as hits.png")
        perceptor, info = _load_clip(preset, config, set_, device)
        with _progress("indexing", not quiet) as on_progress:
            result = search_folder(perceptor, info, directory, text=text, image=image, top=top,
                                   index_dir=index_dir, batch_size=batch_size, on_progress=on_progress)
        _report_skipped(result.skipped, quiet)
        if not quiet:
            _stderr.print(f"indexed {result.indexed} images: {result.embedded} embedded now, "
                          f"{result.indexed - result.embedded} from the index, {len(result.skipped)} "
                          f"skipped ({result.index_dir})", markup=False, soft_wrap=True)
        if not result.index_saved:
            _stderr.print(f"warning: could not write the index ({result.index_error}); "
                          "the next search embeds these files again", markup=False, soft_wrap=True)
        data = result.to_json()
        data["sheet"] = str(write_hits_sheet(result, sheet)) if sheet is not None and result.hits else None
        if sheet is not None and not result.hits and not quiet:
            _stderr.print("no hits, so no contact sheet was written", markup=False)
        if json_output:
            typer.echo(json.dumps(data))
            return
        table = Table("rank", "similarity", "image")
        for hit in result.hits:
            table.add_row(str(hit.rank), f"{hit.similarity:.4f}", escape(str(hit.path)))
        _print_table(table)
        if data["sheet"] and not quiet:
            _stderr.print(f"contact sheet: {data['sheet']}", markup=False, soft_wrap=True)


    run_command(body, verbose=verbose)


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
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """CLIP cosine similarity of every image with every --prompt (a table, or --json)."""

    def body() -> None:
        from vqclip.tasks.common import find_images
        from vqclip.tasks.score import score_images

        paths = find_images(images)
        prompts = [p.strip() for p in prompt or []]
        if not prompts:
            raise UsageError("no prompts: give at least one with -p/--prompt")
        if not all(prompts):
            raise UsageError("a prompt is empty")
        perceptor, info = _load_clip(preset, config, set_, device)
        with _progress("scoring", not quiet) as on_progress:
            result = score_images(perceptor, info, paths, prompts, batch_size=batch_size,
                                  on_progress=on_progress)
        _report_skipped(result.skipped, quiet)
        if json_output:
            typer.echo(json.dumps(result.to_json()))
            return
        table = Table("image", *(escape(prompt) for prompt in result.prompts))
        for row in result.results:
            table.add_row(escape(str(row.image)), *(f"{s:.4f}" for s in row.similarities))
        _print_table(table)


    run_command(body, verbose=verbose)
