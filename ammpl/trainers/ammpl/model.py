"""AMMPL's prompt learner and its CLIP wrapper (paper §2, AMMPL.md).

`AmmplPromptLearner` owns every learnable tensor: the text context `ctx`, the keep
probabilities `P`, the padding patch `pad` and the interaction networks `f_I`, `f_T`.
`AmmplCLIP` runs the frozen towers over (image, class) pairs:

    image_first (default): x0 = ImageEn(I) → h = f_I(x0) → z = TextEn(ctx + h)
                           → E = f_T(z) → x = ImageEn(M·I + (1−M)·tile(N + E))
    text_first:            z0 = TextEn(ctx) → E = f_T(z0) → x = ImageEn(Î)
                           → h = f_I(x) → z = TextEn(ctx + h)
    logit[b, i] = logit_scale · cos(x[b, i], z[b, i])

`fast` (default True) switches on the exact speed-ups, `fast = False` runs the plain
computation they are tested against: patch embeddings are mixed instead of B·k images
materialised, text is cut after EOT, pairs are processed in memory-bounded blocks (with
activation checkpointing when a training step needs several blocks), work that does not
depend on the class (or on the image) is done once, and class-only text features are
cached between evaluation batches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.prompts import ClassPrompts, init_context
from ammpl.clip.text_encoder import TextEncoder
from ammpl.trainers.ammpl.chunking import BlockPlan, auto_budget
from ammpl.trainers.ammpl.config import AmmplSettings
from ammpl.trainers.ammpl.interaction import GroupedMLP, hidden_width
from ammpl.trainers.ammpl.mask_stats import MaskCounter
from ammpl.trainers.ammpl.masks import eval_mask, init_keep_probability, sample_train_mask
from ammpl.trainers.ammpl.padding import (
    bound_fill,
    compose_images,
    embed_patches,
    init_padding,
    mean_token_norm,
    mix_patch_tokens,
)
from ammpl.utils import BackboneError

ALL = slice(None)


@dataclass(frozen=True)
class PatchGeometry:
    """b (patches per side), q (patch side in pixels) and u (channels) of a CLIP ViT."""

    grid: int
    patch: int
    channels: int

    @classmethod
    def of(cls, clip_model: nn.Module) -> PatchGeometry:
        visual = clip_model.visual
        conv = getattr(visual, "conv1", None)
        if not hasattr(visual, "class_embedding") or not isinstance(conv, nn.Conv2d):
            raise BackboneError(
                f"AMMPL's patch mask needs a ViT image tower, got {type(visual).__name__}; use "
                "a ViT backbone (e.g. ViT-B/16) or set TRAINER.AMMPL.MASK False and PAD False"
            )
        size = visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        patch = conv.kernel_size[0]
        return cls(grid=size // patch, patch=patch, channels=conv.in_channels)


def joint_width(clip_model: nn.Module) -> int:
    """d, the width of the joint image-text space."""
    output_dim = getattr(clip_model.visual, "output_dim", None)
    if output_dim:
        return int(output_dim)
    projection = clip_model.text_projection
    return projection.out_features if isinstance(projection, nn.Linear) else projection.shape[1]


def initial_context(
    clip_model: nn.Module, settings: AmmplSettings, n_cls: int
) -> tuple[torch.Tensor, str, int]:
    """ctx from the words of CTX_INIT when it has N_CTX words, else N(0, 0.02²) (AMMPL.md §1);
    one copy per class in the class-specific model. fp32 whatever the CLIP precision."""
    words = settings.ctx_init.replace("_", " ").split()
    if words and len(words) == settings.n_ctx:
        ctx, prefix, n_ctx = init_context(clip_model, settings.n_ctx, settings.ctx_init, "coop")
        if settings.class_specific:
            ctx = ctx.unsqueeze(0).repeat(n_cls, 1, 1)
    else:
        if words:
            print(
                f'Note: CTX_INIT "{settings.ctx_init}" has {len(words)} words but N_CTX is '
                f"{settings.n_ctx}: the context is initialised at random"
            )
        ctx, prefix, n_ctx = init_context(
            clip_model, settings.n_ctx, "", "coop", n_cls=n_cls, csc=settings.class_specific
        )
    return ctx.float(), prefix, n_ctx


class AmmplPromptLearner(ClassPrompts):
    """The learnable part of AMMPL (the module that is registered and saved).

    Parameters (class-specific shapes; the generalisable model drops the leading k):
    ctx (k, M, l); P (k, b, b) keep probabilities [MASK]; pad (k, u, q, q) [MASK and PAD];
    f_I: R^d → R^l (or R with TEXT_SHIFT scalar) [INTERACT]; f_T: R^d → R^{u·q·q}
    [INTERACT and MASK]. Components an ablation switches off do not exist. All are fp32;
    they are cast to the towers' dtype where they enter them.
    """

    def __init__(
        self, settings: AmmplSettings, classnames: list[str], clip_model: nn.Module
    ) -> None:
        ctx, prompt_prefix, n_ctx = initial_context(clip_model, settings, len(classnames))
        super().__init__(clip_model, classnames, n_ctx, prompt_prefix)
        self.settings = settings
        self.ctx = nn.Parameter(ctx)
        groups = self.n_cls if settings.class_specific else 1
        leading = (self.n_cls,) if settings.class_specific else ()
        self.geometry = PatchGeometry.of(clip_model) if settings.mask else None
        self.P: nn.Parameter | None = None
        self.pad: nn.Parameter | None = None
        self.f_I: GroupedMLP | None = None
        self.f_T: GroupedMLP | None = None
        joint = joint_width(clip_model)
        hidden = hidden_width(joint, settings.hidden_ratio)
        zero_output = settings.interact_init == "zero"
        if settings.mask:
            grid = self.geometry.grid
            self.P = nn.Parameter(
                init_keep_probability(
                    (*leading, grid, grid), settings.p_init_mean, settings.p_init_std
                )
            )
        if settings.uses_padding:
            g = self.geometry
            self.pad = nn.Parameter(
                init_padding((*leading, g.channels, g.patch, g.patch), settings.pad_init_std)
            )
        if settings.interact:
            text_width = self.token_prefix.shape[-1]
            shift_width = text_width if settings.text_shift == "vector" else 1
            self.f_I = GroupedMLP(groups, joint, hidden, shift_width, zero_output)
        if settings.uses_text_to_image:
            g = self.geometry
            self.f_T = GroupedMLP(
                groups, joint, hidden, g.channels * g.patch * g.patch, zero_output
            )
        self._test_generator: torch.Generator | None = None
        self.mask_counter = MaskCounter()  # training draws, read and reset once per epoch
        self.mode_changes = 0  # part of cache keys: every train()/eval() invalidates caches

    def train(self, mode: bool = True) -> AmmplPromptLearner:
        super().train(mode)
        self.mode_changes += 1
        self._test_generator = None  # TEST_MASK "sample" restarts from the run seed
        return self

    # -- image side ------------------------------------------------------------------
    def sample_mask(self, batch_size: int) -> torch.Tensor | None:
        """(B|1, C|1, b, b) mask for this forward pass (training: Bernoulli with the
        straight-through gradient; evaluation: TEST_MASK), or None without masking."""
        if self.P is None:
            return None
        s = self.settings
        if self.training:
            mask = sample_train_mask(self.P, batch_size, s.mask_per_image)
            self.mask_counter.update(mask)
            return mask
        generator = None
        if s.test_mask == "sample":
            if self._test_generator is None:
                self._test_generator = torch.Generator().manual_seed(s.seed)
            generator = self._test_generator
        return eval_mask(self.P, s.test_mask, batch_size, s.mask_per_image, generator)

    def fill(self, classes: slice, E: torch.Tensor | None) -> torch.Tensor | None:
        """What masked patches show: (B|1, C|1, u, q, q) = N_i (+ E[b, i]), None = zeros."""
        pad = None
        if self.pad is not None:
            pad = self.pad[classes] if self.settings.class_specific else self.pad[None]
            pad = pad[None]
        if E is None:
            return pad
        return E if pad is None else pad + E

    def text_to_image(self, text_features: torch.Tensor, classes: slice) -> torch.Tensor:
        """E = f_T(z / ‖z‖): (..., C, e) → (..., C, u, q, q) (Eq. 7, 9)."""
        g = self.geometry
        out = self.f_T(_normalize(text_features), classes)
        return out.view(*out.shape[:-1], g.channels, g.patch, g.patch)

    # -- text side -------------------------------------------------------------------
    def image_to_text(self, image_features: torch.Tensor, classes: slice) -> torch.Tensor:
        """h = f_I(x / ‖x‖): (B, C|1, e) → (B, C|1, l or 1) (Eq. 7, 8)."""
        return self.f_I(_normalize(image_features), classes)

    def prompts(self, classes: slice, shift: torch.Tensor | None = None) -> torch.Tensor:
        """Spliced prompt embeddings with every context token shifted by h (Eq. 8):
        (C, L, l) without a shift, (B, C, L, l) with a shift (B, C|1, l|1)."""
        ctx = self.ctx[classes] if self.settings.class_specific else self.ctx
        if shift is not None:
            ctx = ctx + shift[..., None, :]
        return self.splice(ctx.to(self.token_prefix.dtype), classes=classes)

    def text_tokens(self) -> int:
        """Longest prompt after the EOT cut."""
        return int(self.eot_indices.max()) + 1


def _normalize(features: torch.Tensor) -> torch.Tensor:
    return features / features.norm(dim=-1, keepdim=True)


def _take(tensor: torch.Tensor, images: slice, classes: slice) -> torch.Tensor:
    """Index the (image, class) axes of a (B|1, C|1, ...) tensor; size-1 axes broadcast."""
    tensor = tensor[images] if tensor.shape[0] > 1 else tensor
    return tensor[:, classes] if tensor.shape[1] > 1 else tensor


@dataclass
class _Batch:
    """What a forward pass prepares once and every block reads."""

    images: torch.Tensor  # (B, u, H, W), encoder dtype
    mask: torch.Tensor | None  # (B|1, C|1, b, b)
    x0: torch.Tensor | None  # (B, e) un-prompted image features, no grad
    tokens: torch.Tensor | None  # (B, P, d_v) patch tokens (fast path)
    text: torch.Tensor | None  # (K, e) class-only text features (no interaction)
    budget: int  # pairs per block
    fill_reference: torch.Tensor | None = None  # (B,) mean patch-token norms (FILL_MAX_NORM)


class AmmplCLIP(nn.Module):
    """Frozen CLIP towers + AmmplPromptLearner; forward(images) → logits (B, K)."""

    def __init__(
        self, settings: AmmplSettings, classnames: list[str], clip_model: nn.Module
    ) -> None:
        super().__init__()
        self.settings = settings
        self.prompt_learner = AmmplPromptLearner(settings, classnames, clip_model)
        self.image_encoder = ImageEncoder(clip_model)
        self.text_encoder = TextEncoder(clip_model)
        self.logit_scale = clip_model.logit_scale
        self._text_cache: tuple[tuple, torch.Tensor] | None = None
        self.fast = True

    @property
    def fast(self) -> bool:
        return self._fast

    @fast.setter
    def fast(self, value: bool) -> None:
        self._fast = bool(value)
        self.text_encoder.truncate = self._fast

    # -- public ----------------------------------------------------------------------
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Logits (B, K). Evaluating with TEST_MASK "sample", the mean of TEST_DRAWS
        single-draw forwards, drawn one after the other from the run's generator."""
        draws = self._test_draws()
        if draws == 1:
            return self._forward_once(images)
        return torch.stack([self._forward_once(images) for _ in range(draws)]).mean(dim=0)

    def _test_draws(self) -> int:
        pl, s = self.prompt_learner, self.settings
        if pl.training or pl.P is None or s.test_mask != "sample":
            return 1
        return s.test_draws

    def _forward_once(self, images: torch.Tensor) -> torch.Tensor:
        batch = self._prepare(images)
        if self.fast and batch.text is not None and self._image_side_shared(batch):
            return self._logits(self._shared_image_features(batch), batch.text)
        n_images, n_classes = batch.images.shape[0], self.prompt_learner.n_cls
        plan = BlockPlan.for_budget(n_images, n_classes, batch.budget)
        rows = []
        for images_slice in plan.image_slices():
            blocks = [(images_slice, classes) for classes in plan.class_slices()]
            rows.append(torch.cat(self._run(self._block, batch, blocks), dim=1))
        return torch.cat(rows, dim=0)

    def prompted_images(self, images: torch.Tensor) -> torch.Tensor:
        """The images Î (B, K, u, H, W) the encoder sees in this mode (for tests and pictures)."""
        batch = self._prepare(images)
        shape = (batch.images.shape[0], self.prompt_learner.n_cls)
        if batch.mask is None:
            return batch.images[:, None].expand(*shape, *batch.images.shape[1:])
        E = self._padding_term(batch, ALL, ALL)[0] if self.settings.interact else None
        mask = batch.mask.expand(*shape, *batch.mask.shape[2:])
        return compose_images(batch.images, mask, self._fill(batch, ALL, ALL, E))

    def train(self, mode: bool = True) -> AmmplCLIP:
        super().train(mode)
        self._text_cache = None
        return self

    # -- preparation -----------------------------------------------------------------
    def _budget(self, n_pairs: int) -> int:
        if not self.fast:
            return max(n_pairs, 1)
        if self.settings.class_chunk > 0:
            return self.settings.class_chunk
        return auto_budget(
            self.image_encoder,
            self.text_encoder,
            self.prompt_learner.text_tokens(),
            training=torch.is_grad_enabled(),
        )

    def _prepare(self, images: torch.Tensor) -> _Batch:
        s, pl = self.settings, self.prompt_learner
        images = images.to(self.image_encoder.dtype)
        mask = pl.sample_mask(images.shape[0])
        if self.fast:
            mask = self._simplified_mask(mask)
        budget = self._budget(images.shape[0] * pl.n_cls)
        x0 = tokens = text = reference = None
        if mask is None or (s.interact and s.interaction_order == "image_first"):
            x0 = self._unprompted_features(images, budget)
        bounded = mask is not None and s.fill_max_norm > 0 and (s.uses_padding or s.interact)
        if mask is not None and (self.fast or bounded):
            with torch.no_grad():
                tokens = self.image_encoder.patch_embed(images)
            if bounded:
                reference = mean_token_norm(tokens)
            if not self.fast:
                tokens = None
        if not s.interact:
            text = self._class_text_features(budget)
        return _Batch(images, mask, x0, tokens, text, budget, reference)

    @staticmethod
    def _simplified_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
        """The evaluation shortcut (exact): a test mask that hides no patch is no mask (each
        image is then encoded once, not once per class), and a mask that hides the same
        patches for every class keeps one class column (shared encoding when the fill does
        not depend on the class). Never in training: there the straight-through gradient
        of P depends on every (image, class) pair even where the mask keeps everything."""
        if mask is None or mask.requires_grad:
            return mask
        if bool((mask == 1).all()):
            return None
        if mask.shape[1] > 1 and bool((mask == mask[:, :1]).all()):
            return mask[:, :1]
        return mask

    def _unprompted_features(self, images: torch.Tensor, budget: int) -> torch.Tensor:
        """x0 = ImageEn(I): frozen encoder, no learnable input, so no graph."""
        with torch.no_grad():
            plan = BlockPlan.for_budget(images.shape[0], 1, budget)
            return torch.cat([self.image_encoder(images[s]) for s in plan.image_slices()])

    def _class_text_features(self, budget: int) -> torch.Tensor:
        """z = TextEn(ctx_i, name_i) (K, e) without image information; cached while
        evaluating (the key changes with every optimiser step, load and mode switch)."""
        key = self._text_cache_key()
        if key is not None and self._text_cache is not None and self._text_cache[0] == key:
            return self._text_cache[1]
        plan = BlockPlan.for_budget(1, self.prompt_learner.n_cls, budget)
        blocks = [(None, classes) for classes in plan.class_slices()]
        text = torch.cat(self._run(lambda _, __, cls: self._text_features(cls), None, blocks))
        if key is not None:
            self._text_cache = (key, text)
        return text

    def _text_cache_key(self) -> tuple | None:
        pl = self.prompt_learner
        if not self.fast or pl.training or torch.is_grad_enabled():
            return None
        ctx = pl.ctx
        return (
            pl.mode_changes,
            ctx._version,
            ctx.data_ptr(),
            ctx.device,
            torch.is_autocast_enabled(),
            torch.get_autocast_dtype(ctx.device.type) if torch.is_autocast_enabled() else None,
        )

    # -- blocks of (image, class) pairs --------------------------------------------
    def _run(self, fn, batch: _Batch | None, blocks: list[tuple]) -> list[torch.Tensor]:
        """fn(batch, images, classes) per block; with several blocks and grads on, each block
        is checkpointed so that training memory stays that of one block."""
        if len(blocks) > 1 and torch.is_grad_enabled():
            return [checkpoint(fn, batch, *block, use_reentrant=False) for block in blocks]
        return [fn(batch, *block) for block in blocks]

    def _block(self, batch: _Batch, images: slice, classes: slice) -> torch.Tensor:
        """Logits (b', c') of one block of pairs."""
        if not self.settings.interact:
            x = self._image_features(batch, images, classes, None)
            return self._logits(x, batch.text[classes])
        E, z = self._padding_term(batch, images, classes)
        x = self._image_features(batch, images, classes, E)
        if z is None:  # text_first: the prompted image now informs the text
            z = self._text_features(classes, self.prompt_learner.image_to_text(x, classes))
        return self._logits(x, z)

    def _padding_term(
        self, batch: _Batch, images: slice, classes: slice
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """E for the block, and z when the order computes it first (image_first)."""
        pl = self.prompt_learner
        uses_E = pl.f_T is not None and batch.mask is not None  # E shows in masked patches
        if self.settings.interaction_order == "image_first":
            shift = pl.image_to_text(batch.x0[images][:, None], classes)
            z = self._text_features(classes, shift)
            return (pl.text_to_image(z, classes) if uses_E else None), z
        if not uses_E:
            return None, None
        return pl.text_to_image(self._text_features(classes), classes)[None], None

    def _text_features(self, classes: slice, shift: torch.Tensor | None = None) -> torch.Tensor:
        pl = self.prompt_learner
        return self.text_encoder(pl.prompts(classes, shift), pl.eot_indices[classes])

    def _image_side_shared(self, batch: _Batch) -> bool:
        """Without interaction the image side depends on the class only through a
        class-specific P or N."""
        if batch.mask is None or not self.settings.class_specific:
            return True
        return batch.mask.shape[1] == 1 and self.prompt_learner.pad is None

    def _shared_image_features(self, batch: _Batch) -> torch.Tensor:
        """(B, 1, e) when every class sees the same prompted image."""
        if batch.mask is None:
            return batch.x0[:, None]
        plan = BlockPlan.for_budget(batch.images.shape[0], 1, batch.budget)
        blocks = [(images, ALL) for images in plan.image_slices()]
        features = self._run(
            lambda b, img, cls: self._image_features(b, img, cls, None), batch, blocks
        )
        return torch.cat(features)

    def _image_features(
        self, batch: _Batch, images: slice, classes: slice, E: torch.Tensor | None
    ) -> torch.Tensor:
        """x = ImageEn(Î) for a block: (b', c'|1, e) (class axis 1 when shared)."""
        if batch.mask is None:
            return batch.x0[images][:, None]
        mask = _take(batch.mask, images, classes)
        fill = self._fill(batch, images, classes, E)
        encoder = self.image_encoder
        through_fill = self.settings.ste == "fill"
        if self.fast:
            fill_tokens = None if fill is None else embed_patches(encoder.conv1, fill)
            tokens = mix_patch_tokens(batch.tokens[images], mask, fill_tokens, through_fill)
            features = encoder.forward_tokens(tokens.flatten(0, 1))
            return features.view(*tokens.shape[:2], -1)
        n_images = batch.images[images].shape[0]
        n_classes = len(range(self.prompt_learner.n_cls)[classes])
        mask = mask.expand(n_images, n_classes, *mask.shape[2:])
        composed = compose_images(batch.images[images], mask, fill, through_fill)
        return encoder(composed.flatten(0, 1)).view(n_images, n_classes, -1)

    def _fill(
        self, batch: _Batch, images: slice, classes: slice, E: torch.Tensor | None
    ) -> torch.Tensor | None:
        """N (+ E) for a block, bounded by FILL_MAX_NORM when that is on."""
        fill = self.prompt_learner.fill(classes, E)
        if fill is None or batch.fill_reference is None:
            return fill
        reference = batch.fill_reference[images]
        return bound_fill(fill, self.image_encoder.conv1, reference, self.settings.fill_max_norm)

    def _logits(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """logit_scale · cos(x, z) (Eq. 10): x (b', c'|1, e), z (b', c', e) or (c', e)."""
        scale = self.logit_scale.exp().float()
        x, z = _normalize(x.float()), _normalize(z.float())
        if x.shape[1] == 1 and z.dim() == 2:
            return scale * x[:, 0] @ z.t()
        return scale * (x * z).sum(-1)
