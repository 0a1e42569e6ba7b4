"""Headless Chromium for tests: the DOM after the page's scripts ran, and screenshots."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome")
                 if (found := shutil.which(name))), None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs headless Chromium (Debian: apt-get install chromium; make test "
                             "installs it where it can)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars"]


def _chromium(*args: str) -> str:
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=120, check=True)
    return done.stdout


def dump_dom(url: str) -> str:
    """The page's DOM, serialized after its scripts ran."""
    return _chromium("--virtual-time-budget=2000", "--dump-dom", url)


def screenshot(url: str, path: Path, size: tuple[int, int] = (1100, 1300)) -> Path:
    """A PNG of the page as a window of `size` shows it."""
    _chromium("--virtual-time-budget=2000", f"--window-size={size[0]},{size[1]}",
              f"--screenshot={path}", url)
    return path


class Elements(HTMLParser):
    """Start tags of a document, each as (tag, attributes, the classes of its ancestors)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None], list[str]]] = []
        self._open: list[tuple[str, str]] = []
        self.text: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.found.append((tag, attributes, [c for _, c in self._open]))
        if tag not in ("img", "input", "meta", "br", "link", "hr", "source"):  # HTML's void elements
            self._open.append((tag, attributes.get("class") or ""))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs), [c for _, c in self._open]))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self._open) - 1, -1, -1):
            if self._open[depth][0] == tag:
                del self._open[depth:]
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def select(self, tag: str, cls: str | None = None, inside: str | None = None
               ) -> list[dict[str, str | None]]:
        """Attributes of the `tag` elements with class `cls`, within an element of class `inside`."""
        return [attrs for name, attrs, ancestors in self.found
                if name == tag and (cls is None or cls in (attrs.get("class") or "").split())
                and (inside is None or any(inside in a.split() for a in ancestors))]
