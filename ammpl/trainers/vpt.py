"""VPT-deep, vision only: the MaPLe paper's re-implementation of VPT (Jia et al., ECCV 2022).

Learnable vision prompts at the inputs of the first J blocks of the image tower; the text
side is the fixed sentence "a photo of a {class}." for every dataset (quirk Q24), encoded
once at build time. As in the reference the model always runs in fp32 whatever PREC says
(quirk Q7); unlike the reference, PREC "amp" and "bf16" work (autocast on the fp32 model).
"""

from __future__ import annotations

import torch
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.text_encoder import TextEncoder
from ammpl.clip.tokenizer import tokenize
from ammpl.engine import TRAINER_REGISTRY, register_cfg_extension
from ammpl.trainers.base import CLIPPromptTrainer
from ammpl.trainers.coop import clip_logits
from ammpl.trainers.ivlp import (
    ReferenceCheckpointMixin,
    TowerPrompts,
    clamp_depth,
    configure_prompt_rounding,
)
from ammpl.utils import ConfigError

VPT_TEXT_TEMPLATE = "a photo of a {}."


def extend_cfg(cfg: CN) -> None:
    cfg.TRAINER.VPT = CN()
    cfg.TRAINER.VPT.N_CTX_VISION = 2
    cfg.TRAINER.VPT.CTX_INIT = "a photo of a"  # read by no code, kept for config compatibility
    cfg.TRAINER.VPT.PREC = "fp16"
    cfg.TRAINER.VPT.PROMPT_DEPTH_VISION = 1


register_cfg_extension(extend_cfg)


@torch.no_grad()
def fixed_text_features(clip_model: nn.Module, classnames: list[str]) -> torch.Tensor:
    """Un-normalised features of "a photo of a {name}." per class, (K, e)."""
    names = [name.replace("_", " ") for name in classnames]
    token_ids = tokenize([VPT_TEXT_TEMPLATE.format(name) for name in names])
    return TextEncoder(clip_model).encode_token_ids(token_ids).float()


class VPTCLIP(nn.Module):
    """Frozen CLIP, deep vision prompts, fixed hand-written class sentences."""

    def __init__(self, node: CN, classnames: list[str], clip_model: nn.Module) -> None:
        super().__init__()
        if node.PROMPT_DEPTH_VISION < 1:
            raise ConfigError(
                f"TRAINER.VPT.PROMPT_DEPTH_VISION must be ≥ 1 (1 = shallow VPT), "
                f"got {node.PROMPT_DEPTH_VISION}"
            )
        if node.N_CTX_VISION < 0:
            raise ConfigError(f"TRAINER.VPT.N_CTX_VISION must be ≥ 0, got {node.N_CTX_VISION}")
        vision_blocks = len(clip_model.visual.transformer.resblocks)
        depth = clamp_depth(node.PROMPT_DEPTH_VISION, vision_blocks, "PROMPT_DEPTH_VISION")
        width = clip_model.visual.conv1.weight.shape[0]
        device = clip_model.visual.conv1.weight.device
        self.vision_prompts = TowerPrompts(depth, node.N_CTX_VISION, width, True, device)
        self.image_encoder = ImageEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        configure_prompt_rounding(self.image_encoder)
        self.register_buffer(
            "text_features", fixed_text_features(clip_model, classnames), persistent=False
        )

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        features = self.image_encoder(
            image, self.vision_prompts.shallow, self.vision_prompts.deep_list()
        )
        return clip_logits(features, self.text_features.to(features.dtype), self.logit_scale)


@TRAINER_REGISTRY.register()
class VPT(ReferenceCheckpointMixin, CLIPPromptTrainer):
    """Deep vision prompting; the whole model is registered under `prompt_learner`."""

    CFG_NODE = "VPT"
    IMAGE_TOWER = "vit"
    MODEL_NAME = "prompt_learner"
    REGISTER_WHOLE_MODEL = True

    def requested_precision(self) -> str:
        prec = super().requested_precision()
        if prec == "fp16":
            print("Note: VPT runs its CLIP in fp32 whatever PREC says, as the reference does")
            return "fp32"
        return prec

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        return VPTCLIP(self.cfg.TRAINER.VPT, classnames, clip_model)
