"""DPT: dual-modality prompt tuning with class-aware visual prompts (Xing et al., TMM 2023).

Three learned parts on a frozen CLIP ViT (BASELINES_EXTRA §2):
- a CoOp text context (`prompt_learner`, keys `TRAINER.COOP.*` as in the reference);
- VPT-deep prompts appended to the inputs of blocks 0..b−1 and dropped after each block
  (`vision_prompts`, b = BOTTOMLIMIT − 1);
- CAVPT in blocks b..L−1 (`cavpt`): per image, K' = min(CPN, K) prompts built by attention
  from the learned text features of the image's zero-shot top-K' classes onto the (detached)
  hidden tokens plus 10 learned tokens; they are appended and dropped like the lower ones,
  and an auxiliary classifier on each prompt gives the aux loss.
The zero-shot ranking uses the frozen image tower and the dataset's hand-written template.
Checkpoints use the reference's three model names and key names (including `classfiers`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from yacs.config import CfgNode as CN

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.prompts import CTX_INIT_STD, clip_dtype
from ammpl.clip.text_encoder import TextEncoder
from ammpl.engine import (
    TRAINER_REGISTRY,
    build_lr_scheduler,
    build_optimizer,
    register_cfg_extension,
)
from ammpl.engine.precision import make_grad_scaler
from ammpl.trainers.base import CLIPPromptTrainer, trainable_parameters
from ammpl.trainers.coop import CoOpPromptLearner, normalise
from ammpl.trainers.ivlp import EvalTextCache
from ammpl.trainers.templates import dataset_template, encode_templates
from ammpl.utils import BackboneError, ConfigError

# Reference model names (checkpoint folders) → our model's attribute.
REGISTERED_MODULES = (
    ("image_encoder.transformer.ctx_learner", "vision_prompts"),
    ("image_encoder.transformer.extractor", "cavpt"),
    ("prompt_learner", "prompt_learner"),
)


def extend_cfg(cfg: CN) -> None:
    """Defaults = the reference train.py's; its script's values are in scripts/dpt/."""
    cfg.TRAINER.DPT = CN()
    cfg.TRAINER.DPT.PREC = "fp16"  # reference: TRAINER.COOP.PREC
    cfg.TRAINER.DPT.N_CTX_VISION = 5  # reference: TRAINER.VPT.N_CTX
    cfg.TRAINER.DPT.BOTTOMLIMIT = 12  # reference: TRAINER.TOPDOWN_SECOVPT.BOTTOMLIMIT
    cfg.TRAINER.DPT.CPN = 5  # reference: TRAINER.SELECTED_COVPT.CPN
    cfg.TRAINER.DPT.C = 30  # reference: PRETRAIN.C (guidance epochs)
    cfg.TRAINER.DPT.ALPHA = 1.0  # reference: TRAINER.ALPHA (aux-loss weight)
    cfg.TRAINER.DPT.CAVPT_N_CTX = 10  # learned CAVPT key/value tokens (hard-coded 10)
    cfg.TRAINER.DPT.CAVPT_ATTN_DIM = 32  # CAVPT query/key width (hard-coded 32)
    cfg.TRAINER.DPT.TEXT_LR = 0.002  # the text context's fixed LR (quirk D-Q3)
    cfg.TRAINER.DPT.TEXT_WARMUP_EPOCH = 1  # … and its fixed warm-up


register_cfg_extension(extend_cfg)


class VisionPromptStack(nn.Module):
    """`ctx` (b, N_v, d_v): the prompts appended to blocks 0..b−1, N(0, 0.02²)."""

    def __init__(self, n_blocks: int, n_ctx: int, width: int, dtype, device) -> None:
        super().__init__()
        ctx = torch.empty(n_blocks, n_ctx, width, dtype=dtype, device=device)
        nn.init.normal_(ctx, std=CTX_INIT_STD)
        self.ctx = nn.Parameter(ctx)


class CAVPTAttention(nn.Module):
    """Single-head attention: softmax(q(g)·k(kv)ᵀ/√a) over the keys, then v(A·kv)."""

    def __init__(self, width: int, attn_dim: int) -> None:
        super().__init__()
        self.kmlp = nn.Linear(width, attn_dim, bias=False)
        self.qmlp = nn.Linear(width, attn_dim, bias=False)
        self.vmlp = nn.Linear(width, width, bias=False)

    def forward(self, query: torch.Tensor, kv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, Q, d), kv (B, T, d) → output (B, Q, d), attention (B, Q, T)."""
        q, k = self.qmlp(query), self.kmlp(kv)
        attention = F.softmax(q @ k.transpose(1, 2) / math.sqrt(q.shape[-1]), dim=-1)
        return self.vmlp(attention @ kv), attention


class CAVPT(nn.Module):
    """Class-aware visual prompts of the top blocks (reference submodule names)."""

    def __init__(
        self, n_blocks: int, embed_dim: int, width: int, n_classes: int, n_ctx: int, attn_dim: int
    ) -> None:
        super().__init__()
        self.meta_nets = nn.ModuleList(nn.Linear(embed_dim, width) for _ in range(n_blocks))
        self.attns = nn.ModuleList(CAVPTAttention(width, attn_dim) for _ in range(n_blocks))
        self.lns = nn.ModuleList(nn.LayerNorm(width) for _ in range(n_blocks))
        self.classfiers = nn.ModuleList(
            nn.Linear(width, n_classes, bias=False) for _ in range(n_blocks)
        )
        self.lns2 = nn.ModuleList(nn.LayerNorm(width) for _ in range(n_blocks))
        ctx = torch.empty(n_blocks, n_ctx, width)
        nn.init.normal_(ctx, std=CTX_INIT_STD)
        self.ctx = nn.Parameter(ctx)

    def forward(
        self, block: int, hidden: torch.Tensor, text: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """hidden (B, T, d) entering the block, text (B, K', e) raw learned features of the
        selected classes → prompts (B, K', d), aux logits (B, K', K)."""
        dtype = self.ctx.dtype
        hidden = hidden.detach().to(dtype)  # quirk D-Q2: keys/values carry no gradient
        ctx = self.ctx[block].expand(hidden.shape[0], -1, -1)
        kv = torch.cat([hidden, ctx], dim=1)
        query = self.meta_nets[block](text.to(dtype))
        out, _ = self.attns[block](query, kv)
        aux_logits = self.classfiers[block](self.lns[block](out))
        return self.lns2[block](out + query), aux_logits


@dataclass
class DPTOutputs:
    logits: torch.Tensor  # (B, K) prompted image · learned text: the prediction
    aux_logits: torch.Tensor  # (B, L', K', K) CAVPT classifier outputs
    indices: torch.Tensor  # (B, K') zero-shot top-K' classes, descending
    logits_frozen_image: torch.Tensor  # (B, K) frozen image · learned text (reference logits1)
    logits_zeroshot_text: torch.Tensor  # (B, K) prompted image · zero-shot text (logits2)


def check_dpt_node(node: CN) -> None:
    if node.CPN < 1:
        raise ConfigError(
            f"TRAINER.DPT.CPN must be ≥ 1 (class-aware prompts per image; CPN ≥ K uses all "
            f"K classes), got {node.CPN}"
        )
    if node.BOTTOMLIMIT < 1:
        raise ConfigError(
            f"TRAINER.DPT.BOTTOMLIMIT must be ≥ 1 (first 1-based block with CAVPT; 1 = all "
            f"blocks, 12 = the last of ViT-B), got {node.BOTTOMLIMIT}"
        )
    for key in ("N_CTX_VISION", "CAVPT_N_CTX"):
        if node[key] < 0:
            raise ConfigError(f"TRAINER.DPT.{key} must be ≥ 0, got {node[key]}")
    if node.CAVPT_ATTN_DIM < 1:
        raise ConfigError(f"TRAINER.DPT.CAVPT_ATTN_DIM must be ≥ 1, got {node.CAVPT_ATTN_DIM}")


@torch.no_grad()
def zeroshot_text_features(
    clip_model: nn.Module, classnames: list[str], template: str
) -> torch.Tensor:
    """L2-normalised features of the dataset template per class (K, e), in CLIP dtype."""
    return normalise(encode_templates(TextEncoder(clip_model), classnames, [template])[0])


class DPTCLIP(nn.Module):
    """Frozen CLIP + CoOp text context + VPT-deep prompts + CAVPT."""

    def __init__(
        self,
        node: CN,
        coop_node: CN,
        classnames: list[str],
        clip_model: nn.Module,
        dataset_name: str,
    ) -> None:
        super().__init__()
        check_dpt_node(node)
        self.image_encoder = ImageEncoder(clip_model)
        if self.image_encoder.unsupported is not None:
            raise BackboneError(
                f"DPT needs a CLIP ViT image tower, not {self.image_encoder.unsupported}; "
                "use e.g. MODEL.BACKBONE.NAME ViT-B/16"
            )
        n_blocks = len(clip_model.visual.transformer.resblocks)
        bottom_limit = node.BOTTOMLIMIT
        if bottom_limit > n_blocks:
            print(
                f"Note: TRAINER.DPT.BOTTOMLIMIT {bottom_limit} > {n_blocks} blocks; "
                f"using {n_blocks}"
            )
            bottom_limit = n_blocks
        self.n_plain = bottom_limit - 1  # b: blocks with plain prompts
        self.n_select = min(node.CPN, len(classnames))  # K'
        dtype, device = clip_dtype(clip_model), clip_model.logit_scale.device
        width = clip_model.visual.conv1.weight.shape[0]
        embed_dim = clip_model.visual.output_dim  # e: the learned text features feed CAVPT

        self.register_buffer(
            "text_features",
            zeroshot_text_features(clip_model, classnames, dataset_template(dataset_name)),
            persistent=False,
        )
        self.prompt_learner = CoOpPromptLearner(coop_node, classnames, clip_model)
        self.vision_prompts = VisionPromptStack(
            self.n_plain, node.N_CTX_VISION, width, dtype, device
        )
        cavpt = CAVPT(
            n_blocks - self.n_plain,
            embed_dim,
            width,
            len(classnames),
            node.CAVPT_N_CTX,
            node.CAVPT_ATTN_DIM,
        )
        self.cavpt = cavpt.to(device=device, dtype=dtype)  # all fp16 in the fp16 mode (D8)
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self.text_cache = EvalTextCache()

    def learned_text_features(self) -> torch.Tensor:
        """The CoOp prompts' features (K, e); encoded once for all evaluation batches."""

        def compute() -> torch.Tensor:
            return self.text_encoder(self.prompt_learner(), self.prompt_learner.eot_indices)

        return self.text_cache.get(self, compute)

    @torch.no_grad()
    def zeroshot_ranking(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Frozen image features (B, e) normalised, and the top-K' class indices (B, K')."""
        frozen = normalise(self.image_encoder(images))
        scores = self.logit_scale.exp() * frozen @ self.text_features.t()
        indices = torch.sort(scores, dim=-1, descending=True).indices[:, : self.n_select]
        return frozen, indices

    def forward_all(self, images: torch.Tensor) -> DPTOutputs:
        frozen, indices = self.zeroshot_ranking(images)
        text = self.learned_text_features()
        selected = text[indices]  # (B, K', e) raw (not normalised) learned features
        aux_logits: list[torch.Tensor] = []

        def block_prompts(block: int, hidden: torch.Tensor) -> torch.Tensor | None:
            if block < self.n_plain:
                ctx = self.vision_prompts.ctx[block]
                return ctx.expand(hidden.shape[0], -1, -1) if ctx.shape[0] else None
            prompts, logits = self.cavpt(block - self.n_plain, hidden, selected)
            aux_logits.append(logits)
            return prompts

        image = normalise(self.image_encoder(images, block_prompts=block_prompts))
        text_norm = normalise(text)
        scale = self.logit_scale.exp()
        return DPTOutputs(
            logits=scale * image @ text_norm.t(),
            aux_logits=torch.stack(aux_logits, dim=1),
            indices=indices,
            logits_frozen_image=scale * frozen @ text_norm.t(),
            logits_zeroshot_text=scale * image @ self.text_features.t(),
        )

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.forward_all(images).logits


def aux_loss(outputs: DPTOutputs, label: torch.Tensor) -> torch.Tensor | None:
    """Mean CE of the CAVPT classifier rows whose prompt was built from the true class;
    None when the batch has no such row (quirk D-Q5 fixed: the reference takes NaN)."""
    batch, n_blocks, n_select, n_classes = outputs.aux_logits.shape
    hit = (outputs.indices == label[:, None]).unsqueeze(1).expand(batch, n_blocks, n_select)
    if not bool(hit.any()):
        return None
    targets = label[:, None, None].expand(batch, n_blocks, n_select)[hit]
    return F.cross_entropy(outputs.aux_logits[hit].float(), targets)


def dpt_loss(
    outputs: DPTOutputs, label: torch.Tensor, epoch: int, guidance_epochs: int, alpha: float
) -> torch.Tensor:
    """BASELINES_EXTRA §2.4: guidance terms for epochs < C, then CE of the logits; + α·aux."""
    loss = F.cross_entropy(outputs.logits.float(), label)
    if epoch < guidance_epochs:
        loss = (
            F.cross_entropy(outputs.logits_frozen_image.float(), label)
            + F.cross_entropy(outputs.logits_zeroshot_text.float(), label)
            + 0.1 * loss
        )
    aux = aux_loss(outputs, label)
    return loss if aux is None else loss + alpha * aux


def optim_configs(cfg) -> dict:
    """The OPTIM node of each registered module: the visual parts use OPTIM; the text
    context always TEXT_LR with TEXT_WARMUP_EPOCH warm-up (quirk D-Q3, reproduced)."""
    text = cfg.OPTIM.clone()
    text.defrost()
    text.LR = cfg.TRAINER.DPT.TEXT_LR
    text.WARMUP_EPOCH = cfg.TRAINER.DPT.TEXT_WARMUP_EPOCH
    return {
        "image_encoder.transformer.ctx_learner": cfg.OPTIM,
        "image_encoder.transformer.extractor": cfg.OPTIM,
        "prompt_learner": text,
    }


@TRAINER_REGISTRY.register()
class DPT(CLIPPromptTrainer):
    """Three registered modules with their own SGD + schedule, stepped together."""

    CFG_NODE = "DPT"
    IMAGE_TOWER = "vit"
    CLASS_DEPENDENT_MODULES = ("classfiers",)

    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        cfg = self.cfg
        return DPTCLIP(cfg.TRAINER.DPT, cfg.TRAINER.COOP, classnames, clip_model, cfg.DATASET.NAME)

    def build_model(self) -> None:
        clip_model = self.load_clip()
        print("Building custom CLIP (DPT)")
        self.model = self.build_custom_clip(self.dm.dataset.classnames, clip_model)
        self.model.to(self.device)
        self.report_parameters()
        optim_cfgs = optim_configs(self.cfg)
        for name, attribute in REGISTERED_MODULES:
            module = getattr(self.model, attribute)
            params = list(trainable_parameters(module).values())
            optim = build_optimizer(params, optim_cfgs[name])
            self.register_model(name, module, optim, build_lr_scheduler(optim, optim_cfgs[name]))
        self.scaler = make_grad_scaler(self.precision, self.device)
        self.record_run_info()

    def compute_loss(self, image: torch.Tensor, label: torch.Tensor):
        """DPT's loss (guidance, CE, auxiliary) and the prediction; the shared update."""
        node = self.cfg.TRAINER.DPT
        outputs = self.model.forward_all(image)
        return dpt_loss(outputs, label, self.epoch, node.C, node.ALPHA), outputs.logits, {}
