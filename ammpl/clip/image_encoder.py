"""CLIP's frozen image tower with shallow and deep vision prompts (BASELINES.md §1.1, §1.3).

For a ViT the encoder registers the visual tower's own parameters and submodules under
OpenAI's `visual.*` names (`conv1`, `class_embedding`, `positional_embedding`, `ln_pre`,
`transformer`, `ln_post`, `proj`), references not copies, so checkpoint keys read
`image_encoder.<those names>` as in the reference. The forward is split in two so that
AMMPL can embed patches once and mix them (patch embedding is linear and bias-free):
`patch_embed(images)` then `forward_tokens(patch_tokens, ...)`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ammpl.clip.attention_pool import attention_pool_tokens, resnet_trunk
from ammpl.clip.blocks import (
    BlockAdapter,
    BlockPrompts,
    cast_prompts,
    check_block_supported,
    injection_hook,
    run_blocks,
    transient_prompt_hooks,
)
from ammpl.utils.errors import BackboneError


def is_resnet_tower(visual: nn.Module) -> bool:
    """A ResNet (open_clip ModifiedResNet) image tower ending in an attention pool."""
    return type(visual).__name__ == "ModifiedResNet" and hasattr(visual, "attnpool")


def require_image_tower(required: str | None, clip_model: nn.Module, method: str) -> None:
    """One-line BackboneError when the backbone's image tower is not the kind the method
    needs: "vit" (methods that prompt the vision transformer) or "resnet"; None = any."""
    if required is None:
        return
    visual = getattr(clip_model, "visual", None)
    is_resnet = visual is not None and is_resnet_tower(visual)
    is_vit = visual is not None and hasattr(visual, "transformer") and hasattr(visual, "conv1")
    name = getattr(clip_model, "ammpl_backbone_name", "this backbone")
    if required == "vit" and not is_vit:
        kind = "a ResNet" if is_resnet else f"a {type(visual).__name__}"
        raise BackboneError(
            f"{method} needs a ViT image tower but {name} has {kind} one; set "
            "MODEL.BACKBONE.NAME to a ViT (e.g. ViT-B/16, or tiny for tests)"
        )
    if required == "resnet" and not is_resnet:
        raise BackboneError(
            f"{method} needs a ResNet image tower but {name} has a {type(visual).__name__} "
            "one; set MODEL.BACKBONE.NAME to a ResNet (e.g. RN50, or tiny-rn for tests)"
        )


def _unsupported_feature(visual: nn.Module) -> str | None:
    """Why prompts cannot be used with this visual tower, or None when they can."""
    if is_resnet_tower(visual):
        return "a ResNet image tower"
    if getattr(visual, "attn_pool", None) is not None:
        return "attentional pooling (attn_pool)"
    if getattr(visual, "pool_type", "tok") != "tok":
        return f"{visual.pool_type!r} pooling (only class-token pooling is supported)"
    for name in ("conv1", "class_embedding", "positional_embedding", "ln_pre", "transformer"):
        if not hasattr(visual, name):
            return f"a {type(visual).__name__} image tower without {name!r}"
    if getattr(visual.conv1, "bias", None) is not None:
        return "a patch embedding with bias"
    try:
        for block in visual.transformer.resblocks:
            check_block_supported(block)
    except BackboneError:
        return "custom attention blocks"
    return None


class ImageEncoder(nn.Module):
    """Images (or patch tokens) → projected image features (B, e), with vision prompts.

    `round_prompts_fp16` rounds the inserted prompts (shallow and deep) through fp16, the
    reference's unconditional `.half()` (quirk Q5), for the faithful reference-fp16 mode;
    default False. As in the reference, prompts are expanded over the batch before the
    cast, so each sequence's gradient is rounded to fp16 before the batch sum. `fused`
    selects scaled_dot_product_attention (exact).
    """

    def __init__(self, clip_model: nn.Module) -> None:
        super().__init__()
        visual = clip_model.visual
        # The tower itself stays out of the module tree; its pieces are registered below.
        object.__setattr__(self, "visual", visual)
        for name, child in visual.named_children():
            self.add_module(name, child)
        for name, param in visual.named_parameters(recurse=False):
            self.register_parameter(name, param)
        if getattr(visual, "proj", None) is None:
            self.proj = None
        self.unsupported = _unsupported_feature(visual)
        self.is_resnet = is_resnet_tower(visual)
        self.fused = True
        self.round_prompts_fp16 = False

    @property
    def dtype(self) -> torch.dtype:
        """The model dtype (that of conv1, as the reference); images are cast to it."""
        conv1 = getattr(self.visual, "conv1", None)
        if conv1 is not None:
            return conv1.weight.dtype
        return next(self.visual.parameters()).dtype

    def _require_prompt_support(self, what: str) -> None:
        if self.unsupported is not None:
            raise BackboneError(
                f"{what} is not supported for {self.unsupported}; use a standard CLIP ViT "
                "backbone (e.g. ViT-B/16)"
            )

    def patch_embed(self, images: torch.Tensor) -> torch.Tensor:
        """conv1 patch tokens (B, P, d_v); a (N, 3, q, q) batch of single patches → (N, 1, d_v)."""
        self._require_prompt_support("patch embedding")
        x = self.conv1(images.to(self.dtype))
        return x.flatten(2).transpose(1, 2)

    def forward_tokens(
        self,
        patch_tokens: torch.Tensor,
        shallow_prompts: torch.Tensor | None = None,
        deep_prompts: Sequence[torch.Tensor] | None = None,
        block_prompts: BlockPrompts | None = None,
        adapter: BlockAdapter | None = None,
    ) -> torch.Tensor:
        """Patch tokens (B, P, d_v) → features (B, e).

        `shallow_prompts` (n, d_v) or (B, n, d_v) are appended after the positional embedding
        (they get none) and before ln_pre; `deep_prompts[i-1]` (n, d_v) replaces the last n
        tokens at the input of block i = 1..J−1. `block_prompts(i, x)` → (B, n, d_v) are
        transient instead: appended after block i's input tokens and dropped after block i
        (DPT); they exclude shallow and deep prompts. `adapter(i, ln_1(x))` adds a residual
        branch beside block i (MMA; `blocks.run_blocks`).
        """
        x = self.final_tokens(patch_tokens, shallow_prompts, deep_prompts, block_prompts, adapter)
        # Class-token pooling; LayerNorm is per token, so ln_post before or after the pool
        # (open_clip's final_ln_after_pool) gives the same result.
        return self._project(x[:, 0])

    def _project(self, tokens: torch.Tensor) -> torch.Tensor:
        """ln_post then the projection into the joint space, token by token."""
        tokens = self.ln_post(tokens)
        return tokens @ self.proj if self.proj is not None else tokens

    def final_tokens(
        self,
        patch_tokens: torch.Tensor,
        shallow_prompts: torch.Tensor | None = None,
        deep_prompts: Sequence[torch.Tensor] | None = None,
        block_prompts: BlockPrompts | None = None,
        adapter: BlockAdapter | None = None,
    ) -> torch.Tensor:
        """The last block's output (B, 1 + P [+ n], d_v), before ln_post (see forward_tokens)."""
        self._require_prompt_support("running patch tokens")
        batch, n_patches, width = patch_tokens.shape
        grid_tokens = self.positional_embedding.shape[0] - 1
        if n_patches != grid_tokens:
            raise BackboneError(
                f"images give {n_patches} patches but the backbone expects {grid_tokens} "
                f"({self.visual.image_size} px inputs); resize the images (INPUT.SIZE) to "
                "the backbone's resolution"
            )
        x = patch_tokens.to(self.dtype)
        cls = self.class_embedding.to(x.dtype).expand(batch, 1, width)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        x = self.patch_dropout(x)

        n_prompts = 0
        if shallow_prompts is not None:
            prompts = shallow_prompts.expand(batch, *shallow_prompts.shape[-2:])
            prompts = cast_prompts(prompts, x.dtype, self.round_prompts_fp16)
            n_prompts = prompts.shape[1]
            x = torch.cat([x, prompts], dim=1)
        if deep_prompts and any(p.shape[0] != n_prompts for p in deep_prompts):
            raise ValueError(
                f"deep vision prompts must have as many tokens as the shallow prompts "
                f"({n_prompts}), got {[tuple(p.shape) for p in deep_prompts]}"
            )
        x = self.ln_pre(x)
        after = None
        if block_prompts is not None:
            if n_prompts or deep_prompts:
                raise ValueError("block_prompts cannot be combined with shallow or deep prompts")
            hook, after = transient_prompt_hooks(block_prompts, self.round_prompts_fp16)
        else:
            hook = injection_hook(
                deep_prompts, None, len(self.transformer.resblocks), self.round_prompts_fp16
            )
        return run_blocks(
            self.transformer,
            x,
            before_block=hook,
            fused=self.fused,
            after_block=after,
            adapter=adapter,
        )

    def forward(
        self,
        images: torch.Tensor,
        shallow_prompts: torch.Tensor | None = None,
        deep_prompts: Sequence[torch.Tensor] | None = None,
        block_prompts: BlockPrompts | None = None,
        adapter: BlockAdapter | None = None,
    ) -> torch.Tensor:
        """Images (B, 3, H, W) → features (B, e); towers without prompt support run as is."""
        if self.unsupported is not None:
            if (
                shallow_prompts is not None
                or deep_prompts
                or block_prompts is not None
                or adapter is not None
            ):
                self._require_prompt_support("vision prompting")
            return self.visual(images.to(self.dtype))
        return self.forward_tokens(
            self.patch_embed(images), shallow_prompts, deep_prompts, block_prompts, adapter
        )

    def forward_dense(self, images: torch.Tensor) -> torch.Tensor:
        """Images → (B, 1 + M, e): token 0 the global feature (= forward), tokens 1..M one
        local feature per grid cell, row-major, in the joint space (BASELINES_EXTRA §3.3).

        ResNet: every output token of the attention pool (M = (S/32)²). ViT: ln_post and
        the projection applied to every final token (M = patches), "option A".
        """
        if self.is_resnet:
            trunk = resnet_trunk(self.visual, images.to(self.dtype))
            return attention_pool_tokens(self.visual.attnpool, trunk)
        if self.unsupported is not None:
            raise BackboneError(
                f"local image features need a ViT or a ResNet (attention-pool) image tower, "
                f"not {self.unsupported}"
            )
        return self._project(self.final_tokens(self.patch_embed(images)))
