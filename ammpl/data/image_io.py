"""Image decoding with a user-facing error instead of a PIL stack trace."""

from __future__ import annotations

import os

from PIL import Image

from ammpl.utils.errors import DataError


def read_image(path: str | os.PathLike) -> Image.Image:
    """The image at `path` as RGB; a missing or undecodable file raises DataError naming it."""
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except FileNotFoundError:
        raise DataError(f"Cannot decode image {path}: file not found") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise DataError(f"Cannot decode image {path}: {exc}") from None
