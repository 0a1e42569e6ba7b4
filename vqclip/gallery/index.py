"""The gallery's index.html: a section per series (a sweep's grid and curves), then the cards."""

from __future__ import annotations

from pathlib import Path

from vqclip.gallery.groups import Group
from vqclip.gallery.html import asset, badges, facts_list, head, number, text, url
from vqclip.gallery.runs import GALLERY_DIR, RunEntry
from vqclip.outputs.lossplot import Curve, extent, loss_svg

Axes = tuple[int, float, float]


def _picture(run: RunEntry, thumbs: dict[str, Path], root: Path) -> str:
    thumb = thumbs.get(run.id)
    if thumb is None:
        return '<div class="no-image">no image</div>'
    return f'<img src="{url(thumb.relative_to(root).as_posix())}" alt="{text(run.title)}">'


def _split(override: str) -> tuple[str, str]:
    key, _, value = override.partition("=")
    return key, value


def _varying(runs: list[RunEntry]) -> list[str]:
    """The override keys whose values differ between the runs, in the order they were given."""
    values: dict[str, set[str]] = {}
    for run in runs:
        for key, value in map(_split, run.overrides):
            values.setdefault(key, set()).add(value)
    return [key for key, seen in values.items() if len(seen) > 1]


def _settings(run: RunEntry, keys: list[str]) -> str:
    return " ".join(o for o in run.overrides if _split(o)[0] in keys)


def sweep_grid(group: Group, thumbs: dict[str, Path], root: Path) -> str:
    """A sweep as an X/Y grid (seeds across when they vary, else the last swept key) with its
    settings on each cell, and all its loss curves overlaid."""
    keys = _varying(group.runs)
    across = ["seed"] if "seed" in keys else keys[-1:]
    down = [k for k in keys if k not in across]
    columns: dict[str, None] = {}
    rows: dict[str, None] = {}
    cells: dict[tuple[str, str], RunEntry] = {}
    for run in group.runs:
        column, row = _settings(run, across), _settings(run, down)
        columns.setdefault(column)
        rows.setdefault(row)
        cells[(row, column)] = run
    corner = " \\ ".join(names for names in (" ".join(down), " ".join(across)) if names)
    html = ['<table class="grid">', f"<thead><tr><th>{text(corner)}</th>"
            + "".join(f'<th scope="col">{text(c)}</th>' for c in columns) + "</tr></thead>", "<tbody>"]
    for row in rows:
        html.append(f'<tr><th scope="row">{text(row)}</th>')
        for column in columns:
            run = cells.get((row, column))
            if run is None:
                html.append("<td></td>")
                continue
            html.append(
                f'<td class="cell" data-prompt="{text(run.prompt.lower())}">'
                f'<a href="{url(GALLERY_DIR, run.id + ".html")}">{_picture(run, thumbs, root)}</a>'
                f'<div class="settings">{text(_settings(run, keys))}</div>'
                f'<div class="loss">loss {number(run.log.final_loss)}</div></td>')
        html.append("</tr>")
    html.append("</tbody></table>")
    curves = [Curve(_settings(run, keys) or run.rel, run.log.steps, run.log.losses) for run in group.runs]
    overlay = loss_svg(curves, width=640, height=260, title="loss, every run of the sweep")
    html.append(f'<figure class="overlay">{overlay}</figure>')
    return "\n".join(html)


def _curve(run: RunEntry, axes: Axes | None = None) -> str:
    return loss_svg([Curve("loss", run.log.steps, run.log.losses)], switches=run.log.switches,
                    resumes=run.log.resumes, width=220, height=90, title="loss", axes=axes)


def card(run: RunEntry, order: int, thumbs: dict[str, Path], root: Path, axes: Axes | None) -> str:
    """A run's card: thumbnail (opening its page), prompt, badges, facts and loss curve; with
    `axes` (a series' shared extent) a second curve on those, shown by the axes switch."""
    data = {"prompt": run.prompt.lower(), "loss": number(run.log.final_loss, 8),
            "score": number(run.score, 8), "seconds": number(run.seconds, 8), "order": str(order)}
    attributes = " ".join(f'data-{k}="{text(v)}"' for k, v in data.items())
    curves = (f'<div class="curve">{_curve(run)}</div>' if axes is None else
              f'<div class="curve own-axes">{_curve(run)}</div>'
              f'<div class="curve shared-axes">{_curve(run, axes)}</div>')
    return (f'<article class="card" {attributes}>'
            f'<a href="{url(GALLERY_DIR, run.id + ".html")}">{_picture(run, thumbs, root)}</a>'
            f'<h3 class="prompt">{text(run.title)}</h3>{badges(run)}{facts_list(run)}{curves}'
            "</article>")


def _shared_axes(runs: list[RunEntry]) -> Axes:
    return extent([Curve("", run.log.steps, run.log.losses) for run in runs])


def group_section(group: Group, first: int, thumbs: dict[str, Path], root: Path) -> str:
    """A series (its title, its grid for a sweep) and its cards; or the runs of no series."""
    series = group.kind != "runs"
    axes = _shared_axes(group.runs) if series and len(group.runs) > 1 else None
    count = f"{len(group.runs)} run" + ("" if len(group.runs) == 1 else "s")
    html = [f'<section class="group" data-kind="{text(group.kind)}" data-folder="{text(group.rel)}">',
            f'<h2>{text(group.title)} <span class="count">{count}</span></h2>']
    if group.kind == "sweep":
        html.append(sweep_grid(group, thumbs, root))
    html.append('<div class="cards">')
    html.extend(card(run, first + i, thumbs, root, axes) for i, run in enumerate(group.runs))
    html.append("</div>\n</section>")
    return "\n".join(html)


def index_page(title: str, groups: list[Group], thumbs: dict[str, Path], root: Path) -> str:
    """The gallery's index.html."""
    runs = sum(len(group.runs) for group in groups)
    html = [head(f"vqclip gallery: {title}", "shared-axes"), "<header>",
            f"<h1>{text(title)}</h1>",
            '<input id="filter" type="search" placeholder="filter by prompt" aria-label="filter by prompt">',
            '<label>sort <select id="sort">'
            '<option value="order">folder order</option><option value="loss">final loss</option>'
            '<option value="score">CLIP score</option><option value="seconds">time</option>'
            "</select></label>",
            '<label title="the cards of a batch, sweep or zoom drawn on the same step and loss axes">'
            '<input id="axes" type="checkbox" checked> same loss axes within a series</label>',
            f'<span id="count">{runs} runs</span>', "</header>", "<main>"]
    first = 0
    for group in groups:
        html.append(group_section(group, first, thumbs, root))
        first += len(group.runs)
    html.append("</main>")
    html.append(f"<script>\n{asset('gallery.js')}</script>\n</body>\n</html>\n")
    return "\n".join(html)
