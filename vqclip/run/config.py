"""The config schema and its merge: defaults < preset < --config files < flags and --set.

The schema is `GenerateConfig` and what the components declare beside themselves: each
generator's options as a section named after it, each augmentation's strength under
`augment`, and each loss's options in its `losses:` item (plugins loaded first)."""

from __future__ import annotations

import copy
import functools
import logging
import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from omegaconf import MISSING, DictConfig, ListConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException
from omegaconf.nodes import FloatNode

from vqclip.errors import ConfigError, first_line
from vqclip.models.sources import SELF_CONTAINED_CLIP, clip_sections
from vqclip.steer.prompts import plan_prompts
from vqclip.suggest import KEY_ALIASES, unknown_name

MAX_SIDE = 4096
MAX_BATCH = 256
# --candidates N without candidate_steps: the candidates race for this share of the steps
# (BENCHMARKS.md, "The best of N candidates").
CANDIDATE_SHARE = 0.2
MAX_STEPS = 10_000_000  # days of steps even for the smallest models
PRECISIONS = ("auto", "fp32", "tf32", "bf16")

log = logging.getLogger(__name__)


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
class OptimizerConfig:
    """The optimizer by name, with extra keyword options for its constructor."""

    name: str = "adam"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class StoryItem:
    """A prompt set that takes over at step `start` (story mode)."""

    prompt: str = MISSING
    start: int = 0


@dataclass
class ScheduleConfig:
    """The learning-rate schedule by name, with its options (e.g. step: factor, at), which the
    schedule's own options dataclass checks."""

    name: str = "constant"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerateConfig:
    """The keys of every generation; `config_schema` adds the components' own sections (the
    generators' `pixel`, `fourier`, the augmentations' `augment`). The resolved config is saved
    with every run."""

    prompt: str = ""
    negative: str = ""
    image_prompts: list[str] = field(default_factory=list)
    noise_prompts: list[str] = field(default_factory=list)
    story: list[StoryItem] = field(default_factory=list)
    switch_every: int = 0
    text_template: str = "{}"  # CLIP embeds each text prompt (negatives too) with it in place of {}
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
    init_image: str | None = None
    init_weight: float = 0.0
    init_weight_decay: str = "constant"
    init_weight_until: float = 0.5
    init_noise: str = "tokens"
    losses: list[Any] = field(default_factory=list)  # items checked by steer.losses.read_loss
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
    clip: ClipConfig = field(default_factory=ClipConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)


def config_schema() -> DictConfig:
    """The full schema: GenerateConfig with a section of options for each generator that takes
    any, named after it, and `augment` with the strength of each augmentation that takes one.
    Plugins are loaded first (once), so that their components are in it."""
    # Imported here: the components bring in torch, which --help never needs.
    from vqclip.plugins import load_plugins
    from vqclip.steer.augment import AUGMENTATIONS
    from vqclip.steer.generators import GENERATORS

    load_plugins()
    generators = tuple((name, GENERATORS.options(name)) for name in GENERATORS)
    strengths = tuple((name, AUGMENTATIONS[name].strength) for name in AUGMENTATIONS)
    return copy.deepcopy(_schema(generators, strengths))


@functools.lru_cache(maxsize=4)
def _schema(generators: tuple[tuple[str, type | None], ...],
            strengths: tuple[tuple[str, float | None], ...]) -> DictConfig:
    """The schema for these generators' options and augmentations' strengths, made once for
    them (a structured config takes milliseconds to make; a copy of it a fraction of that)."""
    schema = _core_schema()
    with open_dict(schema):
        schema.augment = DictConfig({name: FloatNode(strength, is_optional=False)
                                     for name, strength in strengths if strength is not None})
        for name, options in generators:
            if options is None:
                continue
            if name in schema:
                log.warning("generator %r: its options would replace the config key %r; left out",
                            name, name)
                continue
            schema[name] = OmegaConf.structured(options)
    OmegaConf.set_struct(schema.augment, True)  # an unknown strength is an unknown key
    return schema


def _core_schema() -> DictConfig:
    """GenerateConfig as a structured config (a copy of one made once)."""
    return copy.deepcopy(_generate_config())


@functools.cache
def _generate_config() -> DictConfig:
    return OmegaConf.structured(GenerateConfig)


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
            OmegaConf.from_dotlist([item])
        except OmegaConfBaseException:
            pass  # named below, with the merged items
        except yaml.YAMLError as err:  # the value is read as YAML
            key, value = item.split("=", 1)
            raise ConfigError(f"{source} {item!r}: the value is not valid YAML ({_yaml_problem(err)}); "
                              f"quote it: {key}='{value}'") from None
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
        return unknown_name("key", part, [], listed=f"none, {'.'.join(above)} has no keys below it",
                            prefix=prefix)
    return unknown_name("key", part, [str(name) for name in sorted(parent.keys())], KEY_ALIASES,
                        prefix=prefix)


def _check_known_keys(layer: DictConfig, schema: DictConfig, source: str) -> None:
    for key in _leaf_keys(layer):
        parent, node = schema, None
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(parent, DictConfig) or part not in parent:
                raise ConfigError(f"{source}: {_unknown_key(parts[:depth], part, parent)}")
            node = parent._get_node(part)
            parent = node
            if isinstance(node, DictConfig) and node._metadata.object_type is dict \
                    and not OmegaConf.is_struct(node):
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
    for source, layer in layers:  # size as --size takes it ("256x256") in any layer
        if isinstance(layer.get("size"), str):
            layer.size = parse_size(layer.size, f"{source}: size")

    # The components' sections bring in torch (and plugins): the keys of GenerateConfig are
    # merged and checked first, so that a bad value or prompt is reported without them; then
    # the sections' keys (and any unknown key) against the schema that has the sections.
    core = _core_schema()
    own = [(source, OmegaConf.masked_copy(layer, [key for key in layer if key in core]))
           for source, layer in layers]
    rest = [(source, OmegaConf.masked_copy(layer, [key for key in layer if key not in core]))
            for source, layer in layers]
    provenance: dict[str, str] = {key: "defaults" for key in _leaf_keys(core)}
    merged = _merge_layers(core, core, own, provenance)
    # A tag from a layer below the one that named a local-dir:/hf-hub: CLIP belonged to another model.
    order = ["defaults", *(source for source, _ in layers)]
    if str(merged.clip.model).startswith(SELF_CONTAINED_CLIP) and \
            order.index(provenance["clip.pretrained"]) < order.index(provenance["clip.model"]):
        merged.clip.pretrained = None
    for section in ("lr_schedule", "optimizer"):
        _drop_options_of_other_names(merged, own, provenance, section, core[section].name)
    _check_resolves(merged, provenance)
    _check_values(merged, provenance)
    schema = config_schema()
    provenance = {**{key: "defaults" for key in _leaf_keys(schema)}, **provenance}
    with open_dict(merged):
        for key in [key for key in schema if key not in merged]:  # in the schema's order
            merged[key] = schema[key]
    if any(rest_layer for _, rest_layer in rest):
        merged = _merge_layers(merged, schema, rest, provenance)
        _check_resolves(merged, provenance)
    _spell_out_losses(merged, provenance)
    _check_components(merged, provenance)
    return merged, provenance


def _drop_options_of_other_names(merged: DictConfig, layers: list[tuple[str, DictConfig]],
                                 provenance: dict[str, str], section: str, default: str) -> None:
    """Drop each `SECTION.options` key (of `lr_schedule` or `optimizer`) set in a layer under a
    name other than the one the merged config gives: a preset's cosine floor where the command
    line asks for `step`, a config file's sgd momentum where it asks for `adam`."""
    name = default  # the name in force at each layer, going up
    in_force = {"defaults": name}
    for source, layer in layers:
        chosen = layer.get(section) or {}
        if "name" in chosen:
            name = chosen["name"]
        in_force[source] = name
    options = merged[section].options
    for key in list(options):
        full = f"{section}.options.{key}"
        if str(in_force.get(provenance.get(full, "defaults"))).lower() != str(merged[section].name).lower():
            del options[key]
            provenance.pop(full, None)


def _merge_layers(merged: DictConfig, schema: DictConfig, layers: list[tuple[str, DictConfig]],
                  provenance: dict[str, str]) -> DictConfig:
    """`layers` merged over `merged` in turn, each key checked against `schema`; `provenance`
    notes the source of each key."""
    for source, layer in layers:
        if not layer:
            continue  # a layer with no keys of this pass: no merge (each one copies the config)
        _check_known_keys(layer, schema, source)
        try:
            merged = OmegaConf.merge(merged, layer)
        except OmegaConfBaseException as err:
            key = getattr(err, "full_key", None) or "?"
            raise ConfigError(f"{source}: {key}: {first_line(err)}") from None
        provenance.update({key: source for key in _leaf_keys(layer)})
    return merged


def _check_resolves(cfg: DictConfig, provenance: dict[str, str]) -> None:
    """Refuse an interpolation (of a config file) that does not resolve, naming its key."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or "?"
        raise ConfigError(f"{provenance.get(key, 'config')}: {key}: {first_line(err)}") from None


def _spell_out_losses(cfg: DictConfig, provenance: dict[str, str]) -> None:
    """Each `losses:` item with every option of its loss, defaults included, so that the
    resolved config records what ran; a bad item is a ConfigError naming its key and source."""
    from vqclip.steer.losses import loss_item, read_loss

    items = [_sourced("losses", provenance, read_loss, item, f"losses.{index}")
             for index, item in enumerate(cfg.losses)]
    cfg.losses = [loss_item(item) for item in items]


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
    """Check value ranges that types alone cannot express, then every component's name and
    options; errors name key, value and source."""
    _check_values(cfg, provenance)
    _check_components(cfg, provenance)


def _check_values(cfg: DictConfig, provenance: dict[str, str]) -> None:
    """The checks of GenerateConfig's own keys: ranges, prompts, CLIP tags (no component needed)."""
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
        ("switch_every", cfg.switch_every >= 0, "must be 0 (split the steps evenly) or more"),
        ("switch_every", cfg.switch_every <= MAX_STEPS, f"must be at most {MAX_STEPS}"),
        ("text_template", cfg.text_template.count("{}") == 1, "must hold {} once, where the prompt goes"),
    ]
    for key, ok, why in checks:
        if not ok:
            raise _bad(key, OmegaConf.select(cfg, key), why, provenance)
    if cfg.precision not in PRECISIONS:
        source = _source_of("precision", provenance)
        raise ConfigError(f"{source}: {unknown_name('precision', cfg.precision, PRECISIONS)}")
    _check_clip_tags(cfg, provenance)
    _check_stages(plan_prompts(cfg), cfg, provenance)  # a bad prompt: reported without torch
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
    for key, member in clip_sections(cfg):
        model, tag = member.model, member.pretrained
        if tag is not None and str(model).startswith(SELF_CONTAINED_CLIP):
            scheme = str(model).split(":")[0]
            raise _bad(f"{key}.pretrained", tag, f"a {scheme}: CLIP ({model}) carries its own weights; "
                       "leave clip.pretrained unset (or null)", provenance)


def _check_components(cfg: DictConfig, provenance: dict[str, str]) -> None:
    """Every name chosen from a registry, and its options, checked before any model loads
    (plugins loaded first, for a config that did not come from `config_schema`)."""
    # Imported here: the components bring in torch, which --help and a bad prompt never need.
    from vqclip.plugins import load_plugins
    from vqclip.steer.augment import AUGMENTATIONS
    from vqclip.steer.cutouts import CUT_METHODS, CUT_PADDINGS
    from vqclip.steer.generators import GENERATORS, INIT_NOISE
    from vqclip.steer.losses import DECAYS, read_loss
    from vqclip.steer.optimizers import OPTIMIZERS, check_optimizer
    from vqclip.steer.schedules import SCHEDULES, schedule_options

    load_plugins()
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
    for key, name, registry in names:
        _sourced(key, provenance, registry.check, name, key)
    for name in AUGMENTATIONS:
        augmentation = AUGMENTATIONS[name]
        if augmentation.strength is not None and not 0 <= cfg.augment[name] <= augmentation.most:
            most = "0 or more" if augmentation.most == math.inf else f"from 0 to {augmentation.most:g}"
            raise _bad(f"augment.{name}", cfg.augment[name], f"must be a number, {most}", provenance)
    for index, item in enumerate(cfg.losses):
        _sourced("losses", provenance, read_loss, item, f"losses.{index}")
    _sourced("optimizer.options", provenance, check_optimizer, cfg.optimizer.name, cfg.lr,
             OmegaConf.to_container(cfg.optimizer.options))
    _sourced("lr_schedule.options", provenance, schedule_options, cfg.lr_schedule.name,
             OmegaConf.to_container(cfg.lr_schedule.options))
    section = cfg.generator if GENERATORS.options(cfg.generator) is not None else "generator"
    _sourced(section, provenance, GENERATORS[cfg.generator].check, cfg)


def _sourced(key: str, provenance: dict[str, str], check: Any, *args: Any) -> Any:
    """Run `check` and return what it returns, prefixing a ConfigError with the source that
    set `key`."""
    try:
        return check(*args)
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

