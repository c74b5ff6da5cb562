"""MaPLe: multi-modal prompt learning (Khattak et al., CVPR 2023).

Text prompts at the inputs of text blocks 0..J−1 are learned; the vision prompts of the
same blocks are linear functions of them (one Linear d_t → d_v per block), so the two
towers are coupled. Parameter names follow the reference checkpoints:
`prompt_learner.{ctx, proj.*, compound_prompts_text.{k}, compound_prompt_projections.{k}.*}`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.prompts import ClassPrompts, init_context
from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import TRAINER_REGISTRY, register_cfg_extension
from ammpl.trainers.base import CLIPPromptTrainer
from ammpl.trainers.coop import clip_logits
from ammpl.trainers.ivlp import (
    EvalTextCache,
    ReferenceCheckpointMixin,
    clamp_depth,
    configure_prompt_rounding,
    normal_prompts,
)
from ammpl.utils import ConfigError


def extend_cfg(cfg: CN) -> None:
    cfg.TRAINER.MAPLE = CN()
    cfg.TRAINER.MAPLE.N_CTX = 2
    cfg.TRAINER.MAPLE.CTX_INIT = "a photo of a"
    cfg.TRAINER.MAPLE.PREC = "fp16"
    cfg.TRAINER.MAPLE.PROMPT_DEPTH = 9


register_cfg_extension(extend_cfg)


class MultiModalPromptLearner(ClassPrompts):
    """Coupled prompts: text `ctx` and `compound_prompts_text[k]` (block k+1), vision
    prompts `proj(ctx)` and `compound_prompt_projections[k](compound_prompts_text[k])`.

    dtypes (reference "fp16" mode, quirk Q4): `ctx` and `proj` follow CLIP's dtype (fp16
    in a half CLIP); deep prompts and deep projections are fp32. In float modes `proj`
    stays float (the reference forces it to fp16, quirk Q6, fixed).
    """

    def __init__(
        self, n_ctx: int, ctx_init: str, depth: int, classnames: list[str], clip_model: nn.Module
    ) -> None:
        ctx, prompt_prefix, n_ctx = init_context(clip_model, n_ctx, ctx_init, rule="maple")
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of MaPLe context words (tokens): {n_ctx}")
        super().__init__(clip_model, classnames, n_ctx, prompt_prefix)
        text_width = clip_model.ln_final.weight.shape[0]
        vision_width = clip_model.visual.conv1.weight.shape[0]
        device = ctx.device
        self.depth = depth
        self.ctx = nn.Parameter(ctx)
        self.proj = nn.Linear(text_width, vision_width, device=device, dtype=ctx.dtype)
        self.compound_prompts_text = nn.ParameterList(
            [normal_prompts(n_ctx, text_width, device) for _ in range(depth - 1)]
        )
        # One Linear deep-copied: identical initial values, independent afterwards (Q8).
        single = nn.Linear(text_width, vision_width, device=device)
        self.compound_prompt_projections = nn.ModuleList(
            [copy.deepcopy(single) for _ in range(depth - 1)]
        )

    def text_prompts(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Text prompts (K, L, d_t) and the deep text prompts of blocks 1..J−1."""
        return self.splice(self.ctx), list(self.compound_prompts_text)

    def vision_prompts(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Block-0 vision prompt (n, d_v) and the deep vision prompts of blocks 1..J−1."""
        deep = [
            layer(prompt)
            for layer, prompt in zip(self.compound_prompt_projections, self.compound_prompts_text)
        ]
        return self.proj(self.ctx), deep

    def forward(
        self,
    ) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The reference's four outputs: text prompts, block-0 vision prompt, deep text
        prompts, deep vision prompts."""
        prompts, deep_text = self.text_prompts()
        vision_prompt, deep_vision = self.vision_prompts()
        return prompts, vision_prompt, deep_text, deep_vision


class MaPLeCLIP(nn.Module):
    """Frozen CLIP towers driven by the multi-modal prompt learner."""

    def __init__(self, node: CN, classnames: list[str], clip_model: nn.Module) -> None:
        super().__init__()
        if node.PROMPT_DEPTH < 1:
            raise ConfigError(
                f"TRAINER.MAPLE.PROMPT_DEPTH must be ≥ 1 (1 = shallow MaPLe), "
                f"got {node.PROMPT_DEPTH}"
            )
        blocks = min(
            len(clip_model.transformer.resblocks), len(clip_model.visual.transformer.resblocks)
        )
        depth = clamp_depth(node.PROMPT_DEPTH, blocks, "PROMPT_DEPTH")
        self.prompt_learner = MultiModalPromptLearner(
            node.N_CTX, node.CTX_INIT, depth, classnames, clip_model
        )
        self.image_encoder = ImageEncoder(clip_model)
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        configure_prompt_rounding(self.image_encoder, self.text_encoder)
        self.text_cache = EvalTextCache()

    def text_features(self) -> torch.Tensor:
        def compute() -> torch.Tensor:
            prompts, deep_text = self.prompt_learner.text_prompts()
            return self.text_encoder(prompts, self.prompt_learner.eot_indices, deep_text)

        return self.text_cache.get(self, compute)

    def image_features(self, image: torch.Tensor) -> torch.Tensor:
        vision_prompt, deep_vision = self.prompt_learner.vision_prompts()
        return self.image_encoder(image, vision_prompt, deep_vision)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return clip_logits(self.image_features(image), self.text_features(), self.logit_scale)


@TRAINER_REGISTRY.register()
class MaPLe(ReferenceCheckpointMixin, CLIPPromptTrainer):
    """Multi-modal prompt learning; the whole model is registered (reference layout)."""

    CFG_NODE = "MAPLE"
    IMAGE_TOWER = "vit"
    MODEL_NAME = "MultiModalPromptLearner"
    REGISTER_WHOLE_MODEL = True
    REFERENCE_KEY_MAP = ()  # the reference names are ours

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        return MaPLeCLIP(self.cfg.TRAINER.MAPLE, classnames, clip_model)
