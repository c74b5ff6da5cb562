"""CLIP backbones (through open_clip) and the prompt-aware encoder blocks every method shares.

Public API: load_backbone, available_backbones, tokenize, TextEncoder, ImageEncoder,
ClassPrompts, init_context, run_block, to_reference_half. Names are
resolved lazily so that importing `ammpl.clip` stays cheap and sub-modules can be used
on their own.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "load_backbone": "ammpl.clip.backbones",
    "available_backbones": "ammpl.clip.backbones",
    "BACKBONE_REGISTRY": "ammpl.clip.backbones",
    "BackboneSpec": "ammpl.clip.backbones",
    "register_backbone": "ammpl.clip.backbones",
    "to_reference_half": "ammpl.clip.precision",
    "tokenize": "ammpl.clip.tokenizer",
    "TextEncoder": "ammpl.clip.text_encoder",
    "ImageEncoder": "ammpl.clip.image_encoder",
    "ClassPrompts": "ammpl.clip.prompts",
    "init_context": "ammpl.clip.prompts",
    "run_block": "ammpl.clip.blocks",
    "build_tiny_clip": "ammpl.clip.tiny",
    "TINY_BACKBONE_NAME": "ammpl.clip.tiny",
    "build_tiny_resnet_clip": "ammpl.clip.tiny",
    "TINY_RESNET_NAME": "ammpl.clip.tiny",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'ammpl.clip' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
