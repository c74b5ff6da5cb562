"""PLOT++ (the authors' ViT-B/16 extension of PLOT, `plot-pp/`): OT between prompt sets.

Text: N prompts per class, each initialised from one of four per-dataset template phrases.
Image: M sets of shallow visual prompts; the image is encoded once per set and the M
prompted class-token features are the "local" features, their mean the global one. Logits
come from the same OT head as PLOT (`ot.plot_logits`, global term when TRADE_OFF).
Two stages: MODEL_UPD "vision" trains only the visual prompts; "joint" trains both,
starting from the stage-1 weights (PRETRAIN_DIR). The whole model is registered under the
name `prompt_learner`, so checkpoint keys read `prompt_learner.{ctx, ctx_vision, …}`.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.image_encoder import require_image_tower
from ammpl.clip.prompts import ClassPrompts, clip_dtype, init_context, phrase_token_embeddings
from ammpl.engine import TRAINER_REGISTRY, load_pretrained_weights, register_cfg_extension
from ammpl.trainers.base import CLIPPromptTrainer
from ammpl.trainers.plot.ot import add_ot_keys, settings_from_cfg
from ammpl.trainers.plot.plot import OTPromptCLIP, check_prompt_count, context_rows
from ammpl.utils import ConfigError

MODEL_UPDATES = ("", "joint", "vision")
VISION_STD = 0.02

# Four init phrases per dataset (the reference's table, keyed by DATASET.NAME). The first
# phrase's word count is the number of context tokens of every prompt set.
TEMPLATE_PHRASES: dict[str, tuple[str, ...]] = {
    "Caltech101": ("a photo of a", "this is a photo", "this is picture of", "one picture of a"),
    "DescribableTextures": ("a photo of a texture", "this is a photo texture",
                            "this is a picture texture", "one picture of a texture"),
    "EuroSAT": ("a centered satellite photo of", "a centered satellite picture of",
                "this is centered satellite photo of", "one centered satellite photo of a"),
    "FGVCAircraft": ("a photo of an aircraft", "a picture of an aircraft",
                     "this is aircraft picture of", "one picture of an aircraft"),
    "Food101": ("a photo of a food", "this is a food photo", "this is food picture of",
                "one picture of a food"),
    "ImageNet": ("a photo of a", "this is a photo", "this is a", "one picture of a"),
    "OxfordFlowers": ("a photo of a flower", "one picture of a flower",
                      "this is flower picture of", "one picture of a flower"),
    "OxfordPets": ("a photo of a pet", "one picture of a pet", "this is pet picture of",
                   "one picture of a pet"),
    "StanfordCars": ("a photo of a", "this is a photo", "this is picture of", "one picture of a"),
    "SUN397": ("a photo of a", "this is a photo", "this is picture of", "one picture of a"),
    "UCF101": ("a photo of a person doing", "this is a photo people doing",
               "this is picture of people doing", "one picture of a person doing"),
}  # fmt: skip
# Ours (the reference raises KeyError): ImageNet's variants evaluate with ImageNet's
# phrases (the label space a model trained on ImageNet was built for), any other dataset
# with the generic Caltech101 list.
IMAGENET_VARIANTS = ("ImageNetV2", "ImageNetSketch", "ImageNetA", "ImageNetR")


def template_phrases(dataset_name: str) -> tuple[str, ...]:
    if dataset_name in TEMPLATE_PHRASES:
        return TEMPLATE_PHRASES[dataset_name]
    if dataset_name in IMAGENET_VARIANTS:
        return TEMPLATE_PHRASES["ImageNet"]
    return TEMPLATE_PHRASES["Caltech101"]


def extend_cfg(cfg: CN) -> None:
    cfg.TRAINER.PLOTPP = CN()
    cfg.TRAINER.PLOTPP.N_CTX = 4
    cfg.TRAINER.PLOTPP.CSC = False
    cfg.TRAINER.PLOTPP.CTX_INIT = True
    cfg.TRAINER.PLOTPP.PREC = "fp16"
    cfg.TRAINER.PLOTPP.CLASS_TOKEN_POSITION = "end"
    cfg.TRAINER.PLOTPP.N = 4
    cfg.TRAINER.PLOTPP.TRADE_OFF = False
    cfg.TRAINER.PLOTPP.M = 4
    cfg.TRAINER.PLOTPP.PRETRAIN_DIR = ""
    cfg.TRAINER.PLOTPP.MODEL_UPD = ""
    cfg.TRAINER.PLOTPP.N_CTX_V = 2
    add_ot_keys(cfg.TRAINER.PLOTPP)


register_cfg_extension(extend_cfg)


def check_node(node: CN) -> None:
    """One-line errors for the settings the reference accepts but never implements."""
    check_prompt_count(node.N, "TRAINER.PLOTPP.N")
    check_prompt_count(node.M, "TRAINER.PLOTPP.M")
    if node.N_CTX_V < 1:
        raise ConfigError(f"TRAINER.PLOTPP.N_CTX_V must be ≥ 1, got {node.N_CTX_V}")
    if node.CSC:
        raise ConfigError("TRAINER.PLOTPP.CSC must be False (PLOT++ has no class-specific context)")
    if node.CLASS_TOKEN_POSITION != "end":
        raise ConfigError(
            f"TRAINER.PLOTPP.CLASS_TOKEN_POSITION must be end (template phrases may keep words "
            f"after the context), got '{node.CLASS_TOKEN_POSITION}'"
        )
    if node.MODEL_UPD not in MODEL_UPDATES:
        raise ConfigError(
            f"TRAINER.PLOTPP.MODEL_UPD must be one of 'joint', 'vision' or '' (= joint), "
            f"got '{node.MODEL_UPD}'"
        )


class PLOTPPPromptLearner(ClassPrompts):
    """Text `ctx` (N, n_ctx, d_t) over N·K rows (row n·K + c, prompt set n with phrase n)
    and visual `ctx_vision` (M, N_CTX_V, d_v)."""

    def __init__(
        self, node: CN, dataset_name: str, classnames: list[str], clip_model: nn.Module
    ) -> None:
        n_prompts, n_classes = node.N, len(classnames)
        if node.CTX_INIT:
            phrases = template_phrases(dataset_name)
            if n_prompts > len(phrases):
                raise ConfigError(
                    f"TRAINER.PLOTPP.N is {n_prompts} but CTX_INIT has {len(phrases)} template "
                    f"phrases for {dataset_name}; set N ≤ {len(phrases)} or CTX_INIT False"
                )
            phrases = phrases[:n_prompts]
            n_ctx = len(phrases[0].split())
            ctx = phrase_token_embeddings(clip_model, phrases, n_ctx)
            prefixes = [phrase for phrase in phrases for _ in range(n_classes)]
        else:  # the reference crashes here (NameError); ours: random init, "X" scaffolds
            ctx, prefix, n_ctx = init_context(
                clip_model, node.N_CTX, "", rule="coop", n_cls=n_prompts, csc=True
            )
            prefixes = [prefix] * (n_prompts * n_classes)
        vision_width = clip_model.visual.conv1.weight.shape[0]
        ctx_vision = torch.empty(
            node.M, node.N_CTX_V, vision_width, dtype=clip_dtype(clip_model), device=ctx.device
        )
        nn.init.normal_(ctx_vision, std=VISION_STD)
        print(f"Initial contexts: {sorted(set(prefixes))}; context tokens {n_ctx}")
        print(f"Prompt sets: N = {n_prompts} (text), M = {node.M} (vision, {node.N_CTX_V} each)")
        super().__init__(clip_model, list(classnames) * n_prompts, n_ctx, prefixes)
        self.n_prompts = n_prompts
        self.n_classes = n_classes
        self.ctx = nn.Parameter(ctx)
        self.ctx_vision = nn.Parameter(ctx_vision)

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Text prompt embeddings (N·K, L, d_t) and the visual prompt sets (M, n_v, d_v)."""
        return self.splice(context_rows(self.ctx, self.n_classes)), self.ctx_vision


class PLOTPPCLIP(OTPromptCLIP):
    """Frozen ViT CLIP, the two prompt kinds and the OT head."""

    def __init__(self, cfg: CN, classnames: list[str], clip_model: nn.Module) -> None:
        node = cfg.TRAINER.PLOTPP
        check_node(node)
        require_image_tower("vit", clip_model, "PLOT++ (visual prompt sets)")
        ot_settings = settings_from_cfg(node, "PLOTPP")
        super().__init__(
            clip_model,
            ot_settings,
            PLOTPPPromptLearner(node, cfg.DATASET.NAME, classnames, clip_model),
            add_global=bool(node.TRADE_OFF),
        )
        if node.MODEL_UPD == "vision":
            self.prompt_learner.ctx.requires_grad_(False)

    def text_prompts(self) -> torch.Tensor:
        prompts, _ = self.prompt_learner()
        return prompts

    def image_features(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Global (B, e) = mean of the M prompted features, and those features (M, B, e)."""
        vision_prompts = self.prompt_learner.ctx_vision
        n_sets, n_tokens, width = vision_prompts.shape
        patches = self.image_encoder.patch_embed(image)
        batch = patches.shape[0]
        patches = patches.unsqueeze(0).expand(n_sets, -1, -1, -1).reshape(-1, *patches.shape[1:])
        prompts = vision_prompts.unsqueeze(1).expand(-1, batch, -1, -1)
        features = self.image_encoder.forward_tokens(
            patches, prompts.reshape(n_sets * batch, n_tokens, width)
        )
        local = features.view(n_sets, batch, -1)
        return local.mean(dim=0), local


@TRAINER_REGISTRY.register()
class PLOTPP(CLIPPromptTrainer):
    """PLOT++; the whole model is registered as `prompt_learner` (reference layout)."""

    CFG_NODE = "PLOTPP"
    IMAGE_TOWER = "vit"
    MODEL_NAME = "prompt_learner"
    REGISTER_WHOLE_MODEL = True

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        return PLOTPPCLIP(self.cfg, classnames, clip_model)

    def build_model(self) -> None:
        super().build_model()
        pretrained = self.cfg.TRAINER.PLOTPP.PRETRAIN_DIR
        if pretrained:  # stage 2 starts from the stage-1 checkpoint (a model file)
            load_pretrained_weights(self.model, pretrained)

    def checkpoint_state_dict(self, name: str) -> OrderedDict[str, torch.Tensor]:
        """Trainable tensors and buffers, plus the text context even while it is frozen
        (stage 1), so that either stage's checkpoint holds every prompt."""
        state = super().checkpoint_state_dict(name)
        learner = self.model.prompt_learner
        for key, param in learner.named_parameters():
            state.setdefault(f"prompt_learner.{key}", param.detach())
        return state
