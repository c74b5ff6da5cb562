"""CoOp (Zhou et al., IJCV 2022): learnable context vectors in front of the class name.

The prompt learner is the shared `ClassPrompts` scaffold plus one `ctx` parameter, so its
state-dict keys (`ctx`, `token_prefix`, `token_suffix`) are those of CoOp's checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.prompts import ClassPrompts, check_class_position, init_context
from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import TRAINER_REGISTRY, register_cfg_extension
from ammpl.trainers.base import CLIPPromptTrainer


def extend_cfg(cfg: CN) -> None:
    cfg.TRAINER.COOP = CN()
    cfg.TRAINER.COOP.N_CTX = 16
    cfg.TRAINER.COOP.CSC = False
    cfg.TRAINER.COOP.CTX_INIT = ""
    cfg.TRAINER.COOP.PREC = "fp16"
    cfg.TRAINER.COOP.CLASS_TOKEN_POSITION = "end"


register_cfg_extension(extend_cfg)


def normalise(features: torch.Tensor) -> torch.Tensor:
    """L2-normalise along the last axis, as CLIP does before its cosine logits."""
    return features / features.norm(dim=-1, keepdim=True)


def clip_logits(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
) -> torch.Tensor:
    """CLIP's scaled cosine similarity (B, e) × (K, e) → (B, K)."""
    return logit_scale.exp() * normalise(image_features) @ normalise(text_features).t()


class CoOpPromptLearner(ClassPrompts):
    """Unified (N, d) or class-specific (K, N, d) context spliced around the class names."""

    def __init__(
        self, node: CN, classnames: list[str], clip_model: nn.Module, node_name: str = "COOP"
    ) -> None:
        check_class_position(node.CLASS_TOKEN_POSITION, f"TRAINER.{node_name}.CLASS_TOKEN_POSITION")
        ctx, prompt_prefix, n_ctx = init_context(
            clip_model,
            node.N_CTX,
            node.CTX_INIT,
            rule="coop",
            n_cls=len(classnames),
            csc=node.CSC,
        )
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of context words (tokens): {n_ctx}")
        super().__init__(clip_model, classnames, n_ctx, prompt_prefix)
        self.ctx = nn.Parameter(ctx)
        self.class_token_position = node.CLASS_TOKEN_POSITION

    def forward(self) -> torch.Tensor:
        return self.splice(self.ctx, self.class_token_position)


class CoOpCLIP(nn.Module):
    """Frozen CLIP towers + the CoOp prompt learner (KgCoOp builds on it; `node_name` names
    the config node in error messages; ProGrad passes its own `prompt_learner`)."""

    def __init__(
        self,
        node: CN,
        classnames: list[str],
        clip_model: nn.Module,
        node_name: str = "COOP",
        prompt_learner: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.prompt_learner = prompt_learner or CoOpPromptLearner(
            node, classnames, clip_model, node_name
        )
        self.image_encoder = ImageEncoder(clip_model)
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale

    def text_features(self) -> torch.Tensor:
        prompts = self.prompt_learner()
        return self.text_encoder(prompts, self.prompt_learner.eot_indices)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        image_features = self.image_encoder(image)
        return clip_logits(image_features, self.text_features(), self.logit_scale)


@TRAINER_REGISTRY.register()
class CoOp(CLIPPromptTrainer):
    """Context Optimization; only `prompt_learner` is registered and saved."""

    CFG_NODE = "COOP"
    MODEL_NAME = "prompt_learner"

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        return CoOpCLIP(self.cfg.TRAINER.COOP, classnames, clip_model)
