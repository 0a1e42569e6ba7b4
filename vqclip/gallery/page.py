"""The gallery's HTML: the index (sweep grids, cards) and one page per run; every text escaped."""

from __future__ import annotations

from html import escape
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from vqclip.gallery.runs import GALLERY_DIR, RunEntry, Sweep
from vqclip.outputs.lossplot import Curve, loss_svg, run_plot


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _url(*parts: str) -> str:
    """A relative URL from path parts (posix), percent-encoded and escaped for an attribute."""
    path = "/".join(p for p in parts if p not in ("", "."))
    return escape(quote(path, safe="/"), quote=True)


def _asset(name: str) -> str:
    return resources.files("vqclip.gallery").joinpath(name).read_text(encoding="utf-8")


def _number(value: float | None, digits: int = 4) -> str:
    return "" if value is None else f"{value:.{digits}g}"


def _head(title: str) -> str:
    return ('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_text(title)}</title>\n<style>\n{_asset('gallery.css')}</style>\n</head>\n")


def _picture(run: RunEntry, thumbs: dict[str, Path], root: Path) -> str:
    thumb = thumbs.get(run.id)
    if thumb is None:
        return '<div class="no-image">no image yet</div>'
    return f'<img src="{_url(thumb.relative_to(root).as_posix())}" alt="{_text(run.prompt)}">'


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


def sweep_section(sweep: Sweep, thumbs: dict[str, Path], root: Path) -> str:
    """A sweep as an X/Y grid (seeds across when they vary, else the last swept key) with its
    settings on each cell, and all its loss curves overlaid."""
    keys = _varying(sweep.runs)
    across = ["seed"] if "seed" in keys else keys[-1:]
    down = [k for k in keys if k not in across]
    columns: dict[str, None] = {}
    rows: dict[str, None] = {}
    cells: dict[tuple[str, str], RunEntry] = {}
    for run in sweep.runs:
        column, row = _settings(run, across), _settings(run, down)
        columns.setdefault(column)
        rows.setdefault(row)
        cells[(row, column)] = run
    corner = " \\ ".join(names for names in (" ".join(down), " ".join(across)) if names)
    html = [f'<section class="sweep" data-folder="{_text(sweep.rel)}">',
            f"<h2>Sweep {_text(sweep.rel)}</h2>", '<table class="grid">',
            f"<thead><tr><th>{_text(corner)}</th>"
            + "".join(f'<th scope="col">{_text(c)}</th>' for c in columns) + "</tr></thead>", "<tbody>"]
    for row in rows:
        html.append(f'<tr><th scope="row">{_text(row)}</th>')
        for column in columns:
            run = cells.get((row, column))
            if run is None:
                html.append("<td></td>")
                continue
            html.append(
                f'<td class="cell" data-prompt="{_text(run.prompt.lower())}">'
                f'<a href="{_url(GALLERY_DIR, run.id + ".html")}">{_picture(run, thumbs, root)}</a>'
                f'<div class="settings">{_text(_settings(run, keys))}</div>'
                f'<div class="loss">loss {_number(run.log.final_loss)}</div></td>')
        html.append("</tr>")
    html.append("</tbody></table>")
    curves = [Curve(_settings(run, keys) or run.rel, run.log.steps, run.log.losses) for run in sweep.runs]
    overlay = loss_svg(curves, width=640, height=260, title="loss, every run of the sweep")
    html.append(f'<figure class="overlay">{overlay}</figure>\n</section>')
    return "\n".join(html)


def _facts(run: RunEntry) -> list[tuple[str, str]]:
    cfg = run.config
    done = run.log.steps[-1] + 1 if run.log.steps else 0
    size = cfg.get("size") or ["?", "?"]
    facts = [("seed", str(cfg.get("seed"))), ("steps", f"{done}/{cfg.get('steps')}"),
             ("size", f"{size[0]}×{size[1]}"), ("loss", _number(run.log.final_loss)),
             ("seconds", _number(run.seconds, 3)), ("models", run.models)]
    if run.score is not None:
        facts.append(("CLIP score", f"{run.score:.4f}"))
    if run.overrides:
        facts.append(("settings", " ".join(run.overrides)))
    return facts


def _facts_list(run: RunEntry) -> str:
    return "<dl>" + "".join(f"<dt>{_text(k)}</dt><dd>{_text(v)}</dd>" for k, v in _facts(run)) + "</dl>"


def card(run: RunEntry, order: int, thumbs: dict[str, Path], root: Path) -> str:
    """A run's card: thumbnail (opening its page), prompt, facts and loss curve."""
    data = {"prompt": run.prompt.lower(), "loss": _number(run.log.final_loss, 8),
            "score": _number(run.score, 8), "seconds": _number(run.seconds, 8), "order": str(order)}
    attributes = " ".join(f'data-{k}="{_text(v)}"' for k, v in data.items())
    curve = loss_svg([Curve("loss", run.log.steps, run.log.losses)], switches=run.log.switches,
                     resumes=run.log.resumes, width=220, height=90, title="loss")
    return (f'<article class="card" {attributes}>'
            f'<a href="{_url(GALLERY_DIR, run.id + ".html")}">{_picture(run, thumbs, root)}</a>'
            f'<h3 class="prompt">{_text(run.prompt)}</h3>{_facts_list(run)}'
            f'<div class="curve">{curve}</div>'
            "</article>")


def index_page(title: str, runs: list[RunEntry], sweeps: list[Sweep], thumbs: dict[str, Path],
               root: Path) -> str:
    """The gallery's index.html."""
    html = [_head(f"vqclip gallery: {title}"), "<body>", "<header>",
            f"<h1>{_text(title)}</h1>",
            '<input id="filter" type="search" placeholder="filter by prompt" aria-label="filter by prompt">',
            '<label>sort <select id="sort">'
            '<option value="order">folder order</option><option value="loss">final loss</option>'
            '<option value="score">CLIP score</option><option value="seconds">time</option>'
            "</select></label>", f'<span id="count">{len(runs)} runs</span>', "</header>"]
    html.extend(sweep_section(sweep, thumbs, root) for sweep in sweeps)
    html.append('<main id="cards">')
    html.extend(card(run, i, thumbs, root) for i, run in enumerate(runs))
    html.append("</main>")
    html.append(f"<script>\n{_asset('gallery.js')}</script>\n</body>\n</html>\n")
    return "\n".join(html)


def run_page(run: RunEntry) -> str:
    """gallery/<id>.html: the full image, its frames or video, the loss plot and the config."""
    up = ".." if run.rel == "." else "../" + run.rel

    def link(path: Path) -> str:
        return _url(up, path.relative_to(run.folder).as_posix())

    html = [_head(f"vqclip run: {run.prompt}"), "<body>",
            '<header><a href="../index.html">← gallery</a>', f"<h1>{_text(run.prompt)}</h1></header>",
            '<main class="run">']
    if run.image is not None:
        html.append(f'<a href="{link(run.image)}"><img class="full" src="{link(run.image)}" '
                    f'alt="{_text(run.prompt)}"></a>')
    html.append(_facts_list(run))
    if run.video is not None:
        source = f'class="video" src="{link(run.video)}"'
        player = (f"<img {source} alt=\"progress\">" if run.video.suffix in (".gif", ".webp")
                  else f"<video {source} controls loop></video>")
        html.append(f"<h2>Video</h2>{player}")
    if run.frames:
        html.append("<h2>Frames</h2><div class=\"frames\">" + "".join(
            f'<figure><a href="{link(f)}"><img src="{link(f)}" alt="frame {_text(f.stem)}"></a>'
            f"<figcaption>step {_text(int(f.stem) if f.stem.isdigit() else f.stem)}</figcaption></figure>"
            for f in run.frames) + "</div>")
    html.append(f'<h2>Loss</h2><figure class="plot">{run_plot(run.log)}</figure>')
    html.append(f'<h2>Config</h2><pre class="config">{_text(run.config_text)}</pre>')
    html.append("</main>\n</body>\n</html>\n")
    return "\n".join(html)
