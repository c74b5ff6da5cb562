"""PromptSRC's model: IVLP's prompted CLIP plus the frozen zero-shot teacher it is held to.

The teacher needs no second CLIP: our prompts live on our own modules, so the shared image
encoder run without prompts *is* frozen CLIP's image tower. The teacher's text features are
the mean of the un-normalised features of PROMPTSRC_TEMPLATES (60 templates), normalised
once; the reference computes them with a float copy of CLIP whatever PREC says, and so does
the trainer (`teacher_text_features` on the fp32 backbone, `PromptSRC.prepare_float_clip`).
A model built without them (parameter counts, benchmarks) computes them on first use.
"""

from __future__ import annotations

import torch
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.engine import register_cfg_extension
from ammpl.trainers.coop import normalise
from ammpl.trainers.ivlp import IVLPCLIP
from ammpl.trainers.promptsrc.losses import SRCOutputs, SRCWeights, promptsrc_loss
from ammpl.trainers.templates import PROMPTSRC_TEMPLATES, encode_templates


def extend_cfg(cfg: CN) -> None:
    """The reference's `TRAINER.PROMPTSRC` defaults, plus LOGIT_LOSS_WEIGHT and GPA (ours:
    the reference hard-codes the KL weight to 1 and always aggregates)."""
    cfg.TRAINER.PROMPTSRC = CN()
    cfg.TRAINER.PROMPTSRC.N_CTX_VISION = 4
    cfg.TRAINER.PROMPTSRC.N_CTX_TEXT = 4
    cfg.TRAINER.PROMPTSRC.CTX_INIT = "a photo of a"
    cfg.TRAINER.PROMPTSRC.PREC = "fp16"
    cfg.TRAINER.PROMPTSRC.PROMPT_DEPTH_VISION = 9
    cfg.TRAINER.PROMPTSRC.PROMPT_DEPTH_TEXT = 9
    cfg.TRAINER.PROMPTSRC.TEXT_LOSS_WEIGHT = 25.0
    cfg.TRAINER.PROMPTSRC.IMAGE_LOSS_WEIGHT = 10.0
    cfg.TRAINER.PROMPTSRC.LOGIT_LOSS_WEIGHT = 1.0
    cfg.TRAINER.PROMPTSRC.GPA = True
    cfg.TRAINER.PROMPTSRC.GPA_MEAN = 15.0
    cfg.TRAINER.PROMPTSRC.GPA_STD = 1.0


register_cfg_extension(extend_cfg)


def teacher_text_features(text_encoder: nn.Module, classnames: list[str]) -> torch.Tensor:
    """Un-normalised mean over PROMPTSRC_TEMPLATES of the frozen text tower's class
    features (K, e)."""
    return encode_templates(text_encoder, classnames, PROMPTSRC_TEMPLATES).mean(dim=0)


class PromptSRCCLIP(IVLPCLIP):
    """IVLP (deep text + vision prompts) with a frozen zero-shot teacher for training."""

    def __init__(
        self,
        node: CN,
        classnames: list[str],
        clip_model: nn.Module,
        teacher_text: torch.Tensor | None = None,
    ) -> None:
        super().__init__(node, classnames, clip_model, node_name="PROMPTSRC")
        self.classnames = list(classnames)
        if teacher_text is not None:
            device = clip_model.ln_final.weight.device
            teacher_text = normalise(teacher_text.float().to(device))
        self.register_buffer("zs_text_features", teacher_text, persistent=False)
        self.loss_weights = SRCWeights.from_node(node)

    def zero_shot_text_features(self) -> torch.Tensor:
        """The teacher's normalised class features (K, e); computed here, from the model's
        own (frozen) text tower, on first use when none were given at construction."""
        if self.zs_text_features is None:
            raw = teacher_text_features(self.text_encoder, self.classnames)
            self.zs_text_features = normalise(raw.float())
        return self.zs_text_features

    def forward_train(self, image: torch.Tensor) -> SRCOutputs:
        """Prompted logits and features, and the frozen teacher's (without gradients)."""
        text = normalise(self.text_features())
        image_features = normalise(self.image_features(image))
        scale = self.logit_scale.exp()
        logits = scale * image_features @ text.t()  # clip_logits on normalised features
        with torch.no_grad():
            zs_image = normalise(self.image_encoder(image))
            zs_text = self.zero_shot_text_features()
            zs_logits = scale * zs_image @ zs_text.to(zs_image.dtype).t()
        return SRCOutputs(logits, text, image_features, zs_text, zs_image, zs_logits)

    def train_loss(
        self, image: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(PromptSRC loss, prompted logits, the loss's weighted parts) of one batch."""
        out = self.forward_train(image)
        loss, parts = promptsrc_loss(out, label, self.loss_weights)
        return loss, out.logits, parts
