"""Downloads into the cache against a local HTTP server: resume, fallback, checksums, faults."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import threading

import pytest
import torch

from tests.models_http import cache_files, served_vqgan, write_registry
from tests.tiny_models import write_malicious_checkpoint, write_taming_vqgan
from vqclip.errors import DownloadError, ModelError, UnsafeCheckpointError
from vqclip.models import download
from vqclip.models.cache import Cache
from vqclip.models.catalog import resolve_vqgan
from vqclip.models.download import fetch_file, partial_path
from vqclip.models.vqgan import load_vqgan

BLOB = os.urandom(300_000)
BLOB_SHA = hashlib.sha256(BLOB).hexdigest()


def _fetch(home, urls, **kwargs):
    cache = Cache(home)
    return fetch_file(urls, home / "models" / "x" / "source" / "blob.bin",
                      partial_dir=cache.partial_dir, lock_dir=cache.lock_dir, progress=False,
                      backoff=0.0, **kwargs)


def _no_partials(home):
    return not list((home / "partial").glob("*.part")) if (home / "partial").exists() else True


def test_fetch_downloads_and_verifies(server, home):
    url = server.add("/blob.bin", BLOB)
    result = _fetch(home, [url], sha256=BLOB_SHA)
    assert result.path.read_bytes() == BLOB
    assert (result.sha256, result.url, result.downloaded) == (BLOB_SHA, url, True)
    again = _fetch(home, [url], sha256=BLOB_SHA)  # already cached: no second request
    assert not again.downloaded and server.gets("/blob.bin") == [None]
    assert _no_partials(home)


def test_resume_after_cut_connection(server, home):
    url = server.add("/blob.bin", BLOB)
    server.cut_after("/blob.bin", 100_000)
    result = _fetch(home, [url], sha256=BLOB_SHA)
    assert result.path.read_bytes() == BLOB
    # the chunk being read when the connection broke is lost; whole chunks before it are kept
    assert server.gets("/blob.bin") == [None, "bytes=65536-"]
    assert _no_partials(home)


def test_cut_download_fails_cleanly_then_resumes_next_run(server, home):
    url = server.add("/blob.bin", BLOB)
    server.cut_after("/blob.bin", 70_000, 0, 0)  # one chunk arrives, then nothing
    with pytest.raises(DownloadError, match="could not download blob.bin"):
        _fetch(home, [url], retries=1)
    assert cache_files(home) == []  # nothing half-written where models live
    dest = home / "models" / "x" / "source" / "blob.bin"
    assert partial_path(dest, url, home / "partial").stat().st_size == 65536
    server.cut.clear()
    result = _fetch(home, [url])
    assert result.sha256 == BLOB_SHA
    assert server.gets("/blob.bin")[-1] == "bytes=65536-"
    assert _no_partials(home)


def test_server_ignoring_range_restarts_from_zero(server, home):
    url = server.add("/blob.bin", BLOB)
    server.cut_after("/blob.bin", 50_000)
    server.ignore_range.add("/blob.bin")
    assert _fetch(home, [url], sha256=BLOB_SHA).path.read_bytes() == BLOB


def test_fallback_to_second_url_after_404(server, home):
    good = server.add("/mirror/blob.bin", BLOB)
    result = _fetch(home, [server.url("/dead/blob.bin"), good], sha256=BLOB_SHA)
    assert result.url == good
    assert server.gets("/dead/blob.bin") == [None]


def test_every_url_failing_names_each(server, home):
    urls = [server.url("/a.bin"), server.url("/b.bin")]
    with pytest.raises(DownloadError) as err:
        _fetch(home, urls)
    assert f"{urls[0]}: HTTP 404" in str(err.value) and f"{urls[1]}: HTTP 404" in str(err.value)
    assert cache_files(home) == [] and _no_partials(home)


def test_checksum_mismatch_discards_file(server, home):
    url = server.add("/blob.bin", BLOB)
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        _fetch(home, [url], sha256=wrong)
    assert f"expected sha256 {wrong}" in str(err.value) and f"got {BLOB_SHA}" in str(err.value)
    assert cache_files(home) == [] and _no_partials(home)


def test_two_concurrent_downloads_fetch_once(server, home):
    url = server.add("/blob.bin", BLOB)
    server.delay = 0.02  # ~0.1 s per download, so the threads overlap
    results, errors = [], []

    def run():
        try:
            results.append(_fetch(home, [url], sha256=BLOB_SHA))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert [r.path.read_bytes() == BLOB for r in results] == [True] * 3
    assert len(server.gets("/blob.bin")) == 1
    assert sorted(r.downloaded for r in results) == [False, False, True]


def test_disk_full_leaves_nothing(server, home, monkeypatch):
    url = server.add("/blob.bin", BLOB)
    real_open = open

    class FullDisk:
        def __init__(self, fh):
            self.fh, self.written = fh, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.fh.close()

        def write(self, chunk):
            if self.written + len(chunk) > 100_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(chunk)
            return self.fh.write(chunk)

        def __getattr__(self, name):
            return getattr(self.fh, name)

    def fake_open(path, mode="r", *args, **kwargs):
        fh = real_open(path, mode, *args, **kwargs)
        return FullDisk(fh) if "a" in mode else fh

    monkeypatch.setattr(download, "open", fake_open, raising=False)
    with pytest.raises(DownloadError, match="disk full"):
        _fetch(home, [url])
    assert cache_files(home) == [] and _no_partials(home)


def test_not_enough_free_space_is_refused_up_front(server, home):
    url = server.add("/blob.bin", BLOB)
    with pytest.raises(DownloadError, match="not enough disk space"):
        _fetch(home, [url], size=10**18)
    assert server.requests == []


def test_cache_not_writable(server, home, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("VQCLIP_HOME", str(blocker / "home"))
    registry = write_registry(tmp_path / "r.yaml", {"tiny": served_vqgan(
        server, write_taming_vqgan(tmp_path / "src"))})
    with pytest.raises(DownloadError, match="not writable"):
        resolve_vqgan("tiny", registry_file=registry, offline=False)
    assert server.requests == []


# -- whole models: download, convert, pin -------------------------------------------------------


@pytest.fixture
def tiny_files(tmp_path):
    return write_taming_vqgan(tmp_path / "tiny")


def test_resolve_downloads_converts_and_pins(server, home, tmp_path, tiny_files):
    registry = write_registry(tmp_path / "r.yaml", {"tiny": served_vqgan(server, tiny_files)})
    config, weights = resolve_vqgan("tiny", registry_file=registry, offline=False)
    assert (config.name, weights.name) == ("config.json", "model.safetensors")
    pins = json.loads((home / "pins.json").read_text())["tiny"]
    assert pins["checkpoint"]["sha256"] == hashlib.sha256(tiny_files[1].read_bytes()).hexdigest()
    assert pins["checkpoint"]["url"].endswith("/tiny/last.ckpt")
    n = len(server.requests)
    assert resolve_vqgan("tiny", registry_file=registry, offline=True) == (config, weights)
    assert len(server.requests) == n


def test_converted_weights_decode_identically(server, home, tmp_path, tiny_files):
    registry = write_registry(tmp_path / "r.yaml", {"tiny": served_vqgan(server, tiny_files)})
    original = load_vqgan(*tiny_files)
    converted = load_vqgan(*resolve_vqgan("tiny", registry_file=registry, offline=False))
    z = torch.randn(1, 32, 4, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        z_q, _ = original.quantize_latent(z)
        assert torch.equal(original.decode(z_q), converted.decode(converted.quantize_latent(z)[0]))
    for key, value in original.state_dict().items():
        assert torch.equal(value, converted.state_dict()[key]), key


@pytest.mark.parametrize("variant", ["gumbel", "transformer"])
def test_gumbel_and_transformer_checkpoints_convert(server, home, tmp_path, variant):
    files = write_taming_vqgan(tmp_path / variant, **{variant: True})
    registry = write_registry(tmp_path / "r.yaml", {"m": served_vqgan(server, files)})
    model = load_vqgan(*resolve_vqgan("m", registry_file=registry, offline=False))
    assert model.spec.quantizer == ("gumbel" if variant == "gumbel" else "vq")


def test_pin_protects_later_downloads(server, home, tmp_path, tiny_files):
    registry = write_registry(tmp_path / "r.yaml", {"tiny": served_vqgan(server, tiny_files)})
    resolve_vqgan("tiny", registry_file=registry, offline=False)
    Cache(home).remove("tiny")  # pins survive removal
    other = write_taming_vqgan(tmp_path / "other", seed=5)
    server.add("/tiny/last.ckpt", other[1])  # the mirror now serves different bytes
    with pytest.raises(DownloadError, match="checksum mismatch"):
        resolve_vqgan("tiny", registry_file=registry, offline=False)
    assert cache_files(home) == ["tiny/source/config.yaml"]


def test_offline_never_touches_the_network(server, home, tmp_path, tiny_files, monkeypatch):
    registry = write_registry(tmp_path / "r.yaml", {"tiny": served_vqgan(server, tiny_files)})
    with pytest.raises(ModelError) as err:
        resolve_vqgan("tiny", registry_file=registry, offline=True)
    assert "vqclip models download tiny" in str(err.value)
    assert "vqclip models import tiny" in str(err.value)
    for var in ("VQCLIP_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.setenv(var, "1")
        with pytest.raises(ModelError, match="offline"):
            resolve_vqgan("tiny", registry_file=registry)
        monkeypatch.delenv(var)
    assert server.requests == []


def test_config_that_is_not_a_vqgan_config(server, home, tmp_path, tiny_files):
    entry = served_vqgan(server, tiny_files)
    server.add("/tiny/model.yaml", b"model:\n  target: some.Thing\n  params: {lr: 1}\n")
    registry = write_registry(tmp_path / "r.yaml", {"tiny": entry})
    with pytest.raises(ModelError, match="ddconfig"):
        resolve_vqgan("tiny", registry_file=registry, offline=False)
    assert server.gets("/tiny/last.ckpt") == []  # the big file was never fetched
    assert cache_files(home) == [] and not (home / "pins.json").exists()


def test_checkpoint_keys_not_matching_config(server, home, tmp_path, tiny_files):
    gumbel = write_taming_vqgan(tmp_path / "g", gumbel=True)
    entry = served_vqgan(server, (tiny_files[0], gumbel[1]))
    registry = write_registry(tmp_path / "r.yaml", {"tiny": entry})
    with pytest.raises(ModelError) as err:
        resolve_vqgan("tiny", registry_file=registry, offline=False)
    assert "missing keys: quantize.embedding.weight" in str(err.value)
    assert "unexpected keys: quantize.embed.weight" in str(err.value)
    assert cache_files(home) == [] and not (home / "pins.json").exists()


def test_malicious_pickle_is_refused(server, home, tmp_path, tiny_files):
    marker = tmp_path / "pwned"
    bad = write_malicious_checkpoint(tmp_path / "bad.ckpt", marker)
    registry = write_registry(tmp_path / "r.yaml", {"tiny": served_vqgan(
        server, (tiny_files[0], bad))})
    with pytest.raises(UnsafeCheckpointError):
        resolve_vqgan("tiny", registry_file=registry, offline=False)
    assert not marker.exists()
    assert cache_files(home) == [] and not (home / "pins.json").exists()


def test_two_concurrent_resolves_download_and_convert_once(server, home, tmp_path, tiny_files):
    registry = write_registry(tmp_path / "r.yaml", {"tiny": served_vqgan(server, tiny_files)})
    server.delay = 0.02
    results, errors = [], []

    def run():
        try:
            results.append(resolve_vqgan("tiny", registry_file=registry, offline=False))
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and results[0] == results[1]
    assert len(server.gets("/tiny/last.ckpt")) == 1
    assert load_vqgan(*results[0]) is not None


def test_disk_full_while_converting(server, home, tmp_path, tiny_files, monkeypatch):
    registry = write_registry(tmp_path / "r.yaml", {"tiny": served_vqgan(server, tiny_files)})

    def full(model, directory):
        (directory / "model.safetensors").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("vqclip.models.vqgan.save_vqgan", full)
    with pytest.raises(DownloadError, match="disk full while converting tiny"):
        resolve_vqgan("tiny", registry_file=registry, offline=False)
    assert cache_files(home) == [] and not (home / "pins.json").exists()


@pytest.mark.slow
def test_real_default_vqgan_downloads_and_loads(home):
    """Needs the network and ~1 GB: the real imagenet_f16_16384 from its published URL."""
    model = load_vqgan(*resolve_vqgan("imagenet_f16_16384", offline=False))
    assert (model.spec.n_embed, model.factor) == (16384, 16)


def test_a_url_that_never_answers_fails_in_the_configured_time_naming_it(home, monkeypatch):
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # connections are accepted by the kernel; nothing is ever sent back
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/blob.bin"
    monkeypatch.setenv("VQCLIP_DOWNLOAD_TIMEOUT", "1.5")
    started = time.monotonic()
    try:
        with pytest.raises(DownloadError) as err:
            _fetch(home, [url])
    finally:
        silent.close()
    assert time.monotonic() - started < 10
    assert f"from {url.split('/')[2]}: timed out: nothing received for 1.5 s" in str(err.value)
    assert cache_files(home) == []


def test_an_unreachable_proxy_fails_at_once_with_one_line_and_the_way_out(server, home, monkeypatch, caplog):
    import socket
    import time

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed.getsockname()[1]}")
    for name in ("NO_PROXY", "no_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    url = server.add("/blob.bin", BLOB)
    started = time.monotonic()
    try:
        with pytest.raises(DownloadError) as err:
            _fetch(home, [url])
    finally:
        closed.close()
    assert time.monotonic() - started < 5
    message = str(err.value)
    assert message.startswith(f"could not download blob.bin from {server.url('')[7:].rstrip('/')}: "
                              "the proxy cannot be reached; without a network: --preset shapes")
    assert "--offline" in message and "vqclip models import" in message
    assert "kept" not in message and "\n" not in message and len(message) < 300
    assert server.gets("/blob.bin") == []  # nothing went past the proxy


def test_dropped_connections_are_retried_with_one_short_line_each(server, home, caplog):
    url = server.add("/blob.bin", BLOB)
    server.cut_after("/blob.bin", 0, 0, 0)  # the server hangs up before sending any byte
    with pytest.raises(DownloadError) as err:
        _fetch(home, [url], retries=2)
    lines = [r.getMessage() for r in caplog.records if r.name == "vqclip.models.download"]
    host = url.split("/")[2]
    assert lines == [f"download from {host} failed (connection closed mid-file); "
                     f"try {n} of 3 in 0 s" for n in (2, 3)]
    assert "kept" not in str(err.value)  # nothing arrived: no partial file to speak of
    assert _no_partials(home)


def test_a_refused_connection_backs_off_and_names_the_host(home, caplog, monkeypatch):
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    sleeps = []
    monkeypatch.setattr(download.time, "sleep", sleeps.append)
    try:
        with pytest.raises(DownloadError, match=rf"from 127\.0\.0\.1:{port}: connection refused;"):
            fetch_file([f"http://127.0.0.1:{port}/x.bin"], home / "x.bin", partial_dir=home / "partial",
                       lock_dir=home / "locks", progress=False, retries=4)
    finally:
        closed.close()
    assert sleeps == [1.0, 2.0, 4.0, 8.0]
