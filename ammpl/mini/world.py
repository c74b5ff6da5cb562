"""The mini world: procedural 64-pixel images of objects with named factors, and captions.

An image shows one to three copies of an object: a shape (12) filled with a colour (12)
in a pattern (4), small or large, over one of six backgrounds. A caption names a random
subset of those factors in one of several phrasings ("a photo of a small red striped
star", "two green hearts on sand", "itap of a dotted shape"), so words must be bound to
visual factors rather than memorised per image. Everything is a pure function of a NumPy
Generator: the same seed gives the same pixels and the same words on every machine.

`Style` is the knob the downstream datasets turn (blur, noise, colour cast, clutter,
outline drawing): the analogue of a downstream domain that differs from pretraining.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

IMAGE_SIZE = 64

SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "cross", "heart",
    "diamond", "hexagon", "ring", "moon", "arrow", "pentagon",
)  # fmt: skip
PLURALS = {shape: shape + ("es" if shape.endswith("s") else "s") for shape in SHAPES}
PLURALS["shape"] = "shapes"

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 170, 60),
    "blue": (35, 75, 215),
    "yellow": (240, 220, 40),
    "orange": (245, 135, 25),
    "purple": (130, 45, 185),
    "pink": (250, 125, 195),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "brown": (120, 70, 30),
    "gray": (128, 128, 128),
    "cyan": (40, 215, 225),
}
PATTERNS: tuple[str, ...] = ("plain", "striped", "dotted", "checkered")
SIZES: tuple[str, ...] = ("small", "large")
BACKGROUNDS: tuple[str, ...] = ("dark", "sand", "grass", "sky", "snow", "wood")
COUNT_WORDS = {1: "a", 2: "two", 3: "three"}

# Caption frames: CoOp's and CLIP's prompt words appear here, as they did on the web.
FRAMES_SINGULAR: tuple[str, ...] = (
    "a photo of a {}.",
    "a photo of the {}.",
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a {}.",
    "{}.",
)
FRAMES_PLURAL: tuple[str, ...] = ("a photo of {}.", "{}.", "art of {}.")


@dataclass(frozen=True)
class Scene:
    """The factors of one image (what a caption may name)."""

    shape: str
    colour: str
    pattern: str
    size: str
    count: int
    background: str


@dataclass(frozen=True)
class Style:
    """How a domain draws scenes; the default is the pretraining domain.

    `cast` mixes that share of the fixed colour `tint` into every pixel (a consistent
    lighting of the domain, which few-shot learning can undo and zero-shot cannot); `clutter`
    adds that many small coloured blobs and lines; `outline` draws shapes as a dark
    outline around a pale fill with that probability; `backgrounds` None means the six
    named backgrounds, "clutter" a grey cluttered canvas never seen in pretraining.
    """

    blur: float = 0.0
    noise: float = 0.0
    cast: float = 0.0
    tint: tuple[int, int, int] = (255, 255, 255)
    clutter: int = 0
    outline: float = 0.0
    contrast: float = 1.0
    backgrounds: str | None = None


PRETRAIN_STYLE = Style()


# ---------------------------------------------------------------- scenes and captions


def sample_scene(rng: np.random.Generator, **fixed: str) -> Scene:
    """A random scene; keyword arguments pin factors (e.g. shape="star")."""
    count = int(fixed.get("count") or rng.choice([1, 1, 1, 1, 1, 1, 2, 3]))
    size = fixed.get("size") or (str(rng.choice(SIZES)) if count == 1 else "small")
    return Scene(
        shape=fixed.get("shape") or str(rng.choice(SHAPES)),
        colour=fixed.get("colour") or str(rng.choice(list(COLOURS))),
        pattern=fixed.get("pattern") or str(rng.choice(PATTERNS)),
        size=size,
        count=count,
        background=fixed.get("background") or str(rng.choice(BACKGROUNDS)),
    )


def caption(scene: Scene, rng: np.random.Generator) -> str:
    """A caption naming a random subset of the scene's factors (at least one)."""
    return describe(scene, rng)[0]


def describe(
    scene: Scene, rng: np.random.Generator, shape_only: bool = False
) -> tuple[str, dict[str, str]]:
    """A caption and the factors it names ({factor: value}; the count is always named).

    `shape_only` names the shape and nothing else ("itap of a star."). What a caption names
    decides which other images of a batch it is also true of (`ammpl.mini.pretrain`).
    """
    while not shape_only:
        named = {
            "shape": rng.uniform() < 0.85,
            "colour": rng.uniform() < 0.6,
            "pattern": rng.uniform() < 0.4,
            "size": scene.count == 1 and rng.uniform() < 0.3,
            "background": rng.uniform() < 0.2,
        }
        if any(named.values()):
            break
    else:
        named = {"shape": True, "colour": False, "pattern": False, "size": False}
        named["background"] = False
    words = []
    if named["size"]:
        words.append(scene.size)
    if named["colour"]:
        words.append(scene.colour)
    if named["pattern"]:
        words.append(scene.pattern)
    noun = scene.shape if named["shape"] else "shape"
    if scene.count > 1:
        words = [COUNT_WORDS[scene.count], *words, PLURALS[noun]]
        frame = str(rng.choice(FRAMES_PLURAL))
    else:
        words.append(noun)
        frame = str(rng.choice(FRAMES_SINGULAR))
    phrase = " ".join(words)
    if named["background"]:
        phrase += f" on {scene.background}"
    factors = {name: str(getattr(scene, name)) for name, on in named.items() if on}
    factors["count"] = str(scene.count)
    return frame.format(phrase), factors


def vocabulary_words() -> list[str]:
    """Every word a caption can contain (the text tower learns only these tokens)."""
    words = set(SHAPES) | set(PLURALS.values()) | {"shape", "on"}
    words |= set(COLOURS) | set(PATTERNS) | set(SIZES) | set(BACKGROUNDS)
    words |= set(COUNT_WORDS.values())
    for frame in FRAMES_SINGULAR + FRAMES_PLURAL:
        words |= set(frame.replace("{}", " ").replace(".", " . ").split())
    return sorted(words)


# ---------------------------------------------------------------- rendering


def _polygon(cx: float, cy: float, radii: list[float], angle: float) -> list[tuple[float, float]]:
    step = 2 * math.pi / len(radii)
    return [
        (cx + r * math.cos(angle + i * step), cy + r * math.sin(angle + i * step))
        for i, r in enumerate(radii)
    ]


def _rotated(points: list[tuple[float, float]], cx: float, cy: float, angle: float) -> list:
    cos, sin = math.cos(angle), math.sin(angle)
    return [(cx + x * cos - y * sin, cy + x * sin + y * cos) for x, y in points]


def _shape_mask(shape: str, cx: float, cy: float, r: float, angle: float) -> np.ndarray:
    """Boolean (H, W) mask of one shape."""
    mask = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    draw = ImageDraw.Draw(mask)
    box = (cx - r, cy - r, cx + r, cy + r)
    if shape == "circle":
        draw.ellipse(box, fill=255)
    elif shape == "ring":
        draw.ellipse(box, outline=255, width=max(2, int(r * 0.4)))
    elif shape == "moon":
        draw.ellipse(box, fill=255)
        dx, dy = 0.55 * r * math.cos(angle), 0.55 * r * math.sin(angle)
        draw.ellipse((cx - r + dx, cy - r + dy, cx + r + dx, cy + r + dy), fill=0)
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, [r * 1.1] * 4, angle), fill=255)
    elif shape == "diamond":
        draw.polygon(_rotated([(0, -r), (0.6 * r, 0), (0, r), (-0.6 * r, 0)], cx, cy, angle / 4),
                     fill=255)  # fmt: skip
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, [r * 1.15] * 3, angle), fill=255)
    elif shape == "pentagon":
        draw.polygon(_polygon(cx, cy, [r] * 5, angle), fill=255)
    elif shape == "hexagon":
        draw.polygon(_polygon(cx, cy, [r] * 6, angle), fill=255)
    elif shape == "star":
        draw.polygon(_polygon(cx, cy, [r * 1.15, r * 0.45] * 5, angle), fill=255)
    elif shape == "cross":
        a, b = r, r * 0.35
        arm = [(-b, -a), (b, -a), (b, -b), (a, -b), (a, b), (b, b), (b, a), (-b, a), (-b, b),
               (-a, b), (-a, -b), (-b, -b)]  # fmt: skip
        draw.polygon(_rotated(arm, cx, cy, angle), fill=255)
    elif shape == "heart":
        lobe = r * 0.5
        points = [(-r * 0.95, -r * 0.05), (0, r * 0.95), (r * 0.95, -r * 0.05)]
        draw.polygon(_rotated(points, cx, cy, angle / 6), fill=255)
        for side in (-1, 1):
            x, y = _rotated([(side * lobe, -r * 0.3)], cx, cy, angle / 6)[0]
            draw.ellipse((x - lobe, y - lobe, x + lobe, y + lobe), fill=255)
    elif shape == "arrow":
        body = [(-r, -0.25 * r), (0.2 * r, -0.25 * r), (0.2 * r, -0.7 * r), (r, 0),
                (0.2 * r, 0.7 * r), (0.2 * r, 0.25 * r), (-r, 0.25 * r)]  # fmt: skip
        draw.polygon(_rotated(body, cx, cy, angle), fill=255)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.asarray(mask) > 127


def _background(name: str, rng: np.random.Generator) -> np.ndarray:
    size = IMAGE_SIZE
    noise = rng.normal(0.0, 1.0, size=(size, size, 1))
    if name == "dark":
        base = np.full((size, size, 3), rng.uniform(10, 40)) + 8 * noise
    elif name == "sand":
        base = np.array([210.0, 190.0, 140.0]) + 18 * noise
    elif name == "grass":
        streaks = rng.normal(0.0, 1.0, size=(1, size, 1)) * 25
        base = np.array([60.0, 135.0, 50.0]) + streaks + 12 * noise
    elif name == "sky":
        ramp = np.linspace(0.0, 1.0, size)[:, None, None]
        base = np.array([110.0, 160.0, 230.0]) * (1 - ramp) + np.array([205, 225, 250]) * ramp
        base = base + 3 * noise
    elif name == "snow":
        base = np.array([236.0, 238.0, 244.0]) + 6 * noise
    elif name == "wood":
        grain = np.sin(np.arange(size)[:, None, None] * rng.uniform(0.6, 1.2)) * 18
        base = np.array([150.0, 100.0, 55.0]) + grain + 8 * noise
    elif name == "paper":
        base = np.array([238.0, 235.0, 226.0]) + rng.uniform(-10, 10) + 4 * noise
    elif name == "clutter":
        grey = rng.uniform(70, 180) + rng.uniform(-20, 20, size=3)
        base = grey + 15 * noise
    else:
        raise ValueError(f"unknown background {name!r}")
    return np.broadcast_to(base, (size, size, 3)).astype(np.float64)


def _texture(pattern: str, colour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(H, W, 3) fill: the colour, with a darker or lighter second tone for the pattern."""
    size = IMAGE_SIZE
    fill = np.broadcast_to(colour, (size, size, 3)).astype(np.float64).copy()
    if pattern == "plain":
        return fill
    second = colour * 0.3 if colour.mean() > 90 else colour * 0.3 + 170
    yy, xx = np.mgrid[0:size, 0:size]
    period = int(rng.integers(4, 6))
    offset = int(rng.integers(0, period))
    if pattern == "striped":
        if rng.uniform() < 0.5:
            on = ((xx + yy + offset) // 2) % period < period // 2
        else:
            on = (yy + offset) % period < period // 2
    elif pattern == "dotted":
        on = ((xx + offset) % period < 2) & ((yy + offset) % period < 2)
    elif pattern == "checkered":
        on = (((xx + offset) // 3) + ((yy + offset) // 3)) % 2 == 0
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    fill[on] = second
    return fill


def _add_clutter(pixels: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(count):
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        x, y = rng.uniform(0, IMAGE_SIZE, size=2)
        if rng.uniform() < 0.6:
            rx, ry = rng.uniform(1.0, 2.5, size=2)
            draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=colour)
        else:
            x1, y1 = rng.uniform(0, IMAGE_SIZE, size=2)
            draw.line((x, y, x1, y1), fill=colour, width=1)
    return np.asarray(image, dtype=np.float64)


def _placements(scene: Scene, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """(cx, cy, radius) per copy, kept apart so that copies can be counted."""
    if scene.count > 1:
        radius = rng.uniform(7.5, 9.5)
    else:
        radius = rng.uniform(15.0, 20.0) if scene.size == "large" else rng.uniform(9.0, 12.0)
    margin = radius * 1.15 + 1
    spots: list[tuple[float, float, float]] = []
    for _ in range(200):
        cx, cy = rng.uniform(margin, IMAGE_SIZE - margin, size=2)
        if all(math.hypot(cx - x, cy - y) > 2.1 * radius for x, y, _ in spots):
            spots.append((cx, cy, radius))
        if len(spots) == scene.count:
            break
    return spots


def render(scene: Scene, rng: np.random.Generator, style: Style = PRETRAIN_STYLE) -> Image.Image:
    """The scene as a 64×64 RGB image, drawn in `style`."""
    background = style.backgrounds or scene.background
    pixels = _background(background, rng)
    if style.clutter:
        pixels = _add_clutter(pixels, style.clutter, rng)
    colour = np.asarray(COLOURS[scene.colour], dtype=np.float64)
    colour = np.clip(colour + rng.normal(0.0, 10.0, size=3), 0, 255)
    texture = _texture(scene.pattern, colour, rng)
    outline = rng.uniform() < style.outline
    angle = rng.uniform(0, 2 * math.pi)
    for cx, cy, radius in _placements(scene, rng):
        mask = _shape_mask(scene.shape, cx, cy, radius, angle)
        if outline:
            inner = _shape_mask(scene.shape, cx, cy, radius * 0.72, angle)
            pixels[mask] = 25.0
            pixels[inner] = 0.5 * texture[inner] + 0.5 * 235.0
        else:
            pixels[mask] = texture[mask]
    return finish(pixels, style, rng)


def finish(pixels: np.ndarray, style: Style, rng: np.random.Generator) -> Image.Image:
    """The style's whole-image effects (contrast, light, noise, blur) on a composed scene."""
    if style.contrast != 1.0:
        pixels = pixels.mean() + (pixels - pixels.mean()) * style.contrast
    if style.cast:
        pixels = pixels * (1 - style.cast) + np.asarray(style.tint, dtype=np.float64) * style.cast
    if style.noise:
        pixels = pixels + rng.normal(0.0, style.noise, size=pixels.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    if style.blur:
        image = image.filter(ImageFilter.GaussianBlur(style.blur))
    return image


def to_tensor_batch(images: list[Image.Image]) -> np.ndarray:
    """(N, 3, H, W) float32 in [0, 1]."""
    array = np.stack([np.asarray(image, dtype=np.float32) for image in images]) / 255.0
    return array.transpose(0, 3, 1, 2)
