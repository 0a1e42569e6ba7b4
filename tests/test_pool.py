"""Many items, models loaded once: the worker pool, claims shared between processes, reuse."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vqclip.models.loading
from tests.load_counter import counting_env, loads_by_process
from vqclip.series.batch import BatchSettings, parse_batch, run_batch

pytestmark = pytest.mark.cluster  # many processes: make test-cluster

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}
SHAPES = ["--preset", "shapes", "--set", "size=[32,32]", "--set", "cutn=4"]


def command(*args: str, env: dict[str, str] = ENV) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "vqclip", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True)


def outcomes(folder: Path) -> list[dict]:
    path = folder / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def claims(folder: Path) -> list[dict]:
    path = folder / "claims.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def oks(folder: Path) -> Counter:
    return Counter(r["key"] for r in outcomes(folder) if r["status"] == "ok")


def wait_for(condition, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_two_workers_finish_a_batch_record_a_bad_item_and_a_rerun_skips(tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle --steps 4\na blue square --steps 4\na green star --set bogus=1\n"
                       "a yellow triangle --steps 4\na red star --steps 4\n")
    out = tmp_path / "out"
    first = command("batch", str(prompts), *SHAPES, "--workers", "2", "-o", str(out), "--json")
    stdout, stderr = first.communicate(timeout=300)
    assert first.returncode == 1, stderr  # one item failed, the others finished
    data = json.loads(stdout)
    assert (data["ok"], data["failed"]) == (4, 1)
    assert {r.get("worker") for r in outcomes(out)} == {0, 1}  # both workers ran items
    bad = [r for r in outcomes(out) if r["status"] == "failed"]
    assert len(bad) == 1 and "key='bogus': unknown name" in bad[0]["error"] and bad[0]["line"] == 3
    assert all(Path(r["image"]).is_file() for r in outcomes(out) if r["status"] == "ok")
    assert len({c["pid"] for c in claims(out)}) == 2

    rerun = command("batch", str(prompts), *SHAPES, "--workers", "2", "-o", str(out), "--json")
    stdout, stderr = rerun.communicate(timeout=300)
    data = json.loads(stdout)
    assert (data["ok"], data["failed"], data["skipped"]) == (0, 1, 4), stderr
    assert set(oks(out).values()) == {1}  # nothing ran twice


def test_each_worker_of_a_batch_of_eight_loads_each_model_once(tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a red circle --seed {seed} --steps 4\n" for seed in range(8)))
    out, log = tmp_path / "out", tmp_path / "loads.txt"
    batch = command("batch", str(prompts), *SHAPES, "--workers", "2", "-o", str(out), "-q",
                    env=counting_env(ENV, log))
    _, stderr = batch.communicate(timeout=300)
    assert batch.returncode == 0, stderr
    assert sorted(oks(out).values()) == [1] * 8
    loads = loads_by_process(log)
    assert len(loads) == len({r["worker"] for r in outcomes(out)})  # the processes that ran items
    assert all(counts == {"load_vqgan": 1, "load_perceptor": 1} for counts in loads.values()), loads


def test_a_killed_worker_fails_its_item_and_the_batch_goes_on(tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a red circle --seed {seed} --steps 60\n" for seed in range(4)))
    out = tmp_path / "out"
    batch = command("batch", str(prompts), *SHAPES, "--workers", "2", "-o", str(out), "--json")
    # Killed mid-item: once a run has logged a step, at a claimed item with no outcome yet.
    wait_for(lambda: any(path.stat().st_size for path in out.rglob("log.jsonl")), batch)
    finished = {r["key"] for r in outcomes(out)}
    victim = next(c for c in claims(out) if c["key"] not in finished)
    os.kill(victim["pid"], signal.SIGKILL)
    stdout, stderr = batch.communicate(timeout=300)
    assert batch.returncode == 1, stderr
    lost = [r for r in outcomes(out) if r["key"] == victim["key"]]
    assert [r["status"] for r in lost] == ["failed"]
    assert f"worker process {victim['pid']} died while running it (killed by SIGKILL)" in lost[0]["error"]
    assert sum(oks(out).values()) == 3  # the other worker went on with everything else

    rerun = command("batch", str(prompts), *SHAPES, "--workers", "2", "-o", str(out), "--json")
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert json.loads(stdout)["ok"] == 1
    assert sorted(oks(out).values()) == [1, 1, 1, 1]  # every item done exactly once


def test_ctrl_c_stops_every_worker_after_its_step_and_a_rerun_finishes(tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a blue square --seed {seed} --steps 400\n" for seed in range(3)))
    out = tmp_path / "out"
    batch = command("batch", str(prompts), *SHAPES, "--workers", "2", "-o", str(out),
                   "--set", "save_every=2")
    wait_for(lambda: len(list(out.glob("*/*/state.pt"))) == 2, batch)
    batch.send_signal(signal.SIGINT)
    stdout, stderr = batch.communicate(timeout=120)
    assert batch.returncode == 130, stderr
    stopped = [r for r in outcomes(out) if r["status"] == "interrupted"]
    assert len(stopped) == 2 and all((Path(r["run_dir"]) / "state.pt").is_file() for r in stopped)
    assert "Traceback" not in stderr


def test_two_batch_processes_on_one_folder_share_the_items(tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a green star --seed {seed} --steps 6\n" for seed in range(6)))
    out = tmp_path / "out"
    both = [command("batch", str(prompts), *SHAPES, "-o", str(out), "-q") for _ in range(2)]
    for process in both:
        process.communicate(timeout=300)
        assert process.returncode == 0
    assert sorted(oks(out).values()) == [1] * 6
    assert len([p for p in out.glob("*/*") if (p / "final.png").is_file()]) == 6  # not 12
    assert len({c["pid"] for c in claims(out)}) == 2  # both took a share


def test_a_batch_loads_each_model_once_and_its_items_equal_their_single_runs(
        tiny_sets, tmp_path, monkeypatch, one_thread) -> None:
    loads = Counter()
    for name in ("load_perceptor", "load_vqgan"):
        original = getattr(vqclip.models.loading, name)

        def counted(*args, name=name, original=original, **kwargs):
            loads[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(vqclip.models.loading, name, counted)
    sets = [*tiny_sets, "size=[32,32]", "cutn=2", "steps=3"]
    items = parse_batch("".join(f"a red circle --seed {seed}\n" for seed in range(8)))
    together = run_batch(items, tmp_path / "batch", BatchSettings(sets=sets))
    assert len(together.ok) == 8
    assert loads == {"load_perceptor": 1, "load_vqgan": 1}

    for record in together.ok[:2]:
        alone = run_batch(parse_batch(f"a red circle --seed {record['seed']}\n"), tmp_path / "alone",
                          BatchSettings(sets=sets))
        with Image.open(record["image"]) as a, Image.open(alone.ok[0]["image"]) as b:
            assert np.array_equal(np.asarray(a), np.asarray(b))
        assert alone.ok[0]["final_loss"] == record["final_loss"]
    assert loads == {"load_perceptor": 3, "load_vqgan": 3}  # a batch forgets its models when done


@pytest.mark.parametrize(("args", "message"), [
    (["--workers", "0"], "--workers 0: must be at least 1"),
    (["--workers", "2", "--devices", "cuda:0"], "not both"),
    (["--threads", "2"], "give --workers too"),
])
def test_bad_pool_options_exit_2(tmp_path, args, message) -> None:
    from typer.testing import CliRunner

    from vqclip.cli.app import app

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle\n")
    result = CliRunner().invoke(app, ["batch", str(prompts), *SHAPES, "-o", str(tmp_path / "out"), *args])
    assert result.exit_code == 2 and message in result.stderr
    assert not (tmp_path / "out").exists()


def workers_of(pid: int) -> set[int]:
    """The worker processes (multiprocessing spawn children) whose parent is `pid`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid and b"spawn_main" in command:
            found.add(int(entry.name))
    return found


def running(pids: set[int]) -> set[int]:
    """Those of `pids` that still run (not gone, not a zombie)."""
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


def gone_within(pids: set[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while running(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not running(pids)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_second_interrupt_while_workers_start_quits_at_once_with_them(tmp_path, signum, code) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a red circle --seed {seed} --steps 50\n" for seed in range(2000)))
    out = tmp_path / "out"
    batch = command("batch", str(prompts), *SHAPES, "--workers", "2", "-o", str(out))
    wait_for(lambda: workers_of(batch.pid), batch)
    pids = workers_of(batch.pid)
    batch.send_signal(signum)
    time.sleep(0.2)
    pids |= workers_of(batch.pid)
    batch.send_signal(signum)
    started = time.monotonic()
    stdout, stderr = batch.communicate(timeout=60)
    assert batch.returncode == code, stderr
    assert time.monotonic() - started < 45  # the workers' grace, not a wait for 2,000 items
    assert gone_within(pids, 5), "a worker outlived the batch"
    assert "Traceback" not in stderr and "Unpickling" not in stderr
    assert not [r for r in outcomes(out) if r["status"] == "ok"]  # nothing went on running


def test_a_second_ctrl_c_while_items_run_records_them_interrupted_with_the_hint(tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a blue square --seed {seed} --steps 400\n" for seed in range(3)))
    out = tmp_path / "out"
    batch = command("batch", str(prompts), *SHAPES, "--workers", "2", "-o", str(out), "--set", "save_every=2")
    wait_for(lambda: len(list(out.glob("*/*/state.pt"))) == 2, batch)
    pids = workers_of(batch.pid)
    batch.send_signal(signal.SIGINT)
    batch.send_signal(signal.SIGINT)
    stdout, stderr = batch.communicate(timeout=60)
    assert batch.returncode == 130, stderr
    assert gone_within(pids, 5)
    stopped = [r for r in outcomes(out) if r["status"] == "interrupted"]
    assert len(stopped) == 2 and all((Path(r["run_dir"]) / "state.pt").is_file() for r in stopped)
    assert "Continue that run with: vqclip resume " in stderr and "Traceback" not in stderr


def test_workers_die_with_a_sigkilled_batch_and_a_rerun_takes_their_items_over(tmp_path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a green star --seed {seed} --steps 5\n" for seed in range(3)))
    out = tmp_path / "out"
    batch = command("batch", str(prompts), *SHAPES, "--workers", "2", "-o", str(out))
    wait_for(lambda: len(claims(out)) == 2, batch)
    pids = {c["pid"] for c in claims(out)}
    batch.kill()
    batch.communicate(timeout=30)
    assert gone_within(pids, 5), "a worker went on without its batch"
    rerun = command("batch", str(prompts), *SHAPES, "-o", str(out))
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    assert stderr.count("which has died") == 2 and "taking over item" in stderr
    assert sorted(oks(out).values()) == [1, 1, 1]  # every item made once


def test_workers_are_capped_at_the_items_and_count_skips_as_a_plain_batch_does(tmp_path) -> None:
    from vqclip.series.claims import owner

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a red circle --steps 3\na blue square --steps 3\n")
    held = parse_batch(prompts.read_text())[0]  # claimed by a live process: this test's
    counts = []
    for name, extra in (("pool", ["--workers", "8"]), ("plain", [])):
        out = tmp_path / name
        out.mkdir()
        (out / "claims.jsonl").write_text(json.dumps({"key": held.key, "session": "elsewhere", **owner(),
                                                      "renewed": time.time()}) + "\n")
        batch = command("batch", str(prompts), *SHAPES, "-o", str(out), "--json", *extra)
        stdout, stderr = batch.communicate(timeout=300)
        assert batch.returncode == 0, stderr
        data = json.loads(stdout)
        counts.append((data["ok"], data["skipped"]))
        if extra:
            assert "8 worker processes asked for 2 items: starting 2" in stderr
            assert len({c["pid"] for c in claims(out)} - {os.getpid()}) <= 2
    assert counts == [(1, 1), (1, 1)]


def test_batch_items_travel_to_workers_unbuilt(tmp_path, monkeypatch) -> None:
    import pickle

    import vqclip.series.batch as batch_module

    settings = BatchSettings(sets=["steps=2"])
    built = []
    real = batch_module.build_config
    monkeypatch.setattr(batch_module, "build_config", lambda **kw: built.append(1) or real(**kw))
    seen = []

    class Keep:
        def run(self, items, folder, result, **kwargs):
            seen.extend(item.portable() for item in items)
            return result

    items = parse_batch("".join(f"a red circle --seed {n}\n" for n in range(500)) + "bad --set nope=1\n")
    run_batch(items, tmp_path, settings, engine=Keep())
    assert len(seen) == 501 and built == []  # no config made in this process
    sent = pickle.loads(pickle.dumps(seen))
    assert sent[3].make_config().seed == 3
    with pytest.raises(Exception, match="nope"):
        sent[500].make_config()
