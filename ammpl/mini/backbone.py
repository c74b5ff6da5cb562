"""Registers the `mini` backbone (and its shipped weights) in `ammpl.clip`'s backbone table.

`ammpl.clip` never imports `ammpl.mini` (clip sits below mini): it names this module in its
list of backbone providers (`ammpl.clip.backbones.BACKBONE_PROVIDERS`, data) and imports it
the first time the table is read, so `load_backbone("mini")` works in a fresh interpreter.
"""

from __future__ import annotations

from ammpl.clip.backbones import BackboneSpec, register_backbone
from ammpl.clip.weights import WeightSources
from ammpl.mini.model import (
    MINI_BACKBONE_NAME,
    MINI_WEIGHTS_FILE,
    MINI_WEIGHTS_HASH,
    build_mini_clip,
    unpack_state,
)

# The small CLIP pretrained on the mini world (docs/MINI.md); its weights ship with us.
MINI_SPEC = register_backbone(
    BackboneSpec(
        name=MINI_BACKBONE_NAME,
        arch=MINI_BACKBONE_NAME,
        pretrained=None,
        quick_gelu=True,
        weights=WeightSources(
            display_name=MINI_BACKBONE_NAME,
            bundled=str(MINI_WEIGHTS_FILE),
            fetch_command="python -m ammpl.mini.pretrain --out mini_clip.pt",
        ),
        builder=build_mini_clip,
        unpack_state=unpack_state,
        bundled_hash=MINI_WEIGHTS_HASH,
    )
)
