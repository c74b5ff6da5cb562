"""Where the test transform puts an image: shorter side resized to `size`, centre crop.

Mask pictures frame the image this way, and the mask-share measurement frames the object
masks the same way, so a patch of the model's input grid covers the same pixels in both.
"""

from __future__ import annotations

from typing import NamedTuple


class Frame(NamedTuple):
    """The resized image's width and height, and the crop's top-left corner in it."""

    width: int
    height: int
    left: int
    top: int


def centre_frame(width: int, height: int, size: int) -> Frame:
    """The resize and centre crop of a `width` × `height` image to `size` × `size`."""
    scale = size / min(width, height)
    resized_width, resized_height = (max(size, round(d * scale)) for d in (width, height))
    return Frame(
        resized_width,
        resized_height,
        (resized_width - size) // 2,
        (resized_height - size) // 2,
    )
