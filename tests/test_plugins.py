"""Components from other packages: entry points of `vqclip.components`, their options in the config."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import sysconfig
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
from PIL import Image

from vqclip.outputs.metadata import read_record
from vqclip.plugins import GROUP, load_entry_points

ROOT = Path(__file__).resolve().parents[1]

PYPROJECT = """\
[build-system]
requires = ["setuptools"]
build-backend = "setuptools.build_meta"

[project]
name = "vqclip-flatworld"
version = "0.3.0"

[project.entry-points."vqclip.components"]
flatworld = "flatworld"
broken = "flatworld_broken:register"

[tool.setuptools]
py-modules = ["flatworld", "flatworld_broken"]
"""

# A generator with a section of its own (`flat.level`) and a loss with an option (`target`).
FLATWORLD = '''\
"""A flat gray image whose level is an option, and a loss pulling its mean toward a target."""

from dataclasses import dataclass

import torch

from vqclip.errors import ConfigError
from vqclip.steer.generators import GENERATORS, GeneratorKind, ImageGenerator
from vqclip.steer.losses import REGULARIZERS


@dataclass
class FlatOptions:
    level: float = 0.5


class Flat(ImageGenerator):
    def __init__(self, level, width, height, count, device):
        self.tint = torch.zeros((count, 1, 1, 1), device=device, requires_grad=True)
        self.level, self.size = level, (height, width)

    def parameters(self):
        return [self.tint]

    def image(self):
        return (self.level + self.tint).clamp(0, 1).expand(-1, 3, *self.size)


def check(cfg):
    if not 0 <= cfg.flat.level <= 1:
        raise ConfigError(f"flat.level={cfg.flat.level}: must be from 0 to 1")


def build(cfg, models, device):
    width, height = cfg.size
    level = cfg.flat.level

    def make(start, rngs):
        return Flat(level, width, height, len(rngs), device)

    return make, {"name": "flat", "level": level}


GENERATORS.add("flat", GeneratorKind(build, check), options=FlatOptions)


@dataclass
class OffsetOptions:
    target: float = 0.0


@REGULARIZERS.register("offset", options=OffsetOptions)
def offset(ctx, options):
    return (ctx.image.float().mean(dim=(1, 2, 3)) - options.target).abs()
'''

BROKEN = '''\
import vqclip.steer.no_such_module  # noqa: F401


def register():
    pass
'''


@pytest.fixture
def plugin_venv(tmp_path) -> Path:
    """The python of a new venv (made offline: no pip download) that sees vqclip's environment
    and this checkout, with the flatworld plugin package installed in it."""
    source = tmp_path / "flatworld"
    source.mkdir()
    (source / "pyproject.toml").write_text(PYPROJECT)
    (source / "flatworld.py").write_text(FLATWORLD)
    (source / "flatworld_broken.py").write_text(BROKEN)
    venv = tmp_path / "venv"
    # From the interpreter under vqclip's venv: a venv of a venv would point back at that one.
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # This checkout first, then the environment vqclip's dependencies (and pip) are in.
    Path(site, "vqclip-base.pth").write_text(f"{ROOT}\n{sysconfig.get_path('purelib')}\n")
    subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", str(source)], check=True, capture_output=True, cwd=tmp_path)
    return python


def vqclip(python: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_HUB_OFFLINE="1", VQCLIP_OFFLINE="1", VQCLIP_HOME=str(tmp_path / "home"))
    return subprocess.run([python, "-m", "vqclip", *args], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.cluster  # four processes that import torch: 21 s on a shared two-core machine, 50 s loaded
def test_a_plugin_package_adds_a_generator_and_a_loss_with_options(plugin_venv, tmp_path) -> None:
    common = ["generate", "a red circle", "--preset", "shapes", "--steps", "3", "--seed", "1",
              "-o", str(tmp_path / "out"), "-s", "generator=flat", "-s", "lr=1e-6"]
    done = vqclip(plugin_venv, tmp_path, *common, "-s", "flat.level=0.8",
                  "-s", "losses=[{name: offset, target: 0.3}]", "--json")
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and "broken (flatworld_broken:register) not loaded" in warnings[0]
    assert "No module named 'vqclip.steer.no_such_module'" in warnings[0]
    assert "Traceback" not in done.stderr
    result = json.loads(done.stdout)
    with Image.open(result["image"]) as image:
        assert image.convert("RGB").getextrema() == ((204, 204),) * 3  # level 0.8 of 255
    record = read_record(Path(result["image"]))
    assert record["models"]["flat"] == {"name": "flat", "level": 0.8}
    assert record["config"]["losses"] == [{"name": "offset", "weight": 1.0, "decay": "constant",
                                           "until": 0.5, "target": 0.3}]
    lines = [json.loads(line) for line in Path(result["run_dir"], "log.jsonl").read_text().splitlines()]
    assert [line["losses"]["offset"] for line in lines if "losses" in line] == \
        pytest.approx([0.5] * 3, abs=1e-3)  # |0.8 - 0.3|: the loss read its target

    bad = vqclip(plugin_venv, tmp_path, *common, "-s", "flat.levle=0.8")
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == \
        "error: --set: key='flat.levle': unknown name; did you mean 'flat.level'? valid: flat.level"
    bad = vqclip(plugin_venv, tmp_path, *common, "-s", "losses=[{name: offset, targte: 0.3}]")
    assert bad.returncode == 2
    assert bad.stderr.splitlines()[-1] == ("error: --set: key='losses.0.targte': unknown name; did you mean "
                                           "'losses.0.target'? valid: name, weight, decay, until, target "
                                           "(what 'offset' takes)")
    listed = vqclip(plugin_venv, tmp_path, "--version")
    assert listed.returncode == 0
    assert "plugin flatworld (flatworld, from vqclip-flatworld 0.3.0)" in listed.stdout.splitlines()


def test_a_plugin_that_fails_is_one_warning_and_the_others_load(tmp_path, monkeypatch, caplog) -> None:
    (tmp_path / "counted_plugin.py").write_text("CALLS = []\n\ndef register():\n    CALLS.append(1)\n")
    (tmp_path / "faulty_plugin.py").write_text("raise RuntimeError('half-written plugin\\nsecond line')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entries = [EntryPoint("counted", "counted_plugin:register", GROUP),
               EntryPoint("faulty", "faulty_plugin", GROUP), EntryPoint("module", "counted_plugin", GROUP)]
    try:
        with caplog.at_level(logging.WARNING, logger="vqclip.plugins"):
            loaded = load_entry_points(entries)
        calls = sys.modules["counted_plugin"].CALLS
    finally:
        sys.modules.pop("counted_plugin", None)
    assert [plugin.name for plugin in loaded] == ["counted", "module"]
    assert calls == [1]  # the callable is called; the module is only imported
    assert [record.getMessage() for record in caplog.records] == [
        "plugin faulty (faulty_plugin) not loaded, going on without it: RuntimeError: half-written plugin"]
