"""MiniObjects redrawn with one style option changed: the variants of docs/MINI.md, "Masked
patches" (which of the photo style's factors cost zero-shot, and whether prompt learners
gain where the photos are closer to pretraining).

Each variant is written as `ROOT/<variant>/mini_objects` in MiniObjects' own layout (same
classes, seed 404, split sizes, masks), so the ordinary reader and
`configs/datasets/mini_objects.yaml` read it with `--root ROOT/<variant>`.

    python bench/mini_object_variants.py ROOT single single_noclutter
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from PIL import ImageOps

from ammpl.mini.objects import PhotoStyle
from ammpl.mini.world import Style

_ORANGE = Style(cast=0.4, tint=(255, 160, 40), noise=6.0)
# name: (scene factors pinned, photo style, whole-image look, colours inverted); None = as shipped
VARIANTS: dict[str, tuple[dict, PhotoStyle | None, Style | None, bool]] = {
    "shipped": ({}, None, None, False),
    "single": ({"count": "1"}, None, None, False),
    "single_noclutter": ({"count": "1"}, PhotoStyle(clutter=(0, 0)), None, False),
    "single_big": ({"count": "1"}, PhotoStyle(radius=(16.0, 22.0)), None, False),
    "single_grey": ({"count": "1"}, PhotoStyle(backgrounds=("clutter",)), None, False),
    "single_lowcontrast": (
        {"count": "1"}, None, Style(contrast=0.5, cast=0.25, tint=(255, 200, 120), noise=6.0),
        False,
    ),
    "orange40": ({}, None, _ORANGE, False),
    "single_orange40": ({"count": "1"}, None, _ORANGE, False),
    "single_blue40": ({"count": "1"}, None, Style(cast=0.4, tint=(60, 110, 255), noise=6.0), False),
    "invert": ({}, None, None, True),
}  # fmt: skip


def write_variant(root: str, name: str) -> str:
    """Draw variant `name` under `root`; the dataset folder."""
    from ammpl.mini.benchmark import MINI_DATASETS, generate_dataset

    pinned, photo, look, invert = VARIANTS[name]
    spec = MINI_DATASETS["MiniObjects"]
    spec = dataclasses.replace(spec, photo=photo or spec.photo, style=look or spec.style)
    folder = os.path.join(root, name, spec.folder)
    generate_dataset(spec, folder, pinned=pinned, post=ImageOps.invert if invert else None)
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root")
    parser.add_argument("variants", nargs="+", choices=sorted(VARIANTS))
    args = parser.parse_args(argv)
    for name in args.variants:
        print(f"{name}: {write_variant(args.root, name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
