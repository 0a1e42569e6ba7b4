"""vqclip: text-to-image generation with VQGAN+CLIP, and CLIP's other jobs.

    import vqclip
    result = vqclip.generate("a red circle", preset="shapes", steps=50)

`generate`, `resume`, `load_models`, `Models`, `Observer`, `StopSwitch`, `classify`, `search`
and `score` are imported on first use, so that `import vqclip` (and the command line's start) stays quick.
"""

from __future__ import annotations

import importlib
from typing import Any

from vqclip.version import __version__

__all__ = ["Models", "Observer", "StopSwitch", "__version__", "classify", "generate", "load_models",
           "resume", "score", "search"]


def __getattr__(name: str) -> Any:
    if name in ("Models", "Observer", "StopSwitch", "classify", "generate", "load_models", "resume",
                "score", "search"):
        return getattr(importlib.import_module("vqclip.library"), name)
    raise AttributeError(f"module 'vqclip' has no attribute {name!r}")
