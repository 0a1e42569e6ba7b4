"""A one-machine SLURM cluster for tests: munged, slurmctld and slurmd from Debian's packages,
configured in a temporary folder, listening on 127.0.0.1 only, run as root."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

COMMANDS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "scancel", "sinfo", "squeue", "ss")
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY",
            "BOOT_FAIL", "DEADLINE"}
NODE = "localhost"  # resolves to 127.0.0.1; with NoInAddrAny the daemons bind that address


def unavailable() -> str | None:
    """Why a SLURM cluster cannot be started here, or None."""
    if os.geteuid() != 0:
        return "needs root to run slurmctld and slurmd"
    missing = [name for name in COMMANDS if shutil.which(name) is None]
    if missing:
        return (f"needs Debian's slurmctld, slurmd, slurm-client, munge and iproute2 ({', '.join(missing)} "
                "not found): make test-cluster installs them where root and apt-get allow")
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlurmCluster:
    """munged + slurmctld + slurmd with state, spool, logs and sockets under `root`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.conf = root / "slurm.conf"
        self.socket = root / "munge" / "munge.socket"
        self.ports = (_free_port(), _free_port())
        self.procs: list[subprocess.Popen] = []

    @property
    def env(self) -> dict[str, str]:
        """The environment SLURM's client commands need to reach this cluster."""
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def start(self, timeout: float = 60) -> None:
        """Start the daemons and wait until the node takes jobs."""
        munge = self.root / "munge"
        munge.mkdir(mode=0o700, parents=True)
        key = munge / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o600)
        self._spawn("munged", ["munged", "--foreground", "--force", f"--key-file={key}",
                               f"--socket={self.socket}", f"--pid-file={munge / 'munged.pid'}",
                               f"--log-file={munge / 'munged.log'}", f"--seed-file={munge / 'seed'}"])
        self._wait(self.socket.exists, timeout, "munged did not create its socket")
        for name in ("state", "spool", "log"):
            (self.root / name).mkdir()
        (self.root / "plugstack.conf").write_text("")
        self.conf.write_text(self._config())
        self._spawn("slurmctld", ["slurmctld", "-D", "-i", "-f", str(self.conf)])
        self._spawn("slurmd", ["slurmd", "-D", "-N", NODE, "-f", str(self.conf)])
        self._wait(self._idle, timeout, "the SLURM node did not come up idle")

    def _config(self) -> str:
        root = self.root
        return "\n".join([
            "ClusterName=vqclip-test",
            f"SlurmctldHost={NODE}(127.0.0.1)",
            f"SlurmctldPort={self.ports[0]}",
            f"SlurmdPort={self.ports[1]}",
            "CommunicationParameters=NoCtldInAddrAny,NoInAddrAny",  # bind 127.0.0.1, not 0.0.0.0
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            f"AuthInfo=socket={self.socket}",
            "CredType=cred/munge",
            f"StateSaveLocation={root / 'state'}",
            f"SlurmdSpoolDir={root / 'spool'}",
            f"SlurmctldPidFile={root / 'slurmctld.pid'}",
            f"SlurmdPidFile={root / 'slurmd.pid'}",
            f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
            f"PlugStackConfig={root / 'plugstack.conf'}",
            "MailProg=/bin/true",
            # No systemd and no cgroup delegation in a container: track processes by parent pid.
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "SchedulerType=sched/backfill",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "MpiDefault=none",
            "ReturnToService=2",
            "MinJobAge=3600",  # finished jobs stay visible to scontrol for the test's checks
            "KillWait=30",
            f"NodeName={NODE} NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN",
            f"PartitionName=test Nodes={NODE} Default=YES MaxTime=INFINITE State=UP",
            "",
        ])

    def _spawn(self, name: str, command: list[str]) -> None:
        log = (self.root / f"{name}.out").open("w")
        self.procs.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=self.env,
                                           start_new_session=True))
        log.close()

    def _idle(self) -> bool:
        for proc in self.procs:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {self.logs()}")
        done = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True)
        return done.returncode == 0 and done.stdout.strip() == "idle"

    @staticmethod
    def _wait(ready, timeout: float, message: str) -> None:
        end = time.monotonic() + timeout
        while not ready():
            if time.monotonic() > end:
                raise TimeoutError(message)
            time.sleep(0.2)

    def stop(self) -> None:
        """Cancel every job, stop the daemons, then kill whatever they started that is left."""
        if self.conf.exists() and all(proc.poll() is None for proc in self.procs):
            subprocess.run(["scancel", "--user=root", "--full"], env=self.env, capture_output=True,
                           timeout=60)
            end = time.monotonic() + 30
            while self.command("squeue", "-h", check=False).strip() and time.monotonic() < end:
                time.sleep(0.5)
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, 9)
                    proc.wait()
        self.procs.clear()
        for pid in self._started():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass

    def leftovers(self) -> list[int]:
        """Live processes of this cluster (the daemons, slurmstepd, the jobs)."""
        time.sleep(0.5)  # what was killed a moment ago may still be exiting
        live = []
        for pid in self._started():
            try:
                if "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text():
                    live.append(pid)
            except OSError:
                continue  # gone
        return live

    def _started(self) -> list[int]:
        """Processes started for this cluster (slurmstepd and jobs inherit its SLURM_CONF)."""
        mark = f"SLURM_CONF={self.conf}".encode()
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit() and int(entry.name) != os.getpid():
                try:
                    if mark in (entry / "environ").read_bytes().split(b"\0"):
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def command(self, *args: str, check: bool = True) -> str:
        """Run one SLURM client command against this cluster; its stdout."""
        done = subprocess.run(list(args), env=self.env, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def submit(self, script: Path, *args: str, options: list[str], env: dict[str, str]) -> str:
        """sbatch `script args` with `options` and the environment `env`; the job id."""
        done = subprocess.run(["sbatch", "--parsable", *options, str(script), *args],
                              env={**env, "SLURM_CONF": str(self.conf)}, capture_output=True, text=True,
                              timeout=60)
        if done.returncode != 0:
            raise RuntimeError(f"sbatch exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout.strip().split(";")[0]

    def jobs(self, job: str) -> list[dict[str, str]]:
        """`scontrol show job` of `job` (every task of an array), one dict per job or task."""
        out = self.command("scontrol", "-o", "show", "job", job)
        return [dict(re.findall(r"(\w+)=(\S*)", line)) for line in out.splitlines() if line.strip()]

    def wait(self, job: str, states: set[str], timeout: float) -> list[dict[str, str]]:
        """Wait until every task of `job` is in one of `states`; their records."""
        end = time.monotonic() + timeout
        while True:
            records = self.jobs(job)
            if records and all(r.get("JobState") in states for r in records):
                return records
            if time.monotonic() > end:
                raise TimeoutError(f"job {job} not {sorted(states)} after {timeout:.0f} s: "
                                   f"{[r.get('JobState') for r in records]}\n{self.logs()}")
            time.sleep(0.5)

    def logs(self) -> str:
        """The tail of the daemons' logs, for a failure message."""
        parts = []
        for path in [*sorted(self.root.glob("*.out")), *sorted((self.root / "log").glob("*.log"))]:
            lines = path.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {path.name}\n" + "\n".join(lines))
        return "\n".join(parts)
