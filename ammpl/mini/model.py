"""The `mini` CLIP: ViT-B/16's open_clip classes at a size a CPU pretrains in minutes.

Same code paths as ViT-B/16: an open_clip `CLIP` with a ViT image tower (8-pixel patches
on 64-pixel images, an 8 × 8 grid, class token, learned positional embeddings) and a causal
text tower pooled at EOT over the real BPE tokenizer with context length 77, QuickGELU.

The committed weights file keeps only the token-embedding rows of the words the mini world
uses (a few dozen of 49,408): the others never receive a gradient in pretraining and are
stored as nothing and loaded as zeros. `pack_state` / `unpack_state` convert between the
file and the model's full state dict.
"""

from __future__ import annotations

from pathlib import Path

import open_clip
import torch

from ammpl.clip.tokenizer import EOT_TOKEN_ID, SOT_TOKEN_ID, _bpe
from ammpl.mini.world import IMAGE_SIZE, vocabulary_words

MINI_BACKBONE_NAME = "mini"
ROWS_KEY = "token_embedding.rows"
IDS_KEY = "token_embedding.ids"
VOCAB_SIZE = 49408
MINI_WEIGHTS_FILE = Path(__file__).resolve().parents[1] / "resources" / "mini_clip.pt"
# weights_hash (ammpl.clip.weights) of the committed file, checked when it is loaded.
MINI_WEIGHTS_HASH = "57c01eddafe10273"

MINI_CLIP_CONFIG: dict = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {
        "image_size": IMAGE_SIZE,
        "layers": 4,
        "width": 96,
        "head_width": 32,
        "patch_size": 8,
    },
    "text_cfg": {
        "context_length": 77,
        "vocab_size": VOCAB_SIZE,
        "width": 64,
        "heads": 2,
        "layers": 3,
    },
}


def build_mini_clip(seed: int = 0) -> open_clip.CLIP:
    """The mini architecture with seeded random weights (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = open_clip.CLIP(
            embed_dim=MINI_CLIP_CONFIG["embed_dim"],
            vision_cfg=dict(MINI_CLIP_CONFIG["vision_cfg"]),
            text_cfg=dict(MINI_CLIP_CONFIG["text_cfg"]),
            quick_gelu=MINI_CLIP_CONFIG["quick_gelu"],
        )
    return model


def vocabulary_token_ids() -> list[int]:
    """SOT, EOT and the BPE ids of every word the world's captions can contain."""
    bpe = _bpe()
    ids = {SOT_TOKEN_ID, EOT_TOKEN_ID}
    for word in vocabulary_words():
        ids.update(bpe.encode(word))
    return sorted(ids)


def pack_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The state dict as committed: token embedding reduced to the world's vocabulary."""
    packed = {key: value.detach().clone() for key, value in state.items()}
    embedding = packed.pop("token_embedding.weight")
    ids = torch.tensor(vocabulary_token_ids(), dtype=torch.long)
    packed[IDS_KEY] = ids
    packed[ROWS_KEY] = embedding[ids].clone()
    return packed


def unpack_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A packed state dict expanded to the model's (unused rows zero); others unchanged."""
    if IDS_KEY not in state:
        return state
    state = dict(state)
    ids = state.pop(IDS_KEY).long()
    rows = state.pop(ROWS_KEY)
    embedding = torch.zeros(VOCAB_SIZE, rows.shape[1], dtype=rows.dtype)
    embedding[ids] = rows
    state["token_embedding.weight"] = embedding
    return state
