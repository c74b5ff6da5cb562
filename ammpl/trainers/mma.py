"""MMA: multi-modal adapter (Yang et al., CVPR 2024).

CLIP stays frozen; layers ADAPTER_START..ADAPTER_END (1-based block numbers, the
reference's `layer_index`) of both towers get a bottleneck adapter beside the block:

    block_i(x) + s · up_i(shared_i(down_i(ln_1(x))))

`down` (Linear d → r, ReLU) and `up` (Linear r → d) are per tower, `shared_i` (Linear r → r,
ReLU) is one module used by both towers, so gradients of either tower meet there; `s` is
ADAPTER_SCALE. As in the reference, the branch passes through gradient-scaling layers: its
input's gradient is multiplied by s and its output's by 1/s, so the adapters learn as if s
were 1 while the gradient reaching the frozen towers is the true one. The text prompt is the
fixed "TEXT_CTX_INIT {class}." The branch is the shared encoders' `adapter` hook
(`ammpl.clip.blocks.run_blocks`). Parameter names follow the reference checkpoints:
`{text,visual,shared}_adapter.{layer}.…` in the registered `adapter_learner`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.text_encoder import TextEncoder
from ammpl.clip.tokenizer import tokenize
from ammpl.engine import TRAINER_REGISTRY, register_cfg_extension
from ammpl.trainers.base import CLIPPromptTrainer
from ammpl.trainers.coop import clip_logits
from ammpl.trainers.ivlp import EvalTextCache
from ammpl.utils import ConfigError


def extend_cfg(cfg: CN) -> None:
    """The reference's node and defaults (its train.py); the paper config sets 5..12."""
    cfg.TRAINER.MMADAPTER = CN()
    cfg.TRAINER.MMADAPTER.TEXT_CTX_INIT = ""
    cfg.TRAINER.MMADAPTER.PREC = "amp"
    cfg.TRAINER.MMADAPTER.ADAPTER_START = 4
    cfg.TRAINER.MMADAPTER.ADAPTER_END = 12
    cfg.TRAINER.MMADAPTER.ADAPTER_DIM = 32
    cfg.TRAINER.MMADAPTER.ADAPTER_SCALE = 0.1


register_cfg_extension(extend_cfg)


class _GradientScale(torch.autograd.Function):
    """Identity forward; the gradient is multiplied by `factor` on the way back."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, factor: float) -> torch.Tensor:
        ctx.factor = factor
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad * ctx.factor, None


def gradient_scale(x: torch.Tensor, factor: float) -> torch.Tensor:
    return _GradientScale.apply(x, factor)


def _bottleneck(width: int, dim: int) -> nn.Module:
    """A tower's adapter: `down` (Linear width → dim, ReLU) then `up` (Linear dim → width);
    a width equal to dim gives Linear + ReLU (the shared adapter), as in the reference."""
    if width == dim:
        return nn.Sequential(nn.Linear(width, dim), nn.ReLU())
    down = nn.Sequential(nn.Linear(width, dim), nn.ReLU())
    return nn.Sequential(OrderedDict([("down", down), ("up", nn.Linear(dim, width))]))


def build_adapters(
    width: int, n_blocks: int, layers: range, dim: int, dtype: torch.dtype, device
) -> nn.ModuleList:
    """One adapter per layer number in `layers` (1-based), None elsewhere; index 0 (the
    embeddings) stays empty. Kaiming-normal (fan_out, ReLU) weights, zero biases."""
    adapters = nn.ModuleList(
        [_bottleneck(width, dim) if i in layers else None for i in range(n_blocks + 1)]
    )
    for module in adapters.modules():
        if isinstance(module, nn.Linear):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.constant_(module.bias, 0)
    return adapters.to(device=device, dtype=dtype)


def _tower_layers(start: int, end: int, n_blocks: int, tower: str) -> range:
    """Layers start..end of a tower; paper layers beyond a shallower tower (tiny, mini) end
    at its top block."""
    if end > n_blocks:
        print(
            f"Note: {tower} adapter layers {start}..{end} beyond the {n_blocks} blocks; "
            f"using {min(start, n_blocks)}..{n_blocks}"
        )
        start, end = min(start, n_blocks), n_blocks
    return range(start, end + 1)


class AdapterLearner(nn.Module):
    """The learned part: text, visual and shared adapters of layers start..end."""

    def __init__(
        self, node: CN, blocks: tuple[int, int], widths: tuple[int, int], dtype, device
    ) -> None:
        super().__init__()
        start, end = int(node.ADAPTER_START), int(node.ADAPTER_END)
        if start < 1 or end < start:
            raise ConfigError(
                f"TRAINER.MMADAPTER.ADAPTER_START..ADAPTER_END must be block numbers 1 ≤ start "
                f"≤ end, got {start}..{end} (the reference's layer 0, on the embeddings, is "
                "not supported)"
            )
        if int(node.ADAPTER_DIM) < 1:
            raise ConfigError(f"TRAINER.MMADAPTER.ADAPTER_DIM must be ≥ 1, got {node.ADAPTER_DIM}")
        if float(node.ADAPTER_SCALE) == 0:
            raise ConfigError("TRAINER.MMADAPTER.ADAPTER_SCALE must be non-zero")
        (n_text, n_vision), (text_width, vision_width) = blocks, widths
        dim = int(node.ADAPTER_DIM)
        text_layers = _tower_layers(start, end, n_text, "text")
        vision_layers = _tower_layers(start, end, n_vision, "vision")
        n_shared = max(n_text, n_vision)
        self.layers = range(
            min(text_layers.start, vision_layers.start), max(text_layers[-1], vision_layers[-1]) + 1
        )
        self.text_adapter = build_adapters(text_width, n_text, text_layers, dim, dtype, device)
        self.visual_adapter = build_adapters(
            vision_width, n_vision, vision_layers, dim, dtype, device
        )
        self.shared_adapter = build_adapters(dim, n_shared, self.layers, dim, dtype, device)
        self.adapter_scale = float(node.ADAPTER_SCALE)

    def branch(self, tower: nn.ModuleList, block: int, normed: torch.Tensor):
        """The adapter output added beside 0-based `block` of a tower (None: no adapter)."""
        adapter = tower[block + 1]
        if adapter is None:
            return None
        scale = self.adapter_scale
        y = adapter.down(gradient_scale(normed, scale))
        y = adapter.up(self.shared_adapter[block + 1](y)) * scale
        return gradient_scale(y, 1.0 / scale)

    def text_branch(self, block: int, normed: torch.Tensor):
        return self.branch(self.text_adapter, block, normed)

    def visual_branch(self, block: int, normed: torch.Tensor):
        return self.branch(self.visual_adapter, block, normed)


class MMACLIP(nn.Module):
    """Frozen CLIP towers with the adapter learner's branches beside their higher blocks."""

    def __init__(self, node: CN, classnames: list[str], clip_model: nn.Module) -> None:
        super().__init__()
        self.image_encoder = ImageEncoder(clip_model)
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        device = clip_model.ln_final.weight.device
        self.adapter_learner = AdapterLearner(
            node,
            (len(clip_model.transformer.resblocks), len(clip_model.visual.transformer.resblocks)),
            (clip_model.ln_final.weight.shape[0], clip_model.visual.conv1.weight.shape[0]),
            self.text_encoder.dtype,
            device,
        )
        prefix = node.TEXT_CTX_INIT
        sentences = [f"{prefix} {name.replace('_', ' ')}." for name in classnames]
        print(f"Text prompts: {sentences[:3]}{' …' if len(sentences) > 3 else ''}")
        token_ids = tokenize(sentences).to(device)
        with torch.no_grad():
            embeddings = clip_model.token_embedding(token_ids)
        self.register_buffer("prompt_embeddings", embeddings, persistent=False)
        self.register_buffer("eot_indices", token_ids.argmax(dim=-1), persistent=False)
        self.text_cache = EvalTextCache()

    def text_features(self) -> torch.Tensor:
        def compute() -> torch.Tensor:
            return self.text_encoder(
                self.prompt_embeddings,
                self.eot_indices,
                adapter=self.adapter_learner.text_branch,
            )

        return self.text_cache.get(self, compute)

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        return self.image_encoder(image, adapter=self.adapter_learner.visual_branch)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return clip_logits(self.image_features(image), self.text_features(), self.logit_scale)


@TRAINER_REGISTRY.register()
class MMA(CLIPPromptTrainer):
    """Multi-modal adapter; `adapter_learner` is registered and saved (reference layout)."""

    CFG_NODE = "MMADAPTER"
    IMAGE_TOWER = "vit"
    MODEL_NAME = "adapter_learner"
    MODEL_ATTR = "adapter_learner"

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        return MMACLIP(self.cfg.TRAINER.MMADAPTER, classnames, clip_model)
