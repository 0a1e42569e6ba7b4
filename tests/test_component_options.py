"""Each component's options come from the dataclass beside it: the schema's sections, a losses
item's keys, schedule options and augmentation strengths, each bad key named with a did-you-mean."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from vqclip.errors import ConfigError
from vqclip.registry import Registry
from vqclip.run.config import build_config

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RingOptions:
    radius: float = 1.0
    filled: bool = False


def test_a_registry_reads_a_members_options_over_their_defaults() -> None:
    shapes: Registry[str] = Registry("shape")
    shapes.add("ring", "a ring", options=RingOptions)
    shapes.add("dot", "a dot")
    assert shapes.read_options("ring", {"radius": "2.5"}, "shape") == RingOptions(2.5, False)
    assert shapes.read_options("dot", {}, "shape") is None
    with pytest.raises(ConfigError, match=r"^key='shape.raduis': unknown name; did you mean 'shape.radius'\? "
                                          r"valid: radius, filled \(what 'ring' takes\)$"):
        shapes.read_options("ring", {"raduis": 2}, "shape")
    with pytest.raises(ConfigError,
                       match=r"^key='shape.size': unknown name; valid: none, 'dot' takes no options$"):
        shapes.read_options("dot", {"size": 2}, "shape")
    with pytest.raises(ConfigError, match=r"^shape.filled: Value .often. is not a valid bool"):
        shapes.read_options("ring", {"filled": "often"}, "shape")
    with pytest.raises(TypeError, match="must be a dataclass"):
        shapes.add("square", "a square", options=dict)


def config(*items: str) -> dict:
    cfg, _ = build_config(flags={"prompt": "a cat"}, dotlist=list(items))
    return OmegaConf.to_container(cfg)


def test_the_schema_gathers_sections_from_the_components() -> None:
    cfg = config("pixel.scale=2", "augment.erasing=0.5")
    assert cfg["pixel"] == {"scale": 2} and cfg["fourier"] == {"decay": 1.0}
    assert cfg["augment"]["erasing"] == 0.5 and "flip" not in cfg["augment"]  # flip has no strength
    assert config("losses=[{name: tv}]")["losses"] == [
        {"name": "tv", "weight": 1.0, "decay": "constant", "until": 0.5}]
    assert config("lr_schedule.name=step", "lr_schedule.options.at=0.5")["lr_schedule"]["options"] == \
        {"at": 0.5}


def test_a_schedule_named_above_a_preset_drops_the_presets_schedule_options(tmp_path) -> None:
    """Another schedule asked for over the shapes preset's cosine runs without the preset's
    floor; the cosine, asked for again or left as it is, keeps it."""
    def schedule(*items: str, files: tuple = ()) -> dict:
        cfg, _ = build_config(preset="shapes", config_files=files,
                              flags={"prompt": "a red star"}, dotlist=list(items))
        return OmegaConf.to_container(cfg)["lr_schedule"]

    assert schedule() == {"name": "cosine", "options": {"floor": 0.3}}
    assert schedule("lr_schedule.name=constant") == {"name": "constant", "options": {}}
    assert schedule("lr_schedule.name=step", "lr_schedule.options.at=0.5") == \
        {"name": "step", "options": {"at": 0.5}}
    assert schedule("lr_schedule.name=cosine") == {"name": "cosine", "options": {"floor": 0.3}}
    assert schedule("lr_schedule.options.floor=0.1") == {"name": "cosine", "options": {"floor": 0.1}}
    step_file = tmp_path / "step.yaml"
    step_file.write_text("lr_schedule: {name: step, options: {factor: 0.5}}\n")
    assert schedule("lr_schedule.name=cosine", files=(step_file,)) == \
        {"name": "cosine", "options": {"floor": 0.3}}
    with pytest.raises(ConfigError, match="lr_schedule.options.floor"):
        schedule("lr_schedule.name=step", "lr_schedule.options.floor=0.1")


def test_an_optimizer_named_above_a_config_file_drops_the_files_optimizer_options(tmp_path) -> None:
    """A config file's sgd momentum goes with sgd: `-s optimizer.name=adam` over it runs adam
    with its own defaults; sgd named again, in any case, keeps the momentum."""
    sgd_file = tmp_path / "sgd.yaml"
    sgd_file.write_text("optimizer: {name: sgd, options: {momentum: 0.9}}\n")

    def optimizer(*items: str) -> dict:
        cfg, _ = build_config(config_files=(sgd_file,), flags={"prompt": "a cat"}, dotlist=list(items))
        return OmegaConf.to_container(cfg)["optimizer"]

    assert optimizer() == {"name": "sgd", "options": {"momentum": 0.9}}
    assert optimizer("optimizer.name=adam") == {"name": "adam", "options": {}}
    assert optimizer("optimizer.name=adamw", "optimizer.options.weight_decay=0.1") == \
        {"name": "adamw", "options": {"weight_decay": 0.1}}
    assert optimizer("optimizer.name=SGD") == {"name": "SGD", "options": {"momentum": 0.9}}
    with pytest.raises(ConfigError, match="optimizer.options.momentum"):
        optimizer("optimizer.name=adam", "optimizer.options.momentum=0.5")


@pytest.mark.parametrize(("items", "message"), [
    (["pixel.scle=2"], "--set: key='pixel.scle': unknown name; did you mean 'pixel.scale'?"),
    (["augment.nosie=0.2"], "--set: key='augment.nosie': unknown name; did you mean 'augment.noise'"),
    (["augment.erasing=1.5"], "--set: augment.erasing=1.5: must be a number, from 0 to 1"),
    (["losses=[{name: tv, wieght: 2}]"],
     "--set: key='losses.0.wieght': unknown name; did you mean 'losses.0.weight'? valid: name, weight, "),
    (["losses=[{weight: 2}]"], "--set: losses.0: no name; valid: init, saturation, symmetry, tv"),
    (["losses=[tv]"], "--set: losses.0='tv': expected a mapping such as {name: tv, weight: 0.5}"),
    (["lr_schedule.name=cosine", "lr_schedule.options.flor=0.1"],
     "--set: key='lr_schedule.options.flor': unknown name; did you mean 'lr_schedule.options.floor'?"),
    (["generator=fourier", "fourier.decay=-1"], "--set: fourier.decay=-1.0: must be a number, 0 or more"),
    (["optimizer.name=sgd", "optimizer.options.momentm=0.9"],
     "--set: key='optimizer.options.momentm': unknown name; did you mean 'optimizer.options.momentum'? "
     "valid: lr, momentum,"),
])
def test_a_bad_option_is_one_line_naming_its_key(items: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config(*items)
    assert str(caught.value).startswith(message) and "\n" not in str(caught.value)


def test_a_bad_value_is_reported_before_the_components_load() -> None:
    """The components bring in torch and plugins: a bad value of GenerateConfig's own needs neither."""
    code = ("import sys\nfrom vqclip.errors import ConfigError\nfrom vqclip.run.config import build_config\n"
            "try:\n    build_config(preset='shapes', flags={'prompt': 'a cat'}, dotlist=['steps=0'])\n"
            "except ConfigError as err:\n"
            "    print(err, sorted({'torch', 'vqclip.plugins'} & set(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.stdout.strip() == "--set: steps=0: must be at least 1 []"
