""""Did you mean" for a mistyped name, and the one wording of an unknown name."""

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


def unknown_name(key: str, name: object, valid: Iterable[str], aliases: Mapping[str, str] | None = None,
                 listed: str | None = None, prefix: str = "") -> str:
    """The message for `name`, given as `key`, that is none of `valid`:
    "KEY='NAME': unknown name; did you mean 'x'? valid: a, b, c" (the did-you-mean only when a
    valid name is close, or `aliases` maps `name` to one). `listed` says what is valid in
    place of the list, where the list is too long or empty. With `prefix` (a dotted key's
    parents, "losses.0."), names are matched without it and shown with it."""
    valid = list(valid)
    matches = close_names(str(name), valid, aliases)
    meant = "did you mean " + " or ".join(repr(prefix + m) for m in matches) + "? " if matches else ""
    listed = listed or ", ".join(prefix + m for m in valid)
    shown = f"{prefix}{name}" if prefix else name
    return f"{key}={shown!r}: unknown name; {meant}valid: {listed}"


def unknown_option(key: str, option: object, valid: Iterable[str], owner: str) -> str:
    """`unknown_name` for an option `owner` (a component's name) does not take, given below
    `key`: "key='KEY.OPTION': unknown name; did you mean 'KEY.x'? valid: x, y (what 'OWNER'
    takes)"."""
    valid = list(valid)
    listed = f"{', '.join(valid)} (what {owner!r} takes)" if valid else f"none, {owner!r} takes no options"
    return unknown_name("key", option, valid, listed=listed, prefix=f"{key}.")
