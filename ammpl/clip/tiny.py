"""The tiny randomly initialised CLIP used by tests and by the offline demo.

It is a real open_clip ViT model, only small: 224-pixel input (so every shipped config,
INPUT.SIZE 224, runs on it unchanged), 32-pixel patches (7 × 7 patches), two blocks per
tower, and deliberately different widths for the text tower (64), the vision tower (96)
and the joint space (48) so that a method mixing them up fails loudly. Its weights are a
pure function of the seed.
"""

from __future__ import annotations

import copy

import open_clip
import torch

TINY_BACKBONE_NAME = "tiny"

TINY_CLIP_CONFIG: dict = {
    "embed_dim": 48,
    "quick_gelu": True,
    "vision_cfg": {
        "image_size": 224,
        "layers": 2,
        "width": 96,
        "head_width": 48,
        "patch_size": 32,
    },
    "text_cfg": {
        "context_length": 77,
        "vocab_size": 49408,
        "width": 64,
        "heads": 2,
        "layers": 2,
    },
}


def _seeded_clip(config: dict, seed: int) -> open_clip.CLIP:
    """An open_clip CLIP built from `config` with weights drawn under `seed` only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return open_clip.CLIP(
            embed_dim=config["embed_dim"],
            vision_cfg=config["vision_cfg"],
            text_cfg=config["text_cfg"],
            quick_gelu=config["quick_gelu"],
        )


def build_tiny_clip(seed: int = 0, layers: int = 2, **vision_overrides) -> open_clip.CLIP:
    """A fresh fp32 tiny CLIP whose weights depend only on `seed` (global RNG untouched).

    `layers` deepens both towers (deep-prompt tests need blocks beyond the prompt depth);
    `vision_overrides` change other vision settings (e.g. LayerScale, pooling) for tests.
    """
    config = copy.deepcopy(TINY_CLIP_CONFIG)
    config["vision_cfg"].update(layers=layers, **vision_overrides)
    config["text_cfg"]["layers"] = layers
    return _seeded_clip(config, seed)


TINY_RESNET_NAME = "tiny-rn"

# The ResNet twin of `tiny`: the same text tower and joint width, an open_clip
# ModifiedResNet image tower (one bottleneck per stage, stem width 8 → 256 C5 channels,
# 4 attention-pool heads). At 224 px its attention pool sees a 7 × 7 grid, as RN50 does.
TINY_RESNET_VISION: dict = {"image_size": 224, "layers": [1, 1, 1, 1], "width": 8, "head_width": 64}


def build_tiny_resnet_clip(seed: int = 0, image_size: int = 224) -> open_clip.CLIP:
    """A fresh fp32 tiny CLIP with a ResNet image tower, weights a function of `seed` only.

    `image_size` sets the attention-pool grid (image_size / 32 cells per side): 64 px gives
    the 2 × 2 grid and 32 px the single cell the PLOT checks use.
    """
    config = copy.deepcopy(TINY_CLIP_CONFIG)
    config["vision_cfg"] = {**TINY_RESNET_VISION, "image_size": image_size}
    return _seeded_clip(config, seed)
