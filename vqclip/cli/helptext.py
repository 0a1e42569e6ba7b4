"""Readable help: placeholders such as N, PATH and TEXT, and none at all for flags.

typer's own help shows the Python type of a parameter (`<bool>`, `<list[Path]>`) and writes a
required argument as `{file}` in the usage line; these classes show what a user types instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import typer
from typer.core import TyperCommand, TyperGroup

# Python types of parameters, as placeholders for the value a user types
_PLACEHOLDERS = {int: "N", float: "X", str: "TEXT", Path: "PATH"}


def _no_type(ctx: Any) -> str:
    return ""


def _placeholder(param: Any) -> str:
    described = getattr(param, "type_descriptor", None)
    if described is None:
        return "VALUE"
    if described.is_path:
        return "PATH"
    annotation = described.annotation
    if described.is_list:
        (annotation,) = get_args(annotation)
    return _PLACEHOLDERS.get(annotation, "VALUE")


def tidy(param: Any) -> None:
    """Give `param` a readable placeholder: none for a flag, N/X/PATH/TEXT for a value, the
    upper-case name for an argument."""
    if param.param_type_name == "argument":
        param.metavar = param.metavar or (param.name or "").upper()
        # typer shows an argument's Python type beside its name; the name says it all
        param.display_type_rich = _no_type
    elif getattr(param, "is_flag", False):
        param.metavar = ""  # a flag takes no value: nothing to show in the value column
    elif param.metavar is None:
        param.metavar = _placeholder(param)


def usage_pieces(command: Any, ctx: Any) -> list[str]:
    """`[OPTIONS] FILE [PROMPT] IMAGE...`: the usage line as click writes it."""
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in command.get_params(ctx):
        if param.param_type_name == "argument":
            name = param.metavar or (param.name or "").upper()
            name = name if param.required else f"[{name}]"
            pieces.append(name + ("..." if param.nargs != 1 else ""))
    return pieces


class TidyParams:
    """Gives a click command's options readable placeholders as they are listed."""

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)  # type: ignore[misc]
        for param in params:
            tidy(param)
        return params


class Command(TidyParams, TyperCommand):
    """A command whose help and usage line use readable placeholders."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        return usage_pieces(self, ctx)


class Group(TidyParams, TyperGroup):
    """A command group whose own options use readable placeholders."""


class App(typer.Typer):
    """A typer app whose group and commands use readable placeholders."""

    def __init__(self, **settings: Any) -> None:
        super().__init__(cls=Group, **settings)

    def command(self, *args: Any, **settings: Any) -> Any:
        settings.setdefault("cls", Command)
        return super().command(*args, **settings)
