"""gallery/<id>.html: one run's image, its race, video, frames, loss plot and config."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

from vqclip.gallery.html import badges, facts_list, head, text, url
from vqclip.gallery.runs import Race, RunEntry
from vqclip.outputs.lossplot import run_plot

VIDEO_SIDE = 512  # a small video is scaled by a whole factor up to about this many pixels


def _size(run: RunEntry) -> tuple[int, int] | None:
    size = run.config.get("size")
    if run.size == "?" or min(size) < 1:
        return None
    return size[0], size[1]


def _video(run: RunEntry, link: str) -> str:
    """The progress video, scaled by a whole factor (pixels stay square and sharp) to a useful size."""
    size = _size(run)
    width = "" if size is None else f' width="{size[0] * max(1, VIDEO_SIDE // max(size))}"'
    source = f'class="video" src="{link}"{width}'
    if run.video.suffix in (".gif", ".webp"):
        return f'<img {source} alt="progress">'
    return f"<video {source} controls loop muted></video>"


def _race(race: Race, link: Callable[[Path], str]) -> str:
    """The candidates of the race, best first, with their scores and the kept one marked."""
    rows = []
    for candidate in sorted(race.candidates, key=lambda c: (c.score, c.seed)):
        won = candidate.seed == race.winner
        picture = (f'<img src="{link(candidate.thumbnail)}" alt="seed {candidate.seed}">'
                   if candidate.thumbnail is not None else '<div class="no-image">no image</div>')
        rows.append(f'<figure class="candidate{" winner" if won else ""}">{picture}<figcaption>'
                    f"seed {candidate.seed}{' (kept)' if won else ''}<br>score {candidate.score:.4f}"
                    "</figcaption></figure>")
    return (f"<h2>Candidates</h2><p>{len(race.candidates)} seeds raced for {race.steps} steps; each "
            "scored by its weighted CLIP prompt loss on fixed cutouts (lower is better), and the "
            f'best continued to the full step count.</p><div class="candidates">{"".join(rows)}</div>')


def _config_text(run: RunEntry) -> str:
    """config.yaml as written; for a race's winner, its candidates and candidate_steps lines say
    the race's (config.yaml holds the winner's own single run: candidates 1)."""
    shown = run.config_text or ""
    if run.race is not None:
        note = "  # from candidates.json"
        shown = re.sub(r"^candidates: .*$", f"candidates: {len(run.race.candidates)}{note}", shown,
                       count=1, flags=re.MULTILINE)
        shown = re.sub(r"^candidate_steps: .*$", f"candidate_steps: {run.race.steps}{note}", shown,
                       count=1, flags=re.MULTILINE)
    return shown


def run_page(run: RunEntry) -> str:
    """The page of one run; every link points inside its run folder."""
    up = ".." if run.rel == "." else "../" + run.rel

    def link(path: Path) -> str:
        return url(up, path.relative_to(run.folder).as_posix())

    html = [head(f"vqclip run: {run.title}"),
            '<header><a href="../index.html">← gallery</a>', f"<h1>{text(run.title)}</h1>",
            badges(run), "</header>", '<main class="run">']
    if run.problems:
        html.append('<ul class="problems">' + "".join(f"<li>{text(p)}</li>" for p in run.problems)
                    + "</ul>")
    if run.image is not None:
        html.append(f'<a href="{link(run.image)}"><img class="full" src="{link(run.image)}" '
                    f'alt="{text(run.title)}"></a>')
    html.append(facts_list(run))
    if run.race is not None:
        html.append(_race(run.race, link))
    if run.video is not None:
        html.append(f"<h2>Video</h2>{_video(run, link(run.video))}")
    if run.frames:
        # frames keep their file's number; the final image ends the strip at the steps done,
        # as the progress bar counts them
        shown = [(f, f"frame {f.stem}", f"step {int(f.stem) if f.stem.isdigit() else f.stem}")
                 for f in run.frames]
        if run.image is not None and run.image.name == "final.png":
            shown.append((run.image, "final image", f"step {run.done} (final)"))
        html.append("<h2>Frames</h2><div class=\"frames\">" + "".join(
            f'<figure><a href="{link(f)}"><img src="{link(f)}" alt="{text(alt)}"></a>'
            f"<figcaption>{text(caption)}</figcaption></figure>" for f, alt, caption in shown) + "</div>")
    html.append(f'<h2>Loss</h2><figure class="plot">{run_plot(run.log)}</figure>')
    if run.config_text is not None:
        html.append(f'<h2>Config</h2><pre class="config">{text(_config_text(run))}</pre>')
    html.append("</main>\n</body>\n</html>\n")
    return "\n".join(html)
