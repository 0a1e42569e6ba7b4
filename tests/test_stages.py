"""A run is checked whole before any model loads: prepare -> build -> execute."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import vqclip.models.loading
import vqclip.run.build
import vqclip.steer.generators
from vqclip.cli import app
from vqclip.errors import ConfigError
from vqclip.run.config import build_config
from vqclip.run.prepare import prepare


@pytest.fixture
def no_model_loads(monkeypatch, home):
    """Every model loader fails the test if called; the model cache is empty and offline."""
    monkeypatch.setenv("VQCLIP_OFFLINE", "1")

    def loaded(*args, **kwargs):
        raise AssertionError("a model loader was called")

    for module in (vqclip.models.loading, vqclip.run.build, vqclip.steer.generators):
        for name in ("load_clip_model", "load_generator_model"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, loaded)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["a ^ ^ b"], "prompt set 2 of 'a ^ ^ b' is empty"),
        (["a cat", "--set", "optimizer.options.betas=7"], "optimizer.options for adam"),
        (["a cat", "--set", "optimizer.options.momentom=0.9"], "momentom"),
        (["--set", "story=[{prompt: a cat, start: 5}]"], "the first stage must start at step 0, not 5"),
        (["a cat", "--noise-prompt", "three:0.5"], "noise prompt 'three:0.5': expected SEED[:WEIGHT]"),
        (["a cat", "--set", "lr_schedule.options.floor=0.1"], "'constant' takes no options"),
        (["a cat", "--set", "losses=[{name: tv, decay: cubic}]"], "losses.0.decay='cubic': unknown name"),
    ],
)
def test_a_bad_run_exits_2_before_any_model_loads(no_model_loads, tmp_path, args, message) -> None:
    """With the default (not downloaded) models and offline: the config's error, not a missing model."""
    result = CliRunner().invoke(app, ["generate", *args, "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()


def test_the_spec_is_read_only_and_the_memory_plan_makes_a_new_one() -> None:
    cfg, provenance = build_config(preset="shapes", dotlist=["prompt=a cat", "seed=4", "batch_size=2"])
    spec = prepare(cfg, provenance)
    assert spec.seeds == (4, 5)
    with pytest.raises(Exception, match="read-only"):
        spec.config.low_memory = True
    lower = spec.with_low_memory()
    assert lower.config.low_memory and not spec.config.low_memory and not cfg.low_memory
    assert [stage.label for stage in spec.prompts.stages] == ["a cat"]
    assert spec.image_config(1)["seed"] == 5 and spec.image_config(1)["batch_size"] == 1


def test_prepare_checks_a_config_made_in_code() -> None:
    cfg = vqclip.run.config.config_schema()
    cfg.prompt, cfg.cutn = "a cat", 0
    with pytest.raises(ConfigError, match="cutn=0: must be at least 1"):
        prepare(cfg)
