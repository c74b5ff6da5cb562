"""Zero-shot CLIP: class names in a hand-written template, nothing learned.

`ZeroshotCLIP` uses the dataset's template; `ZeroshotCLIP2` averages the normalised text
features of the 7 selected ImageNet templates plus the dataset's own (except ImageNet),
without mutating any shared template list (BASELINES Q15).
"""

from __future__ import annotations

import torch
from torch import nn

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import TRAINER_REGISTRY
from ammpl.trainers.base import CLIPPromptTrainer
from ammpl.trainers.coop import clip_logits
from ammpl.trainers.templates import (
    IMAGENET_TEMPLATES_SELECT,
    dataset_template,
    encode_templates,
)
from ammpl.utils import ConfigError


class ZeroshotModel(nn.Module):
    """Fixed text classifier built once; inference = frozen image tower + cosine logits."""

    def __init__(self, clip_model: nn.Module, classnames: list[str], templates: list[str]):
        super().__init__()
        self.image_encoder = ImageEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        per_template = encode_templates(TextEncoder(clip_model), classnames, templates)
        per_template = per_template / per_template.norm(dim=-1, keepdim=True)
        text_features = per_template.mean(dim=0)
        self.register_buffer("text_features", text_features, persistent=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return clip_logits(self.image_encoder(image), self.text_features, self.logit_scale)


@TRAINER_REGISTRY.register()
class ZeroshotCLIP(CLIPPromptTrainer):
    """Evaluation only (`--eval-only`, no model dir); registers no model."""

    LEARNS = False

    def templates(self) -> list[str]:
        return [dataset_template(self.cfg.DATASET.NAME)]

    def requested_precision(self) -> str:
        return "fp16"  # the reference runs zero-shot CLIP in half precision on a GPU

    def build_model(self) -> None:
        clip_model = self.load_clip()
        clip_model.to(self.device)
        templates = self.templates()
        print(f"Prompt templates: {templates}")
        self.model = ZeroshotModel(clip_model, self.dm.dataset.classnames, templates)
        self.num_trainable = 0
        self.record_run_info()

    def forward_backward(self, batch: dict) -> dict:
        raise ConfigError(f"{type(self).__name__} learns nothing: run it with --eval-only")


@TRAINER_REGISTRY.register()
class ZeroshotCLIP2(ZeroshotCLIP):
    """Prompt ensembling over the 7 selected ImageNet templates (+ the dataset's own)."""

    def templates(self) -> list[str]:
        templates = list(IMAGENET_TEMPLATES_SELECT)
        if self.cfg.DATASET.NAME != "ImageNet":
            templates.append(dataset_template(self.cfg.DATASET.NAME))
        return templates
