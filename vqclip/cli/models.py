"""`vqclip models ...`: list, download, verify, locate, import and remove model weights."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from vqclip.cli.command import run_command
from vqclip.cli.helptext import App
from vqclip.errors import ModelError, VqclipError
from vqclip.models import clip_cache
from vqclip.models.cache import Cache, offline_requested
from vqclip.models.catalog import get_entry, load_registry, resolve_vqgan
from vqclip.models.store import import_vqgan, verify_vqgan, vqgan_status

models_app = App(
    help="Manage model weights: list, download, verify, path, import, rm.",
    no_args_is_help=True,
)

RegistryOption = Annotated[
    Path | None,
    typer.Option("--registry", help="Extra registry YAML file (wins over built-in names).",
                 dir_okay=False),
]
OfflineOption = Annotated[
    bool,
    typer.Option("--offline", help="Never touch the network (also VQCLIP_OFFLINE=1 or "
                 "HF_HUB_OFFLINE=1)."),
]


def _say(message: str) -> None:
    typer.echo(message, err=True)


def _human(size: int | None) -> str:
    if not size:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return "-"


def _rows(registry: Path | None, all_clip: bool) -> list[dict[str, Any]]:
    from vqclip.run.config import ClipConfig, VQGANConfig

    cache = Cache.default()
    default_vqgan = VQGANConfig().model
    default_clip = f"{ClipConfig().model}/{ClipConfig().pretrained}"
    rows = []
    for name, entry in sorted(load_registry(registry).items()):
        if entry.kind == "vqgan":
            status = vqgan_status(entry, cache)
        else:
            status = clip_cache.registry_clip_status(entry)
        rows.append({"name": name, "kind": entry.kind, **status, "licence": entry.licence,
                     "source": entry.source, "default": name == default_vqgan})
    names = clip_cache.list_open_clip() if all_clip else [default_clip]
    for name in names:
        rows.append({"name": name, "kind": "clip", **clip_cache.open_clip_status(name),
                     "default": name == default_clip})
    return rows


@models_app.command("list")
def list_models(
    json_out: Annotated[bool, typer.Option("--json", help="One JSON array on stdout.")] = False,
    all_clip: Annotated[
        bool, typer.Option("--all-clip", help="Also list every open_clip MODEL/TAG pair.")
    ] = False,
    registry: RegistryOption = None,
    offline: OfflineOption = False,
) -> None:
    """List named models: kind, size, whether cached, how they are verified."""

    def body() -> int | None:
        rows = _rows(registry, all_clip)
        if json_out:
            typer.echo(json.dumps(rows, indent=2))
            return
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(box=None, pad_edge=False)
        for column in ("name", "kind", "size", "cached", "verified"):
            table.add_column(column)
        for row in rows:
            name = row["name"] + (" (default)" if row["default"] else "")
            table.add_row(escape(name), escape(row["kind"]), _human(row["size"]),
                          "yes" if row["cached"] else "no", escape(row["verified"]))
        # Off a terminal (a pipe, a file) nothing is gained by wrapping rows at 80 columns.
        Console(width=None if sys.stdout.isatty() else 200).print(table)

    run_command(body, verbose=False, offline=offline)


@models_app.command("download")
def download(
    names: Annotated[list[str], typer.Argument(help="Registry names, or open_clip MODEL/TAG.")],
    registry: RegistryOption = None,
    offline: OfflineOption = False,
) -> None:
    """Download (and convert) models now, so later runs need no network; prints their folders."""

    def body() -> int | None:
        failure: VqclipError | None = None
        for name in names:
            try:
                if "/" in name:
                    path = clip_cache.download_open_clip(name, offline=offline_requested())
                else:
                    entry = get_entry(name, registry_file=registry)
                    if entry.kind == "clip":
                        path = clip_cache.download_registry_clip(entry, offline=offline_requested())
                    else:
                        config, _ = resolve_vqgan(name, registry_file=registry,
                                                  offline=offline_requested())
                        path = config.parent
                typer.echo(str(path))
            except VqclipError as err:
                _say(f"error: {name}: " + " ".join(str(err).split()))
                failure = failure or err
        if failure is not None:
            return failure.exit_code

    run_command(body, verbose=False, offline=offline)


@models_app.command("verify")
def verify(
    names: Annotated[
        list[str] | None, typer.Argument(help="Models to check (default: every cached VQGAN).")
    ] = None,
    registry: RegistryOption = None,
    offline: OfflineOption = False,
) -> None:
    """Recompute the sha256 of cached files; exit 1 if any is corrupt or missing."""

    def body() -> int | None:
        cache = Cache.default()
        if names:
            entries = [get_entry(n, registry_file=registry) for n in names]
        else:
            entries = [e for e in load_registry(registry).values()
                       if e.kind == "vqgan" and e.path is None]
        bad = checked = 0
        for entry in entries:
            if entry.kind != "vqgan" or entry.path is not None:
                typer.echo(f"skipped  {entry.name}  ({'bundled' if entry.path else 'CLIP'} weights "
                           "are not in vqclip's cache)")
                continue
            checks = verify_vqgan(entry, cache)
            if not checks and not names:
                continue  # nothing cached: nothing to check
            if not checks:
                typer.echo(f"missing  {entry.name}  (not cached)")
                bad += 1
            checked += len(checks)
            for check in checks:
                line = f"{check.status:<8} {entry.name}  {check.path}"
                if check.status == "corrupt":
                    line += f"  expected sha256 {check.expected}, got {check.actual}"
                typer.echo(line)
                bad += check.status in ("corrupt", "missing")
        if not names and not checked:
            _say(f"nothing to verify: no VQGAN is cached in {cache.home}")
        if bad:
            _say(f"error: {bad} file(s) failed verification; repair with `vqclip models rm NAME` "
                 "then `vqclip models download NAME`")
            return 1

    run_command(body, verbose=False, offline=offline)


@models_app.command("path")
def path(
    name: Annotated[str, typer.Argument(help="A registry name.")],
    registry: RegistryOption = None,
    offline: OfflineOption = False,
) -> None:
    """Print the folder that holds a cached model's files."""

    def body() -> int | None:
        entry = get_entry(name, registry_file=registry)
        if entry.path is not None:
            typer.echo(str(entry.path))
            return
        if entry.kind == "clip":
            raise ModelError(f"{name!r} names open_clip weights ({entry.model}/{entry.pretrained})"
                             ", which live in open_clip's cache")
        found = Cache.default().converted_files(name)
        if found is None:
            raise ModelError(f"model {name!r} is not cached; get it with "
                             f"`vqclip models download {name}`")
        typer.echo(str(found[0].parent))

    run_command(body, verbose=False, offline=offline)


@models_app.command("import")
def import_(
    name: Annotated[str, typer.Argument(help="The registry name the files belong to.")],
    config: Annotated[
        Path, typer.Option("--config", help="The model's config YAML.", dir_okay=False)
    ],
    checkpoint: Annotated[
        Path, typer.Option("--checkpoint", help="The model's checkpoint (.ckpt).", dir_okay=False)
    ],
    registry: RegistryOption = None,
    offline: OfflineOption = False,
) -> None:
    """Adopt files downloaded by hand: verify their sha256, convert them, pin them."""

    def body() -> int | None:
        entry = get_entry(name, kind="vqgan", registry_file=registry)
        converted, _ = import_vqgan(entry, Cache.default(), config=config, checkpoint=checkpoint)
        typer.echo(str(converted.parent))

    run_command(body, verbose=False, offline=offline)


@models_app.command("rm")
def rm(
    name: Annotated[str, typer.Argument(help="The model whose cached files to delete.")],
    unpin: Annotated[
        bool, typer.Option("--unpin", help="Also forget the sha256 pinned on first download.")
    ] = False,
    registry: RegistryOption = None,
    offline: OfflineOption = False,
) -> None:
    """Delete a model's cached files (pins are kept unless --unpin)."""

    def body() -> int | None:
        cache = Cache.default()
        entries = load_registry(registry)
        if name not in entries and name not in cache.cached_names():
            get_entry(name, registry_file=registry)  # raises, listing the known names
        if name in entries and entries[name].path is not None:
            raise ModelError(f"model {name!r} ships with vqclip; there is nothing to remove")
        freed = cache.remove(name, unpin=unpin)
        _say(f"removed {name} ({_human(freed)})" if freed else f"nothing cached for {name}")

    run_command(body, verbose=False, offline=offline)
