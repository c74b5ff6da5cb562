"""Object photos of the mini world: the label is the object, everything else is nuisance.

Real benchmarks label objects that photos place near the centre, at varying sizes, over
backgrounds that vary and do not matter. `render_photo` draws a mini scene that way — the
object centred with jitter, of random size, one to three copies, any colour, pattern and
background, clutter behind it — and returns the object's pixel mask with the image, so that
what a patch mask hides can be compared with where the object is.

`PhotoStyle` is how objects are placed and rendered — including what the domain-
generalisation targets need: outline sketches on paper, occluders and heavy clutter,
other palettes and textures; a world `Style` adds the domain's whole-image look (light,
noise, blur).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ammpl.mini.world import (
    BACKGROUNDS,
    COLOURS,
    IMAGE_SIZE,
    Scene,
    Style,
    _add_clutter,
    _background,
    _shape_mask,
    _texture,
    finish,
)

NEW_TEXTURES: tuple[str, ...] = ("gradient", "speckled", "wavy")


@dataclass(frozen=True)
class PhotoStyle:
    """How an object dataset draws its photos (the defaults: the plain object domain).

    `clutter` (low, high): blobs and lines drawn behind the object; `radius` (low, high) of
    a single object (copies are smaller); `jitter`: standard deviation in pixels of the
    object's offset from the centre; `sketch`: a dark outline on paper, no fill;
    `occluders` (low, high): shapes drawn over the object (hidden pixels leave its mask);
    `palette` "world" (the 12 named colours) or "any" (random colours); `textures` "world"
    (the four patterns) or "new" (fills pretraining never showed).
    """

    backgrounds: tuple[str, ...] = BACKGROUNDS
    clutter: tuple[int, int] = (0, 3)
    radius: tuple[float, float] = (11.0, 20.0)
    jitter: float = 5.0
    sketch: bool = False
    occluders: tuple[int, int] = (0, 0)
    palette: str = "world"
    textures: str = "world"


def _centred_spots(count: int, style: PhotoStyle, rng: np.random.Generator) -> list:
    """(cx, cy, r) per copy: the first near the centre, the others wherever they fit."""
    low, high = style.radius
    radius = rng.uniform(low, high) if count == 1 else rng.uniform(0.55 * low, 0.55 * high)
    margin = radius * 1.15 + 1
    centre = IMAGE_SIZE / 2
    cx, cy = np.clip(centre + rng.normal(0.0, style.jitter, size=2), margin, IMAGE_SIZE - margin)
    spots = [(float(cx), float(cy), radius)]
    for _ in range(200):
        if len(spots) == count:
            break
        x, y = rng.uniform(margin, IMAGE_SIZE - margin, size=2)
        if all(math.hypot(x - sx, y - sy) > 2.1 * radius for sx, sy, _ in spots):
            spots.append((float(x), float(y), radius))
    return spots


def _fill(scene: Scene, style: PhotoStyle, rng: np.random.Generator) -> np.ndarray:
    if style.palette == "any":
        colour = rng.uniform(20, 235, size=3)
    else:
        colour = np.asarray(COLOURS[scene.colour], dtype=np.float64)
        colour = np.clip(colour + rng.normal(0.0, 10.0, size=3), 0, 255)
    if style.textures == "world":
        return _texture(scene.pattern, colour, rng)
    size = IMAGE_SIZE
    texture = str(rng.choice(NEW_TEXTURES))
    other = rng.uniform(20, 235, size=3)
    yy, xx = np.mgrid[0:size, 0:size] / size
    if texture == "gradient":
        angle = rng.uniform(0, 2 * math.pi)
        t = np.clip(0.5 + (xx - 0.5) * math.cos(angle) + (yy - 0.5) * math.sin(angle), 0, 1)
        return colour * (1 - t[..., None]) + other * t[..., None]
    if texture == "speckled":
        on = rng.uniform(size=(size, size)) < 0.3
        return np.where(on[..., None], other, colour)
    wave = np.sin(2 * math.pi * (yy * 5 + 0.15 * np.sin(2 * math.pi * xx * 3)))
    return np.where((wave > 0)[..., None], colour, other)


def _occlude(pixels: np.ndarray, spot: tuple, rng: np.random.Generator) -> np.ndarray:
    """Draw one occluder over part of the object at `spot`; its (H, W) bool footprint."""
    cx, cy, r = spot
    mask = Image.new("L", (IMAGE_SIZE, IMAGE_SIZE), 0)
    draw = ImageDraw.Draw(mask)
    angle = rng.uniform(0, 2 * math.pi)
    x, y = cx + 0.8 * r * math.cos(angle), cy + 0.8 * r * math.sin(angle)
    w, h = rng.uniform(0.4 * r, 0.8 * r, size=2)
    if rng.uniform() < 0.5:
        draw.rectangle((x - w, y - h, x + w, y + h), fill=255)
    else:
        draw.ellipse((x - w, y - h, x + w, y + h), fill=255)
    footprint = np.asarray(mask) > 127
    pixels[footprint] = rng.uniform(0, 255, size=3)
    return footprint


def render_photo(
    scene: Scene,
    rng: np.random.Generator,
    style: PhotoStyle = PhotoStyle(),
    look: Style = Style(),
) -> tuple[Image.Image, np.ndarray]:
    """The scene as a 64×64 photo in `style` and `look`, and the (H, W) bool mask of the
    visible object."""
    background = str(rng.choice(style.backgrounds)) if style.backgrounds else scene.background
    pixels = _background("paper" if style.sketch else background, rng)
    low, high = style.clutter
    clutter = int(rng.integers(low, high + 1))
    if clutter:
        pixels = _add_clutter(pixels, clutter, rng)
    fill = _fill(scene, style, rng)
    angle = rng.uniform(0, 2 * math.pi)
    spots = _centred_spots(scene.count, style, rng)
    visible = np.zeros((IMAGE_SIZE, IMAGE_SIZE), dtype=bool)
    for cx, cy, radius in spots:
        mask = _shape_mask(scene.shape, cx, cy, radius, angle)
        if style.sketch:
            inside = Image.fromarray(mask.astype(np.uint8) * 255).filter(ImageFilter.MinFilter(5))
            mask = mask & ~(np.asarray(inside) > 127)
            pixels[mask] = rng.uniform(20, 80)
        else:
            pixels[mask] = fill[mask]
        visible |= mask
    low, high = style.occluders
    for _ in range(int(rng.integers(low, high + 1))):
        visible &= ~_occlude(pixels, spots[0], rng)
    return finish(pixels, look, rng), visible
