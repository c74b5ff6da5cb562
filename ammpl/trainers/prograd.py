"""ProGrad (Zhu et al., ICCV 2023): CoOp's context updated only along the part of its
gradient that does not conflict with the zero-shot prediction's.

Two losses of one forward pass (zero-shot logits z⁰ from the frozen hand-crafted prompt):

    L_ce = CE(z, y)        L_kl = T² · mean_b Σ_k −softmax(z⁰/T)_k · log_softmax(z/T)_k

(L_kl is the reference's "KL": a cross-entropy against the zero-shot prediction, which has
the KL divergence's gradient.) For every trainable tensor, with g = ∇L_ce and
ĝ⁰ = ∇L_kl / ‖∇L_kl‖, the optimiser steps with

    g − λ (g · ĝ⁰) ĝ⁰   when cos(g, ∇L_kl) < 0,   g otherwise   (`project_conflicting`).

The context starts, with CTX_INIT True, as the reference's: the dataset's ProGrad template
without " {}." right-aligned in the N_CTX slots after zero vectors, its first *word-count*
token embeddings taken (a comma is a token of its own, so "a type of pet, a photo of a"
fills 8 slots with "a type of pet , a photo of" and its last "a" stays a fixed token).
The config node is TRAINER.PROGRAD (the reference reuses TRAINER.COOP and keeps λ and T in
LOSS.LAMBDA / LOSS.T); checkpoints are CoOp's (`prompt_learner/`, `ctx`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.prompts import (
    ClassPrompts,
    check_class_position,
    init_context,
    phrase_token_embeddings,
)
from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import TRAINER_REGISTRY, compute_accuracy, register_cfg_extension
from ammpl.trainers.base import trainable_parameters
from ammpl.trainers.coop import CoOp, CoOpCLIP, clip_logits, normalise
from ammpl.trainers.templates import encode_templates, prograd_template
from ammpl.utils import ConfigError


def extend_cfg(cfg: CN) -> None:
    """CoOp's keys (the reference's defaults; CTX_INIT a switch as there) plus λ and T."""
    cfg.TRAINER.PROGRAD = CN()
    cfg.TRAINER.PROGRAD.N_CTX = 16
    cfg.TRAINER.PROGRAD.CSC = False
    cfg.TRAINER.PROGRAD.CTX_INIT = False  # True: from the dataset's ProGrad template
    cfg.TRAINER.PROGRAD.PREC = "fp16"
    cfg.TRAINER.PROGRAD.CLASS_TOKEN_POSITION = "end"
    cfg.TRAINER.PROGRAD.LAMBDA = 1.0  # the reference's LOSS.LAMBDA
    cfg.TRAINER.PROGRAD.T = 1.0  # the reference's LOSS.T


register_cfg_extension(extend_cfg)


def template_context(clip_model: nn.Module, n_ctx: int, template: str) -> tuple[torch.Tensor, str]:
    """(ctx (n_ctx, d_t), scaffold prefix) initialised from a "… {}." template as the
    reference does (module docstring)."""
    phrase = template.replace(" {}.", "").replace("_", " ")
    n_words = len(phrase.split(" "))
    if n_ctx < n_words:
        raise ConfigError(
            f"TRAINER.PROGRAD.N_CTX is {n_ctx} but the initial prompt {phrase!r} has {n_words} "
            f"words; set N_CTX ≥ {n_words} or CTX_INIT False"
        )
    words = phrase_token_embeddings(clip_model, [phrase], n_words)[0]
    ctx = words.new_zeros(n_ctx, words.shape[-1])
    ctx[n_ctx - n_words :] = words
    return ctx, " ".join(["X"] * (n_ctx - n_words) + [phrase])


class ProGradPromptLearner(ClassPrompts):
    """CoOp's context (unified or class-specific) with ProGrad's template initialisation."""

    def __init__(
        self, node: CN, classnames: list[str], clip_model: nn.Module, template: str
    ) -> None:
        check_class_position(node.CLASS_TOKEN_POSITION, "TRAINER.PROGRAD.CLASS_TOKEN_POSITION")
        n_ctx = node.N_CTX
        if node.CTX_INIT:
            ctx, prompt_prefix = template_context(clip_model, n_ctx, template)
        else:
            ctx, prompt_prefix, n_ctx = init_context(
                clip_model, n_ctx, "", rule="coop", n_cls=len(classnames), csc=node.CSC
            )
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of context words (tokens): {n_ctx}")
        super().__init__(clip_model, classnames, n_ctx, prompt_prefix)
        self.ctx = nn.Parameter(ctx)
        self.class_token_position = node.CLASS_TOKEN_POSITION

    def forward(self) -> torch.Tensor:
        return self.splice(self.ctx, self.class_token_position)


class ProGradCLIP(CoOpCLIP):
    """CoOp's model plus the zero-shot classifier of the hand-crafted prompt (normalised
    fp32 class features, a non-persistent buffer)."""

    def __init__(
        self,
        node: CN,
        classnames: list[str],
        clip_model: nn.Module,
        template: str,
        zs_text_features: torch.Tensor | None = None,
    ) -> None:
        learner = ProGradPromptLearner(node, classnames, clip_model, template)
        super().__init__(node, classnames, clip_model, "PROGRAD", prompt_learner=learner)
        if zs_text_features is None:
            zs_text_features = encode_templates(self.text_encoder, classnames, [template])[0]
        self.register_buffer(
            "zs_text_features", normalise(zs_text_features.float()), persistent=False
        )

    def forward_train(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(prompted logits, zero-shot logits) from one image pass."""
        image_features = self.image_encoder(image)
        logits = clip_logits(image_features, self.text_features(), self.logit_scale)
        with torch.no_grad():
            scale = self.logit_scale.exp().float()
            zs_logits = scale * normalise(image_features.float()) @ self.zs_text_features.t()
        return logits, zs_logits


def prograd_losses(
    logits: torch.Tensor, zs_logits: torch.Tensor, label: torch.Tensor, temperature: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_ce, L_kl) of the module docstring, in fp32."""
    logits = logits.float()
    ce = F.cross_entropy(logits, label)
    teacher = F.softmax(zs_logits.float() / temperature, dim=-1)
    kl = -(teacher * F.log_softmax(logits / temperature, dim=-1)).sum(1).mean()
    return ce, kl * temperature * temperature


def project_conflicting(
    grad: torch.Tensor, general: torch.Tensor, lam: float = 1.0
) -> torch.Tensor:
    """`grad` without λ times its component along `general` when the two conflict
    (negative cosine); `grad` itself otherwise. Tensors are compared flattened."""
    general_unit = general / torch.linalg.norm(general)
    unit = grad / torch.linalg.norm(grad)
    if torch.dot(unit.flatten(), general_unit.flatten()) < 0:
        return grad - lam * torch.dot(grad.flatten(), general_unit.flatten()) * general_unit
    return grad


@TRAINER_REGISTRY.register()
class ProGrad(CoOp):
    """Prompt-aligned gradient on CoOp; only `prompt_learner` is registered and saved."""

    CFG_NODE = "PROGRAD"
    MODEL_NAME = "prompt_learner"

    def check_cfg(self, cfg) -> None:
        super().check_cfg(cfg)
        if cfg.TRAINER.PROGRAD.T <= 0:
            raise ConfigError(f"TRAINER.PROGRAD.T must be > 0, got {cfg.TRAINER.PROGRAD.T}")

    def template(self) -> str:
        return prograd_template(self.cfg.DATASET.NAME)

    def prepare_float_clip(self, clip_model: nn.Module) -> None:
        """The zero-shot class features from the fp32 weights, as the reference's float
        copy of CLIP computes them in every precision mode."""
        clip_model.to(self.device)
        classnames = self.dm.dataset.classnames
        encoder = TextEncoder(clip_model)
        self._zs_text = encode_templates(encoder, classnames, [self.template()])[0]

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        print(f"Zero-shot prompt: {self.template()!r}")
        zs_text = getattr(self, "_zs_text", None)
        return ProGradCLIP(self.method_cfg, classnames, clip_model, self.template(), zs_text)

    def build_model(self) -> None:
        from ammpl.engine import distributed

        if distributed.current() is not None:
            raise ConfigError(
                "ProGrad's step needs two separate gradients, which this DDP setup does not "
                "synchronise; run ProGrad in a single process"
            )
        super().build_model()

    def forward_backward(self, batch: dict) -> dict:
        image, label = self.parse_batch_train(batch)
        node = self.method_cfg
        with self.autocast():
            logits, zs_logits = self.model.forward_train(image)
            ce, kl = prograd_losses(logits, zs_logits, label, node.T)
        self.prograd_backward_and_update(ce, kl, node.LAMBDA)
        summary = {
            "loss": ce.item(),  # the objective; the KL term only steers its gradient
            "xe_loss": ce.item(),
            "kl_loss": kl.item(),
            "acc": compute_accuracy(logits, label)[0].item(),
        }
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def prograd_backward_and_update(
        self, loss: torch.Tensor, general_loss: torch.Tensor, lam: float
    ) -> None:
        """Step with ∇`loss` projected off ∇`general_loss` where they conflict (through
        the GradScaler in amp: both are scaled alike, the projection is linear in it)."""
        self.detect_anomaly(general_loss)
        self.detect_anomaly(loss)
        scale = self.scaler.scale if self.scaler is not None else (lambda value: value)
        params = [
            p
            for name in self.get_model_names()
            for p in trainable_parameters(self._models[name]).values()
        ]
        self.model_zero_grad()
        general = torch.autograd.grad(
            scale(general_loss), params, retain_graph=True, allow_unused=True
        )
        scale(loss).backward()
        for param, general_grad in zip(params, general):
            if param.grad is not None and general_grad is not None:
                param.grad = project_conflicting(param.grad, general_grad, lam)
        if self.scaler is None:
            self.model_update()
            return
        for name in self.get_model_names():
            if self._optims[name] is not None:
                self.scaler.step(self._optims[name])
        self.scaler.update()
