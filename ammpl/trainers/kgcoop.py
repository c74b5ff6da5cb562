"""KgCoOp (Yao et al., CVPR 2023): CoOp's context kept close to the hand-crafted prompt.

    L = CE(logits, y) + W · (1 − mean_k cos(t̂_k, t̂_k^hand))

t̂_k: the learned prompt's text feature of class k; t̂_k^hand: frozen CLIP's feature of the
dataset's hand-crafted prompt (`kgcoop_template`: CUSTOM_TEMPLATES, textures read "a photo
of a {}, a type of texture."), both L2-normalised; the cosine uses eps 1e-7 as the
reference's `CosineSimilarity`. The config node is TRAINER.KGCOOP (the reference reuses
TRAINER.COOP and adds W there); checkpoints are CoOp's (`prompt_learner/`, `ctx`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import TRAINER_REGISTRY, register_cfg_extension
from ammpl.trainers.coop import CoOp, CoOpCLIP, clip_logits, normalise
from ammpl.trainers.templates import encode_templates, kgcoop_template

COSINE_EPS = 1e-7


def extend_cfg(cfg: CN) -> None:
    """CoOp's keys (same defaults) plus W, the weight of the knowledge-guided term."""
    cfg.TRAINER.KGCOOP = CN()
    cfg.TRAINER.KGCOOP.N_CTX = 16
    cfg.TRAINER.KGCOOP.CSC = False
    cfg.TRAINER.KGCOOP.CTX_INIT = ""
    cfg.TRAINER.KGCOOP.PREC = "fp16"
    cfg.TRAINER.KGCOOP.CLASS_TOKEN_POSITION = "end"
    cfg.TRAINER.KGCOOP.W = 1.0


register_cfg_extension(extend_cfg)


def knowledge_guided_term(text_features: torch.Tensor, hand_features: torch.Tensor) -> torch.Tensor:
    """1 − mean over classes of cos(normalised learned, normalised hand-crafted), in fp32."""
    learned = normalise(text_features.float())
    hand = normalise(hand_features.float())
    return 1.0 - F.cosine_similarity(learned, hand, dim=1, eps=COSINE_EPS).mean()


class KgCoOpCLIP(CoOpCLIP):
    """CoOp's model plus the frozen hand-crafted class features (a non-persistent buffer,
    normalised, and normalised again in the loss, as the reference does)."""

    def __init__(
        self, node: CN, classnames: list[str], clip_model: nn.Module, template: str
    ) -> None:
        super().__init__(node, classnames, clip_model, node_name="KGCOOP")
        hand = encode_templates(TextEncoder(clip_model), classnames, [template])[0]
        hand = normalise(hand)  # normalised here and again at use
        self.register_buffer("hand_text_features", hand, persistent=False)
        self.weight = float(node.W)

    def forward_train(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, knowledge-guided term) from one text pass."""
        text = self.text_features()
        logits = clip_logits(self.image_encoder(image), text, self.logit_scale)
        return logits, knowledge_guided_term(text, self.hand_text_features)

    def train_loss(
        self, image: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(CE + W · term, logits, {"kg": W · term}) of one batch."""
        logits, term = self.forward_train(image)
        weighted = self.weight * term
        return F.cross_entropy(logits.float(), label) + weighted, logits, {"kg": weighted}


@TRAINER_REGISTRY.register()
class KgCoOp(CoOp):
    """Knowledge-guided context optimisation; only `prompt_learner` is registered and saved."""

    CFG_NODE = "KGCOOP"
    MODEL_NAME = "prompt_learner"

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        template = kgcoop_template(self.cfg.DATASET.NAME)
        print(f"Hand-crafted prompt: {template!r}")
        return KgCoOpCLIP(self.cfg.TRAINER.KGCOOP, classnames, clip_model, template)

    def compute_loss(self, image: torch.Tensor, label: torch.Tensor):
        loss, logits, parts = self.model.train_loss(image, label)
        return loss, logits, {name: value.item() for name, value in parts.items()}
