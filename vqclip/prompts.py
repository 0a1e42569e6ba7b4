"""Parse prompt strings: "text:weight:stop" items, `|` between items, `^` between timed sets."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from vqclip.errors import UsageError

# Only a trailing number counts as a weight or stop, so "photo: a cat", URLs and
# Windows paths ("C:\\art\\x.png") keep their colons.
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?inf"
_TRAILING_NUMBER = re.compile(rf"^(?P<head>.*):(?P<num>{_NUMBER})\s*$", re.DOTALL)
# "scheme://host" with nothing after the host: a trailing ":8080" there is a port.
_URL_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/]*$")


@dataclass(frozen=True)
class Prompt:
    """One weighted prompt: negative weights push away; `stop` ends its pull below that distance."""

    text: str
    weight: float = 1.0
    stop: float = -math.inf


def _split_trailing_number(text: str) -> tuple[str, float | None]:
    match = _TRAILING_NUMBER.match(text)
    if match is None or _URL_AUTHORITY.match(match["head"].strip()):
        return text, None
    return match["head"], float(match["num"])


def parse_prompt(item: str) -> Prompt:
    """Parse one "text[:weight[:stop]]" item."""
    head, last = _split_trailing_number(item)
    if last is None:
        return Prompt(_clean(item, item))
    head2, first = _split_trailing_number(head)
    if first is None:
        return Prompt(_clean(head, item), weight=last)
    return Prompt(_clean(head2, item), weight=first, stop=last)


def _clean(text: str, item: str) -> str:
    text = text.strip()
    if not text:
        raise UsageError(f"prompt item {item.strip()!r} has a weight but no text")
    return text


def parse_prompt_sets(spec: str) -> list[list[Prompt]]:
    """Parse "a | b:0.5 ^ c" into prompt sets; empty items are skipped, empty sets refused."""
    sets: list[list[Prompt]] = []
    for index, part in enumerate(spec.split("^")):
        items = [parse_prompt(item) for item in part.split("|") if item.strip()]
        if not items:
            raise UsageError(f"prompt set {index + 1} of {spec!r} is empty")
        sets.append(items)
    return sets
