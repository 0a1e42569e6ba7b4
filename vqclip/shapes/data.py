"""The shapes world's procedural dataset: scenes of colored shapes, their images and captions."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from vqclip.suggest import unknown_name

# Shape colors: hues far apart so both the CLIP and a pixel statistic can tell them apart.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "orange": (250, 140, 20),
    "yellow": (245, 225, 30),
    "green": (40, 180, 50),
    "cyan": (30, 210, 230),
    "blue": (35, 70, 230),
    "purple": (145, 45, 200),
    "pink": (255, 120, 200),
    "white": (245, 245, 245),
}
COLORS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross")
# Drawn only as a hard negative for the CLIP ("a red blob" is not "a red circle"): the
# irregular blobs generation falls into when it does not find the asked shape.
BLOB = "blob"

# Neutral backgrounds only, so a color word always names the shape. Dark ones dominate
# (generation starts from a black canvas); the weights are the sampling probabilities.
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "dark gray": (55, 55, 55),
    "gray": (128, 128, 128),
    "white": (255, 255, 255),
}
BACKGROUND_WEIGHTS: dict[str, float] = {"black": 0.5, "dark gray": 0.2, "gray": 0.15, "white": 0.15}
TWO_TONE_FRACTION = 0.2
DARK_RANGE = (0.15, 0.6)  # brightness factors of dark shapes (see `darkened`)
BLUR_RANGE = (1.0, 3.0)  # Gaussian blur radii (pixels of a 64-pixel image) of blurry scenes
# Softening blur radii per shape, as fractions of its radius (see `softened`).
SOFTEN_RANGE: dict[str, tuple[float, float]] = {
    "square": (0.4, 0.55), "triangle": (0.3, 0.45), "star": (0.15, 0.3), "cross": (0.3, 0.45),
}
# A ragged shape's outline (see `ragged`): this many harmonics of the angle, each of an amplitude
# (a fraction of the distance from the centre) drawn from RAGGED_AMPLITUDE.
RAGGED_HARMONICS = 5
RAGGED_AMPLITUDE = (0.1, 0.2)

SIZE_WORDS = ("small", "medium", "large")
# Radius (fraction of the side) ranges per size class; the gaps keep the classes apart.
SIZE_RADII: dict[str, tuple[float, float]] = {
    "small": (0.09, 0.14),
    "medium": (0.17, 0.24),
    "large": (0.28, 0.38),
}
POSITION_WORDS: dict[tuple[int, int], str] = {
    (0, 0): "top left", (1, 0): "top", (2, 0): "top right",
    (0, 1): "left", (1, 1): "center", (2, 1): "right",
    (0, 2): "bottom left", (1, 2): "bottom", (2, 2): "bottom right",
}
POSITION_PHRASES: dict[str, str] = {
    w: "in the center" if w == "center" else f"on the {w}" if w in ("left", "right")
    else f"at the {w}" for w in POSITION_WORDS.values()
}
COUNT_WORDS = {2: "two", 3: "three", 4: "four"}


@dataclass(frozen=True)
class ShapeObject:
    """One shape: kind, color name, exact RGB, center (x, y) and radius as fractions of the
    side; `dark` shapes are drawn dimmed and captioned "dark red"."""

    shape: str
    color: str
    rgb: tuple[int, int, int]
    cx: float
    cy: float
    radius: float
    dark: bool = False
    # A blob's outline: radius factors (1 + sum a_k cos(k*angle + phase_k)) as (a_k, phase_k).
    wobble: tuple[tuple[float, float], ...] = ()
    # A blob may instead trace this shape's outline, softened: blurred by a Gaussian of radius
    # `soften` (a fraction of the side) and cut sharp again, which rounds its corners and
    # fills its notches; or, with a wobble, made ragged: each point of the outline moved
    # toward or away from the centre by the wobble's harmonics of its angle.
    traced: str | None = None
    soften: float = 0.0

    @property
    def whole(self) -> bool:
        """Whether the whole shape lies inside the image (none of it cut off by the frame)."""
        points = _outline(self)
        return all(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 for x, y in points)

    @property
    def color_word(self) -> str:
        """The color as captions name it."""
        return f"dark {self.color}" if self.dark else self.color

    @property
    def size_word(self) -> str:
        """The size class this radius falls in (thresholds halfway between the classes)."""
        if self.radius < 0.155:
            return "small"
        return "medium" if self.radius < 0.26 else "large"

    @property
    def position_word(self) -> str:
        """Which ninth of the image holds the center."""
        col = min(2, max(0, int(self.cx * 3)))
        row = min(2, max(0, int(self.cy * 3)))
        return POSITION_WORDS[(col, row)]


@dataclass(frozen=True)
class Scene:
    """A background (plain, or two tones split by a polygon) and the shapes drawn on it."""

    background: str
    objects: tuple[ShapeObject, ...]
    second_background: str | None = None
    split: tuple[tuple[float, float], ...] = ()
    blur: float = 0.0  # Gaussian blur radius as a fraction of the side (0: sharp)

    @property
    def background_word(self) -> str:
        """The background's caption name; two-tone backgrounds are named as such."""
        return "two-tone" if self.second_background else self.background


@dataclass(frozen=True)
class Claim:
    """What a caption asserts; None means the caption says nothing about that attribute."""

    count: int | None = None
    at_least: int = 1
    shape: str | None = None
    color: str | None = None
    dark: bool | None = None  # with a color: whether the caption called it dark
    whole: bool | None = None  # whether the caption says every shape is whole (not cut off)
    blurry: bool | None = None  # whether the caption calls the picture blurry
    objects: tuple[tuple[str, str], ...] | None = None
    size: str | None = None
    position: str | None = None
    background: str | None = None

    def matches(self, scene: Scene) -> bool:
        """Whether the scene makes this caption true."""
        objs = scene.objects
        one = objs[0] if len(objs) == 1 else None
        return not (
            (self.count is not None and len(objs) != self.count)
            or len(objs) < self.at_least
            or (self.shape is not None and any(o.shape != self.shape for o in objs))
            or (self.color is not None and any(o.color != self.color for o in objs))
            or (self.dark is not None and any(o.dark != self.dark for o in objs))
            or (self.whole is not None and any(o.whole != self.whole for o in objs))
            or (self.blurry is not None and (scene.blur > 0) != self.blurry)
            or (self.objects is not None
                and sorted(self.objects) != sorted((o.shape, o.color) for o in objs))
            or (self.size is not None and (one is None or one.size_word != self.size))
            or (self.position is not None and (one is None or one.position_word != self.position))
            or (self.background is not None and scene.background_word != self.background)
        )


@dataclass
class ShapeBatch:
    """Images (B,3,H,W) in [0,1], captions, their claims, labels, scenes and foreground masks."""

    images: torch.Tensor
    captions: list[str]
    claims: list[Claim]
    labels: dict[str, torch.Tensor]
    scenes: list[Scene]
    masks: torch.Tensor | None = None

    def positives(self) -> torch.Tensor:
        """(B,B) bool: entry [i, j] says caption j is true of image i (the diagonal always is)."""
        return torch.tensor([[c.matches(s) for c in self.claims] for s in self.scenes])


def article(word: str) -> str:
    """'a' or 'an' for the word that follows."""
    return "an" if word[0] in "aeiou" else "a"


def plural(noun: str) -> str:
    """The plural of a shape name ('crosses', 'circles')."""
    return noun + "es" if noun.endswith("s") else noun + "s"


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    """Vertices of a shape of 'radius' r (half its extent) centred on (cx, cy)."""
    if shape == "square":
        s = r * 0.9
        return [(cx - s, cy - s), (cx + s, cy - s), (cx + s, cy + s), (cx - s, cy + s)]
    if shape == "triangle":
        angles = [-90.0, 30.0, 150.0]
        return [(cx + r * math.cos(math.radians(a)), cy + 0.15 * r + r * math.sin(math.radians(a)))
                for a in angles]
    if shape == "star":
        pts = []
        for k in range(10):
            rad = r if k % 2 == 0 else r * 0.42
            a = math.radians(-90.0 + 36.0 * k)
            pts.append((cx + rad * math.cos(a), cy + 0.05 * r + rad * math.sin(a)))
        return pts
    if shape == "cross":
        w = r * 0.33
        return [(cx - w, cy - r), (cx + w, cy - r), (cx + w, cy - w), (cx + r, cy - w),
                (cx + r, cy + w), (cx + w, cy + w), (cx + w, cy + r), (cx - w, cy + r),
                (cx - w, cy + w), (cx - r, cy + w), (cx - r, cy - w), (cx - w, cy - w)]
    raise ValueError(unknown_name("shape", shape, SHAPES))


def _wobble(obj: ShapeObject, angle: float) -> float:
    """The factor (1 + sum a_k cos(k*angle + phase_k)), k from 2, of a blob's outline at an angle."""
    return 1 + sum(amp * math.cos((h + 2) * angle + phase) for h, (amp, phase) in enumerate(obj.wobble))


def _blob(obj: ShapeObject, points: int = 48) -> list[tuple[float, float]]:
    """The outline of a blob: a circle whose radius wobbles with a few low harmonics."""
    outline = []
    for k in range(points):
        a = 2 * math.pi * k / points
        rad = obj.radius * _wobble(obj, a)
        outline.append((obj.cx + rad * math.cos(a), obj.cy + rad * math.sin(a)))
    return outline


def _ragged(obj: ShapeObject, points: int = 96) -> list[tuple[float, float]]:
    """The traced shape's outline, walked at `points` even steps, each moved from the centre by
    the wobble factor at its angle."""
    corners = _polygon(obj.traced, obj.cx, obj.cy, obj.radius)
    edges = list(zip(corners, corners[1:] + corners[:1], strict=True))
    lengths = [math.dist(a, b) for a, b in edges]
    step = sum(lengths) / points
    outline, walked = [], 0.0
    for (a, b), length in zip(edges, lengths, strict=True):
        while walked < length:
            t = walked / length
            x, y = a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1])
            factor = _wobble(obj, math.atan2(y - obj.cy, x - obj.cx))
            outline.append((obj.cx + factor * (x - obj.cx), obj.cy + factor * (y - obj.cy)))
            walked += step
        walked -= length
    return outline


def _outline(obj: ShapeObject) -> list[tuple[float, float]]:
    """Points of a shape's outline (a circle's extreme points; a polygon's vertices)."""
    if obj.shape == "circle":
        r = obj.radius
        return [(obj.cx - r, obj.cy), (obj.cx + r, obj.cy), (obj.cx, obj.cy - r), (obj.cx, obj.cy + r)]
    if obj.shape == BLOB and obj.traced:
        return _ragged(obj) if obj.wobble else _polygon(obj.traced, obj.cx, obj.cy, obj.radius)
    if obj.shape == BLOB:
        return _blob(obj)
    return _polygon(obj.shape, obj.cx, obj.cy, obj.radius)


def _draw_object(draw: ImageDraw.ImageDraw, obj: ShapeObject, px: int, fill: object) -> None:
    """Draw one shape on a canvas of px pixels per side."""
    if obj.shape == "circle":
        box = [(obj.cx - obj.radius) * px, (obj.cy - obj.radius) * px,
               (obj.cx + obj.radius) * px, (obj.cy + obj.radius) * px]
        draw.ellipse(box, fill=fill)
    else:
        draw.polygon([(x * px, y * px) for x, y in _outline(obj)], fill=fill)


def _draw_softened(img: Image.Image, obj: ShapeObject, px: int, fill: object) -> None:
    """Draw a softened shape: its outline blurred by obj.soften, then thresholded at half."""
    outline = Image.new("L", img.size, 0)
    _draw_object(ImageDraw.Draw(outline), obj, px, 255)
    cut = outline.filter(ImageFilter.GaussianBlur(obj.soften * px)).point(
        lambda v: 255 if v >= 128 else 0)
    img.paste(fill, (0, 0, *img.size), cut)


def _draw(scene: Scene, size: int, supersample: int, mask: bool) -> Image.Image:
    """Draw the scene (or its foreground mask) large, then shrink: anti-aliased edges."""
    px = size * supersample
    if mask:
        img = Image.new("L", (px, px), 0)
    else:
        img = Image.new("RGB", (px, px), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(img)
    if scene.second_background and not mask:
        draw.polygon([(x * px, y * px) for x, y in scene.split],
                     fill=BACKGROUNDS[scene.second_background])
    for obj in scene.objects:
        if obj.soften:
            _draw_softened(img, obj, px, 255 if mask else obj.rgb)
        else:
            _draw_object(draw, obj, px, 255 if mask else obj.rgb)
    if scene.blur and not mask:
        img = img.filter(ImageFilter.GaussianBlur(scene.blur * px))
    return img.resize((size, size), Image.Resampling.BOX) if supersample > 1 else img


def render_scene(scene: Scene, size: int = 64, supersample: int = 3) -> Image.Image:
    """Draw a scene as an RGB image."""
    return _draw(scene, size, supersample, mask=False)


def render_mask(scene: Scene, size: int = 64, supersample: int = 3) -> Image.Image:
    """The scene's foreground coverage as a grayscale image (255 = shape)."""
    return _draw(scene, size, supersample, mask=True)


def to_tensor(img: Image.Image) -> torch.Tensor:
    """A PIL image as a float (C,H,W) tensor in [0,1]."""
    arr = np.asarray(img, dtype=np.float32) / 255.0
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1)


def draw_shape(
    shape: str,
    color: str,
    *,
    size: int = 64,
    background: str = "black",
    radius: float = 0.25,
    center: tuple[float, float] = (0.5, 0.5),
    as_tensor: bool = False,
) -> Image.Image | torch.Tensor:
    """Draw one named shape in a palette color on a plain background (PIL image or tensor)."""
    if color not in PALETTE:
        raise ValueError(unknown_name("color", color, COLORS))
    if background not in BACKGROUNDS:
        raise ValueError(unknown_name("background", background, BACKGROUNDS))
    if shape not in SHAPES:
        raise ValueError(unknown_name("shape", shape, SHAPES))
    obj = ShapeObject(shape, color, PALETTE[color], center[0], center[1], radius)
    img = render_scene(Scene(background, (obj,)), size=size)
    return to_tensor(img) if as_tensor else img


def _jitter_rgb(rgb: tuple[int, int, int], rng: np.random.Generator) -> tuple[int, int, int]:
    """The palette color with a small per-channel jitter, so colors are classes, not points."""
    noise = rng.integers(-12, 13, size=3)
    return tuple(int(np.clip(c + n, 0, 255)) for c, n in zip(rgb, noise, strict=True))


def _random_background(rng: np.random.Generator, two_tone: bool) -> Scene:
    """An empty scene with a random plain or two-tone background."""
    names = list(BACKGROUND_WEIGHTS)
    probs = np.array([BACKGROUND_WEIGHTS[n] for n in names])
    first = names[rng.choice(len(names), p=probs / probs.sum())]
    if not two_tone:
        return Scene(first, ())
    second = names[(names.index(first) + 1 + rng.integers(len(names) - 1)) % len(names)]
    # A half-plane through a random point at a random angle, as a big quadrilateral.
    ang = rng.uniform(0, 2 * math.pi)
    px, py = rng.uniform(0.3, 0.7, size=2)
    dx, dy = math.cos(ang), math.sin(ang)
    nx, ny = -dy, dx
    far = 3.0
    split = ((px - far * dx, py - far * dy), (px + far * dx, py + far * dy),
             (px + far * dx + far * nx, py + far * dy + far * ny),
             (px - far * dx + far * nx, py - far * dy + far * ny))
    return Scene(first, (), second, split)


def _pick_color(rng: np.random.Generator, scene: Scene) -> str:
    """A shape color that stands out from a plain background (no white on white)."""
    while True:
        color = COLORS[rng.integers(len(COLORS))]
        if color != "white" or "white" not in (scene.background, scene.second_background):
            return color


def random_single_scene(rng: np.random.Generator) -> Scene:
    """A scene of exactly one shape of random kind, color, size and position."""
    scene = _random_background(rng, rng.random() < TWO_TONE_FRACTION)
    shape = SHAPES[rng.integers(len(SHAPES))]
    color = _pick_color(rng, scene)
    lo, hi = SIZE_RADII[SIZE_WORDS[rng.integers(len(SIZE_WORDS))]]
    r = rng.uniform(lo, hi)
    margin = min(r + 0.02, 0.5)
    cx, cy = rng.uniform(margin, 1 - margin, size=2)
    obj = ShapeObject(shape, color, _jitter_rgb(PALETTE[color], rng), float(cx), float(cy), r)
    return replace(scene, objects=(obj,))


def random_multi_scene(rng: np.random.Generator) -> Scene:
    """A scene of 2-4 non-overlapping shapes: copies of one shape (half the time) or a mix."""
    scene = _random_background(rng, rng.random() < TWO_TONE_FRACTION)
    n = int(rng.integers(2, 5))
    same = rng.random() < 0.5
    kinds = [(SHAPES[rng.integers(len(SHAPES))], _pick_color(rng, scene))]
    objs: list[ShapeObject] = []
    for _ in range(200):
        if len(objs) == n:
            break
        shape, color = kinds[0] if same or not objs else (
            SHAPES[rng.integers(len(SHAPES))], _pick_color(rng, scene))
        r = rng.uniform(0.08, 0.2 if n > 2 else 0.24)
        cx, cy = rng.uniform(r + 0.01, 1 - r - 0.01, size=2)
        if all(math.hypot(cx - o.cx, cy - o.cy) > r + o.radius + 0.03 for o in objs):
            objs.append(ShapeObject(shape, color, _jitter_rgb(PALETTE[color], rng),
                                    float(cx), float(cy), r))
    if len(objs) < 2:  # vanishingly rare: no room found; fall back to a single shape
        return random_single_scene(rng)
    return replace(scene, objects=tuple(objs))


def view_scene(scene: Scene, x0: float, y0: float, side: float, flip: bool = False) -> Scene:
    """The scene seen through a square window (fractions of the side), optionally mirrored."""

    def tx(x: float) -> float:
        u = (x - x0) / side
        return 1.0 - u if flip else u

    objs = tuple(replace(o, cx=tx(o.cx), cy=(o.cy - y0) / side, radius=o.radius / side)
                 for o in scene.objects)
    split = tuple((tx(x), (y - y0) / side) for x, y in scene.split)
    return replace(scene, objects=objs, split=split)


def random_view(scene: Scene, rng: np.random.Generator, min_side: float = 0.5) -> Scene:
    """A random crop (side in [min_side, 1]) keeping every shape's center inside, maybe flipped."""
    side = rng.uniform(min_side, 1.0)
    xs = [o.cx for o in scene.objects]
    ys = [o.cy for o in scene.objects]
    # Window origin range keeping all centers at least 0.1*side inside the window.
    pad = 0.1 * side
    x_lo, x_hi = max(0.0, max(xs) + pad - side), min(1.0 - side, min(xs) - pad)
    y_lo, y_hi = max(0.0, max(ys) + pad - side), min(1.0 - side, min(ys) - pad)
    if x_lo > x_hi or y_lo > y_hi:
        return view_scene(scene, 0.0, 0.0, 1.0, flip=bool(rng.random() < 0.5))
    return view_scene(scene, rng.uniform(x_lo, x_hi), rng.uniform(y_lo, y_hi), side,
                      flip=bool(rng.random() < 0.5))


def darkened(scene: Scene, rng: np.random.Generator) -> Scene:
    """The scene with every shape darkened by one random factor in DARK_RANGE ("dark red").

    Generation starts from a dark canvas and brightens its shapes step by step. A CLIP that has seen
    dark shapes tells their hue, so its gradient points to the asked color from the first
    steps; and as "a red circle" is not true of a dark red one, it still asks for brightness.
    """
    factor = rng.uniform(*DARK_RANGE)
    objs = tuple(replace(o, rgb=tuple(int(c * factor) for c in o.rgb), dark=True)
                 for o in scene.objects)
    return replace(scene, objects=objs)


def cut_off(scene: Scene, rng: np.random.Generator) -> Scene:
    """The one-shape scene with its shape moved across a random edge of the frame, its centre
    inside at 0.1-0.7 of its radius from that edge: "part of a red square", not "a red square"."""
    obj = scene.objects[0]
    inset = rng.uniform(0.1, 0.7) * obj.radius
    edge = int(rng.integers(4))
    along = float(rng.uniform(0.2, 0.8))
    cx, cy = [(inset, along), (1 - inset, along), (along, inset), (along, 1 - inset)][edge]
    moved = replace(obj, cx=float(cx), cy=float(cy))
    if moved.whole:  # a shape whose outline does not reach its radius there (a star's notch)
        moved = replace(moved, **({"cx": -0.05} if edge == 0 else {"cx": 1.05} if edge == 1
                                  else {"cy": -0.05} if edge == 2 else {"cy": 1.05}))
    return replace(scene, objects=(moved,))


def blurred(scene: Scene, rng: np.random.Generator) -> Scene:
    """The scene blurred by a Gaussian of a random radius in BLUR_RANGE pixels (at 64 pixels):
    "a blurry picture of a red square", not "a red square"."""
    return replace(scene, blur=float(rng.uniform(*BLUR_RANGE)) / 64)


def blobbed(scene: Scene, rng: np.random.Generator) -> Scene:
    """The one-shape scene with its shape replaced by an irregular blob of the same size and
    color: "a red blob", not "a red circle"."""
    obj = scene.objects[0]
    wobble = tuple((float(rng.uniform(0.08, 0.2)), float(rng.uniform(0, 2 * math.pi)))
                   for _ in range(int(rng.integers(2, 4))))
    return replace(scene, objects=(replace(obj, shape=BLOB, wobble=wobble),))


def softened(scene: Scene, rng: np.random.Generator) -> Scene:
    """The one-shape scene with its shape's outline softened by a random amount in SOFTEN_RANGE
    (times its radius), rounded past where the pixel judge still calls it that shape (as the
    test checks for medium and large shapes on black): "a red blob", not "a red square".
    Circles and small shapes are left as they are: softening leaves a circle, and makes a
    small shape one."""
    obj = scene.objects[0]
    if obj.shape not in SOFTEN_RANGE or obj.size_word == "small":
        return scene
    soften = float(rng.uniform(*SOFTEN_RANGE[obj.shape])) * obj.radius
    return replace(scene, objects=(replace(obj, shape=BLOB, traced=obj.shape, soften=soften),))


def ragged(scene: Scene, rng: np.random.Generator) -> Scene:
    """The one-shape scene with its shape's outline made ragged by RAGGED_HARMONICS random
    harmonics, most often past where the pixel judge still calls it that shape (a test counts
    how often, for medium and large shapes on black): "a red blob", not "a red star". Circles
    and small shapes are left as they are (a ragged circle is a blob, and `blobbed` draws those)."""
    obj = scene.objects[0]
    if obj.shape == "circle" or obj.size_word == "small":
        return scene
    wobble = tuple((float(rng.uniform(*RAGGED_AMPLITUDE)), float(rng.uniform(0, 2 * math.pi)))
                   for _ in range(RAGGED_HARMONICS))
    return replace(scene, objects=(replace(obj, shape=BLOB, traced=obj.shape, wobble=wobble),))


@dataclass(frozen=True)
class HardNegatives:
    """Fractions of one-shape scenes turned into hard negatives of their plain caption."""

    blob: float = 0.0
    cut: float = 0.0
    blur: float = 0.0
    soft: float = 0.0
    ragged: float = 0.0

    def _spoilers(self) -> tuple[tuple[float, Callable[[Scene, np.random.Generator], Scene]], ...]:
        return ((self.blob, blobbed), (self.cut, cut_off), (self.blur, blurred),
                (self.soft, softened), (self.ragged, ragged))

    def __bool__(self) -> bool:
        return any(fraction for fraction, _ in self._spoilers())

    def apply(self, scene: Scene, rng: np.random.Generator) -> Scene:
        """At most one of: a blob, cut off by the frame, blurred, softened, made ragged (by the
        fractions)."""
        pick, below = rng.random(), 0.0
        for fraction, spoil in self._spoilers():
            below += fraction
            if pick < below:
                return spoil(scene, rng)
        return scene


def _single_caption(scene: Scene, rng: np.random.Generator, spoilers: bool) -> tuple[str, Claim]:
    """One of several phrasings describing a one-shape scene, with what it claims. With
    `spoilers`, also whether the shape is whole and the picture blurry, said in words only when
    it is not whole, or blurry; without, a shape that a crop cuts off is captioned as if whole
    (as the shipped CLIP was trained)."""
    text, claim = _single_phrase(scene, rng)
    if not spoilers:
        return text, claim
    o = scene.objects[0]
    if not o.whole:
        text = f"part of {text}"
    if scene.blur:
        text = f"a blurry picture of {text.removeprefix('a picture of ')}"
    return text, replace(claim, whole=o.whole, blurry=scene.blur > 0)


def _single_phrase(scene: Scene, rng: np.random.Generator) -> tuple[str, Claim]:
    o = scene.objects[0]
    bg = scene.background_word
    form = int(rng.integers(12))
    cs = f"{o.color_word} {o.shape}"
    if form == 0:
        return f"a {o.shape}", Claim(count=1, shape=o.shape)
    if form == 1:
        return f"{article(o.color_word)} {o.color_word} shape", Claim(count=1, color=o.color,
                                                                      dark=o.dark)
    if form == 2:
        return f"{article(o.size_word)} {o.size_word} {cs}", Claim(
            count=1, shape=o.shape, color=o.color, dark=o.dark, size=o.size_word)
    if form == 3:
        return f"{article(cs)} {cs} {POSITION_PHRASES[o.position_word]}", Claim(
            count=1, shape=o.shape, color=o.color, dark=o.dark, position=o.position_word)
    if form == 4:
        s = o.size_word
        return f"{article(s)} {s} {cs} {POSITION_PHRASES[o.position_word]}", Claim(
            count=1, shape=o.shape, color=o.color, dark=o.dark, size=s, position=o.position_word)
    if form == 5 and bg != "two-tone":
        return f"{article(cs)} {cs} on a {bg} background", Claim(
            count=1, shape=o.shape, color=o.color, dark=o.dark, background=bg)
    if form == 6:
        return f"one {cs}", Claim(count=1, shape=o.shape, color=o.color, dark=o.dark)
    if form == 7:
        return f"a single {cs}", Claim(count=1, shape=o.shape, color=o.color, dark=o.dark)
    if form == 8:
        return f"a picture of {article(cs)} {cs}", Claim(count=1, shape=o.shape, color=o.color,
                                                         dark=o.dark)
    return f"{article(cs)} {cs}", Claim(count=1, shape=o.shape, color=o.color, dark=o.dark)


def _multi_caption(scene: Scene, rng: np.random.Generator) -> tuple[str, Claim]:
    """A caption for a several-shape scene: a count, the shared kind, or the list of shapes."""
    objs = scene.objects
    n = len(objs)
    kinds = {(o.shape, o.color) for o in objs}
    form = int(rng.integers(3))
    if len(kinds) == 1:
        shape, color = next(iter(kinds))
        if form == 0:
            text = f"{COUNT_WORDS[n]} {color} {plural(shape)}"
            return text, Claim(count=n, shape=shape, color=color)
        if form == 1:
            return f"several {color} {plural(shape)}", Claim(at_least=2, shape=shape, color=color)
        return f"many {plural(shape)}", Claim(at_least=2, shape=shape)
    if form == 0 or n > 3:
        return f"{COUNT_WORDS[n]} shapes", Claim(count=n)
    pairs = [(o.shape, o.color) for o in objs]
    text = " and ".join(f"{article(c)} {c} {s}" for s, c in pairs)
    return text, Claim(count=n, objects=tuple(sorted(pairs)))


def caption_scene(scene: Scene, rng: np.random.Generator, *, spoilers: bool = True) -> tuple[str, Claim]:
    """A random true caption for the scene and the claim it makes (`spoilers`: see
    `_single_caption`)."""
    if len(scene.objects) == 1:
        return _single_caption(scene, rng, spoilers)
    return _multi_caption(scene, rng)


def make_batch(
    n: int,
    rng: np.random.Generator,
    *,
    size: int = 64,
    multi_fraction: float = 0.25,
    augment: bool = False,
    with_masks: bool = False,
    shape_pairs: float = 0.0,
    dark_fraction: float = 0.0,
    hard_negatives: HardNegatives | None = None,
) -> ShapeBatch:
    """A batch of n random scenes, rendered, captioned and labelled.

    Labels: shape and color indices into SHAPES/COLORS (-1 for several-shape images and blobs) and the
    shape count. augment: half the scenes are seen through a random crop, maybe mirrored.
    shape_pairs: the fraction of one-shape scenes followed by a twin of another shape.
    dark_fraction: the fraction of one-shape scenes on plain black (a shape not white) whose
        shape is darkened.
    hard_negatives: fractions of one-shape scenes made into a blob, cut off by the frame,
        blurred, softened or made ragged (each untrue of the plain caption "a red square"); with
        any of them, captions also say when a crop cut a shape off ("part of a red square").
    """
    scenes: list[Scene] = []
    while len(scenes) < n:
        scene = random_multi_scene(rng) if rng.random() < multi_fraction else random_single_scene(
            rng)
        if augment and rng.random() < 0.5:
            scene = random_view(scene, rng)
        # A darkened white would be gray, a color the palette does not name.
        if dark_fraction and len(scene.objects) == 1 and scene.objects[0].color != "white" and (
                scene.background_word == "black" and rng.random() < dark_fraction):
            scene = darkened(scene, rng)
        if hard_negatives and len(scene.objects) == 1:
            scene = hard_negatives.apply(scene, rng)
        scenes.append(scene)
        # A twin differing only in shape: a hard negative that color alone cannot separate.
        if shape_pairs and len(scene.objects) == 1 and len(scenes) < n and (
                rng.random() < shape_pairs):
            obj = scene.objects[0]
            others = [s for s in SHAPES if s != obj.shape]
            other = others[rng.integers(len(others))]
            scenes.append(replace(scene, objects=(replace(obj, shape=other),)))
    spoilers = bool(hard_negatives)
    captions, claims = zip(*(caption_scene(s, rng, spoilers=spoilers) for s in scenes), strict=True)
    images = torch.stack([to_tensor(render_scene(s, size)) for s in scenes])
    single = [len(s.objects) == 1 and s.objects[0].shape != BLOB for s in scenes]
    labels = {
        "shape": torch.tensor([SHAPES.index(s.objects[0].shape) if one else -1
                               for s, one in zip(scenes, single, strict=True)]),
        "color": torch.tensor([COLORS.index(s.objects[0].color) if one else -1
                               for s, one in zip(scenes, single, strict=True)]),
        "count": torch.tensor([len(s.objects) for s in scenes]),
    }
    masks = torch.stack([to_tensor(render_mask(s, size)) for s in scenes]) if with_masks else None
    return ShapeBatch(images, list(captions), list(claims), labels, scenes, masks)


def batch_for_seed(n: int, seed: int, **kwargs: object) -> ShapeBatch:
    """make_batch with a fresh generator from an integer seed (same seed, same batch)."""
    return make_batch(n, np.random.default_rng(seed), **kwargs)  # type: ignore[arg-type]
