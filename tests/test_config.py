"""Config merge order and errors that name the key, the value and where it came from."""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from vqclip.errors import ConfigError
from vqclip.run.config import build_config, list_presets, parse_size


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_precedence_defaults_preset_files_flags_set(tmp_path: Path) -> None:
    first = write(tmp_path / "a.yaml", "steps: 11\ncutn: 5\nlr: 0.3\n")
    second = write(tmp_path / "b.yaml", "cutn: 6\n")
    cfg, provenance = build_config(
        preset="draft", config_files=[first, second], flags={"lr": 0.2, "seed": None},
        dotlist=["seed=9"],
    )
    assert cfg.size == [256, 256]  # preset
    assert cfg.steps == 11  # first file beats preset
    assert cfg.cutn == 6  # later file beats earlier
    assert cfg.lr == 0.2  # flag beats files
    assert cfg.seed == 9  # --set
    assert cfg.cut_pow == 1.0  # schema default
    assert provenance["cutn"] == f"config file {second}"
    assert provenance["size"] == "preset draft"


def test_set_beats_flags() -> None:
    cfg, _ = build_config(flags={"steps": 5}, dotlist=["steps=7"])
    assert cfg.steps == 7


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "bad.yaml", "stepz: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*key='stepz': unknown name"):
        build_config(config_files=[bad])


def test_unknown_nested_key_from_set() -> None:
    expected = (r"--set: key='clip\.modell': unknown name; did you mean 'clip\.model' or 'clip\.models'\? "
                r"valid: clip\.model, clip\.models, clip\.pretrained$")
    with pytest.raises(ConfigError, match=expected):
        build_config(dotlist=["clip.modell=RN50"])


def test_wrong_type_names_key_and_source(tmp_path: Path) -> None:
    bad = write(tmp_path / "t.yaml", "steps: many\n")
    with pytest.raises(ConfigError, match=r"t\.yaml: steps"):
        build_config(config_files=[bad])


@pytest.mark.parametrize(
    ("item", "key"),
    [("steps=0", "steps"), ("lr=-1", "lr"), ("cutn=0", "cutn"), ("size=[0,64]", "size"),
     ("size=[64,99999]", "size"), ("cut_min=2", "cut_min")],
)
def test_out_of_range_values_name_key_value_and_source(item: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^--set: {key}="):
        build_config(dotlist=[item])


def test_range_error_names_the_file_that_set_it(tmp_path: Path) -> None:
    bad = write(tmp_path / "r.yaml", "steps: -3\n")
    with pytest.raises(ConfigError, match=r"r\.yaml: steps=-3: must be at least 1"):
        build_config(config_files=[bad])


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = write(tmp_path / "broken.yaml", "steps: [1, 2\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml, line \d+ column \d+ is not valid YAML"):
        build_config(config_files=[bad])
    with pytest.raises(ConfigError, match="cannot read config file"):
        build_config(config_files=[tmp_path / "missing.yaml"])


def test_unknown_preset_lists_valid_ones() -> None:
    with pytest.raises(ConfigError, match="preset='nope': unknown name; valid: .*draft"):
        build_config(preset="nope")
    assert {"draft", "normal", "best"} <= set(list_presets())


def test_vqgan_paths_must_come_in_pairs() -> None:
    with pytest.raises(ConfigError, match="vqgan.checkpoint"):
        build_config(dotlist=["vqgan.config=x.yaml"])


def test_free_form_optimizer_options_are_accepted() -> None:
    cfg, _ = build_config(dotlist=["optimizer.name=sgd", "optimizer.options.momentum=0.9"])
    assert cfg.optimizer.options.momentum == 0.9


@pytest.mark.parametrize(("text", "size"), [("64x48", [64, 48]), ("128", [128, 128]), ("32X32", [32, 32])])
def test_parse_size(text: str, size: list[int]) -> None:
    assert parse_size(text) == size


def test_parse_size_refuses_garbage() -> None:
    with pytest.raises(ConfigError, match="WIDTHxHEIGHT"):
        parse_size("big")


@pytest.mark.parametrize("path", sorted(Path(__file__).parent.parent.glob("configs/*.yaml")),
                         ids=lambda p: p.name)
def test_example_configs_are_valid(path: Path) -> None:
    build_config(config_files=[path])


@pytest.mark.parametrize("preset", list_presets())
def test_presets_are_valid(preset: str) -> None:
    build_config(preset=preset)


@pytest.mark.parametrize(
    ("item", "key"),
    [("generator=diffusion", "generator"), ("optimizer.name=adamx", "optimizer.name"),
     ("lr_schedule.name=warm", "lr_schedule.name"), ("cut_method=tiles", "cut_method"),
     ("init_noise=perlin", "init_noise"), ("augmentations=[flip,blur]", "augmentations"),
     ("losses=[{name: sharp}]", r"losses\.0\.name")],
)
def test_unknown_registry_names_fail_before_any_model_loads(item: str, key: str) -> None:
    with pytest.raises(ConfigError, match=rf"^--set: {key}=.*unknown name; .*valid: "):
        build_config(dotlist=[item])


def test_a_self_contained_clip_named_over_stored_settings_drops_their_tag() -> None:
    """--from an image made with the default CLIP (openai tag), or a batch item, then a local-dir CLIP."""
    stored = OmegaConf.to_container(build_config()[0], resolve=True)
    cfg, _ = build_config(base=stored, dotlist=["clip.model=local-dir:/models/clip"])
    assert cfg.clip.pretrained is None
    with pytest.raises(ConfigError, match="carries its own weights"):
        build_config(base=stored, dotlist=["clip.model=hf-hub:org/clip", "clip.pretrained=openai"])
