""""Did you mean" for a mistyped name: the close matches among the valid ones."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

# Names other VQGAN+CLIP tools use for vqclip's config keys (nerdyrodent's and pixray's flags):
# too far from the key for difflib, but what a user coming from those tools types.
KEY_ALIASES = {
    "learning_rate": "lr", "iterations": "steps", "max_iterations": "steps", "num_cuts": "cutn",
    "cutouts": "cutn", "cuts": "cutn", "image_size": "size", "init_weights": "init_weight",
    "optimiser": "optimizer", "save_freq": "save_every", "display_freq": "save_every",
}


def close_names(name: str, valid: Iterable[str], aliases: Mapping[str, str] | None = None) -> list[str]:
    """The valid names `name` most likely meant, best first (at most three)."""
    valid = list(valid)
    known = (aliases or {}).get(name.lower())
    matches = [known] if known in valid else []
    lowered = {choice.lower(): choice for choice in valid}
    matches += [lowered[m] for m in difflib.get_close_matches(name.lower(), lowered, n=3, cutoff=0.6)]
    return list(dict.fromkeys(matches))[:3]


def maybe_meant(name: str, valid: Iterable[str]) -> str:
    """"did you mean 'adam'? " for a close match among `valid`, else nothing."""
    matches = close_names(name, valid)
    return "did you mean " + " or ".join(repr(m) for m in matches) + "? " if matches else ""


def did_you_mean(name: str, valid: Iterable[str], aliases: Mapping[str, str] | None = None) -> str:
    """"; did you mean 'lr'?" for a close match, else "; valid: a, b, c" (empty if none are valid)."""
    valid = list(valid)
    matches = close_names(name, valid, aliases)
    if matches:
        return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"
    return f"; valid: {', '.join(valid)}" if valid else ""
