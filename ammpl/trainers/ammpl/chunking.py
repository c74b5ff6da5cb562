"""Memory-bounded processing of (image, class) pairs (AMMPL.md "Cost").

A forward pass touches B·k (image, class) pairs, each a full ViT pass and a text pass.
Pairs are processed in blocks of at most `budget` pairs; CLASS_CHUNK sets the budget, and
0 derives it from the free memory of the device and an estimate of the bytes one pair
needs. Block sizes never change results (every pair is computed independently).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

FREE_MEMORY_FRACTION = 0.5  # leave room for the rest of the step and the allocator
MAX_AUTO_BUDGET = 16384
FALLBACK_FREE_BYTES = 2 * 1024**3


def free_memory_bytes(device: torch.device) -> int:
    """Free bytes on `device`: CUDA mem_get_info, else psutil or /proc/meminfo MemAvailable."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil  # optional dependency

        return int(psutil.virtual_memory().available)
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return FALLBACK_FREE_BYTES


def _tower_geometry(transformer: nn.Module) -> tuple[int, int, int]:
    """(layers, width, heads) of an open_clip Transformer."""
    blocks = transformer.resblocks
    attn = blocks[0].attn
    return len(blocks), attn.embed_dim, attn.num_heads


def _tower_bytes(transformer: nn.Module, tokens: int, training: bool, itemsize: int) -> int:
    """Rough activation bytes of one sequence: live tensors of one block at inference;
    every block's saved tensors (≈ 16 token-widths + attention weights) when training."""
    layers, width, heads = _tower_geometry(transformer)
    if not training:
        return tokens * width * 12 * itemsize + heads * tokens * tokens * itemsize
    per_layer = tokens * width * 16 + 2 * heads * tokens * tokens
    return layers * per_layer * itemsize


def pair_bytes(
    image_encoder: nn.Module, text_encoder: nn.Module, text_tokens: int, training: bool
) -> int:
    """Estimated memory one (image, class) pair needs in an encoder pass."""
    itemsize = 4 if training else image_encoder.dtype.itemsize
    image_tokens = image_encoder.positional_embedding.shape[0]
    image = _tower_bytes(image_encoder.transformer, image_tokens, training, itemsize)
    text = _tower_bytes(text_encoder.transformer, text_tokens, training, itemsize)
    return image + text


def auto_budget(
    image_encoder: nn.Module, text_encoder: nn.Module, text_tokens: int, training: bool
) -> int:
    """Pairs per block that fit in FREE_MEMORY_FRACTION of the free memory."""
    device = image_encoder.positional_embedding.device
    free = free_memory_bytes(device) * FREE_MEMORY_FRACTION
    per_pair = max(pair_bytes(image_encoder, text_encoder, text_tokens, training), 1)
    return int(max(1, min(MAX_AUTO_BUDGET, free // per_pair)))


@dataclass(frozen=True)
class BlockPlan:
    """Images × classes tiled into blocks of at most `budget` pairs."""

    n_images: int
    n_classes: int
    image_step: int
    class_step: int

    @classmethod
    def for_budget(cls, n_images: int, n_classes: int, budget: int) -> BlockPlan:
        image_step = max(1, min(n_images, budget))
        class_step = max(1, min(n_classes, budget // image_step))
        return cls(n_images, n_classes, image_step, class_step)

    def image_slices(self) -> list[slice]:
        return [slice(s, s + self.image_step) for s in range(0, self.n_images, self.image_step)]

    def class_slices(self) -> list[slice]:
        return [slice(s, s + self.class_step) for s in range(0, self.n_classes, self.class_step)]

    @property
    def n_blocks(self) -> int:
        return len(self.image_slices()) * len(self.class_slices())
