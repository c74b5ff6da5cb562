"""CoCoOp: conditional context optimisation (Zhou et al., CVPR 2022).

CoOp's context plus a small meta-network that shifts every context vector by an
image-dependent bias, so each image gets its own text classifier. The reference encodes
the K class prompts once per image in a Python loop; here the B·K prompts of a batch go
through the text tower together, in chunks of `text_chunk_size` sequences (exact:
sequences never interact in the tower, quirk Q16).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.prompts import clip_dtype
from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import TRAINER_REGISTRY, register_cfg_extension
from ammpl.trainers.base import CLIPPromptTrainer
from ammpl.trainers.coop import CoOpPromptLearner

# (image, class) sequences spliced and encoded per text pass: bounds memory at evaluation,
# where the reference batch of 100 images times K classes would not fit at once.
DEFAULT_TEXT_CHUNK = 4096


def extend_cfg(cfg: CN) -> None:
    cfg.TRAINER.COCOOP = CN()
    cfg.TRAINER.COCOOP.N_CTX = 16
    cfg.TRAINER.COCOOP.CTX_INIT = ""
    cfg.TRAINER.COCOOP.PREC = "fp16"


register_cfg_extension(extend_cfg)


class MetaNet(nn.Sequential):
    """Linear(e → e/16) → ReLU → Linear(e/16 → d_t), in CLIP's dtype (fp16 in a half CLIP,
    as the reference's `.half()`; quirk Q4)."""

    def __init__(
        self, in_dim: int, out_dim: int, dtype: torch.dtype, device: torch.device | None
    ) -> None:
        hidden = in_dim // 16
        super().__init__(
            OrderedDict(
                linear1=nn.Linear(in_dim, hidden, dtype=dtype, device=device),
                relu=nn.ReLU(inplace=True),
                linear2=nn.Linear(hidden, out_dim, dtype=dtype, device=device),
            )
        )


class CoCoOpPromptLearner(CoOpPromptLearner):
    """CoOp's unified context (class name at the end) + the meta-net."""

    def __init__(self, node: CN, classnames: list[str], clip_model: nn.Module) -> None:
        coop_node = CN(
            {
                "N_CTX": node.N_CTX,
                "CTX_INIT": node.CTX_INIT,
                "CSC": False,
                "CLASS_TOKEN_POSITION": "end",
            }
        )
        super().__init__(coop_node, classnames, clip_model)
        self.meta_net = MetaNet(
            clip_model.visual.output_dim,
            clip_model.ln_final.weight.shape[0],
            clip_dtype(clip_model),
            self.ctx.device,
        )

    def conditioned_context(self, image_features: torch.Tensor) -> torch.Tensor:
        """ctx shifted per image: (B, e) normalised features → (B, n, d_t)."""
        bias = self.meta_net(image_features)
        return self.ctx.unsqueeze(0) + bias.unsqueeze(1)

    def forward(self, image_features: torch.Tensor) -> torch.Tensor:
        """Per-image prompts (B, K, L, d_t)."""
        return self.splice(self.conditioned_context(image_features).unsqueeze(1))


class CoCoOpCLIP(nn.Module):
    """Frozen CLIP towers + the conditional prompt learner.

    `text_chunk_size` bounds how many (image, class) sequences are spliced and encoded at
    once; images are grouped so that each group's B_g·K sequences fit (one group, i.e. one
    text pass, whenever B·K fits: always in training with the batch-1 configs).
    """

    def __init__(self, node: CN, classnames: list[str], clip_model: nn.Module) -> None:
        super().__init__()
        self.prompt_learner = CoCoOpPromptLearner(node, classnames, clip_model)
        self.image_encoder = ImageEncoder(clip_model)
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.text_chunk_size = DEFAULT_TEXT_CHUNK

    @property
    def text_chunk_size(self) -> int:
        return self.text_encoder.chunk_size

    @text_chunk_size.setter
    def text_chunk_size(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"text_chunk_size must be ≥ 1, got {size}")
        self.text_encoder.chunk_size = size

    def per_image_text_features(self, image_features: torch.Tensor) -> torch.Tensor:
        """Normalised text features (B, K, e) of every image's own prompts."""
        learner = self.prompt_learner
        ctx = learner.conditioned_context(image_features)
        images_per_pass = max(1, self.text_chunk_size // learner.n_cls)
        features = []
        for start in range(0, ctx.shape[0], images_per_pass):
            prompts = learner.splice(ctx[start : start + images_per_pass].unsqueeze(1))
            features.append(self.text_encoder(prompts, learner.eot_indices))
        text = torch.cat(features) if len(features) > 1 else features[0]
        return text / text.norm(dim=-1, keepdim=True)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        image_features = self.image_encoder(image)
        image_features = image_features / image_features.norm(dim=-1, keepdim=True)
        text = self.per_image_text_features(image_features)
        logits = torch.einsum("be,bke->bk", image_features, text.to(image_features.dtype))
        return self.logit_scale.exp() * logits


@TRAINER_REGISTRY.register()
class CoCoOp(CLIPPromptTrainer):
    """Conditional context optimisation; only `prompt_learner` (ctx + meta-net) is saved."""

    CFG_NODE = "COCOOP"
    MODEL_NAME = "prompt_learner"

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        return CoCoOpCLIP(self.cfg.TRAINER.COCOOP, classnames, clip_model)
