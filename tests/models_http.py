"""A local HTTP file server for the model-manager tests: 404s, cut connections, Range, delays."""

from __future__ import annotations

import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml


class FileServer:
    """Serves byte strings at paths on 127.0.0.1 and records every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut: dict[str, list[int]] = {}  # path -> body bytes to send before closing, per GET
        self.ignore_range: set[str] = set()
        self.delay = 0.0  # seconds between 64 KiB chunks
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}{path}"

    def add(self, path: str, data: bytes | Path) -> str:
        """Serve `data` at `path`; the URL."""
        self.files[path] = data.read_bytes() if isinstance(data, Path) else data
        return self.url(path)

    def cut_after(self, path: str, *nbytes: int) -> None:
        """Close the connection of the next GETs of `path` after so many body bytes each."""
        self.cut[path] = list(nbytes)

    def gets(self, path: str) -> list[str | None]:
        """The Range header of each request for `path` (None: a whole-file request)."""
        return [rng for p, rng in self.requests if p == path]

    def log(self, path: str, rng: str | None) -> None:
        with self._lock:
            self.requests.append((path, rng))

    def take_cut(self, path: str) -> int | None:
        with self._lock:
            plan = self.cut.get(path)
            return plan.pop(0) if plan else None


def _handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            rng = self.headers.get("Range")
            server.log(self.path, rng)
            data = server.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            match = re.fullmatch(r"bytes=(\d+)-", rng or "")
            if match and self.path not in server.ignore_range:
                start = int(match.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            cut = server.take_cut(self.path)
            if cut is not None:
                self.wfile.write(body[:cut])
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            for i in range(0, len(body), 1 << 16):
                if server.delay:
                    time.sleep(server.delay)
                self.wfile.write(body[i : i + (1 << 16)])

    return Handler


def use_home(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point $VQCLIP_HOME at `root`, online (the suite's conftest sets VQCLIP_OFFLINE=1)."""
    monkeypatch.setenv("VQCLIP_HOME", str(root))
    monkeypatch.delenv("VQCLIP_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    return root


def write_registry(path: Path, models: dict) -> Path:
    """Write a registry YAML with `models` and return its path."""
    path.write_text(yaml.safe_dump({"models": models}, sort_keys=False))
    return path


def served_vqgan(server: FileServer, files: tuple[Path, Path], name: str = "tiny",
                 **extra: object) -> dict:
    """Serve a (yaml, ckpt) pair and return its registry entry."""
    config, checkpoint = files
    return {
        "kind": "vqgan",
        "config": server.add(f"/{name}/model.yaml", config),
        "checkpoint": [server.add(f"/{name}/last.ckpt", checkpoint)],
        **extra,
    }


def cache_files(home: Path) -> list[str]:
    """Every file under home/models, relative, sorted (partial and lock files live elsewhere)."""
    root = home / "models"
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
