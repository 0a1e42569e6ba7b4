"""Pieces of HTML both gallery pages use: escaping, links, the head, a run's facts and badges."""

from __future__ import annotations

from html import escape
from importlib import resources
from urllib.parse import quote

from vqclip.gallery.runs import RunEntry


def text(value: object) -> str:
    """`value` as HTML text or an attribute's value."""
    return escape(str(value), quote=True)


def url(*parts: str) -> str:
    """A relative URL from path parts (posix), percent-encoded and escaped for an attribute."""
    path = "/".join(p for p in parts if p not in ("", "."))
    return escape(quote(path, safe="/"), quote=True)


def asset(name: str) -> str:
    """A file shipped beside this module (the style sheet, the script)."""
    return resources.files("vqclip.gallery").joinpath(name).read_text(encoding="utf-8")


def number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def head(title: str, body_class: str = "") -> str:
    """The document up to the opening <body>."""
    classes = f' class="{text(body_class)}"' if body_class else ""
    return ('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{text(title)}</title>\n<style>\n{asset('gallery.css')}</style>\n</head>\n"
            f"<body{classes}>")


def facts(run: RunEntry) -> list[tuple[str, str]]:
    """What a card and a run page list of a run, as (name, value)."""
    steps = "?" if run.steps is None else run.steps
    items = [("seed", "?" if run.seed is None else str(run.seed)), ("steps", f"{run.done}/{steps}"),
             ("size", run.size), ("loss", number(run.log.final_loss)),
             ("seconds", number(run.seconds, 3)), ("models", run.models)]
    if run.race is not None:
        items.append(("candidates", f"{len(run.race.candidates)}, seed {run.race.winner} won"))
    if run.score is not None:
        items.append(("CLIP score", f"{run.score:.4f}"))
    if run.overrides:
        items.append(("settings", " ".join(run.overrides)))
    return items


def facts_list(run: RunEntry) -> str:
    return "<dl>" + "".join(f"<dt>{text(k)}</dt><dd>{text(v)}</dd>" for k, v in facts(run)) + "</dl>"


def badges(run: RunEntry) -> str:
    """Small labels for what sets a run apart: resumed, a race's winner, a video, interrupted,
    damaged; each with a tooltip saying more."""
    found = []
    if run.resumed:
        at = ", ".join(str(step) for step in run.log.resumes)
        found.append(("resumed", "resumed", f"resumed after step {at}"))
    if run.race is not None:
        found.append(("winner", f"best of {len(run.race.candidates)}",
                      f"kept seed {run.race.winner} of a race of {len(run.race.candidates)} candidates"))
    if run.video is not None:
        found.append(("video", "video", f"has a progress video ({run.video.name})"))
    if run.interrupted:
        found.append(("interrupted", "interrupted",
                      f"stopped at step {run.done} of {run.steps} (interrupted, or still running)"))
    if run.problems:
        found.append(("damaged", "damaged", "; ".join(run.problems)))
    if not found:
        return ""
    return '<ul class="badges">' + "".join(
        f'<li class="badge {kind}" title="{text(tip)}">{text(label)}</li>' for kind, label, tip in found
    ) + "</ul>"
