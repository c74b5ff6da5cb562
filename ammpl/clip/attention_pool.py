"""All output tokens of a ResNet CLIP's attention pool (PLOT's local features).

A ModifiedResNet ends in a QKV attention pool over the C5 grid: the H·W cells, flattened
row-major, get their mean prepended (1 + H·W tokens), a learned positional embedding,
then one multi-head attention whose output projection `c_proj` maps into the joint space.
CLIP keeps only the output of the mean token (the image embedding); with every token
acting as a query, the other H·W outputs are per-cell features in the same joint space
(BASELINES_EXTRA §3.3). The computation is open_clip's pool forward with the same
weights; only the returned tokens differ, so token 0 equals `encode_image` exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def attention_pool_tokens(attnpool: nn.Module, feature_map: torch.Tensor) -> torch.Tensor:
    """C5 map (B, C, H, W) → every pooled token (B, 1 + H·W, e); token 0 = the global one."""
    batch, channels, height, width = feature_map.shape
    grid = attnpool.positional_embedding.shape[0] - 1
    if height * width != grid:
        raise ValueError(
            f"the attention pool was built for {grid} cells, the feature map has "
            f"{height}×{width}; use the backbone's input resolution"
        )
    x = feature_map.reshape(batch, channels, height * width).permute(2, 0, 1)
    x = torch.cat([x.mean(dim=0, keepdim=True), x], dim=0)
    x = x + attnpool.positional_embedding[:, None, :].to(x.dtype)
    x, _ = F.multi_head_attention_forward(
        query=x,
        key=x,
        value=x,
        embed_dim_to_check=x.shape[-1],
        num_heads=attnpool.num_heads,
        q_proj_weight=attnpool.q_proj.weight,
        k_proj_weight=attnpool.k_proj.weight,
        v_proj_weight=attnpool.v_proj.weight,
        in_proj_weight=None,
        in_proj_bias=torch.cat([attnpool.q_proj.bias, attnpool.k_proj.bias, attnpool.v_proj.bias]),
        bias_k=None,
        bias_v=None,
        add_zero_attn=False,
        dropout_p=0.0,
        out_proj_weight=attnpool.c_proj.weight,
        out_proj_bias=attnpool.c_proj.bias,
        use_separate_proj_weight=True,
        training=False,
        need_weights=False,
    )
    return x.transpose(0, 1)


def resnet_trunk(visual: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """A ModifiedResNet's stem and four stages: images → C5 map (B, C, H/32, W/32)."""
    x = visual.stem(images)
    for stage in (visual.layer1, visual.layer2, visual.layer3, visual.layer4):
        x = stage(x)
    return x
