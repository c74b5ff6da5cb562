"""The PromptSRC trainer: IVLP's trainer with the self-regulating loss and GPA.

Checkpoints are IVLP's (`VLPromptLearner/`, trainable tensors; the reference's full-model
files load through IVLP's key map) plus the GPA state (`gpa`: summed epochs and the running
aggregate), so a resumed run ends with the aggregate of an uninterrupted one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import TRAINER_REGISTRY
from ammpl.trainers.base import trainable_parameters
from ammpl.trainers.ivlp import IVLP
from ammpl.trainers.promptsrc.gpa import GaussianPromptAggregator, gaussian_epoch_weights
from ammpl.trainers.promptsrc.model import PromptSRCCLIP, teacher_text_features
from ammpl.utils import CheckpointError


@TRAINER_REGISTRY.register()
class PromptSRC(IVLP):
    """Prompting with self-regulating constraints (TRAINER.PROMPTSRC)."""

    CFG_NODE = "PROMPTSRC"
    MODEL_NAME = "VLPromptLearner"
    REGISTER_WHOLE_MODEL = True

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        node = cfg.TRAINER.PROMPTSRC
        if node.GPA:
            gaussian_epoch_weights(node.GPA_MEAN, node.GPA_STD, cfg.OPTIM.MAX_EPOCH)

    # -- model ---------------------------------------------------------------------
    def prepare_float_clip(self, clip_model: nn.Module) -> None:
        """The teacher's text features from the fp32 weights, as the reference's float
        copy of CLIP computes them in every precision mode."""
        clip_model.to(self.device)
        classnames = self.dm.dataset.classnames
        self._teacher_text = teacher_text_features(TextEncoder(clip_model), classnames)

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        teacher = getattr(self, "_teacher_text", None)
        return PromptSRCCLIP(self.cfg.TRAINER.PROMPTSRC, classnames, clip_model, teacher)

    def build_model(self) -> None:
        super().build_model()
        node = self.cfg.TRAINER.PROMPTSRC
        self.gpa = None
        if node.GPA:
            weights = gaussian_epoch_weights(node.GPA_MEAN, node.GPA_STD, self.max_epoch)
            self.gpa = GaussianPromptAggregator(weights)

    # -- training ------------------------------------------------------------------
    def compute_loss(self, image: torch.Tensor, label: torch.Tensor):
        loss, logits, parts = self.model.train_loss(image, label)
        return loss, logits, {name: value.item() for name, value in parts.items()}

    def gpa_tensors(self) -> dict[str, torch.Tensor]:
        """What GPA averages: the trainable tensors of the registered model."""
        return dict(trainable_parameters(self._models[self.MODEL_NAME]))

    def after_epoch(self) -> None:
        if self.gpa is not None:
            self.gpa.add(self.epoch, self.gpa_tensors())
            if self.epoch + 1 == self.max_epoch:
                print("Using GPA model for final inference...")
                self.gpa.apply(self.gpa_tensors())
        super().after_epoch()

    # -- checkpoints ---------------------------------------------------------------
    def _extra_checkpoint_state(self) -> dict[str, Any]:
        extra = super()._extra_checkpoint_state()
        if self.gpa is not None:
            extra["gpa"] = self.gpa.state_dict()
        return extra

    def _restore_extra_checkpoint_state(self, checkpoint: dict[str, Any]) -> None:
        super()._restore_extra_checkpoint_state(checkpoint)
        if self.gpa is None:
            return
        state = checkpoint.get("gpa")
        if state is None:
            raise CheckpointError(
                f"The checkpoint of epoch {checkpoint.get('epoch')} holds no GPA state (saved "
                "with TRAINER.PROMPTSRC.GPA False?); resume with GPA False or start over"
            )
        self.gpa.load_state_dict(state, self.device)
