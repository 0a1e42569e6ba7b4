"""A two-node Ray cluster on one machine for tests: each node in its own network namespace,
joined by a veth pair with private 10.x addresses that exist only inside those namespaces; both
nodes see the same filesystem, as cluster nodes share NFS."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

RAY = Path(sys.executable).with_name("ray")
MARK = "VQCLIP_TEST_RAY_NODE"  # in the environment of every process a node starts, to find them
# Pinned ports (the same inside each namespace, which has its own); none is Ray's default.
GCS_PORT = 26379
NODE_PORTS = ["--object-manager-port", "26380", "--node-manager-port", "26381",
              "--runtime-env-agent-port", "26382", "--dashboard-agent-grpc-port", "26383",
              "--dashboard-agent-listen-port", "26384", "--metrics-export-port", "26385",
              "--min-worker-port", "26400", "--max-worker-port", "26450"]
PORTS = {GCS_PORT, *range(26380, 26386), *range(26400, 26451)}


def unavailable() -> str | None:
    """Why two namespaced Ray nodes cannot be started here, or None."""
    if not RAY.exists():
        return f"needs Ray's command line ({RAY}): pip install 'vqclip[ray]'"
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("ss") is None:
        return "needs root and iproute2 to create network namespaces"
    name = f"vqprobe{secrets.token_hex(3)}"
    made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if made.returncode != 0:
        return f"ip netns add is not allowed here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


@dataclass
class Node:
    """One Ray node: its namespace, address and temporary folder."""

    namespace: str
    address: str
    temp: Path

    def exec(self, *command: str) -> list[str]:
        """`command` run inside this node's network namespace."""
        return ["ip", "netns", "exec", self.namespace, *command]


class TwoNodeRay:
    """A Ray head and a worker node, each in a network namespace of its own."""

    def __init__(self, root: Path, env: dict[str, str]) -> None:
        tag = secrets.token_hex(3)
        subnet = f"10.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}"
        self.tag = tag
        self.root = root
        self.env = env
        self.head = Node(f"vqhead{tag}", f"{subnet}.1", root / "h")
        self.worker = Node(f"vqwork{tag}", f"{subnet}.2", root / "w")
        self.made: list[str] = []

    @property
    def gcs(self) -> str:
        """The address drivers and nodes join the cluster by."""
        return f"{self.head.address}:{GCS_PORT}"

    def start(self) -> None:
        """Build the namespaces and the link, then start the head and the worker node."""
        for node in (self.head, self.worker):
            _ip("netns", "add", node.namespace)
            self.made.append(node.namespace)
            _ip("-n", node.namespace, "link", "set", "lo", "up")
        left, right = f"vqa{self.tag}", f"vqb{self.tag}"
        _ip("link", "add", left, "type", "veth", "peer", "name", right)
        for device, node in ((left, self.head), (right, self.worker)):
            _ip("link", "set", device, "netns", node.namespace)
            _ip("-n", node.namespace, "addr", "add", f"{node.address}/24", "dev", device)
            _ip("-n", node.namespace, "link", "set", device, "up")
        self._ray_start(self.head, "--head", f"--port={GCS_PORT}", "--include-dashboard=false")
        self._ray_start(self.worker, f"--address={self.gcs}")

    def _ray_start(self, node: Node, *options: str) -> None:
        node.temp.mkdir(parents=True)
        command = node.exec(str(RAY), "start", f"--node-ip-address={node.address}", "--num-cpus=1",
                            f"--object-store-memory={100 * 2**20}", f"--temp-dir={node.temp}",
                            "--disable-usage-stats", *NODE_PORTS, *options)
        env = {**self.env, MARK: node.namespace, "RAY_USAGE_STATS_ENABLED": "0"}
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
        if done.returncode != 0:
            raise RuntimeError(f"ray start in {node.namespace} exited {done.returncode}:\n"
                               f"{done.stdout[-2000:]}{done.stderr[-3000:]}")

    def processes(self, node: Node) -> dict[int, str]:
        """The live processes `node` started (pid -> command line)."""
        mark = f"{MARK}={node.namespace}".encode()
        found = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if mark in (entry / "environ").read_bytes().split(b"\0"):
                    found[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
        return found

    def kill_raylet(self, node: Node) -> int:
        """SIGKILL `node`'s raylet, as a node failure does; its pid."""
        [pid] = [pid for pid, line in self.processes(node).items() if "/raylet/raylet " in line]
        os.kill(pid, 9)
        return pid

    def leftovers(self) -> list[str]:
        """What is left of the cluster: live processes it started, namespaces it made."""
        names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
        return [*(line for node in (self.head, self.worker) for line in self.processes(node).values()),
                *(name for name in (self.head.namespace, self.worker.namespace) if name in names)]

    def stop(self) -> None:
        """Kill every process the nodes started (never `ray stop`, which stops every Ray on the
        machine), then delete the namespaces and with them the link."""
        for _ in range(3):
            pids = [pid for node in (self.head, self.worker) for pid in self.processes(node)]
            if not pids:
                break
            for pid in pids:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            time.sleep(0.5)
        for namespace in self.made:
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True)
        self.made.clear()
