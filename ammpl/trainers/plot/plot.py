"""PLOT (Chen et al., ICLR 2023): N learnable prompts matched to local image features by OT.

CoOp with N context sets: every class gets N prompts `[SOT; ctx_n; name.]`, and an image
scores a class by the optimal-transport similarity between its M local features and the
class's N prompt features (`ot.plot_logits`). Local features: the RN50 attention-pool grid
(the reference), or ViT final tokens through ln_post and the projection (option A).
State-dict keys follow the reference checkpoints: `ctx` (N, n_ctx, d_t), `token_prefix`,
`token_suffix` (N·K rows, row n·K + c).
"""

from __future__ import annotations

import torch
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.image_encoder import ImageEncoder, is_resnet_tower, require_image_tower
from ammpl.clip.prompts import ClassPrompts, check_class_position, init_context
from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import TRAINER_REGISTRY, register_cfg_extension
from ammpl.trainers.base import CLIPPromptTrainer
from ammpl.trainers.ivlp import EvalTextCache
from ammpl.trainers.plot.ot import SinkhornSettings, add_ot_keys, plot_logits, settings_from_cfg
from ammpl.utils import ConfigError

LOCAL_FEATURES = ("auto", "attnpool", "tokens")
# The reference adds the global image-text logits for this dataset name only (P-Q1, P-Q2).
GLOBAL_TERM_DATASET = "ImageNet"


def extend_cfg(cfg: CN) -> None:
    cfg.TRAINER.PLOT = CN()
    cfg.TRAINER.PLOT.N_CTX = 16
    cfg.TRAINER.PLOT.CSC = False
    cfg.TRAINER.PLOT.CTX_INIT = ""
    cfg.TRAINER.PLOT.PREC = "fp16"
    cfg.TRAINER.PLOT.CLASS_TOKEN_POSITION = "end"
    cfg.TRAINER.PLOT.N = 4
    # Ours: where the local features come from ("auto": attention pool on a ResNet,
    # final tokens on a ViT), and the OT settings the reference hard-codes.
    cfg.TRAINER.PLOT.LOCAL_FEATURES = "auto"
    add_ot_keys(cfg.TRAINER.PLOT)


register_cfg_extension(extend_cfg)


def check_prompt_count(value: int, key: str) -> None:
    if value < 1:
        raise ConfigError(f"{key} (number of prompt sets) must be ≥ 1, got {value}")


def local_feature_source(node: CN, clip_model: nn.Module) -> str:
    """Where the locals come from, "attnpool" or "tokens", checked against the tower."""
    source = node.LOCAL_FEATURES
    if source not in LOCAL_FEATURES:
        raise ConfigError(
            f"TRAINER.PLOT.LOCAL_FEATURES must be one of {', '.join(LOCAL_FEATURES)}, "
            f"got '{source}'"
        )
    if source == "auto":
        source = "attnpool" if is_resnet_tower(clip_model.visual) else "tokens"
    tower = "resnet" if source == "attnpool" else "vit"
    require_image_tower(tower, clip_model, f"TRAINER.PLOT.LOCAL_FEATURES {source}")
    return source


def context_rows(ctx: torch.Tensor, n_classes: int) -> torch.Tensor:
    """N generic context sets (N, n_ctx, d) or class-specific ones (N, K, n_ctx, d) as the
    N·K scaffold rows (row n·K + c)."""
    if ctx.dim() == 3:
        ctx = ctx.unsqueeze(1).expand(-1, n_classes, -1, -1)
    return ctx.reshape(-1, *ctx.shape[-2:])


class PLOTPromptLearner(ClassPrompts):
    """N context sets, generic (N, n_ctx, d_t) or class-specific (N, K, n_ctx, d_t),
    spliced into N·K scaffold rows (row n·K + c)."""

    def __init__(self, node: CN, classnames: list[str], clip_model: nn.Module) -> None:
        check_prompt_count(node.N, "TRAINER.PLOT.N")
        if node.CTX_INIT:
            raise ConfigError(
                f"TRAINER.PLOT.CTX_INIT must be '' (random init): one init phrase would give "
                f"all N prompts the same start, and identical prompts never separate; got "
                f"'{node.CTX_INIT}'"
            )
        check_class_position(node.CLASS_TOKEN_POSITION, "TRAINER.PLOT.CLASS_TOKEN_POSITION")
        n_classes, n_prompts = len(classnames), node.N
        # One N(0, 0.02²) draw of (N, n_ctx, d_t) as the reference (or (N·K, n_ctx, d_t)
        # for class-specific context), through the shared "one context per row" path.
        rows = n_prompts * n_classes if node.CSC else n_prompts
        ctx, prompt_prefix, n_ctx = init_context(
            clip_model, node.N_CTX, "", rule="coop", n_cls=rows, csc=True
        )
        if node.CSC:
            ctx = ctx.view(n_prompts, n_classes, n_ctx, ctx.shape[-1])
        print(f'Initial context: "{prompt_prefix}"')
        print(f"Number of context words (tokens): {n_ctx}; prompt sets N = {n_prompts}")
        super().__init__(clip_model, list(classnames) * n_prompts, n_ctx, prompt_prefix)
        self.n_prompts = n_prompts
        self.n_classes = n_classes
        self.ctx = nn.Parameter(ctx)
        self.class_token_position = node.CLASS_TOKEN_POSITION

    def forward(self) -> torch.Tensor:
        """Prompt embeddings (N·K, L, d_t)."""
        return self.splice(context_rows(self.ctx, self.n_classes), self.class_token_position)


class OTPromptCLIP(nn.Module):
    """What PLOT and PLOT++ share: frozen towers, N prompts per class through the text
    tower and the OT head over local image features. A subclass gives `text_prompts` and
    `image_features`."""

    def __init__(
        self,
        clip_model: nn.Module,
        ot_settings: SinkhornSettings,
        prompt_learner: nn.Module,
        add_global: bool,
    ) -> None:
        super().__init__()
        self.image_encoder = ImageEncoder(clip_model)
        self.ot_settings = ot_settings
        self.prompt_learner = prompt_learner
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.add_global = add_global
        self.text_cache = EvalTextCache()

    def text_prompts(self) -> torch.Tensor:
        """Prompt embeddings (N·K, L, d_t), row n·K + c."""
        raise NotImplementedError

    def image_features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global (B, e) and local (M, B, e) image features."""
        raise NotImplementedError

    def text_features(self) -> torch.Tensor:
        """Prompt features (N, K, e), un-normalised."""
        learner = self.prompt_learner

        def compute() -> torch.Tensor:
            features = self.text_encoder(self.text_prompts(), learner.eot_indices)
            return features.view(learner.n_prompts, learner.n_classes, -1)

        return self.text_cache.get(self, compute)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        global_feature, local = self.image_features(image)
        return plot_logits(
            global_feature,
            local,
            self.text_features(),
            self.logit_scale,
            self.ot_settings,
            self.add_global,
        )


class PLOTCLIP(OTPromptCLIP):
    """Frozen CLIP towers, the N-prompt learner and the OT head."""

    def __init__(self, cfg: CN, classnames: list[str], clip_model: nn.Module) -> None:
        node = cfg.TRAINER.PLOT
        local_features = local_feature_source(node, clip_model)
        ot_settings = settings_from_cfg(node, "PLOT")
        super().__init__(
            clip_model,
            ot_settings,
            PLOTPromptLearner(node, classnames, clip_model),
            add_global=cfg.DATASET.NAME == GLOBAL_TERM_DATASET,
        )
        self.local_features = local_features

    def text_prompts(self) -> torch.Tensor:
        return self.prompt_learner()

    def image_features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global (B, e) and local (M, B, e) image features."""
        dense = self.image_encoder.forward_dense(image)
        return dense[:, 0], dense[:, 1:].transpose(0, 1)


@TRAINER_REGISTRY.register()
class PLOT(CLIPPromptTrainer):
    """PLOT on CoOp's recipe; only `prompt_learner` is registered and saved."""

    CFG_NODE = "PLOT"
    MODEL_NAME = "prompt_learner"

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        return PLOTCLIP(self.cfg, classnames, clip_model)
