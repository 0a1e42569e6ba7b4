"""The one table of command-line flags that set config keys: the commands (by their parameters'
names) and prompt-file lines read it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vqclip.errors import UsageError
from vqclip.run.config import parse_size


@dataclass(frozen=True)
class Flag:
    """A flag, the config key it sets and how its text becomes the value; a `repeated` flag
    adds one item to a list per use, a `switch` takes no value (`--x` true, `--no-x` false on
    the command line; present means true on a prompt-file line). `param` is the name of the
    command parameter that takes it (by default the flag's: --save-every, save_every)."""

    name: str
    key: str
    convert: Callable[[str], Any] = str
    repeated: bool = False
    switch: bool = False
    param: str = ""

    def __post_init__(self) -> None:
        if not self.param:
            object.__setattr__(self, "param", self.name.removeprefix("--").replace("-", "_"))

    def value(self, text: str) -> Any:
        """The config value of `text` given to this flag; a UsageError names the flag."""
        try:
            return self.convert(text)
        except ValueError:
            kind = {int: "a whole number", float: "a number"}.get(self.convert, "a value")
            raise UsageError(f"{self.name} {text!r}: expected {kind}") from None


FLAGS = {flag.name: flag for flag in (
    Flag("--prompt", "prompt"),
    Flag("--seed", "seed", int),
    Flag("--steps", "steps", int),
    Flag("--size", "size", parse_size),
    Flag("--lr", "lr", float),
    Flag("--cutn", "cutn", int),
    Flag("--cut-pow", "cut_pow", float),
    Flag("--save-every", "save_every", int),
    Flag("--negative", "negative"),
    Flag("--init-image", "init_image"),
    Flag("--init-weight", "init_weight", float),
    Flag("--init-noise", "init_noise"),
    Flag("--switch-every", "switch_every", int),
    Flag("--device", "device"),
    Flag("--max-memory", "max_memory"),
    Flag("--image-prompt", "image_prompts", repeated=True),
    Flag("--noise-prompt", "noise_prompts", repeated=True),
    Flag("--low-memory", "low_memory", switch=True),
    Flag("--compile", "compile", switch=True, param="compile_models"),  # not to hide compile()
    Flag("--batch-size", "batch_size", int),
    Flag("--candidates", "candidates", int),
    Flag("--out", "out"),
)}
# What a line of a prompt file may carry: every flag above but where the batch's runs land and
# those that make or pick among several images.
LINE_FLAGS = {name: flag for name, flag in FLAGS.items() if name not in ("--out", "--batch-size",
                                                                      "--candidates")}


def flag_values(params: Mapping[str, Any], flags: Mapping[str, Flag] = FLAGS) -> dict[str, Any]:
    """Config values of the `flags` among a command's parameters (by name, as Typer passes them:
    {"steps": 50, "size": "64x64"}): a flag left out (None, an empty list) sets nothing (a
    switch's --no- form sets False); text is converted, a path becomes text."""
    values = {}
    for flag in flags.values():
        value = params.get(flag.param)
        if value is None or value == []:
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, str) and not flag.repeated:
            value = flag.value(value)
        values[flag.key] = value
    return values


def as_overrides(values: Mapping[str, Any]) -> list[str]:
    """`flag_values`' result as KEY=VALUE items for a --set list (values written as JSON, which
    YAML reads back unchanged: a path with spaces or a list of sizes stays what it was)."""
    return [f"{key}={json.dumps(value)}" for key, value in values.items()]
