"""TCP (Yao et al., CVPR 2024): class-aware textual tokens, generated from the hand-crafted
prompt's text features, inserted into the text encoder, with KgCoOp's consistency term.

    t_k^hand = normalised frozen-CLIP feature of the dataset's hand-crafted prompt (K, e)
    T_k      = MetaNet(t_k^hand) reshaped to (N_CTX, d_t)   Linear(e→e/4)·QuickGELU·Linear
    prompt_k = [SOT; ctx (N_CTX, unified); scaffold of class k]  (`tcp_scaffold`)

At the input of text block LAYER (0-based; 8 in the reference) the N_CTX positions after
SOT are replaced by T_k, so every class gets its own tokens from there on (a per-sequence
deep prompt of the shared encoder). Training loss:

    L = CE(logits, y) + W · (1 − mean_k cos(t̂_k, t_k^hand))      (`knowledge_guided_term`)

W is 8.0: the reference hard-codes it (its TRAINER.COOP.W is read but unused). The reference
runs its meta-net and hand features in fp16 whatever PREC says; here they follow the run's
precision (the same in the reference's default fp16). Its Adam uses eps 1e-3 (a patched
Dassl): TRAINER.TCP.ADAM_EPS. Checkpoints are the reference's (`prompt_learner/`: `ctx`,
`meta_net.linear1.*`, `meta_net.linear2.*`).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.prompts import ClassPrompts, clip_dtype, init_context
from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import TRAINER_REGISTRY, register_cfg_extension
from ammpl.trainers.base import CLIPPromptTrainer, trainable_parameters
from ammpl.trainers.coop import clip_logits, normalise
from ammpl.trainers.kgcoop import knowledge_guided_term
from ammpl.trainers.templates import encode_templates, tcp_hand_template, tcp_scaffold
from ammpl.utils import ConfigError

ADAM_NAMES = ("adam", "amsgrad", "adamw", "radam")


def extend_cfg(cfg: CN) -> None:
    """The reference's settings (its scripts pass N_CTX 4; its loss hard-codes W 8.0 and the
    layer 8; its Dassl sets Adam's eps to 1e-3)."""
    cfg.TRAINER.TCP = CN()
    cfg.TRAINER.TCP.N_CTX = 4
    cfg.TRAINER.TCP.CTX_INIT = ""  # "" = N(0, 0.02²); words as CoOp's CTX_INIT
    cfg.TRAINER.TCP.PREC = "fp16"
    cfg.TRAINER.TCP.W = 8.0
    cfg.TRAINER.TCP.LAYER = 8  # text block (0-based) whose input gets the class tokens
    cfg.TRAINER.TCP.ADAM_EPS = 1e-3  # Adam-family OPTIM.NAME only


register_cfg_extension(extend_cfg)


class ClassTokenNet(nn.Sequential):
    """Linear(e → e/4) → QuickGELU → Linear(e/4 → n·d_t), in CLIP's dtype."""

    def __init__(
        self, in_dim: int, n_tokens: int, width: int, dtype: torch.dtype, device: torch.device
    ) -> None:
        hidden = in_dim // 4
        super().__init__(
            OrderedDict(
                linear1=nn.Linear(in_dim, hidden, dtype=dtype, device=device),
                relu=QuickGELU(),
                linear2=nn.Linear(hidden, n_tokens * width, dtype=dtype, device=device),
            )
        )


class TCPPromptLearner(ClassPrompts):
    """Unified context in the dataset's TCP scaffold, plus the class-token generator fed by
    the hand-crafted prompt's features (`hand_text_features`, non-persistent buffer)."""

    def __init__(
        self,
        node: CN,
        classnames: list[str],
        clip_model: nn.Module,
        scaffold: str,
        hand_text_features: torch.Tensor,
    ) -> None:
        ctx, prompt_prefix, n_ctx = init_context(clip_model, node.N_CTX, node.CTX_INIT, "coop")
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of context words (tokens): {n_ctx}")
        super().__init__(clip_model, classnames, n_ctx, prompt_prefix, template=scaffold)
        self.ctx = nn.Parameter(ctx)
        width = clip_model.ln_final.weight.shape[0]
        self.meta_net = ClassTokenNet(
            clip_model.visual.output_dim, n_ctx, width, clip_dtype(clip_model), ctx.device
        )
        self.register_buffer("hand_text_features", hand_text_features, persistent=False)

    def class_tokens(self) -> torch.Tensor:
        """T (K, n, d_t) from the hand-crafted features."""
        features = self.hand_text_features.to(self.meta_net.linear1.weight.dtype)
        return self.meta_net(features).reshape(self.n_cls, self.n_ctx, -1)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompts (K, L, d_t), class tokens (K, n, d_t))."""
        return self.splice(self.ctx), self.class_tokens()


class TCPCLIP(nn.Module):
    """Frozen CLIP towers + TCP's prompt learner; the class tokens enter at block LAYER."""

    def __init__(
        self,
        node: CN,
        classnames: list[str],
        clip_model: nn.Module,
        hand_template: str,
        scaffold: str,
    ) -> None:
        super().__init__()
        self.text_encoder = TextEncoder(clip_model)
        hand = encode_templates(self.text_encoder, classnames, [hand_template])[0]
        self.prompt_learner = TCPPromptLearner(
            node, classnames, clip_model, scaffold, normalise(hand)
        )
        self.image_encoder = ImageEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.layer = int(node.LAYER)
        self.weight = float(node.W)

    def text_features(self) -> torch.Tensor:
        # Checked at use, not at build: parameter counts build the model on any depth.
        n_blocks = len(self.text_encoder.transformer.resblocks)
        if not 1 <= self.layer < n_blocks:
            raise ConfigError(
                f"TRAINER.TCP.LAYER must be a text block of this backbone, 1..{n_blocks - 1}, "
                f"got {self.layer}"
            )
        prompts, tokens = self.prompt_learner()
        deep = [None] * (self.layer - 1) + [tokens]
        return self.text_encoder(prompts, self.prompt_learner.eot_indices, deep)

    def forward_train(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, consistency term) from one text pass."""
        text = self.text_features()
        logits = clip_logits(self.image_encoder(image), text, self.logit_scale)
        return logits, knowledge_guided_term(text, self.prompt_learner.hand_text_features)

    def train_loss(
        self, image: torch.Tensor, label: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(CE + W · term, logits, {"kg": W · term}) of one batch."""
        logits, term = self.forward_train(image)
        weighted = self.weight * term
        return F.cross_entropy(logits.float(), label) + weighted, logits, {"kg": weighted}

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return clip_logits(self.image_encoder(image), self.text_features(), self.logit_scale)


@TRAINER_REGISTRY.register()
class TCP(CLIPPromptTrainer):
    """Textual-based class-aware prompt tuning; `prompt_learner` is registered and saved."""

    CFG_NODE = "TCP"
    MODEL_NAME = "prompt_learner"

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        if cfg.TRAINER.TCP.ADAM_EPS <= 0:
            raise ConfigError(f"TRAINER.TCP.ADAM_EPS must be > 0, got {cfg.TRAINER.TCP.ADAM_EPS}")

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        name = self.cfg.DATASET.NAME
        hand, scaffold = tcp_hand_template(name), tcp_scaffold(name)
        print(f"Hand-crafted prompt: {hand!r}; learned prompt: 'X … X {scaffold}'")
        return TCPCLIP(self.method_cfg, classnames, clip_model, hand, scaffold)

    def optimizer_param_groups(self, registered: nn.Module) -> list:
        params = list(trainable_parameters(registered).values())
        if self.cfg.OPTIM.NAME in ADAM_NAMES:
            return [{"params": params, "eps": float(self.method_cfg.ADAM_EPS)}]
        return params

    def compute_loss(self, image: torch.Tensor, label: torch.Tensor):
        loss, logits, parts = self.model.train_loss(image, label)
        return loss, logits, {name: value.item() for name, value in parts.items()}
