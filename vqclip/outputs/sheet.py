"""Contact sheets: a labelled grid of images, saved atomically."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from vqclip.errors import VqclipError
from vqclip.files import atomic_write

BACKGROUND = (255, 255, 255)
BLANK = (232, 232, 232)  # a None cell: visibly empty, not mistaken for a black image
INK = (0, 0, 0)
GAP = 4  # pixels between cells and around the grid
PAD = 4  # pixels between a label and the grid


@dataclass(frozen=True)
class SheetLayout:
    """Pixel geometry of a sheet: label margins, cell pitch and the whole image size."""

    rows: int
    cols: int
    cell_size: int
    left: int  # width of the row-label column (0 without row labels)
    top: int  # height of the column-label row (0 without column labels)
    caption_height: int  # height under each cell for its caption (0 without captions)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the sheet in pixels."""
        width = self.left + self.cols * self.cell_size + (self.cols + 1) * GAP
        height = self.top + self.rows * (self.cell_size + self.caption_height) + (self.rows + 1) * GAP
        return width, height

    def cell_origin(self, row: int, col: int) -> tuple[int, int]:
        """Top-left pixel of cell (row, col)."""
        x = self.left + GAP + col * (self.cell_size + GAP)
        y = self.top + GAP + row * (self.cell_size + self.caption_height + GAP)
        return x, y


def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    return ImageFont.load_default()


def _text_size(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text or " ")
    return int(right - left), int(bottom - min(top, 0))


def _line_height(font: ImageFont.ImageFont | ImageFont.FreeTypeFont) -> int:
    return _text_size(font, "Ag|")[1] + 2


def _fit(font: ImageFont.ImageFont | ImageFont.FreeTypeFont, text: str, width: int) -> str:
    """Shorten `text` with '...' until it fits in `width` pixels."""
    text = " ".join(str(text).split())  # one line: newlines would overlap the next row
    if _text_size(font, text)[0] <= width:
        return text
    while text and _text_size(font, text + "...")[0] > width:
        text = text[:-1]
    return text + "..." if text else ""


def sheet_layout(
    rows: int,
    cols: int,
    *,
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
    captions: list[list[str]] | None = None,
    cell_size: int = 128,
) -> SheetLayout:
    """Compute the geometry `contact_sheet` will use for these labels."""
    font = _font()
    line = _line_height(font)
    left = 0
    if row_labels:
        # row labels may be wider than a cell, but not without bound
        widest = max(_text_size(font, _fit(font, lbl, 2 * cell_size))[0] for lbl in row_labels)
        left = widest + 2 * PAD
    top = line + PAD if col_labels else 0
    caption_height = line if captions else 0
    return SheetLayout(rows, cols, cell_size, left, top, caption_height)


def _check_shape(name: str, labels: list | None, expected: int) -> None:
    if labels is not None and len(labels) != expected:
        raise VqclipError(f"contact sheet: {len(labels)} {name} for {expected} cells")


def _paste_cell(sheet: Image.Image, path: Path | None, origin: tuple[int, int], size: int) -> None:
    """Paste the image at `path` scaled to fit a size×size box, centered; blank when None."""
    x, y = origin
    if path is None:
        sheet.paste(BLANK, (x, y, x + size, y + size))
        return
    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            # small images are scaled up (nearest: keeps pixels crisp), large ones down
            scale = size / max(img.size)
            new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
            resample = Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS
            img = img.resize(new, resample)
            sheet.paste(img, (x + (size - img.width) // 2, y + (size - img.height) // 2))
    except (OSError, ValueError) as exc:
        raise VqclipError(f"contact sheet: cannot read {path}: {exc}") from exc


def contact_sheet(
    cells: list[list[Path | None]],
    *,
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
    captions: list[list[str]] | None = None,
    cell_size: int = 128,
) -> Image.Image:
    """Draw a grid of images (None = blank cell) with optional row, column and cell labels."""
    rows = len(cells)
    cols = max((len(row) for row in cells), default=0)
    if rows == 0 or cols == 0:
        raise VqclipError("contact sheet: no cells")
    if cell_size < 8:
        raise VqclipError(f"contact sheet: cell_size {cell_size} is too small (at least 8)")
    _check_shape("row labels", row_labels, rows)
    _check_shape("column labels", col_labels, cols)
    if captions is not None:
        _check_shape("caption rows", captions, rows)
    layout = sheet_layout(rows, cols, row_labels=row_labels, col_labels=col_labels,
                          captions=captions, cell_size=cell_size)
    font = _font()
    sheet = Image.new("RGB", layout.size, BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    for r, row in enumerate(cells):
        for c in range(cols):
            origin = layout.cell_origin(r, c)
            _paste_cell(sheet, row[c] if c < len(row) else None, origin, cell_size)
            if captions and c < len(captions[r]) and captions[r][c]:
                text = _fit(font, captions[r][c], cell_size)
                width = _text_size(font, text)[0]
                draw.text((origin[0] + (cell_size - width) // 2, origin[1] + cell_size + 1),
                          text, fill=INK, font=font)
    if col_labels:
        for c, label in enumerate(col_labels):
            text = _fit(font, label, cell_size)
            x = layout.cell_origin(0, c)[0] + (cell_size - _text_size(font, text)[0]) // 2
            draw.text((x, GAP), text, fill=INK, font=font)
    if row_labels:
        line = _line_height(font)
        for r, label in enumerate(row_labels):
            text = _fit(font, label, 2 * cell_size)
            y = layout.cell_origin(r, 0)[1] + (cell_size - line) // 2
            draw.text((PAD, y), text, fill=INK, font=font)
    return sheet


def save_image_atomic(image: Image.Image, path: Path, *, overwrite: bool = False) -> Path:
    """Save a PIL image (format from the suffix, PNG if none) via temp file + rename."""
    path = Path(path)
    suffix = path.suffix.lower().lstrip(".")
    fmt = Image.registered_extensions().get(f".{suffix}", "PNG") if suffix else "PNG"
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(path, buffer.getvalue(), overwrite=overwrite)
    except FileExistsError as exc:
        raise VqclipError(f"{path} already exists; not overwriting it") from exc
    return path
