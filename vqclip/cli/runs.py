"""`vqclip batch` and `vqclip zoom`: thin commands over vqclip.series.batch and vqclip.series.zoom."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from vqclip.cli.command import run_command, stop_on_first_interrupt
from vqclip.cli.generate import say_how_to_continue, stopped_run
from vqclip.cli.options import (
    OUTPUT,
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
    Quiet,
    Ray,
    RayActors,
    RayAddress,
    RayThreads,
    SaveEvery,
    Seed,
    SetItems,
    Size,
    Steps,
    SwitchEvery,
    Verbose,
    Workers,
)


def _say(message: str, quiet: bool) -> None:
    if not quiet:
        typer.echo(message, err=True)


def batch(
    ctx: typer.Context,
    file: Annotated[str, typer.Argument(
        help="Prompt file: one prompt per line with optional flags (--seed 3 --steps 100 ...), "
             "or a YAML list of items; - reads standard input.", show_default=False)],
    config: ConfigFiles = None,
    preset: Preset = None,
    set_: SetItems = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", metavar="DIR", help="Batch folder: runs and manifest.jsonl go here "
                            "(default: <out>/batch-<file name>).")] = None,
    shard: Annotated[str | None, typer.Option(
        metavar="I/N", help="Run share I/N of the items: those whose 0-based index % N == I. Default: from "
             "SLURM_ARRAY_TASK_ID/COUNT or RANK/WORLD_SIZE, else all items.")] = None,
    steps: Steps = None,
    seed: Seed = None,
    size: Size = None,
    lr: LearningRate = None,
    cutn: Cutouts = None,
    save_every: SaveEvery = None,
    negative: Negative = None,
    switch_every: SwitchEvery = None,
    init_image: InitImage = None,
    init_weight: InitWeight = None,
    init_noise: InitNoise = None,
    device: Device = None,
    low_memory: LowMemory = None,
    compile_models: Compile = None,
    max_memory: MaxMemory = None,
    workers: Workers = None,
    threads: RayThreads = None,
    devices: Devices = None,
    ray: Ray = False,
    ray_address: RayAddress = None,
    ray_actors: RayActors = None,
    offline: Offline = False,
    video: Annotated[str | None, typer.Option(
        metavar="mp4|gif|webp", rich_help_panel=OUTPUT,
        help="Also write each item's frames as a video in its run folder.")] = None,
    fps: Annotated[float, typer.Option(metavar="N", rich_help_panel=OUTPUT,
                                       help="Frames per second of --video.")] = 12.0,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Run every prompt of a file, each in its own run folder; done items are skipped on rerun.

    The per-run flags (--steps, --seed, --size, ...) apply to every line; a line's own flags win."""
    from vqclip.cli.generate import say_how_to_continue, series_progress, stopped_run

    def body() -> int:
        from vqclip.run.flags import LINE_FLAGS, flag_values
        from vqclip.series import batch as series
        from vqclip.series.items import StopSwitch

        engine = series.plan_engine(ray=ray, ray_address=ray_address, ray_actors=ray_actors,
                                    workers=workers, devices=devices, threads=threads)
        items = series.parse_batch(sys.stdin.read()) if file == "-" else series.load_batch(file)

        def report(record: dict[str, Any]) -> None:
            position = record["index"] + 1
            where = f"{position}/{len(items)}" + (f" line {record['line']}" if record.get("line") else "")
            if record["status"] == "ok":
                if not json_output:
                    typer.echo(record["image"])
                _say(f"ok      {where} seed {record['seed']}: {record['label']}", quiet)
            else:
                _say(f"{record['status']:7} {where}: {record.get('error') or record['label']}", quiet)
            if position < len(items):
                name(f"item {position + 1}/{len(items)}")

        stop = StopSwitch()
        elsewhere = engine is not None  # no per-step progress from other processes
        with (stop_on_first_interrupt(stop.request) as interruption,
              series_progress(quiet or elsewhere, f"item 1/{len(items)}") as (callbacks, name)):
            result = series.batch(items, name="stdin" if file == "-" else file, preset=preset,
                                  config_files=config or [], flags=flag_values(ctx.params, LINE_FLAGS),
                                  sets=set_ or [], out=out, shard=shard, video=video, fps=fps,
                                  callbacks=callbacks, report=report, stop=stop, engine=engine)
        if json_output:
            typer.echo(json.dumps(result.to_json()))
        shard_text = f" (shard {result.shard[0]}/{result.shard[1]})" if result.shard else ""
        _say(f"batch{shard_text}: {len(result.ok)} ok, {len(result.failed)} failed, "
             f"{len(result.skipped)} skipped as done; manifest {result.manifest}", quiet)
        if result.interrupted:
            say_how_to_continue(stopped_run(result.records), quiet)
            _say("rerun the same batch command to go on with the items not yet done", quiet)
            return interruption.exit_code
        return 1 if result.failed else 0

    run_command(body, verbose=verbose, offline=offline)


def zoom(
    ctx: typer.Context,
    prompt: Annotated[str, typer.Argument(help='Prompt: "text:weight:stop", items separated by "|".',
                                          show_default=False)],
    frames: Annotated[int, typer.Option(metavar="N", help="Number of frames (runs) in the zoom.")] = 30,
    steps_per_frame: Annotated[
        int, typer.Option(metavar="N", help="Steps of every frame after the first.")] = 25,
    zoom_factor: Annotated[float, typer.Option(
        "--zoom", metavar="X", help="Magnification per frame (>1 zooms in).")] = 1.02,
    pan: Annotated[tuple[float, float], typer.Option(
        metavar="DX DY", help="View movement per frame in pixels (right, down).")] = (0.0, 0.0),
    rotate: Annotated[float, typer.Option(metavar="DEG", help="Degrees per frame, counter-clockwise.")] = 0.0,
    fps: Annotated[float, typer.Option(metavar="N", help="Video frames per second.")] = 12,
    video: Annotated[
        str, typer.Option(metavar="NAME", help="Video file name in the zoom folder: .mp4, .gif or .webp.")
    ] = "zoom.mp4",
    config: ConfigFiles = None,
    preset: Preset = None,
    set_: SetItems = None,
    size: Annotated[str | None, typer.Option(metavar="WxH", help="Image size, e.g. 256x256.")] = None,
    steps: Annotated[
        int | None, typer.Option(metavar="N", help="Steps of the first frame (default: the config's).")
    ] = None,
    seed: Annotated[
        int | None, typer.Option(metavar="N", help="Seed of frame 0; frame i uses seed + i.")] = None,
    lr: Annotated[float | None, typer.Option(metavar="X", help="Learning rate.")] = None,
    cutn: Annotated[int | None, typer.Option(metavar="N", help="Cutouts per step.")] = None,
    init_image: Annotated[
        str | None, typer.Option(metavar="PATH", help='Start frame 0 from this image (or "#rrggbb").')
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", metavar="DIR", help="Root folder of run folders.")
    ] = None,
    device: Device = None,
    offline: Offline = False,
    json_output: JsonFlag = False,
    quiet: Quiet = False,
    verbose: Verbose = False,
) -> None:
    """Zoom video: short runs, each starting from the last image zoomed/panned/rotated."""

    def body() -> int:
        from vqclip.run.config import build_config
        from vqclip.run.flags import flag_values
        from vqclip.series.items import StopSwitch
        from vqclip.series.zoom import run_zoom

        cfg, _ = build_config(preset=preset, config_files=config or [], flags=flag_values(ctx.params),
                              dotlist=set_ or [])

        records: list[dict[str, Any]] = []

        def report(record: dict[str, Any]) -> None:
            records.append(record)
            _say(f"frame {record['index'] + 1}/{frames}: loss {record['final_loss']:.4f}", quiet)

        stop = StopSwitch()
        with stop_on_first_interrupt(stop.request) as interruption:
            result = run_zoom(cfg, frames=frames, steps_per_frame=steps_per_frame, zoom=zoom_factor,
                              pan=pan, rotate=rotate, first_steps=cfg.steps, fps=fps, video=video,
                              report=report, stop=stop)
        if json_output:
            typer.echo(json.dumps(result.to_json()))
        else:
            typer.echo(str(result.video or result.folder))
        if result.interrupted:
            _say(f"interrupted after {len(result.frames)} frames; kept in {result.folder}", quiet)
            say_how_to_continue(stopped_run(records), quiet)
            return interruption.exit_code
        return 0

    run_command(body, verbose=verbose, offline=offline)



def register(app: typer.Typer) -> None:
    """Add the `batch` and `zoom` commands to the vqclip app."""
    app.command("batch")(batch)
    app.command("zoom")(zoom)
