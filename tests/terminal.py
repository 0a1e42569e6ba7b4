"""Run a command on a pseudo-terminal, as a user at a terminal would (tests and benchmarks)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time


def run_in_terminal(command: list[str], *, env: dict[str, str], size: tuple[int, int] = (40, 100),
                    timeout: float = 600) -> tuple[int, str]:
    """Run with stdin, stdout and stderr on a pseudo-terminal of `size` (rows, columns); return
    the exit code and everything the command wrote."""
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))
    process = subprocess.Popen(command, stdin=terminal, stdout=terminal, stderr=terminal, env=env,
                               close_fds=True)
    os.close(terminal)
    chunks = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 0.5)
        if ready:
            try:
                data = os.read(controller, 65536)
            except OSError:  # the terminal closed: the command is gone
                break
            if not data:
                break
            chunks.append(data)
        elif process.poll() is not None:
            break
    os.close(controller)
    return process.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")
