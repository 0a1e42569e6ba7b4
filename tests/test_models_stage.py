"""Models as a stage of their own: described from configs and checked before any weight is read
or any download starts, then loaded once into the `Models` their caller holds."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from typer.testing import CliRunner

import vqclip
import vqclip.models.catalog
import vqclip.models.checkpoint
import vqclip.models.clip
import vqclip.models.clip_cache
import vqclip.models.download
import vqclip.models.loading
import vqclip.models.store
import vqclip.models.vqgan
from tests.models_http import write_registry
from tests.tiny_models import tiny_vqgan
from vqclip.cli import app
from vqclip.errors import ModelError
from vqclip.models.catalog import parse_registry
from vqclip.models.loading import load_generator_model
from vqclip.models.resolve import vqgan_facts
from vqclip.models.vqgan import save_vqgan
from vqclip.series.batch import BatchSettings, parse_batch, run_batch

_LOADERS = {
    vqclip.models.loading: ("load_generator_model", "load_clip_model", "load_vqgan", "load_perceptor"),
    vqclip.models.vqgan: ("load_vqgan", "load_state_dict"),
    vqclip.models.clip: ("load_perceptor",),
    vqclip.models.checkpoint: ("load_state_dict",),
    vqclip.models.catalog: ("ensure_vqgan",),
    vqclip.models.store: ("ensure_vqgan", "fetch_file"),
    vqclip.models.download: ("fetch_file",),
    vqclip.models.clip_cache: ("download_open_clip", "cached_weights"),
}


@pytest.fixture
def nothing_loads(monkeypatch, home):
    """An empty model cache, offline, and every loader and downloader failing if called."""
    monkeypatch.setenv("VQCLIP_OFFLINE", "1")

    def refuse(*args, **kwargs):
        raise AssertionError("a model loader or downloader was called")

    for module, names in _LOADERS.items():
        for name in names:
            monkeypatch.setattr(module, name, refuse)


def count_loads(monkeypatch) -> Counter:
    """Counts of load_vqgan and load_perceptor calls (the real ones still run)."""
    loads = Counter()
    for name in ("load_perceptor", "load_vqgan"):
        original = getattr(vqclip.models.loading, name)

        def counted(*args, name=name, original=original, **kwargs):
            loads[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(vqclip.models.loading, name, counted)
    return loads


@pytest.mark.parametrize(("args", "message"), [
    (["generate", "a cat", "--size", "100x100"], "size 100x100: both sides must be multiples of 16"),
    (["generate", "a cat", "-s", "clip.model=ViT-Q-99"], "clip.model='ViT-Q-99': unknown name"),
    (["generate", "a cat", "--init-image", "{missing}"], "init_image: image not found: {missing}"),
    (["generate", "a cat", "--image-prompt", "{missing}"], "image_prompts: image not found: {missing}"),
    (["generate", "--from", "{missing}"], "image not found: {missing}"),
    (["generate", "a cat", "--seeds", "1-2", "--init-image", "{missing}"], "init_image: image not found"),
    (["generate", "a cat", "--sweep", "size=96x96,100x100"], "size 100x100: both sides must be multiples"),
    (["zoom", "a cat", "--size", "100x100"], "size 100x100: both sides must be multiples of 16"),
])
def test_a_bad_run_names_its_mistake_before_any_model_is_read(nothing_loads, tmp_path, args, message) -> None:
    """The default models, not downloaded, offline: the run's own mistake, not a missing model;
    a sweep's or zoom's before its folder is made."""
    missing = str(tmp_path / "missing.png")
    args = [arg.format(missing=missing) for arg in args]
    result = CliRunner().invoke(app, [*args, "--offline", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message.format(missing=missing) in lines[0]
    assert "cache" not in lines[0] and "download" not in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("sets", "message"), [
    (["--preset", "shapes", "-s", "clip.model=ViT-B-32", "-s", "clip.pretrained=openai"],
     "CLIP ViT-B-32/openai is not in the cache and offline mode is on"),
    (["--preset", "shapes", "-s", "vqgan.model=imagenet_f16_16384", "--size", "64x64"],
     "model 'imagenet_f16_16384' is not in the cache"),
])
def test_offline_a_model_not_on_this_machine_is_named_before_any_model_loads(home, monkeypatch, tmp_path,
                                                                             sets, message) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(vqclip.models.loading, "load_vqgan", refuse)
    monkeypatch.setattr(vqclip.models.loading, "load_perceptor", refuse)
    out = str(tmp_path / "out")
    result = CliRunner().invoke(app, ["generate", "a red circle", *sets, "--offline", "-o", out])
    assert result.exit_code == 2, result.output
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_checkpoint_that_does_not_fit_its_config_is_refused_from_its_header(nothing_loads,
                                                                              tmp_path) -> None:
    config, weights = save_vqgan(tiny_vqgan(), tmp_path / "vqgan")
    stated = json.loads(config.read_text())
    config.write_text(json.dumps({**stated, "n_embed": 128}))
    result = CliRunner().invoke(app, ["generate", "a cat", "-s", f"vqgan.config={config}", "-s",
                                      f"vqgan.checkpoint={weights}", "-o", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert "its codebook is (64, 32), but its config says 128 codes of 32" in result.stderr
    assert not (tmp_path / "out").exists()


def test_a_named_vqgan_is_described_by_its_entry_until_its_config_is_here(home, tiny_vqgan) -> None:
    known = vqgan_facts(OmegaConf.create({"model": "imagenet_f16_16384", "config": None}))
    assert (known.factor, known.n_embed, known.embed_dim, known.files) == (16, 16384, 256, ())
    config, checkpoint = tiny_vqgan
    home.mkdir(parents=True)
    write_registry(home / "models.yaml", {"mine": {"kind": "vqgan", "config": str(config),
                                                   "checkpoint": str(checkpoint), "n_embed": 64}})
    mine = vqgan_facts(OmegaConf.create({"model": "mine", "config": None}))
    assert (mine.factor, mine.n_embed, mine.embed_dim) == (2, 64, 32)  # read from its config


def test_an_entry_its_model_contradicts_is_refused_before_and_after_loading(home, tiny_vqgan) -> None:
    config, checkpoint = tiny_vqgan
    home.mkdir(parents=True)
    write_registry(home / "models.yaml", {"mine": {"kind": "vqgan", "config": str(config),
                                                   "checkpoint": str(checkpoint), "factor": 16}})
    section = OmegaConf.create({"model": "mine", "config": None, "checkpoint": None})
    with pytest.raises(ModelError, match=r"says factor 16, but its config .* says 2"):
        vqgan_facts(section)
    with pytest.raises(ModelError, match="says factor 16, but the model loaded has 2"):
        load_generator_model(section, torch.device("cpu"))


@pytest.mark.parametrize(("value", "message"),
                         [(12, "must be a power of two"), (0, "must be a positive whole number")])
def test_registry_facts_are_checked(tmp_path, value, message) -> None:
    text = f"models:\n  m: {{kind: vqgan, config: c.yaml, checkpoint: m.ckpt, factor: {value}}}\n"
    with pytest.raises(vqclip.errors.ConfigError, match=f"models.m.factor: {message}"):
        parse_registry(text, "r.yaml", tmp_path)


def test_models_loaded_once_serve_many_generate_calls_and_load_what_they_lack(
        tmp_path, tiny_vqgan, tiny_clip, monkeypatch, one_thread) -> None:
    loads = count_loads(monkeypatch)
    config, checkpoint = tiny_vqgan
    settings = {"vqgan": {"config": str(config), "checkpoint": str(checkpoint)}, "device": "cpu",
                "clip": {"model": f"local-dir:{tiny_clip}", "pretrained": None}, "size": "32x32",
                "cutn": 2, "steps": 1, "out": str(tmp_path / "out")}
    models = vqclip.load_models(**settings)
    assert loads == {"load_vqgan": 1, "load_perceptor": 1}
    images = [vqclip.generate("a red circle", seed=seed, models=models, **settings).image for seed in (1, 2)]
    assert all(Path(image).is_file() for image in images) and images[0] != images[1]
    assert loads == {"load_vqgan": 1, "load_perceptor": 1}

    other = shutil.copytree(tiny_clip, tmp_path / "other_clip")
    settings["clip"] = {"model": f"local-dir:{other}", "pretrained": None}
    vqclip.generate("a red circle", seed=3, models=models, **settings)
    assert loads == {"load_vqgan": 1, "load_perceptor": 2}  # only the CLIP it lacked
    assert len(models) == 3


def test_a_batch_of_eight_loads_each_model_once(tiny_sets, tmp_path, monkeypatch, one_thread) -> None:
    loads = count_loads(monkeypatch)
    items = parse_batch("".join(f"a red circle --seed {seed}\n" for seed in range(8)))
    result = run_batch(items, tmp_path / "batch", BatchSettings(sets=[*tiny_sets, "size=[32,32]", "cutn=2",
                                                                       "steps=1", "plan_memory=false"]))
    assert len(result.ok) == 8
    assert loads == {"load_perceptor": 1, "load_vqgan": 1}
