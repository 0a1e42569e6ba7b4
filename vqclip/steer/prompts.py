"""Parse prompt strings: "text:weight:stop" items, `|` between items, `^` between timed sets."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from vqclip.errors import UsageError

if TYPE_CHECKING:
    from omegaconf import DictConfig

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


@dataclass(frozen=True)
class StagePlan:
    """The text prompts in force from step `start` on (`label`: the set as written)."""

    start: int
    label: str
    prompts: tuple[Prompt, ...]


@dataclass(frozen=True)
class PromptPlan:
    """Every prompt of a run, parsed: text stages, and the negative, image and noise prompts
    that apply in every stage (noise prompts with the seed of their random vector)."""

    stages: tuple[StagePlan, ...]
    negatives: tuple[Prompt, ...]
    images: tuple[Prompt, ...]
    noise: tuple[tuple[int, Prompt], ...]


def plan_prompts(cfg: DictConfig) -> PromptPlan:
    """Parse and check every prompt of the config; a UsageError names the first bad one. Each
    text prompt's text (negatives too) is put into `text_template`, as CLIP will embed it."""

    def templated(prompts: list[Prompt]) -> tuple[Prompt, ...]:
        return tuple(replace(p, text=cfg.text_template.replace("{}", p.text)) for p in prompts)

    stages = tuple(StagePlan(start, text.strip(), templated(parse_prompt_sets(text)[0]))
                   for start, text in story_sets(cfg))
    images = tuple(parse_prompt(spec) for spec in cfg.image_prompts)
    noise = tuple(noise_prompt(spec) for spec in cfg.noise_prompts)
    return PromptPlan(stages, templated(negative_prompts(cfg.negative)), images, noise)


def negative_prompts(spec: str) -> list[Prompt]:
    """`--negative "blurry | text:0.5"`: each item pushes away with its (positive) weight."""
    items = [parse_prompt(item) for item in spec.split("|") if item.strip()]
    return [Prompt(p.text, -abs(p.weight), p.stop) for p in items]


def noise_prompt(spec: str) -> tuple[int, Prompt]:
    """A "seed[:weight]" item: the seed of a random unit CLIP vector, and its prompt."""
    prompt = parse_prompt(spec)
    try:
        return int(prompt.text), prompt
    except ValueError:
        raise UsageError(f"noise prompt {spec!r}: expected SEED[:WEIGHT], e.g. 3:0.5") from None


def story_sets(cfg: DictConfig) -> list[tuple[int, str]]:
    """(start step, prompt text) of each stage, from `^`-separated sets or the `story` list."""
    if cfg.story and "^" in cfg.prompt:
        raise UsageError("give story stages either with '^' in the prompt or as `story`, not both")
    if cfg.story:
        stages = sorted((item.start, item.prompt) for item in cfg.story)
        if stages[0][0] != 0:
            raise UsageError(f"story: the first stage must start at step 0, not {stages[0][0]}")
        return stages
    if not cfg.prompt.strip():
        return []
    parse_prompt_sets(cfg.prompt)  # an empty set is refused before the steps are split
    parts = cfg.prompt.split("^")
    every = cfg.switch_every or -(-cfg.steps // len(parts))
    return [(index * every, part) for index, part in enumerate(parts)]
