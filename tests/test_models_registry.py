"""The registry of named models: the built-in table, user files, lookup and resolution."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.models_http import write_registry
from tests.tiny_models import write_taming_vqgan
from vqclip.errors import ConfigError, ModelError
from vqclip.models import checkpoint
from vqclip.models.catalog import (
    builtin_registry,
    get_entry,
    load_registry,
    resolve_clip,
    resolve_vqgan,
    vqclip_home,
)
from vqclip.run.config import ClipConfig, VQGANConfig

NAMED_VQGANS = ["imagenet_f16_1024", "imagenet_f16_16384", "openimages_f8_8192",
                "wikiart_f16_16384", "sflckr_f16"]
BUILTIN = builtin_registry()


@pytest.mark.parametrize("name", NAMED_VQGANS)
def test_named_vqgans_have_urls_licence_and_source(name):
    entry = BUILTIN[name]
    assert entry.kind == "vqgan" and entry.path is None
    assert entry.config.startswith("https://") and entry.checkpoint
    assert all(url.startswith("https://") for url in entry.checkpoint)
    assert entry.licence and entry.source
    assert entry.sha256 is None  # none is published: pinned on first download


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_every_builtin_entry_is_well_formed(name):
    entry = BUILTIN[name]
    assert entry.kind in ("vqgan", "clip")
    assert (entry.path is not None) != bool(entry.config or entry.checkpoint or entry.model)


def test_bundled_models_live_inside_the_package():
    package = Path(__import__("vqclip").__file__).parent
    assert BUILTIN["shapes_vqgan"].path == package / "weights" / "shapes_vqgan"
    assert BUILTIN["shapes_clip"].path == package / "weights" / "shapes_clip"
    assert BUILTIN["shapes_clip"].kind == "clip"


def test_defaults_are_known():
    import open_clip

    assert BUILTIN[VQGANConfig().model].kind == "vqgan"
    assert (ClipConfig().model, ClipConfig().pretrained) in open_clip.list_pretrained()


def test_vqclip_home(monkeypatch, tmp_path):
    monkeypatch.delenv("VQCLIP_HOME", raising=False)
    assert vqclip_home() == Path.home() / ".cache" / "vqclip"
    monkeypatch.setenv("VQCLIP_HOME", str(tmp_path))
    assert vqclip_home() == tmp_path


def test_user_registry_adds_and_overrides(home, tmp_path):
    home.mkdir()
    write_registry(home / "models.yaml", {
        "mine": {"kind": "vqgan", "config": "cfg/model.yaml", "checkpoint": "https://a/x.ckpt",
                 "sha256": "AB" * 32},
        "imagenet_f16_16384": {"kind": "vqgan", "config": "https://m/model.yaml",
                               "checkpoint": ["https://m/1.ckpt", "https://m/2.ckpt"]},
    })
    extra = write_registry(tmp_path / "extra.yaml", {
        "mine": {"kind": "vqgan", "config": "other.yaml", "checkpoint": "last.ckpt"}})
    entries = load_registry()
    assert entries["mine"].config == str(home / "cfg" / "model.yaml")
    assert entries["mine"].checkpoint == ("https://a/x.ckpt",)
    assert entries["mine"].sha256 == "ab" * 32
    assert entries["imagenet_f16_16384"].checkpoint == ("https://m/1.ckpt", "https://m/2.ckpt")
    assert load_registry(extra)["mine"].checkpoint == (str(tmp_path / "last.ckpt"),)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("models:\n  m: {kind: vqgan, config: a.yaml, checkpoint: b.ckpt, colour: red}\n",
         "models.m: key='colour': unknown name"),
        ("models:\n  m: {kind: gan, config: a.yaml, checkpoint: b.ckpt}\n", "models.m.kind"),
        ("models:\n  m: {kind: vqgan, config: a.yaml, checkpoint: b.ckpt, sha256: xyz}\n",
         "models.m.sha256"),
        ("models:\n  m: {kind: vqgan, config: a.yaml, checkpoint: []}\n", "models.m.checkpoint"),
        ("models:\n  m: {kind: vqgan, config: a.yaml}\n", "models.m.checkpoint"),
        ("models:\n  m: {kind: vqgan, config: a.yaml, checkpoint: b.ckpt, size: -3}\n",
         "models.m.size"),
        ("models:\n  m: {kind: clip}\n", "models.m.model"),
        ("models:\n  m: [1, 2]\n", "models.m"),
        ("models: [a, b]\n", "models"),
        ("model:\n  m: {kind: vqgan}\n", "model"),
        ("models:\n  m: {kind: vqgan\n", "not valid YAML"),
    ],
)
def test_malformed_registry_names_file_and_key(tmp_path, text, where):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    assert str(path) in str(err.value) and where in str(err.value)


def test_missing_registry_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_registry(tmp_path / "nope.yaml")


def test_unknown_name_lists_known_names():
    with pytest.raises(ModelError) as err:
        get_entry("imagenet_f16_9999", kind="vqgan")
    assert "imagenet_f16_16384" in str(err.value) and "shapes_vqgan" in str(err.value)
    with pytest.raises(ModelError, match="^vqgan.model='shapes_clip': unknown name; "):
        resolve_vqgan("shapes_clip")


def test_resolve_clip(tmp_path, tiny_clip):
    registry = write_registry(tmp_path / "r.yaml", {
        "tiny_clip": {"kind": "clip", "path": str(tiny_clip)},
        "laion": {"kind": "clip", "model": "ViT-B-32", "pretrained": "laion2b_s34b_b79k"},
        "empty_clip": {"kind": "clip", "path": str(tmp_path)},
    })
    assert resolve_clip("tiny_clip", None, registry_file=registry) == (
        f"local-dir:{tiny_clip}", None)
    assert resolve_clip("laion", "ignored", registry_file=registry) == (
        "ViT-B-32", "laion2b_s34b_b79k")
    assert resolve_clip("ViT-B-32-quickgelu", "openai") == ("ViT-B-32-quickgelu", "openai")
    assert resolve_clip("local-dir:/x", None) == ("local-dir:/x", None)
    with pytest.raises(ModelError, match="not a CLIP"):
        resolve_clip("imagenet_f16_16384", None)
    with pytest.raises(ModelError, match="open_clip_config.json"):
        resolve_clip("empty_clip", None, registry_file=registry)


def test_bundled_clip_loads_with_open_clip(tmp_path, tiny_clip):
    import open_clip

    registry = write_registry(tmp_path / "r.yaml", {"c": {"kind": "clip", "path": str(tiny_clip)}})
    model, pretrained = resolve_clip("c", None, registry_file=registry)
    assert open_clip.create_model(model, pretrained=pretrained) is not None


def test_bundled_vqgan_folder(tmp_path, home):
    registry = write_registry(tmp_path / "r.yaml", {"b": {"kind": "vqgan", "path": "bundle"}})
    with pytest.raises(ModelError, match="lacks config.json"):
        resolve_vqgan("b", registry_file=registry)
    from vqclip.models.vqgan import load_vqgan, save_vqgan

    save_vqgan(load_vqgan(*write_taming_vqgan(tmp_path / "t")), tmp_path / "bundle")
    assert resolve_vqgan("b", registry_file=registry) == (
        tmp_path / "bundle" / "config.json", tmp_path / "bundle" / "model.safetensors")
    assert not home.exists()  # nothing cached for a bundled model


def test_local_files_convert_once_and_reconvert_when_changed(tmp_path, home, monkeypatch):
    config, ckpt = write_taming_vqgan(tmp_path / "t")
    registry = write_registry(tmp_path / "r.yaml", {
        "local": {"kind": "vqgan", "config": str(config), "checkpoint": str(ckpt)}})
    first = resolve_vqgan("local", registry_file=registry, offline=True)
    assert first[1].suffix == ".safetensors" and home in first[1].parents

    calls = []
    real = checkpoint.load_state_dict
    monkeypatch.setattr("vqclip.models.vqgan.load_state_dict",
                        lambda p: calls.append(Path(p).suffix) or real(p))
    assert resolve_vqgan("local", registry_file=registry, offline=True) == first
    assert calls == []  # the converted files are used as they are: no pickle, no reload
    time.sleep(0.01)
    write_taming_vqgan(tmp_path / "t", seed=3)  # the user replaced their checkpoint
    resolve_vqgan("local", registry_file=registry, offline=True)
    assert calls == [".ckpt"]


def test_local_safetensors_pair_is_used_directly(tmp_path, home):
    from vqclip.models.vqgan import load_vqgan, save_vqgan

    cfg, weights = save_vqgan(load_vqgan(*write_taming_vqgan(tmp_path / "t")), tmp_path / "s")
    registry = write_registry(tmp_path / "r.yaml", {
        "st": {"kind": "vqgan", "config": str(cfg), "checkpoint": str(weights)}})
    assert resolve_vqgan("st", registry_file=registry) == (cfg, weights)
