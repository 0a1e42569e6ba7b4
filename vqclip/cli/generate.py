"""`vqclip generate`, `resume` and `show`: one run (or a sweep) with progress, preview and video."""

from __future__ import annotations

import json
import math
import shlex
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from vqclip.cli.command import run_command, run_guarded, stderr, stop_on_first_interrupt
from vqclip.cli.options import (
    OPTIMIZATION,
    OUTPUT,
    PERFORMANCE,
    PROMPT,
    SETTINGS,
    Compile,
    ConfigFiles,
    Cutouts,
    Device,
    Devices,
    InitImage,
    InitNoise,
    InitWeight,
    JsonFlag,
    LearningRate,
    LowMemory,
    MaxMemory,
    Negative,
    Offline,
    Preset,
    Preview,
    Quiet,
    SaveEvery,
    Seed,
    SetItems,
    Size,
    Steps,
    SwitchEvery,
    Threads,
    Verbose,
    Workers,
)
from vqclip.errors import UsageError
from vqclip.run.config import GenerateConfig

_DEFAULTS = GenerateConfig()  # the schema's defaults, shown in generate's help


GENERATE_EXAMPLES = (
    "Examples:\n\n"
    '  vqclip generate "a red circle" --preset shapes --seed 1   (offline, seconds on a CPU)\n\n'
    '  vqclip generate "a watercolor lighthouse at dusk | fog:0.5" --preset draft --size 384x256\n\n'
    '  vqclip generate "a castle" --seeds 1-4 --sweep lr=0.05,0.2 -o runs   (8 runs and a sheet)\n\n'
    "Defaults are those of the config schema; a preset or -c file may change them."
)


def register(app: typer.Typer) -> None:
    """Add the generate, resume and show commands to the vqclip app."""
    app.command(epilog=GENERATE_EXAMPLES)(generate)
    app.command()(resume)
    app.command()(show)


def generate(
    ctx: typer.Context,
    prompt: Annotated[
        str | None,
        typer.Argument(help='Prompt: "text:weight:stop", items separated by "|"; "^" separates story '
                            "stages. Needed unless --image-prompt or --noise-prompt gives the run "
                            "something to aim at (a --negative alone aims at nothing).",
                       show_default=False, metavar="PROMPT"),
    ] = None,
    config: ConfigFiles = None,
    preset: Preset = None,
    set_: SetItems = None,
    from_image: Annotated[
        Path | None,
        typer.Option("--from", metavar="IMAGE", rich_help_panel=SETTINGS,
                     help="Re-run the settings stored in a vqclip image."),
    ] = None,
    negative: Negative = None,
    image_prompt: Annotated[
        list[str] | None,
        typer.Option("--image-prompt", metavar="PATH[:W[:STOP]]", rich_help_panel=PROMPT,
                     help="Aim at an image too (repeatable)."),
    ] = None,
    noise_prompt: Annotated[
        list[str] | None,
        typer.Option("--noise-prompt", metavar="SEED[:W]", rich_help_panel=PROMPT,
                     help="A random CLIP target (repeatable)."),
    ] = None,
    switch_every: SwitchEvery = None,
    size: Size = None,
    seed: Seed = None,
    init_image: InitImage = None,
    init_weight: InitWeight = None,
    init_noise: InitNoise = None,
    steps: Steps = None,
    lr: LearningRate = None,
    cutn: Cutouts = None,
    seeds: Annotated[
        str | None, typer.Option(metavar="1-8|1,3,5", rich_help_panel=OPTIMIZATION,
                                 help="One run per seed (a sweep).")
    ] = None,
    sweep: Annotated[
        list[str] | None,
        typer.Option(metavar="KEY=V1,V2", rich_help_panel=OPTIMIZATION,
                     help="One run per value; repeat for a cartesian product."),
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", metavar="DIR", rich_help_panel=OUTPUT,
                                  show_default=_DEFAULTS.out, help="Root folder of run folders.")
    ] = None,
    save_every: SaveEvery = None,
    video: Annotated[
        str | None,
        typer.Option(metavar="mp4|gif|webp", rich_help_panel=OUTPUT,
                     help="Also write the frames as a video in the run folder. Unless save_every is "
                          "set (--save-every, -s, a -c file or the --from image), enough frames are "
                          "saved for at least 2 s of video at --fps."),
    ] = None,
    fps: Annotated[float, typer.Option(metavar="N", rich_help_panel=OUTPUT,
                                       help="Frames per second of --video.")] = 12.0,
    device: Device = None,
    low_memory: LowMemory = None,
    compile_models: Compile = None,
    max_memory: MaxMemory = None,
    batch_size: Annotated[
        int | None,
        typer.Option(metavar="K", rich_help_panel=PERFORMANCE, show_default=str(_DEFAULTS.batch_size),
                     help="Make the images of seeds SEED..SEED+K-1 together, in one pass per step."),
    ] = None,
    workers: Workers = None,
    threads: Threads = None,
    devices: Devices = None,
    candidates: Annotated[
        int | None,
        typer.Option(metavar="N", rich_help_panel=OPTIMIZATION, show_default=str(_DEFAULTS.candidates),
                     help="Race seeds SEED..SEED+N-1 for candidate_steps (default a fifth of the "
                          "steps), keep the one CLIP scores best, finish only it."),
    ] = None,
    offline: Offline = False,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    preview: Preview = True,
    verbose: Verbose = False,
) -> None:
    """Generate an image from a text prompt; prints the final image path (or --json)."""

    def body() -> int:
        from vqclip.run.flags import flag_values
        from vqclip.run.request import generate_config, recalled_settings

        if video is not None:
            from vqclip.outputs.video import check_video

            check_video(video, fps)
            if seeds or sweep:
                raise UsageError("--video makes one run's video; it cannot go with --seeds/--sweep")
        flags = flag_values(ctx.params)
        recalled = recalled_settings(from_image, warn) if from_image is not None else None

        def make_config(sweep_items: Sequence[str] = (), video_fps: float | None = None) -> Any:
            """(config, provenance) of the run, or of one run of a sweep (its --sweep items)."""
            return generate_config(preset=preset, config_files=config or [], flags=flags,
                                   dotlist=set_ or [], sweep=sweep_items, recalled=recalled,
                                   video_fps=video_fps)

        if seeds or sweep:
            from vqclip.series.pool import plan_workers

            pool = plan_workers(workers=workers, devices=devices, threads=threads)
            return execute_sweep(lambda items: make_config(items)[0], seeds, sweep or [],
                                 json_output=json_output, quiet=quiet, engine=pool)
        if workers is not None or devices is not None or threads is not None:
            raise UsageError("--workers, --threads and --devices share out the runs of --seeds/--sweep; "
                             "one run uses one device (--batch-size makes several images in it)")
        from vqclip.cli.display import RunDisplay
        from vqclip.library import generate_from_config
        from vqclip.run.candidates import CandidatesInterrupted

        with RunDisplay(quiet=quiet, json_output=json_output, preview=preview) as display:
            try:
                result = generate_from_config(*make_config(video_fps=fps if video is not None else None),
                                              video=video, fps=fps, observer=display, stop=display.stop)
            except CandidatesInterrupted as err:
                return display.race_interrupted(err)
        return display.result(result, json_output=json_output)

    run_command(body, verbose=verbose, offline=offline)


def warn(message: str) -> None:
    """A warning line on stderr."""
    stderr.print(f"warning: {message}", markup=False)


def execute_sweep(build: Callable[[list[str]], Any], seeds: str | None, sweep: list[str], *,
                  json_output: bool, quiet: bool, engine: Any = None) -> int:
    """One run per seed and swept value, a manifest and a contact sheet; return the exit code."""
    from vqclip.series.items import StopSwitch
    from vqclip.series.sweep import parse_seeds, parse_sweep, run_sweep

    stop = StopSwitch()
    sweeps = dict(parse_sweep(item) for item in sweep)
    chosen_seeds = parse_seeds(seeds) if seeds else None
    count = len(chosen_seeds or [None]) * math.prod(len(values) for values in sweeps.values())
    with (stop_on_first_interrupt(stop.request) as interruption,
          series_progress(quiet or engine is not None, f"run 1/{count}") as (callbacks, name)):
        def report(record: dict[str, Any]) -> None:
            position = record["index"] + 1
            stderr.print(f"{record['status']:7} {position}/{count} {record['label']}: "
                         f"{record.get('image') or record.get('error')}", markup=False)
            if position < count:
                name(f"run {position + 1}/{count}")

        result = run_sweep(build, seeds=chosen_seeds, sweeps=sweeps, stop=stop, engine=engine,
                           report=None if quiet else report, callbacks=callbacks)
    if json_output:
        typer.echo(json.dumps(result.to_json()))
    else:
        typer.echo(str(result.sheet or result.folder))
    if result.interrupted:
        say_how_to_continue(stopped_run(result.records), quiet)
        return interruption.exit_code
    return 1 if result.failed else 0


@contextmanager
def series_progress(quiet: bool, first: str) -> Iterator[tuple[list[Any], Callable[[str], None]]]:
    """Progress of a batch or sweep: the current item's bar on a terminal, plain lines in a log.

    Yields the engine callbacks for every item, and a function that names the item the bar
    shows (the report lines name the items in a log)."""
    if quiet:
        yield [], lambda text: None
    elif sys.stderr.isatty():
        from vqclip.cli.progress import ProgressBar

        with ProgressBar(None, stderr, description=first) as bar:
            yield [bar], bar.describe
    else:
        from vqclip.cli.progress import ProgressLines

        yield [ProgressLines(None, lambda line: stderr.print(line, markup=False))], lambda text: None


def stopped_run(records: list[dict[str, Any]]) -> str | None:
    """The run folder of the item a series was interrupted in, if it had one."""
    stopped = [r["run_dir"] for r in records if r.get("status") == "interrupted" and r.get("run_dir")]
    return stopped[-1] if stopped else None


def say_how_to_continue(run_dir: str | Path | None, quiet: bool) -> None:
    """After a series was interrupted: how to continue the run it stopped in, if any."""
    if run_dir is not None and not quiet:
        stderr.print(f"image and state saved. Continue that run with: "
                     f"{escape('vqclip resume ' + shlex.quote(str(run_dir)))}", soft_wrap=True)


def resume(
    run_dir: Annotated[Path, typer.Argument(help="A run folder with a state.pt.")],
    steps: Annotated[
        int | None, typer.Option(help="Run to this many steps in all (default: the run's own).")
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:N or mps (default: the run's own); "
                                      "a run continues only on the kind of device it ran on.")
    ] = None,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    preview: Preview = True,
    verbose: Verbose = False,
) -> None:
    """Continue an interrupted (or finished) run from its state.pt, in the same folder."""

    def body() -> int:
        from vqclip.cli.display import RunDisplay
        from vqclip.library import resume as resume_run

        with RunDisplay(quiet=quiet, json_output=json_output, preview=preview) as display:
            result = resume_run(run_dir, steps=steps, device=device, observer=display, stop=display.stop)
        return display.result(result, json_output=json_output)

    run_command(body, verbose=verbose)


def show(
    image: Annotated[Path, typer.Argument(help="An image written by vqclip.")],
    json_output: JsonFlag = False,
) -> None:
    """Print the settings an image records (prompt, seed, config, models)."""
    from vqclip.outputs.metadata import a1111_parameters, read_record

    record = run_guarded(lambda: read_record(image), verbose=False)
    if json_output:
        typer.echo(json.dumps(record, indent=2, sort_keys=True))
    else:
        typer.echo(a1111_parameters(record))

