"""Command-line options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

ConfigFiles = Annotated[
    list[Path] | None,
    typer.Option("--config", "-c", help="YAML config file; repeat to layer several, later wins."),
]


def _preset_names(incomplete: str) -> list[str]:
    from vqclip.config import list_presets

    return [name for name in list_presets() if name.startswith(incomplete)]


Preset = Annotated[
    str | None,
    typer.Option("--preset", help="Preset name: draft, normal, best, shapes.", autocompletion=_preset_names),
]
SetItems = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override one key, e.g. -s clip.model=RN50 (repeatable)."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress or messages.")]
Verbose = Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")]
NoPreview = Annotated[
    bool, typer.Option("--no-preview", help="Do not draw the image in the terminal while it is made."),
]
