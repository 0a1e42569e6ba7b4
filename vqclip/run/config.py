"""The config schema and its merge: defaults < preset < --config files < flags and --set."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vqclip.errors import ConfigError, first_line
from vqclip.steer.prompts import plan_prompts
from vqclip.suggest import KEY_ALIASES, unknown_name

MAX_SIDE = 4096
MAX_BATCH = 256
# --candidates N without candidate_steps: the candidates race for this share of the steps
# (BENCHMARKS.md, "The best of N candidates").
CANDIDATE_SHARE = 0.2
MAX_STEPS = 10_000_000  # days of steps even for the smallest models
PRECISIONS = ("auto", "fp32", "tf32", "bf16")
# open_clip loads these from their own folder or hub repo and ignores any pretrained tag.
SELF_CONTAINED_CLIP = ("local-dir:", "hf-hub:")


@dataclass
class VQGANConfig:
    """Which VQGAN draws: a registry name, or a config + checkpoint pair of paths."""

    model: str | None = "imagenet_f16_16384"
    config: str | None = None
    checkpoint: str | None = None


@dataclass
class ClipModelConfig:
    """One member of a CLIP ensemble, with the weight of its losses."""

    model: str = MISSING
    pretrained: str | None = None
    weight: float = 1.0


@dataclass
class ClipConfig:
    """Which CLIP judges: any open_clip name (`local-dir:PATH` too) and a tag or weights file.

    A non-empty `models` list is an ensemble (as pixray's better presets use) and replaces
    `model`/`pretrained`.
    """

    model: str = "ViT-B-32-quickgelu"
    pretrained: str | None = "openai"
    models: list[ClipModelConfig] = field(default_factory=list)


@dataclass
class PixelConfig:
    """The `pixel` generator: optimize pixels at 1/scale of the size, upsampled."""

    scale: int = 1


@dataclass
class FourierConfig:
    """The `fourier` generator: spectrum amplitudes fall as 1/frequency**decay."""

    decay: float = 1.0


@dataclass
class OptimizerConfig:
    """The optimizer by name, with extra keyword options for its constructor."""

    name: str = "adam"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class AugmentConfig:
    """Strength of each named augmentation (used when it is listed in `augmentations`)."""

    affine: float = 0.5
    perspective: float = 0.2
    jitter: float = 0.1
    noise: float = 0.1
    erasing: float = 0.25
    sharpness: float = 0.3


@dataclass
class LossItem:
    """A registered regularizer with its weight, constant or decaying to zero (`linear`: at the
    last step, `early`: at `until` of the run)."""

    name: str = MISSING
    weight: float = 1.0
    decay: str = "constant"
    until: float = 0.5


@dataclass
class StoryItem:
    """A prompt set that takes over at step `start` (story mode)."""

    prompt: str = MISSING
    start: int = 0


@dataclass
class ScheduleConfig:
    """The learning-rate schedule by name, with its options (e.g. step: factor, at)."""

    name: str = "constant"
    options: dict[str, float] = field(default_factory=dict)


@dataclass
class GenerateConfig:
    """Everything one generation needs; its resolved form is saved with every run."""

    prompt: str = ""
    negative: str = ""
    image_prompts: list[str] = field(default_factory=list)
    noise_prompts: list[str] = field(default_factory=list)
    story: list[StoryItem] = field(default_factory=list)
    switch_every: int = 0
    size: list[int] = field(default_factory=lambda: [384, 384])
    steps: int = 300
    seed: int | None = None
    lr: float = 0.1
    lr_schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    cutn: int = 32
    cut_pow: float = 1.0
    cut_min: float = 0.0
    cut_full: bool = False
    cut_method: str = "random"
    cut_padding: str = "reflection"
    augmentations: list[str] = field(default_factory=lambda: ["flip", "affine", "noise"])
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    init_image: str | None = None
    init_weight: float = 0.0
    init_weight_decay: str = "constant"
    init_weight_until: float = 0.5
    init_noise: str = "tokens"
    losses: list[LossItem] = field(default_factory=list)
    save_every: int = 50
    device: str = "auto"
    precision: str = "auto"
    low_memory: bool = False
    max_memory: str | None = None
    plan_memory: bool = True
    compile: bool = False
    capture: bool = False  # record the CUDA step as one graph (not yet measured on a GPU)
    batch_size: int = 1
    candidates: int = 1
    candidate_steps: int | None = None
    ema: float = 0.0
    out: str = "outputs"
    generator: str = "vqgan"
    vqgan: VQGANConfig = field(default_factory=VQGANConfig)
    pixel: PixelConfig = field(default_factory=PixelConfig)
    fourier: FourierConfig = field(default_factory=FourierConfig)
    clip: ClipConfig = field(default_factory=ClipConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)


def list_presets() -> list[str]:
    """Names of the presets that ship with vqclip."""
    folder = resources.files("vqclip") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _preset_layer(name: str) -> tuple[str, DictConfig]:
    if name not in list_presets():
        raise ConfigError(unknown_name("preset", name, list_presets()))
    text = (resources.files("vqclip") / "presets" / f"{name}.yaml").read_text()
    return f"preset {name}", _parse_yaml(text, f"preset {name}")


def _file_layer(path: str | Path) -> tuple[str, DictConfig]:
    source = f"config file {path}"
    try:
        text = Path(path).read_text()
    except OSError as err:
        raise ConfigError(f"cannot read {source}: {err.strerror}") from None
    return source, _parse_yaml(text, source)


def _parse_yaml(text: str, source: str) -> DictConfig:
    try:
        layer = OmegaConf.create(text) if text.strip() else OmegaConf.create({})
    except Exception as err:  # yaml.YAMLError and friends carry a multi-line message
        raise ConfigError(f"{source}{_yaml_place(err)} is not valid YAML: {_yaml_problem(err)}") from None
    if not isinstance(layer, DictConfig):
        raise ConfigError(f"{source} must be a mapping of keys to values")
    return layer


def _yaml_place(err: Exception) -> str:
    """, line N" (and column) where a YAML parser saw the problem, if it says."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    return f", line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""


def _yaml_problem(err: Exception) -> str:
    """What a YAML parser found wrong, without its multi-line excerpt of the file."""
    problem = getattr(err, "problem", None)
    context = getattr(err, "context", None)
    return " ".join(str(part) for part in (context, problem) if part) or first_line(err)


def _dotlist_layer(items: list[str], source: str = "--set") -> tuple[str, DictConfig]:
    for item in items:
        if "=" not in item:
            raise ConfigError(f"{source} {item!r}: expected KEY=VALUE")
    try:
        layer = OmegaConf.to_container(OmegaConf.from_dotlist(items), resolve=False)
    except OmegaConfBaseException as err:
        raise ConfigError(f"{source}: {err.msg if hasattr(err, 'msg') else err}") from None
    return source, OmegaConf.create(literal(layer))


_INTERPOLATION = re.compile(r"(\\*)\$\{")


def literal(data: Any) -> Any:
    """`data` (plain containers) with every string escaped so that OmegaConf keeps it as
    written: "${oc.env:HOME}" in a prompt stays that text. Only -c config files (and presets)
    may use interpolation."""
    if isinstance(data, str):
        # OmegaConf reads \${ as a literal ${, and \\ before ${ as one backslash
        return _INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", data)
    if isinstance(data, dict):
        return {key: literal(value) for key, value in data.items()}
    if isinstance(data, list):
        return [literal(value) for value in data]
    return data


def _leaf_keys(node: Any, prefix: str = "") -> list[str]:
    if isinstance(node, DictConfig):
        keys = []
        for key in node.keys():
            path = f"{prefix}.{key}" if prefix else str(key)
            keys.extend(_leaf_keys(node._get_node(key), path))
        return keys
    return [prefix]


def _unknown_key(above: list[str], part: str, parent: Any) -> str:
    """The message for an unknown key `part` below the keys `above`, named as a full dotted key."""
    prefix = "".join(f"{name}." for name in above)
    if not isinstance(parent, DictConfig):
        return f"key={prefix + part!r}: unknown name; {'.'.join(above)} has no keys below it"
    return unknown_name("key", prefix + part, [prefix + str(name) for name in sorted(parent.keys())],
                        {prefix + alias: prefix + key for alias, key in KEY_ALIASES.items()})


def _check_known_keys(layer: DictConfig, schema: DictConfig, source: str) -> None:
    for key in _leaf_keys(layer):
        parent, node = schema, None
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(parent, DictConfig) or part not in parent:
                raise ConfigError(f"{source}: {_unknown_key(parts[:depth], part, parent)}")
            node = parent._get_node(part)
            parent = node
            if isinstance(node, DictConfig) and node._metadata.object_type is dict:
                break  # free-form mapping such as optimizer.options


def build_config(
    *,
    preset: str | None = None,
    config_files: list[str | Path] | tuple = (),
    flags: dict[str, Any] | None = None,
    dotlist: list[str] | tuple = (),
    base: dict[str, Any] | None = None,
    sweep: list[str] | tuple = (),
    flags_source: str = "command-line flags",
) -> tuple[DictConfig, dict[str, str]]:
    """Merge every source in precedence order; return the config and where each key came from.

    `base` (the settings stored in an image, for --from) sits just above the schema defaults;
    `sweep` (one item's KEY=VALUE of --sweep) is the top layer. Errors name a key's source:
    `flags_source` for `flags` (a library call names its keywords so).
    Text in `base`, `flags` and `dotlist` is literal; interpolations in config files are
    resolved here, a bad one being a ConfigError.
    """
    schema = OmegaConf.structured(GenerateConfig)
    layers = []
    if base is not None:
        layers.append(("settings stored in the --from image", OmegaConf.create(literal(base))))
    if preset:
        layers.append(_preset_layer(preset))
    layers.extend(_file_layer(path) for path in config_files)
    given_flags = {k: v for k, v in (flags or {}).items() if v is not None}
    if given_flags:
        layers.append((flags_source, OmegaConf.create(literal(given_flags))))
    if dotlist:
        layers.append(_dotlist_layer(list(dotlist)))
    if sweep:
        layers.append(_dotlist_layer(list(sweep), "--sweep"))

    merged = schema
    provenance: dict[str, str] = {key: "defaults" for key in _leaf_keys(schema)}
    order = ["defaults", *(source for source, _ in layers)]
    for source, layer in layers:
        _check_known_keys(layer, schema, source)
        try:
            merged = OmegaConf.merge(merged, layer)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or "?"
            raise ConfigError(f"{source}: {key}: {first_line(err)}") from None
        provenance.update({key: source for key in _leaf_keys(layer)})
    # A tag from a layer below the one that named a local-dir:/hf-hub: CLIP belonged to another model.
    if str(merged.clip.model).startswith(SELF_CONTAINED_CLIP) and \
            order.index(provenance["clip.pretrained"]) < order.index(provenance["clip.model"]):
        merged.clip.pretrained = None
    try:
        OmegaConf.to_container(merged, resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"{provenance.get(key, 'config')}: {key}: {first_line(err)}") from None
    validate(merged, provenance)
    return merged, provenance


def _source_of(key: str, provenance: dict[str, str]) -> str:
    """The source that set `key`, one of the keys below it (a mapping's) or its top-level key."""
    below = [source for leaf, source in provenance.items() if leaf.startswith(key + ".")]
    return provenance.get(key) or (below[-1] if below else None) or \
        provenance.get(key.split(".")[0], "defaults")


def _bad(key: str, value: Any, why: str, provenance: dict[str, str]) -> ConfigError:
    source = _source_of(key, provenance)
    return ConfigError(f"{source}: {key}={_show(value)}: {why}")


def _show(value: Any) -> str:
    if isinstance(value, ListConfig):
        value = OmegaConf.to_container(value)
    return str(value)


def validate(cfg: DictConfig, provenance: dict[str, str]) -> None:
    """Check value ranges that types alone cannot express; errors name key, value and source."""
    size = list(cfg.size)
    if len(size) != 2:
        raise _bad("size", cfg.size, "expected [width, height]", provenance)
    if min(size) <= 0 or max(size) > MAX_SIDE:
        raise _bad("size", cfg.size, f"each side must be between 1 and {MAX_SIDE}", provenance)
    checks = [
        ("steps", cfg.steps >= 1, "must be at least 1"),
        ("steps", cfg.steps <= MAX_STEPS, f"must be at most {MAX_STEPS}"),
        ("lr", 0 < cfg.lr < math.inf, "must be a positive number"),
        ("cutn", cfg.cutn >= 1, "must be at least 1"),
        ("batch_size", 1 <= cfg.batch_size <= MAX_BATCH, f"must be between 1 and {MAX_BATCH}"),
        ("candidates", 1 <= cfg.candidates <= MAX_BATCH, f"must be between 1 and {MAX_BATCH}"),
        ("candidate_steps", cfg.candidate_steps is None or 1 <= cfg.candidate_steps <= cfg.steps,
         "must be between 1 and steps"),
        ("batch_size", cfg.candidates == 1 or cfg.batch_size == 1,
         f"--candidates {cfg.candidates} keeps one image of {cfg.candidates} seeds; it cannot go with a "
         "batch size above 1"),
        ("ema", 0 <= cfg.ema < 1, "must be a fraction from 0 (off) to below 1"),
        ("cut_pow", 0 < cfg.cut_pow < math.inf, "must be a positive number"),
        ("init_weight", math.isfinite(cfg.init_weight), "must be a number"),
        ("cut_min", 0 <= cfg.cut_min <= 1, "must be a fraction between 0 and 1"),
        ("init_weight_until", 0 < cfg.init_weight_until <= 1, "must be a fraction above 0, at most 1"),
        ("save_every", cfg.save_every >= 0, "must be 0 (never) or more"),
        ("save_every", cfg.save_every <= MAX_STEPS, f"must be at most {MAX_STEPS}"),
        ("pixel.scale", cfg.pixel.scale >= 1, "must be at least 1"),
        ("fourier.decay", 0 <= cfg.fourier.decay < math.inf, "must be a number, 0 or more"),
        ("switch_every", cfg.switch_every >= 0, "must be 0 (split the steps evenly) or more"),
        ("switch_every", cfg.switch_every <= MAX_STEPS, f"must be at most {MAX_STEPS}"),
        ("augment.noise", 0 <= cfg.augment.noise < math.inf, "must be a number, 0 or more"),
        ("augment.erasing", 0 <= cfg.augment.erasing <= 1, "must be a fraction between 0 and 1"),
    ]
    for key, ok, why in checks:
        if not ok:
            raise _bad(key, OmegaConf.select(cfg, key), why, provenance)
    if cfg.precision not in PRECISIONS:
        source = _source_of("precision", provenance)
        raise ConfigError(f"{source}: {unknown_name('precision', cfg.precision, PRECISIONS)}")
    _check_clip_tags(cfg, provenance)
    _check_stages(plan_prompts(cfg), cfg, provenance)  # a bad prompt: reported without torch
    _check_components(cfg, provenance)
    if cfg.max_memory is not None:
        from vqclip.run.memory import parse_bytes

        try:
            parse_bytes(cfg.max_memory)
        except ConfigError:
            raise _bad("max_memory", cfg.max_memory, "expected an amount such as 8GiB or 512MiB",
                       provenance) from None
    if cfg.seed is not None and not 0 <= cfg.seed < 2**63:
        raise _bad("seed", cfg.seed, "must be between 0 and 2**63-1", provenance)
    has_paths = cfg.vqgan.config is not None or cfg.vqgan.checkpoint is not None
    if has_paths and (cfg.vqgan.config is None or cfg.vqgan.checkpoint is None):
        missing = "vqgan.checkpoint" if cfg.vqgan.checkpoint is None else "vqgan.config"
        raise _bad(missing, None, "vqgan.config and vqgan.checkpoint must be given together", provenance)
    if cfg.generator == "vqgan" and not has_paths and not cfg.vqgan.model:
        raise _bad("vqgan.model", None, "name a model or give vqgan.config and vqgan.checkpoint",
                   provenance)


def _check_stages(plan: Any, cfg: DictConfig, provenance: dict[str, str]) -> None:
    """Every story stage starts within the run's steps: a later one would never be drawn."""
    steps = cfg.steps
    for number, stage in enumerate(plan.stages, start=1):
        if stage.start >= steps:
            source = _source_of("story" if cfg.story else "switch_every", provenance)
            raise ConfigError(f"{source}: story stage {number} ({stage.label!r}) starts at step "
                              f"{stage.start}, but the run has {steps} steps (steps={steps} from "
                              f"{_source_of('steps', provenance)})")


def _check_clip_tags(cfg: DictConfig, provenance: dict[str, str]) -> None:
    """A `local-dir:` or `hf-hub:` CLIP carries its own weights: a tag set for it would be ignored."""
    members = [(f"clip.models.{i}", m.model, m.pretrained) for i, m in enumerate(cfg.clip.models)]
    if not members:
        members = [("clip", cfg.clip.model, cfg.clip.pretrained)]
    for key, model, tag in members:
        if tag is not None and str(model).startswith(SELF_CONTAINED_CLIP):
            scheme = str(model).split(":")[0]
            raise _bad(f"{key}.pretrained", tag, f"a {scheme}: CLIP ({model}) carries its own weights; "
                       "leave clip.pretrained unset (or null)", provenance)


def _check_components(cfg: DictConfig, provenance: dict[str, str]) -> None:
    """Every name chosen from a registry, and its options, checked before any model loads."""
    # Imported here: the components bring in torch, which --help and a bad prompt never need.
    from vqclip.steer.augment import AUGMENTATIONS
    from vqclip.steer.cutouts import CUT_METHODS, CUT_PADDINGS
    from vqclip.steer.generators import GENERATORS, INIT_NOISE
    from vqclip.steer.losses import DECAYS, REGULARIZERS
    from vqclip.steer.optimizers import OPTIMIZERS, check_optimizer
    from vqclip.steer.schedules import SCHEDULES, schedule_options

    names = [
        ("generator", cfg.generator, GENERATORS),
        ("init_noise", cfg.init_noise, INIT_NOISE),
        ("init_weight_decay", cfg.init_weight_decay, DECAYS),
        ("cut_method", cfg.cut_method, CUT_METHODS),
        ("cut_padding", cfg.cut_padding, CUT_PADDINGS),
        ("optimizer.name", cfg.optimizer.name.lower(), OPTIMIZERS),
        ("lr_schedule.name", cfg.lr_schedule.name, SCHEDULES),
    ]
    names += [("augmentations", name, AUGMENTATIONS) for name in cfg.augmentations]
    for index, item in enumerate(cfg.losses):
        names += [("losses", item.name, REGULARIZERS), (f"losses.{index}.decay", item.decay, DECAYS)]
        if not 0 < item.until <= 1:
            raise _bad(f"losses.{index}.until", item.until, "must be a fraction above 0, at most 1",
                       provenance)
    for key, name, registry in names:
        _sourced(key, provenance, registry.check, name, key)
    _sourced("optimizer.options", provenance, check_optimizer, cfg.optimizer.name, cfg.lr,
             OmegaConf.to_container(cfg.optimizer.options))
    _sourced("lr_schedule.options", provenance, schedule_options, cfg.lr_schedule.name,
             OmegaConf.to_container(cfg.lr_schedule.options))
    _sourced("generator", provenance, GENERATORS[cfg.generator].check, cfg)


def _sourced(key: str, provenance: dict[str, str], check: Any, *args: Any) -> None:
    """Run `check`, prefixing a ConfigError with the source that set `key`."""
    try:
        check(*args)
    except ConfigError as err:
        raise ConfigError(f"{_source_of(key, provenance)}: {err}") from None


def candidate_steps(cfg: DictConfig) -> int:
    """Steps the candidates of --candidates N run before the best is kept: candidate_steps, or
    CANDIDATE_SHARE of the steps (at least 1)."""
    if cfg.candidate_steps is not None:
        return cfg.candidate_steps
    return max(1, round(cfg.steps * CANDIDATE_SHARE))


def parse_size(text: str, name: str = "--size") -> list[int]:
    """Parse "WxH" (or a single "N" for a square) into [W, H]; an error names `name`."""
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) == 1:
        parts = parts * 2
    try:
        width, height = (int(p) for p in parts)
    except ValueError:
        raise ConfigError(f"{name} {text!r}: expected WIDTHxHEIGHT, e.g. 256x256") from None
    return [width, height]

