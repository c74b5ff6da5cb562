"""The reference "fp16" form of CLIP (BASELINES.md §1.5).

OpenAI's CLIP code, which every baseline builds on, keeps the model in a half form:
Linear / Conv / attention weights and both projections are fp16, while the token,
positional and class embeddings, the LayerNorms and `logit_scale` stay fp32, and every
LayerNorm computes in fp32 before casting back to its input dtype. Numbers of the
reference "fp16" runs depend on exactly this split.

open_clip's `convert_weights_to_lp` converts the same tensors, but it leaves the LayerNorm
modules as they are: a model built in fp32 (as `load_backbone` returns it) keeps
open_clip's `LayerNorm`, which normalises in the input dtype, i.e. in fp16 once the
activations are half. `to_reference_half` also switches those LayerNorms to open_clip's
`LayerNormFp32` (fp32 compute, cast back), which is what the reference does.
"""

from __future__ import annotations

import torch
from open_clip.transformer import Attention, LayerNorm, LayerNormFp32
from torch import nn

ATTENTION_TENSORS = (
    "in_proj_weight",
    "q_proj_weight",
    "k_proj_weight",
    "v_proj_weight",
    "in_proj_bias",
    "bias_k",
    "bias_v",
)
PROJECTION_TENSORS = ("text_projection", "proj")
# Only plain LayerNorms are switched; subclasses with their own forward keep it.
PLAIN_LAYER_NORMS = (nn.LayerNorm, LayerNorm)


def _to_half(tensor: torch.Tensor | None) -> None:
    if tensor is not None and tensor.is_floating_point():
        tensor.data = tensor.data.half()


def to_reference_half(model: nn.Module) -> nn.Module:
    """Convert `model` in place to the reference half form and return it.

    fp16: weights and biases of Linear / Conv1d / Conv2d, the attention in-projections
    (and bias_k / bias_v), `text_projection` and `visual.proj`. fp32: embeddings
    (token, positional, class), LayerNorm and BatchNorm parameters, `logit_scale`.
    """
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            _to_half(module.weight)
            _to_half(module.bias)
        if isinstance(module, (nn.MultiheadAttention, Attention)):
            for name in ATTENTION_TENSORS:
                _to_half(getattr(module, name, None))
        for name in PROJECTION_TENSORS:
            tensor = getattr(module, name, None)
            if isinstance(tensor, nn.Parameter):
                _to_half(tensor)
        if type(module) in PLAIN_LAYER_NORMS:
            module.__class__ = LayerNormFp32
    return model
