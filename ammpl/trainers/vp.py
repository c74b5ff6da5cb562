"""VP: visual prompting with a learnable pixel-space border (Bahng et al., arXiv 2203.17274).

Four learnable pads frame the (normalised) image: the prompted image is image + canvas,
where the canvas holds `pad_up` / `pad_down` in the top / bottom p rows and `pad_left` /
`pad_right` in the left / right p columns of the rows between, and zeros inside
(BASELINES_EXTRA §1). CLIP is frozen; the classifier is the fixed sentence
"This is a photo of a {}" per class, encoded once. The reference trains with its own loop:
SGD at LR 40 with a per-step linear warm-up and a per-step cosine; `vp_lr` is that schedule
and VP sets it before every step (no Dassl epoch scheduler). Ported to the Dassl few-shot
protocol with the recipe of BASELINES_EXTRA §1.5 (docs/METHODS.md).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import TRAINER_REGISTRY, register_cfg_extension
from ammpl.trainers.base import CLIPPromptTrainer
from ammpl.trainers.coop import clip_logits
from ammpl.trainers.templates import encode_templates
from ammpl.utils import ConfigError

VP_METHODS = ("padding",)
VP_TEMPLATE = "This is a photo of a {}"


def extend_cfg(cfg: CN) -> None:
    cfg.TRAINER.VP = CN()
    cfg.TRAINER.VP.METHOD = "padding"
    cfg.TRAINER.VP.PROMPT_SIZE = 30  # pad width p in pixels
    cfg.TRAINER.VP.INIT_STD = 1.0  # pads start N(0, INIT_STD²) (reference: torch.randn)
    cfg.TRAINER.VP.TEMPLATE = VP_TEMPLATE
    cfg.TRAINER.VP.PREC = "amp"
    cfg.TRAINER.VP.WARMUP_STEPS = 1000  # per-step linear warm-up (reference --warmup)
    # Cap the warm-up at this fraction of all steps (0 = no cap, the reference): with
    # few-shot data 1000 steps can be the whole run.
    cfg.TRAINER.VP.WARMUP_MAX_FRACTION = 0.0


register_cfg_extension(extend_cfg)


def refine_classname(name: str) -> str:
    """The reference's class-name cleaning: lower case, `_` and `-` become spaces."""
    return name.lower().replace("_", " ").replace("-", " ")


def vp_lr(step: int, total_steps: int, base_lr: float, warmup_steps: int) -> float:
    """LR of global step `step` (0-based, set before that step): linear warm-up
    base·(s+1)/W for s < W, then base·½(1 + cos(π(s−W)/(total−W)))."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    return (
        0.5
        * (1 + math.cos(math.pi * (step - warmup_steps) / (total_steps - warmup_steps)))
        * (base_lr)
    )


def effective_warmup(warmup_steps: int, max_fraction: float, total_steps: int) -> int:
    """WARMUP_STEPS, capped at max_fraction of the run when max_fraction > 0 (at least 1)."""
    if max_fraction > 0:
        return max(1, min(warmup_steps, int(max_fraction * total_steps)))
    return warmup_steps


def image_size(cfg_size) -> tuple[int, int]:
    size = tuple(int(v) for v in cfg_size)
    return (size[0], size[0]) if len(size) == 1 else (size[0], size[1])


class PadPrompter(nn.Module):
    """The four border pads of an H×W image, p pixels wide (fp32 parameters)."""

    def __init__(self, height: int, width: int, pad: int, init_std: float = 1.0) -> None:
        super().__init__()
        if pad < 1 or 2 * pad > min(height, width):
            raise ConfigError(
                f"TRAINER.VP.PROMPT_SIZE {pad} does not fit INPUT.SIZE ({height}, {width}): "
                f"use 1 ≤ PROMPT_SIZE ≤ {min(height, width) // 2}"
            )
        self.pad = pad
        self.pad_up = nn.Parameter(torch.randn(1, 3, pad, width) * init_std)
        self.pad_down = nn.Parameter(torch.randn(1, 3, pad, width) * init_std)
        self.pad_left = nn.Parameter(torch.randn(1, 3, height - 2 * pad, pad) * init_std)
        self.pad_right = nn.Parameter(torch.randn(1, 3, height - 2 * pad, pad) * init_std)

    def canvas(self) -> torch.Tensor:
        """(1, 3, H, W): pads on the border, exactly zero inside."""
        middle_height = self.pad_left.shape[2]
        inner = self.pad_up.shape[3] - 2 * self.pad
        zeros = self.pad_left.new_zeros(1, 3, middle_height, inner)
        middle = torch.cat([self.pad_left, zeros, self.pad_right], dim=3)
        return torch.cat([self.pad_up, middle, self.pad_down], dim=2)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Prompted images = images + canvas (in normalised-pixel units, no clamping)."""
        canvas = self.canvas()
        if images.shape[-2:] != canvas.shape[-2:]:
            raise ConfigError(
                f"images are {tuple(images.shape[-2:])} but the VP pads were built for "
                f"{tuple(canvas.shape[-2:])}; set INPUT.SIZE to the image size"
            )
        return images + canvas.to(images.dtype)


@torch.no_grad()
def template_text_features(
    clip_model: nn.Module, classnames: list[str], template: str
) -> torch.Tensor:
    """Un-normalised features of the template filled with the refined class names (K, e)."""
    names = [refine_classname(name) for name in classnames]
    return encode_templates(TextEncoder(clip_model), names, [template])[0].float()


class VPCLIP(nn.Module):
    """Frozen CLIP, a pixel-space pad prompter, a fixed text classifier."""

    def __init__(self, node: CN, classnames: list[str], clip_model: nn.Module, input_size) -> None:
        super().__init__()
        if node.METHOD not in VP_METHODS:
            raise ConfigError(
                f"TRAINER.VP.METHOD must be one of {', '.join(VP_METHODS)}, got '{node.METHOD}'"
            )
        if node.WARMUP_STEPS < 0 or not 0.0 <= node.WARMUP_MAX_FRACTION <= 1.0:
            raise ConfigError(
                f"TRAINER.VP.WARMUP_STEPS must be ≥ 0 and WARMUP_MAX_FRACTION in [0, 1] "
                f"(0 = no cap), got {node.WARMUP_STEPS} and {node.WARMUP_MAX_FRACTION}"
            )
        height, width = image_size(input_size)
        device = clip_model.logit_scale.device
        self.prompter = PadPrompter(height, width, node.PROMPT_SIZE, node.INIT_STD).to(device)
        self.image_encoder = ImageEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        features = template_text_features(clip_model, classnames, node.TEMPLATE)
        self.register_buffer("text_features", features, persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = self.image_encoder(self.prompter(images))
        return clip_logits(features, self.text_features.to(features.dtype), self.logit_scale)


@TRAINER_REGISTRY.register()
class VP(CLIPPromptTrainer):
    """Padding prompter; only `prompter` (the four pads) is registered and saved."""

    CFG_NODE = "VP"
    MODEL_NAME = "prompter"
    MODEL_ATTR = "prompter"

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        return VPCLIP(self.cfg.TRAINER.VP, classnames, clip_model, self.cfg.INPUT.SIZE)

    def build_model(self) -> None:
        super().build_model()
        # The per-step schedule replaces Dassl's per-epoch one (set in forward_backward).
        self._scheds[self.MODEL_NAME] = self.sched = None

    def step_lr(self) -> float:
        """Set and return the LR of the coming step (global step of this epoch and batch)."""
        node = self.cfg.TRAINER.VP
        total = self.num_batches * self.max_epoch
        warmup = effective_warmup(node.WARMUP_STEPS, node.WARMUP_MAX_FRACTION, total)
        lr = vp_lr(self.epoch * self.num_batches + self.batch_idx, total, self.cfg.OPTIM.LR, warmup)
        for group in self.optim.param_groups:
            group["lr"] = lr
        return lr

    def forward_backward(self, batch: dict) -> dict:
        self.step_lr()
        return super().forward_backward(batch)
