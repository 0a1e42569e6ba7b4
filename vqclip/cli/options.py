"""Command-line options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

# Help panels: generate's options are grouped under these, and the shared ones below too.
SETTINGS = "Settings"
PROMPT = "Prompt"
IMAGE = "Image"
OPTIMIZATION = "Optimization"
OUTPUT = "Output"
PERFORMANCE = "Performance"

ConfigFiles = Annotated[
    list[Path] | None,
    typer.Option("--config", "-c", metavar="FILE", rich_help_panel=SETTINGS,
                 help="YAML config file; repeat to layer several, later wins."),
]


def _preset_names(incomplete: str) -> list[str]:
    from vqclip.run.config import list_presets

    return [name for name in list_presets() if name.startswith(incomplete)]


Preset = Annotated[
    str | None,
    typer.Option("--preset", metavar="NAME", rich_help_panel=SETTINGS, autocompletion=_preset_names,
                 help="Preset name: draft, normal, best, shapes."),
]
SetItems = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", metavar="KEY=VALUE", rich_help_panel=SETTINGS,
                 help="Override one key, e.g. -s clip.model=RN50 (repeatable)."),
]
JsonFlag = Annotated[
    bool, typer.Option("--json", rich_help_panel=OUTPUT, help="Print one JSON object on stdout.")
]
Quiet = Annotated[
    bool, typer.Option("--quiet", "-q", rich_help_panel=OUTPUT, help="No progress or messages.")
]
Verbose = Annotated[
    bool, typer.Option("--verbose", "-v", rich_help_panel=OUTPUT, help="Show tracebacks and debug logs.")
]
NoPreview = Annotated[
    bool, typer.Option("--no-preview", rich_help_panel=OUTPUT,
                       help="Do not draw the image in the terminal while it is made."),
]
Device = Annotated[  # named explicitly: typer 0.27 names an alias's option after its metavar
    str | None, typer.Option("--device", metavar="DEVICE", rich_help_panel=PERFORMANCE, show_default="auto",
                             help="auto, cpu, cuda, cuda:N or mps."),
]
Offline = Annotated[
    bool, typer.Option("--offline", rich_help_panel=PERFORMANCE,
                       help="Never touch the network; missing models are an error."),
]
Workers = Annotated[
    int | None, typer.Option("--workers", metavar="N", rich_help_panel=PERFORMANCE,
                             help="Run the items in N worker processes on the CPU, each loading its "
                                  "models once (threads split between them; see --threads)."),
]
Threads = Annotated[
    int | None, typer.Option("--threads", metavar="T", rich_help_panel=PERFORMANCE,
                             help="CPU threads per --workers process or --ray actor (default: the cores "
                                  "/ N; a GPU actor: 1)."),
]
Devices = Annotated[
    str | None, typer.Option("--devices", metavar="LIST", rich_help_panel=PERFORMANCE,
                             help="One worker process per device: cuda:0,cuda:1 or all."),
]
Ray = Annotated[
    bool, typer.Option("--ray", rich_help_panel=PERFORMANCE,
                       help="Run the items in Ray actors, each keeping its models loaded: on the Ray "
                            "cluster of --ray-address, else a local one (needs Ray, an optional extra "
                            "of vqclip)."),
]
RayAddress = Annotated[
    str | None, typer.Option("--ray-address", metavar="ADDRESS", rich_help_panel=PERFORMANCE,
                             show_default="RAY_ADDRESS, else a local Ray on 127.0.0.1",
                             help="The Ray cluster --ray runs on, e.g. ray://HEAD:10001 or auto."),
]
RayActors = Annotated[
    int | None, typer.Option("--ray-actors", metavar="N", rich_help_panel=PERFORMANCE,
                             show_default="one per GPU of the cluster, else 2 on the CPU",
                             help="Ray actors for --ray; each takes one GPU when the cluster has GPUs."),
]
