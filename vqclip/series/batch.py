"""Batches: read prompt files or YAML lists into items, pick a shard, run each item once."""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from omegaconf import DictConfig, OmegaConf

from vqclip.errors import UsageError, VqclipError, first_line
from vqclip.outputs.video import frame_interval
from vqclip.run.config import build_config
from vqclip.run.flags import LINE_FLAGS
from vqclip.run.prepare import check_aim
from vqclip.series.items import SeriesEngine, SeriesResult, StopSwitch, WorkItem, item_key, run_items
from vqclip.suggest import unknown_name

if TYPE_CHECKING:
    from vqclip.run.events import Callback

OTHER_FLAGS = ("--preset", "--set", "-s")
# Flags start at the first " --word", or at " -s KEY=VALUE"; what comes before is the prompt.
_FLAGS_START = re.compile(r"(?:^|\s)(?=--[A-Za-z]|-s\s+[\w.]+=)")


@dataclass
class BatchItem:
    """One item of a batch: where it came from, and the settings it adds to the batch's."""

    index: int
    text: str  # the line, or the YAML mapping as canonical JSON: hashed into the key
    line: int | None = None  # 1-based line number in a prompt file
    values: dict[str, Any] = field(default_factory=dict)  # nested config values
    sets: list[str] = field(default_factory=list)  # the item's --set items
    preset: str | None = None
    error: str | None = None  # a parse error: the item fails without running

    @property
    def key(self) -> str:
        """Stable id from position and text: an edited line runs again, others are skipped."""
        return item_key(self.index, self.text)


def parse_batch(text: str, *, yaml_list: bool | None = None) -> list[BatchItem]:
    """Items from a prompt file (one per line) or a YAML list; None = detect from the text."""
    if yaml_list is None:
        first = next((s for s in text.splitlines() if s.strip() and not s.lstrip().startswith("#")), "")
        yaml_list = first.lstrip().startswith("- ") or first.strip() == "-"
    if yaml_list:
        return _parse_yaml_items(text)
    items = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line and not line.startswith("#"):
            items.append(parse_line(line, index=len(items), line=number))
    return items


def load_batch(path: str | Path) -> list[BatchItem]:
    """Read a batch file: `.yaml`/`.yml` is a YAML list; anything else is detected from the text."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read batch file {path}: {err.strerror or err}") from None
    except UnicodeDecodeError:
        raise UsageError(f"batch file {path} is not UTF-8 text") from None
    return parse_batch(text, yaml_list=True if path.suffix.lower() in (".yaml", ".yml") else None)


def parse_line(text: str, *, index: int, line: int | None = None) -> BatchItem:
    """One prompt-file line: `prompt text --seed 3 --steps 100 -s key=value`."""
    item = BatchItem(index=index, text=text, line=line)
    match = _FLAGS_START.search(text)
    prompt = (text[: match.start()] if match else text).strip()
    if len(prompt) >= 2 and prompt[0] == prompt[-1] and prompt[0] in "\"'":
        prompt = prompt[1:-1]
    if prompt:
        item.values["prompt"] = prompt
    try:
        tokens = shlex.split(text[match.start():]) if match else []
        _apply_flags(item, tokens)
    except (ValueError, VqclipError) as err:
        item.error = str(err)
    return item


def _apply_flags(item: BatchItem, tokens: list[str]) -> None:
    position = 0
    while position < len(tokens):
        flag, inline = tokens[position], None
        if flag.startswith("--") and "=" in flag:  # --seed=3 as well as --seed 3
            flag, inline = flag.split("=", 1)
        if flag in LINE_FLAGS and LINE_FLAGS[flag].switch and inline is None:
            item.values[LINE_FLAGS[flag].key] = True
            position += 1
            continue
        if flag not in LINE_FLAGS and flag not in OTHER_FLAGS:
            raise UsageError(unknown_name("flag", flag, [*LINE_FLAGS, *OTHER_FLAGS]))
        if inline is not None:
            value = inline
            position += 1
        elif position + 1 < len(tokens):
            value = tokens[position + 1]
            position += 2
        else:
            raise UsageError(f"{flag} needs a value")
        if flag == "--preset":
            item.preset = value
        elif flag in ("--set", "-s"):
            if "=" not in value:
                raise UsageError(f"{flag} {value!r}: expected KEY=VALUE")
            item.sets.append(value)
        elif LINE_FLAGS[flag].repeated:
            item.values.setdefault(LINE_FLAGS[flag].key, []).append(value)
        else:
            item.values[LINE_FLAGS[flag].key] = LINE_FLAGS[flag].value(value)


class _NoAliasLoader(yaml.SafeLoader):
    """A YAML loader that refuses aliases (`*name`): nested ones expand a few hundred bytes into
    gigabytes, and a batch file has no need of them."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise UsageError(f"batch file line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) "
                             "are not allowed; write each item out")
        return super().compose_node(parent, index)


def _parse_yaml_items(text: str) -> list[BatchItem]:
    try:
        data = yaml.load(text, Loader=_NoAliasLoader)  # noqa: S506 - a SafeLoader, without aliases
    except yaml.YAMLError as err:
        first = first_line(err)
        raise UsageError(f"batch file is not valid YAML: {first}") from None
    if not isinstance(data, list):
        raise UsageError("a YAML batch file must be a list of items (prompts or mappings)")
    return [_yaml_item(index, entry) for index, entry in enumerate(data)]


def _yaml_item(index: int, entry: Any) -> BatchItem:
    item = BatchItem(index=index, text=json.dumps(entry, sort_keys=True, default=str))
    if isinstance(entry, str):
        item.values["prompt"] = entry
        return item
    if not isinstance(entry, Mapping):
        item.error = f"expected a prompt or a mapping of config keys, got {entry!r}"
        return item
    entry = dict(entry)
    item.preset = entry.pop("preset", None)
    sets = entry.pop("set", [])
    item.sets = [sets] if isinstance(sets, str) else [str(s) for s in sets]
    for key, value in entry.items():  # dotted keys ("vqgan.model: x") become nested mappings
        node = item.values
        *parents, leaf = str(key).split(".")
        for part in parents:
            node = node.setdefault(part, {})
        if isinstance(node.get(leaf), dict) and isinstance(value, Mapping):
            node[leaf].update(value)
        else:
            node[leaf] = value
    return item


def parse_shard(text: str) -> tuple[int, int]:
    """"i/n" → (i, n): this process takes the items whose index % n == i (i is 0-based)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise UsageError(f"--shard {text!r}: expected I/N, e.g. 0/4 (I counts from 0)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise UsageError(f"--shard {text!r}: need 0 <= I < N")
    return index, count


def shard_from_env(env: Mapping[str, str] | None = None) -> tuple[int, int] | None:
    """The shard a SLURM array task or a torchrun-style launcher assigns, if any."""
    env = os.environ if env is None else env

    def number(name: str, default: int | None = None) -> int:
        text = env.get(name)
        if text is None and default is not None:
            return default
        try:
            return int(str(text))
        except ValueError:
            raise UsageError(f"environment variable {name}={text!r} is not a whole number") from None

    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        # --array=1-4 numbers tasks from 1, --array=0-9:2 steps by 2: map both onto 0..count-1
        first, step = number("SLURM_ARRAY_TASK_MIN", 0), number("SLURM_ARRAY_TASK_STEP", 1)
        index = (number("SLURM_ARRAY_TASK_ID") - first) // max(step, 1)
        return _checked(index, number("SLURM_ARRAY_TASK_COUNT"), "SLURM_ARRAY_TASK_*")
    if "RANK" in env and "WORLD_SIZE" in env:
        return _checked(number("RANK"), number("WORLD_SIZE"), "RANK/WORLD_SIZE")
    return None


def _checked(index: int, count: int, source: str) -> tuple[int, int]:
    if count < 1 or not 0 <= index < count:
        raise UsageError(f"{source} gives shard {index}/{count}: need 0 <= index < count")
    return index, count


def select_shard(items: list[BatchItem], shard: tuple[int, int] | None) -> list[BatchItem]:
    """The items of one shard (all of them when `shard` is None)."""
    if shard is None:
        return list(items)
    index, count = shard
    return [item for item in items if item.index % count == index]


class BatchSettings:
    """The batch-wide settings (preset, --config files, --set) and each item's config on top.

    With `video_fps` (the batch writes each item's video), an item for which neither the batch
    (its --set, -c files) nor its line chooses save_every saves enough frames for a video of at
    least MIN_VIDEO_SECONDS at that rate, as generate --video does."""

    def __init__(self, *, preset: str | None = None, config_files: Iterable[str | Path] = (),
                 sets: Iterable[str] = (), video_fps: float | None = None) -> None:
        self.preset = preset
        self.config_files = list(config_files)
        self.sets = list(sets)
        self.video_fps = video_fps
        self._bases: dict[str | None, dict[str, Any]] = {}
        self._chosen: dict[str | None, bool] = {}  # whether the batch's own settings set save_every
        self.base()  # a bad batch-wide setting is a usage error now, not N failed items later

    def base(self, preset: str | None = None) -> dict[str, Any]:
        """The batch config (with the item's preset instead of the batch's, if it has one)."""
        preset = preset or self.preset
        if preset not in self._bases:
            cfg, provenance = build_config(preset=preset, config_files=self.config_files, dotlist=self.sets)
            self._bases[preset] = OmegaConf.to_container(cfg, resolve=True)
            source = provenance["save_every"]
            self._chosen[preset] = source != "defaults" and not source.startswith("preset ")
        return self._bases[preset]

    def config(self, item: BatchItem) -> DictConfig:
        """The item's config: batch settings < the item's values < the item's --set."""
        if item.error:
            raise UsageError(item.error)
        try:
            cfg, _ = build_config(base=self.base(item.preset), flags=item.values, dotlist=item.sets)
        except VqclipError as err:  # the source label build_config gives to this layer
            raise type(err)(str(err).replace("command-line flags", "the item's settings")) from None
        check_aim(cfg)
        chosen = (self._chosen[item.preset or self.preset] or "save_every" in item.values
                  or any(entry.startswith("save_every=") for entry in item.sets))
        if self.video_fps is not None and not chosen:
            cfg.save_every = frame_interval(cfg.steps, self.video_fps)
        return cfg


@dataclass
class BatchResult(SeriesResult):
    """A series result that also says which shard ran and how many items it had."""

    shard: tuple[int, int] | None = None
    total: int = 0

    def to_json(self) -> dict[str, Any]:
        """The --json object of `vqclip batch`."""
        data = super().to_json()
        data["shard"] = f"{self.shard[0]}/{self.shard[1]}" if self.shard else None
        data["total"] = self.total
        return data


def plan_engine(*, ray: bool = False, ray_address: str | None = None, ray_actors: int | None = None,
                workers: int | None = None, devices: str | None = None,
                threads: int | None = None) -> SeriesEngine | None:
    """What runs a batch's items: Ray actors (`ray`), local worker processes (`workers`,
    `devices`), or this process (None); a mix of the two kinds is a UsageError."""
    if ray:
        from vqclip.series.ray_pool import plan_ray

        if workers is not None or devices is not None:
            raise UsageError("--ray runs the items in Ray actors: give --ray or --workers/--devices, "
                             "not both")
        return plan_ray(address=ray_address, actors=ray_actors, threads=threads)
    if ray_address is not None or ray_actors is not None:
        raise UsageError("--ray-address and --ray-actors go with --ray")
    from vqclip.series.pool import plan_workers

    return plan_workers(workers=workers, devices=devices, threads=threads)


def batch(
    items: list[BatchItem],
    *,
    name: str,
    preset: str | None = None,
    config_files: Iterable[str | Path] = (),
    flags: Mapping[str, Any] | None = None,
    sets: Iterable[str] = (),
    out: Path | None = None,
    shard: str | None = None,
    video: str | None = None,
    fps: float = 12.0,
    callbacks: Iterable[Callback] = (),
    report: Callable[[dict[str, Any]], None] | None = None,
    stop: StopSwitch | None = None,
    engine: SeriesEngine | None = None,
) -> BatchResult:
    """The items of a prompt file (`name`: the file's, in messages and in the default folder
    `<out>/batch-<name>`) run as `vqclip batch` runs them. `flags` (config values, as the
    command's per-run flags give them) and `sets` apply to every item below its own settings;
    `shard` is "I/N", by default from SLURM_ARRAY_TASK_* or RANK/WORLD_SIZE, else every item.
    With `video`, each finished item's frames also become `progress.<video>` in its run folder
    at `fps` (each record's `video`). A bad setting, shard or video format is a UsageError
    before any item runs."""
    from vqclip.outputs.run_folder import slugify
    from vqclip.outputs.video import check_video, progress_videos
    from vqclip.run.flags import as_overrides

    if video is not None:
        check_video(video, fps)
    if not items:
        raise UsageError(f"batch {name}: no items (blank lines and # comments are skipped)")
    chosen = parse_shard(shard) if shard is not None else shard_from_env()
    flags, sets = dict(flags or {}), list(sets)
    # A bad flag is blamed on the flags here; then they join the sets, below every item's own.
    build_config(preset=preset, config_files=list(config_files), flags=flags, dotlist=sets)
    settings = BatchSettings(preset=preset, config_files=config_files, sets=[*as_overrides(flags), *sets],
                             video_fps=fps if video is not None else None)
    folder = out if out is not None else Path(settings.base()["out"]) / f"batch-{slugify(Path(name).stem)}"
    result = run_batch(items, folder, settings, shard=chosen, callbacks=callbacks, report=report,
                       stop=stop, engine=engine)
    if video is not None:
        made = progress_videos([Path(record["run_dir"]) for record in result.ok], video, fps)
        for record, path in zip(result.ok, made, strict=True):
            record["video"] = str(path)
    return result


def run_batch(
    items: list[BatchItem],
    folder: Path,
    settings: BatchSettings,
    *,
    shard: tuple[int, int] | None = None,
    callbacks: Iterable[Callback] = (),
    report: Callable[[dict[str, Any]], None] | None = None,
    stop: StopSwitch | None = None,
    engine: SeriesEngine | None = None,
) -> BatchResult:
    """Run this shard's items into `folder`, skipping those its manifest lists as ok: in this
    process, or by `engine` (local worker processes, Ray actors)."""
    chosen = select_shard(items, shard)
    work = [
        WorkItem(index=item.index, key=item.key, label=str(item.values.get("prompt", "")),
                 make_config=functools.partial(settings.config, item),  # made where the item runs
                 info={"line": item.line} if item.line is not None else {})
        for item in chosen
    ]
    extra = {"shard": f"{shard[0]}/{shard[1]}"} if shard else {}
    folder.mkdir(parents=True, exist_ok=True)
    series = run_items(work, folder, callbacks=callbacks, report=report, stop=stop, extra=extra,
                       engine=engine)
    return BatchResult(**vars(series), shard=shard, total=len(items))
