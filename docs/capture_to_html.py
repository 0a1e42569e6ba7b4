"""Turn a colored terminal capture (`tmux capture-pane -e -p`) into an HTML page to screenshot.

    tmux capture-pane -e -p -t demo | python docs/capture_to_html.py > capture.html
"""

from __future__ import annotations

import io
import sys

from rich.console import Console
from rich.terminal_theme import MONOKAI
from rich.text import Text

# Half blocks only join into a picture when lines touch: line-height 1, no gaps.
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><style>
body {{ margin: 0; background: {background}; }}
pre {{ margin: 0; padding: 12px; font: 14px/1 "DejaVu Sans Mono", monospace; color: {foreground}; }}
</style></head><body><pre>{code}</pre></body></html>
"""


def main() -> None:
    capture = Text.from_ansi(sys.stdin.read().rstrip("\n"))
    width = max((len(line) for line in capture.plain.splitlines()), default=80)
    console = Console(record=True, file=io.StringIO(), width=width, color_system="truecolor")
    console.print(capture, soft_wrap=True)
    sys.stdout.write(console.export_html(theme=MONOKAI, inline_styles=True, code_format=PAGE))


if __name__ == "__main__":
    main()
