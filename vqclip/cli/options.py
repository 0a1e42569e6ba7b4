"""Command-line options shared by several commands, declared once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vqclip.run.config import GenerateConfig

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
Preview = Annotated[
    bool, typer.Option("--preview/--no-preview", rich_help_panel=OUTPUT,
                       help="Draw the image in the terminal while it is made (on a terminal only)."),
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
                             help="CPU threads per --workers process (default: the cores / N)."),
]
RayThreads = Annotated[  # batch's --threads, which also sizes its --ray actors
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

# The per-run flags of generate, which batch also takes as every line's defaults.
_DEFAULTS = GenerateConfig()  # the schema's defaults, shown in help
Size = Annotated[
    str | None, typer.Option("--size", metavar="WxH", rich_help_panel=IMAGE,
                             show_default="x".join(map(str, _DEFAULTS.size)),
                             help="Image size, e.g. 256x256."),
]
Seed = Annotated[
    int | None, typer.Option("--seed", metavar="N", rich_help_panel=IMAGE,
                             help="Random seed (recorded; random if not given)."),
]
InitImage = Annotated[
    str | None, typer.Option("--init-image", metavar="PATH", rich_help_panel=IMAGE,
                             help='Start from this image (or a "#rrggbb" color).'),
]
InitWeight = Annotated[
    float | None, typer.Option("--init-weight", metavar="W", rich_help_panel=IMAGE,
                               show_default=str(_DEFAULTS.init_weight),
                               help="Pull toward the init image's latent with this weight."),
]
InitNoise = Annotated[
    str | None, typer.Option("--init-noise", metavar="MODE", rich_help_panel=IMAGE,
                             show_default=_DEFAULTS.init_noise,
                             help="Start without an init image from: tokens, pixels, gradient, spot, "
                                  "shapes (CLIP picks one)."),
]
Negative = Annotated[
    str | None, typer.Option("--negative", metavar="TEXT", rich_help_panel=PROMPT,
                             help='Push away from these texts: "blurry | text:0.5".'),
]
SwitchEvery = Annotated[
    int | None, typer.Option("--switch-every", metavar="N", rich_help_panel=PROMPT,
                             show_default=str(_DEFAULTS.switch_every),
                             help="Story mode: next '^' prompt set every N steps (0: even split)."),
]
Steps = Annotated[
    int | None, typer.Option("--steps", metavar="N", rich_help_panel=OPTIMIZATION,
                             show_default=str(_DEFAULTS.steps), help="Optimization steps."),
]
LearningRate = Annotated[
    float | None, typer.Option("--lr", metavar="X", rich_help_panel=OPTIMIZATION,
                               show_default=str(_DEFAULTS.lr), help="Learning rate."),
]
Cutouts = Annotated[
    int | None, typer.Option("--cutn", metavar="N", rich_help_panel=OPTIMIZATION,
                             show_default=str(_DEFAULTS.cutn), help="Cutouts per step."),
]
SaveEvery = Annotated[
    int | None, typer.Option("--save-every", metavar="N", rich_help_panel=OUTPUT,
                             show_default=str(_DEFAULTS.save_every),
                             help="Write a frame every N steps (0: never)."),
]
LowMemory = Annotated[
    bool | None, typer.Option("--low-memory/--no-low-memory", rich_help_panel=PERFORMANCE, show_default=False,
                              help="Recompute activations per block: far less memory, ~30% slower."),
]
Compile = Annotated[
    bool | None, typer.Option("--compile/--no-compile", rich_help_panel=PERFORMANCE, show_default=False,
                              help="torch.compile the models: slow first step, faster after."),
]
MaxMemory = Annotated[
    str | None, typer.Option("--max-memory", metavar="SIZE", rich_help_panel=PERFORMANCE,
                             help="Memory the run may use, e.g. 8GiB (default: what the device has free)."),
]
