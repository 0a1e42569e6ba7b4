"""Scale and safety of series, each at small scale: sweep and YAML sizes checked before any
work, manifests with bad bytes, shell-safe hints, claims leased across hosts, a Ray address
that does not answer, file errors that name their file."""

from __future__ import annotations

import io
import json
import logging
import os
import shlex
import socket
import subprocess
import sys
import time

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner

from vqclip.cli import generate as generate_cli
from vqclip.cli.app import app
from vqclip.cli.runs import register
from vqclip.files import atomic_write
from vqclip.series.batch import parse_batch
from vqclip.series.manifest import Manifest

runner = CliRunner()
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def batch(*args: str):
    commands = typer.Typer()
    register(commands)
    return runner.invoke(commands, ["batch", *args])


def test_a_sweep_of_a_hundred_million_runs_is_refused_before_any_is_built(tmp_path) -> None:
    values = ",".join(str(n) for n in range(100))
    sweeps = [arg for key in ("cutn", "seed", "steps", "save_every")
              for arg in ("--sweep", f"{key}={values}")]
    started = time.monotonic()
    result = runner.invoke(app, ["generate", "a cat", "--preset", "shapes", "-o", str(tmp_path), *sweeps])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "error: sweep of 100000000 runs is more than 10000"
    assert time.monotonic() - started < 20 and list(tmp_path.iterdir()) == []


def test_a_bad_swept_value_blames_sweep(tmp_path) -> None:
    result = runner.invoke(app, ["generate", "a cat", "--preset", "shapes", "-o", str(tmp_path),
                                 "--sweep", "lr=abc"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: --sweep: lr: ") and "--set" not in result.stderr


def test_yaml_aliases_in_a_batch_file_are_refused_in_one_line(tmp_path) -> None:
    bomb = "- &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"- &{chr(98 + n)} [{', '.join(['*' + chr(97 + n)] * 9)}]\n" for n in range(8))
    path = tmp_path / "bomb.yaml"
    path.write_text(bomb)
    assert len(bomb) < 600
    result = batch(str(path), "-o", str(tmp_path / "out"), "--preset", "shapes")
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == ("error: batch file line 2: YAML aliases (*a) are not allowed; "
                                     "write each item out")
    assert not (tmp_path / "out").exists()


def test_a_manifest_line_that_is_not_utf8_is_skipped_like_a_torn_line(tmp_path, caplog) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\na blue square\n")
    out = tmp_path / "out"
    out.mkdir()
    done = [{"key": item.key, "index": item.index, "label": "x", "status": "ok", "session": "s"}
            for item in parse_batch(prompts.read_text())]
    lines = [json.dumps(done[0]).encode(), b'{"key": "\xff\xfe", "status": "ok"}',
             json.dumps(done[1]).encode()]
    (out / "manifest.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    with caplog.at_level(logging.WARNING):
        result = batch(str(prompts), "-o", str(out), "--preset", "shapes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["skipped"] == 2
    assert "manifest.jsonl line 2 is not a JSON record" in caplog.text
    assert [r["key"] for r in Manifest(out / "manifest.jsonl").records()] == [d["key"] for d in done]


def test_a_claim_reads_only_what_the_files_gained(tmp_path, monkeypatch) -> None:
    import vqclip.series.jsonlines as jsonlines

    first, second = Manifest(tmp_path / "manifest.jsonl"), Manifest(tmp_path / "manifest.jsonl")
    assert first.claim("a", "s1")
    for number in range(300):  # another process's outcomes, appended meanwhile
        second.append({"key": f"k{number}", "status": "ok", "session": "s2"})
    read: list[int] = []
    real_open = open

    def counting_open(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        if "b" in mode and "r" in mode:
            real_read = handle.read
            handle.read = lambda *a: read.append(len(data := real_read(*a))) or data
        return handle

    monkeypatch.setattr(jsonlines, "open", counting_open, raising=False)
    assert not first.claim("k7", "s1")  # finished by the other process: seen
    gained = sum(read)
    read.clear()
    assert first.claim("b", "s1") and not first.claim("a", "s1") and first.claim("c", "s1")
    assert gained < 300 * 80 and sum(read) < 3 * 400  # the new lines only, never the whole files again


def test_a_claim_from_a_dead_host_is_taken_over_after_its_lease_never_while_renewed(
        tmp_path, monkeypatch, caplog) -> None:
    path = tmp_path / "manifest.jsonl"
    monkeypatch.setenv("VQCLIP_HOST", "node-a")
    on_a = Manifest(path, lease=0.6)
    assert on_a.claim("item", "session-a", index=0)
    monkeypatch.setenv("VQCLIP_HOST", "node-b")
    on_b = Manifest(path, lease=0.6)
    heartbeat = on_a.heartbeat()
    with heartbeat.holding("item", "session-a"):
        deadline = time.monotonic() + 2.0  # three leases: renewed all along, never taken
        while time.monotonic() < deadline:
            assert on_b.claim("item", "session-b", index=0).reason == "busy"
            time.sleep(0.1)
    heartbeat.close()
    time.sleep(0.7)  # node-a stops renewing (its process died): the lease runs out
    with caplog.at_level(logging.WARNING):
        taken = on_b.claim("item", "session-b", index=0)
    assert taken and [c["host"] for c in taken.dead] == ["node-a"]
    assert f"taking over item 0, claimed by pid {os.getpid()} on node-a, which has died" in caplog.text


def test_the_resume_hint_is_shell_quoted(tmp_path, monkeypatch) -> None:
    hostile = tmp_path / "out dir 'q' \"d\"\n$(id)" / "0001-run"
    captured = io.StringIO()
    monkeypatch.setattr(generate_cli, "stderr", Console(file=captured, soft_wrap=True, width=4000))
    generate_cli.say_how_to_continue(hostile, quiet=False)
    command = captured.getvalue().split("Continue that run with: ", 1)[1].rstrip("\n")
    assert shlex.split(command) == ["vqclip", "resume", str(hostile)]


def test_a_full_disk_names_the_file(tmp_path, monkeypatch) -> None:
    import errno

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # as a write to a full disk fails

    monkeypatch.setattr(os, "fsync", full)
    target = tmp_path / "final.png"
    with pytest.raises(OSError) as caught:
        atomic_write(target, b"x")
    assert caught.value.filename == str(target) and caught.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no half-written file, no temporary left


def test_a_device_as_vqgan_config_says_it_is_not_a_regular_file(tmp_path) -> None:
    result = runner.invoke(app, ["generate", "a cat", "--preset", "shapes", "-o", str(tmp_path),
                                 "--steps", "1", "-s", "vqgan.config=/dev/zero",
                                 "-s", "vqgan.checkpoint=/dev/zero"])
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == "error: vqgan.config: not a regular file: /dev/zero"


def test_a_ray_address_where_nothing_listens_fails_bounded_naming_it(tmp_path) -> None:
    pytest.importorskip("ray", reason="Ray is an optional extra (pip install 'vqclip[ray]')")
    with socket.socket() as probe:  # a port of 127.0.0.1 that nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n")
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "vqclip", "batch", str(prompts), "--preset", "shapes",
                           "--ray", "--ray-address", f"127.0.0.1:{port}", "-o", str(tmp_path / "out")],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert done.returncode == 1, done.stderr
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused" in done.stderr
    assert "Traceback" not in done.stderr and time.monotonic() - started < 60


def test_an_item_done_in_this_session_is_no_skip_one_done_elsewhere_is(tmp_path) -> None:
    manifest = Manifest(tmp_path / "manifest.jsonl")
    assert manifest.claim("a", "this", index=0)
    manifest.append({"key": "a", "status": "ok", "session": "this"})  # a sibling worker finished it
    manifest.append({"key": "b", "status": "ok", "session": "other"})
    assert manifest.claim("a", "this").reason == "tried" and not manifest.claim("a", "this").by_another
    assert manifest.claim("b", "this").reason == "done" and manifest.claim("b", "this").by_another
