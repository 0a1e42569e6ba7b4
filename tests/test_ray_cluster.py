"""vqclip batch --ray on a two-node Ray cluster (a head and a worker node in network namespaces
of their own): items land on both nodes, a node that dies costs its item, a rerun finishes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from tests.cluster_ray import MARK, PORTS, TwoNodeRay, unavailable

ROOT = Path(__file__).resolve().parents[1]
WHY_NOT = unavailable()

pytestmark = [pytest.mark.cluster, pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or "")]

SHAPES = ["red circle", "blue square", "green triangle", "yellow star", "white circle", "red square",
          "blue circle", "green square"]


@pytest.fixture(scope="module")
def cluster():
    # Ray's socket paths must stay under 108 bytes: a short folder, not pytest's deep tmp_path.
    root = Path(tempfile.mkdtemp(prefix="vqray", dir="/tmp"))
    # A home of its own: Ray reads ~/.ray (an auth_token there makes its servers demand tokens).
    # No RAY_ variables inherited: a ray.init() earlier in this process leaves RAY_AUTH_MODE=token
    # in os.environ; these nodes run without token authentication, as the README describes.
    (root / "home").mkdir()
    inherited = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
    env = {**inherited, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "VQCLIP_OFFLINE": "1",
           "HOME": str(root / "home"), "RAY_AUTH_MODE": "disabled"}
    ray = TwoNodeRay(root, env)
    try:
        ray.start()
        yield ray
    finally:
        ray.stop()
        shutil.rmtree(root, ignore_errors=True)
    assert not ray.leftovers(), "Ray processes or namespaces outlived the cluster"


def _batch(cluster: TwoNodeRay, prompts: Path, out: Path, log: Path) -> subprocess.Popen:
    """`vqclip batch --ray --ray-address` from a driver inside the head node's namespace."""
    command = cluster.head.exec(sys.executable, "-m", "vqclip", "batch", str(prompts), "--ray",
                                "--ray-address", cluster.gcs, "-o", str(out), "--preset", "shapes",
                                "-s", "steps=30")  # long enough that the node dies mid-item
    env = {**cluster.env, MARK: cluster.head.namespace}
    with log.open("w") as sink:
        return subprocess.Popen(command, env=env, stdout=sink, stderr=subprocess.STDOUT)


def _records(out: Path, name: str = "manifest.jsonl") -> list[dict]:
    path = out / name
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def _running_on(out: Path, actor: int) -> bool:
    """Whether actor number `actor` holds an item now: claimed for it, no outcome yet."""
    done = {r["key"] for r in _records(out)}
    return any(c.get("worker") == actor and c["key"] not in done for c in _records(out, "claims.jsonl"))


def _wait(condition, driver: subprocess.Popen, log: Path, what: str) -> None:
    end = time.monotonic() + 900
    while not condition():
        assert driver.poll() is None, f"the batch ended before {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < end, f"not {what} after 900 s"
        time.sleep(0.1)


def _ports(*namespace: str) -> set[int]:
    command = ["ip", "netns", "exec", *namespace, "ss", "-ltnH"] if namespace else ["ss", "-ltnH"]
    listening = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    return {int(line.split()[3].rsplit(":", 1)[1]) for line in listening.splitlines()}


def test_ray_listens_only_inside_the_namespaces(cluster: TwoNodeRay) -> None:
    assert 26379 in _ports(cluster.head.namespace)  # the head's GCS, inside its namespace
    assert 26381 in _ports(cluster.worker.namespace)  # the worker's raylet, inside its own
    assert not _ports() & PORTS  # the machine's own interfaces: none of the Ray ports


def test_items_land_on_both_nodes_and_a_dead_node_costs_only_its_items(
        cluster: TwoNodeRay, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("".join(f"a {shape} --seed {seed}\n" for seed, shape in enumerate(SHAPES)))
    out = tmp_path / "out"
    log = tmp_path / "driver.log"
    driver = _batch(cluster, prompts, out, log)
    try:
        _wait(lambda: any(r.get("node") == cluster.worker.address for r in _records(out)), driver, log,
              "an item finished on the worker node")
        actor = next(r["worker"] for r in _records(out) if r.get("node") == cluster.worker.address)
        _wait(lambda: _running_on(out, actor), driver, log, "the worker node's actor held its next item")
        killed = time.monotonic()
        cluster.kill_raylet(cluster.worker)
        code = driver.wait(timeout=900)
    finally:
        if driver.poll() is None:
            driver.kill()
    went_on = time.monotonic() - killed
    output = log.read_text()

    first = _records(out)
    assert code == 1, output[-3000:]  # an item failed; the batch itself ran to its end
    assert sorted(r["index"] for r in first) == list(range(len(SHAPES)))  # each item made or failed
    assert {r["node"] for r in first if r["status"] == "ok"} == {cluster.head.address, cluster.worker.address}
    failed = [r for r in first if r["status"] == "failed"]
    assert failed and all(r["node"] == cluster.worker.address and "died while running it" in r["error"]
                          for r in failed), failed

    rerun = _batch(cluster, prompts, out, tmp_path / "rerun.log")
    started = time.monotonic()
    try:
        assert rerun.wait(timeout=900) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    finally:
        if rerun.poll() is None:
            rerun.kill()
    finished = time.monotonic() - started

    ok = [r for r in _records(out) if r["status"] == "ok"]
    assert sorted(r["index"] for r in ok) == list(range(len(SHAPES)))  # one ok per key
    assert len({r["key"] for r in ok}) == len(SHAPES)
    assert all(Path(r["image"]).is_file() for r in ok)
    print(f"two nodes: {len(first) - len(failed)} ok and {len(failed)} failed with the worker's raylet "
          f"killed; the batch ended {went_on:.0f} s after the kill, exit 1; the rerun made "
          f"{len(ok) - len(first) + len(failed)} in {finished:.0f} s, exit 0")
