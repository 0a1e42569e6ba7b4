"""`vqclip models ...` through Typer's CliRunner against a local HTTP server."""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from tests.models_http import cache_files, served_vqgan, write_registry
from tests.tiny_models import write_malicious_checkpoint, write_taming_vqgan
from vqclip.cli.models import models_app


def run(*args: str):
    return CliRunner().invoke(models_app, list(args))


@pytest.fixture
def tiny(tmp_path):
    return write_taming_vqgan(tmp_path / "tiny")


@pytest.fixture
def registry(server, tmp_path, tiny):
    return str(write_registry(tmp_path / "r.yaml", {"tiny": served_vqgan(server, tiny)}))


def test_list_json(home, registry):
    result = run("list", "--json", "--registry", registry)
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"imagenet_f16_16384", "shapes_vqgan", "shapes_clip", "tiny",
            "ViT-B-32-quickgelu/openai"} <= set(rows)
    assert rows["imagenet_f16_16384"]["default"] and rows["ViT-B-32-quickgelu/openai"]["default"]
    tiny = rows["tiny"]
    assert (tiny["kind"], tiny["cached"], tiny["verified"]) == (
        "vqgan", False, "pinned on first download")
    assert rows["imagenet_f16_16384"]["size"] == 980_000_000


def test_download_then_list_verify_path(home, registry, server):
    result = run("download", "tiny", "--registry", registry)
    assert result.exit_code == 0, result.stderr
    folder = result.stdout.strip()
    assert folder.endswith("models/tiny/converted")
    rows = {r["name"]: r for r in json.loads(run("list", "--json", "--registry", registry).stdout)}
    assert rows["tiny"]["cached"] and rows["tiny"]["size"] > 0
    table = run("list", "--registry", registry).stdout
    assert "tiny" in table and "pinned on first download" in table
    assert run("path", "tiny", "--registry", registry).stdout.strip() == folder
    verified = run("verify", "--registry", registry)
    assert verified.exit_code == 0 and verified.stdout.count("ok ") == 4  # 2 sources, 2 converted
    # a second download is a no-op, even offline
    assert run("download", "tiny", "--offline", "--registry", registry).exit_code == 0


def test_verify_with_nothing_cached_says_so(home):
    result = run("verify")
    assert result.exit_code == 0
    assert f"nothing to verify: no VQGAN is cached in {home}" in result.stderr


def test_verify_reports_a_corrupt_byte(home, registry):
    assert run("download", "tiny", "--registry", registry).exit_code == 0
    ckpt = home / "models" / "tiny" / "source" / "checkpoint.ckpt"
    pinned = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    data = bytearray(ckpt.read_bytes())
    data[len(data) // 2] ^= 0xFF
    ckpt.write_bytes(bytes(data))
    result = run("verify", "tiny", "--registry", registry)
    assert result.exit_code == 1
    line = next(x for x in result.stdout.splitlines() if x.startswith("corrupt"))
    assert f"expected sha256 {pinned}" in line
    assert "vqclip models rm" in result.stderr


def test_unknown_name_exits_2_listing_names(home):
    result = run("download", "imagenet_f16_9999")
    assert result.exit_code == 2
    assert "imagenet_f16_16384" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert run("path", "nope").exit_code == 2
    assert run("verify", "nope").exit_code == 2


def test_download_404_exits_1(home, server, tmp_path, tiny):
    entry = served_vqgan(server, tiny)
    entry["checkpoint"] = [server.url("/gone.ckpt")]
    reg = write_registry(tmp_path / "r404.yaml", {"tiny": entry})
    result = run("download", "tiny", "--registry", str(reg))
    assert result.exit_code == 1
    assert "HTTP 404" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert cache_files(home) == []


def test_offline_download_says_how(home, registry, server):
    result = run("download", "tiny", "--offline", "--registry", registry)
    assert result.exit_code == 2
    assert "vqclip models download tiny" in result.stderr and "models import" in result.stderr
    assert server.requests == []


def test_path_of_uncached_model(home, registry):
    result = run("path", "tiny", "--registry", registry)
    assert result.exit_code == 2 and "not cached" in result.stderr


def test_import_then_use_offline(home, registry, server, tiny):
    result = run("import", "tiny", "--config", str(tiny[0]), "--checkpoint", str(tiny[1]),
                 "--registry", registry)
    assert result.exit_code == 0, result.stderr
    assert run("path", "tiny", "--offline", "--registry", registry).exit_code == 0
    assert run("download", "tiny", "--offline", "--registry", registry).exit_code == 0
    assert server.requests == []
    pins = json.loads((home / "pins.json").read_text())["tiny"]
    assert pins["checkpoint"]["sha256"] == hashlib.sha256(tiny[1].read_bytes()).hexdigest()


def test_import_refuses_wrong_hash_and_unsafe_pickle(home, server, tmp_path, tiny):
    reg = write_registry(tmp_path / "r.yaml", {
        "tiny": served_vqgan(server, tiny, sha256="ab" * 32)})
    result = run("import", "tiny", "--config", str(tiny[0]), "--checkpoint", str(tiny[1]),
                 "--registry", str(reg))
    assert result.exit_code == 2 and f"expected sha256 {'ab' * 32}" in result.stderr
    marker = tmp_path / "pwned"
    bad = write_malicious_checkpoint(tmp_path / "bad.ckpt", marker)
    reg = write_registry(tmp_path / "r2.yaml", {"tiny": served_vqgan(server, tiny)})
    result = run("import", "tiny", "--config", str(tiny[0]), "--checkpoint", str(bad),
                 "--registry", str(reg))
    assert result.exit_code == 2 and "Refusing to load" in result.stderr
    assert not marker.exists() and cache_files(home) == [] and bad.exists()


def test_rm_keeps_pins_unless_unpin(home, registry):
    assert run("download", "tiny", "--registry", registry).exit_code == 0
    result = run("rm", "tiny", "--registry", registry)
    assert result.exit_code == 0 and "removed tiny" in result.stderr
    assert cache_files(home) == []
    assert "tiny" in json.loads((home / "pins.json").read_text())
    assert run("rm", "tiny", "--unpin", "--registry", registry).exit_code == 0
    assert "tiny" not in json.loads((home / "pins.json").read_text())
    assert run("rm", "shapes_vqgan").exit_code == 2


def test_malformed_registry_exits_2(home, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  m: {kind: vqgan, config: a.yaml, checkpoint: b.ckpt, oops: 1}\n")
    result = run("list", "--registry", str(bad))
    assert result.exit_code == 2
    assert str(bad) in result.stderr and "models.m: key='oops': unknown name" in result.stderr


def test_help_on_every_command():
    for command in ("list", "download", "verify", "path", "import", "rm"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "--registry" in result.stdout
        assert "--offline" in result.stdout
