"""PromptSRC's loss: cross-entropy plus the self-regulating consistency terms (SCL).

    L = CE(logits, y) + (w_logits·KL + w_text·L1_text + w_image·L1_image)

L1_text = mean |t̂ − t̂_zs| over (K, e) and L1_image = mean |f̂ − f̂_zs| over (B, e), on
L2-normalised features; KL = Σ p_zs (log p_zs − log p) over the batch, divided by B·K
(`kl_div(log_softmax(logits), log_softmax(zs_logits), "sum", log_target=True) / numel`).
The reference's weights: TEXT 25, IMAGE 10, and 1 for the KL (not configurable there). All
terms are computed in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class SRCOutputs:
    """Everything one training batch's losses need (features L2-normalised)."""

    logits: torch.Tensor  # (B, K) prompted
    text_features: torch.Tensor  # (K, e) prompted
    image_features: torch.Tensor  # (B, e) prompted
    zs_text_features: torch.Tensor  # (K, e) frozen, template ensemble
    zs_image_features: torch.Tensor  # (B, e) frozen
    zs_logits: torch.Tensor  # (B, K) frozen


@dataclass(frozen=True)
class SRCWeights:
    text: float
    image: float
    logits: float

    @classmethod
    def from_node(cls, node) -> SRCWeights:
        return cls(
            float(node.TEXT_LOSS_WEIGHT),
            float(node.IMAGE_LOSS_WEIGHT),
            float(node.LOGIT_LOSS_WEIGHT),
        )


def consistency_terms(out: SRCOutputs) -> dict[str, torch.Tensor]:
    """The three unweighted self-regulating terms."""
    text = F.l1_loss(out.text_features.float(), out.zs_text_features.float())
    image = F.l1_loss(out.image_features.float(), out.zs_image_features.float())
    kl = (
        F.kl_div(
            F.log_softmax(out.logits.float(), dim=1),
            F.log_softmax(out.zs_logits.float(), dim=1),
            reduction="sum",
            log_target=True,
        )
        / out.logits.numel()
    )
    return {"text": text, "image": image, "kl": kl}


def promptsrc_loss(
    out: SRCOutputs, label: torch.Tensor, weights: SRCWeights
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """(total loss, its weighted parts {ce, scl_kl, scl_text, scl_image}), summed in the
    reference's order."""
    ce = F.cross_entropy(out.logits.float(), label)
    terms = consistency_terms(out)
    parts = {
        "ce": ce,
        "scl_kl": terms["kl"] * weights.logits,
        "scl_text": terms["text"] * weights.text,
        "scl_image": terms["image"] * weights.image,
    }
    total = ce + (parts["scl_kl"] + parts["scl_text"] + parts["scl_image"])
    return total, parts
