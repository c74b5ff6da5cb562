"""Learnable-context initialisation and the per-class prompt scaffold (BASELINES.md §1.2, §3).

Every text-prompt method builds one scaffold sentence per class, `"{prefix} {name}."`,
embeds it with CLIP's frozen token embedding, and replaces the embeddings of the prefix's
first n words by learnable vectors. Because the learnable vectors take exactly those
slots, token positions and the EOT index stay those of the scaffold.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from ammpl.clip.tokenizer import tokenize
from ammpl.utils.errors import ConfigError

logger = logging.getLogger(__name__)

CTX_INIT_STD = 0.02
CLASS_POSITIONS = ("end", "middle", "front")


def check_class_position(position: str, key: str) -> None:
    """One-line ConfigError naming the config `key` when `position` is no class position."""
    if position not in CLASS_POSITIONS:
        raise ConfigError(f"{key} must be one of {', '.join(CLASS_POSITIONS)}, got '{position}'")


def clip_dtype(clip_model: nn.Module) -> torch.dtype:
    """The model dtype prompts are cast to: that of `visual.conv1.weight` (as the reference)."""
    return clip_model.visual.conv1.weight.dtype


def _embed_tokens(clip_model: nn.Module, token_ids: torch.Tensor) -> torch.Tensor:
    embedding = clip_model.token_embedding
    with torch.no_grad():
        out = embedding(token_ids.to(embedding.weight.device))
    return out.to(clip_dtype(clip_model))


def _clean(text: str) -> str:
    return text.replace("_", " ").strip()


def init_context(
    clip_model: nn.Module,
    n_ctx: int,
    ctx_init: str,
    rule: str,
    n_cls: int | None = None,
    csc: bool = False,
) -> tuple[torch.Tensor, str, int]:
    """Initial learnable context, the scaffold prefix and the effective n_ctx.

    rule "coop" (CoOp/CoCoOp): a non-empty `ctx_init` sets n_ctx to its word count and CSC is
    ignored (unified context, with a warning; quirk Q3). rule "maple" (MaPLe/IVLP): `ctx_init`
    is used only when n_ctx ≤ 4, n_ctx is kept, and the first n_ctx init tokens become the
    context (later words stay fixed tokens; quirk Q1); with CSC every class gets a copy.
    Otherwise N(0, 0.02²) from the global RNG. Returns (ctx, prompt_prefix, n_ctx) with ctx
    of shape (n_ctx, d_t), or (n_cls, n_ctx, d_t) for class-specific context, in CLIP dtype.
    """
    if rule not in ("coop", "maple"):
        raise ConfigError(f"unknown context init rule {rule!r}; expected 'coop' or 'maple'")
    ctx_init = _clean(ctx_init or "")
    if csc and (n_cls is None or n_cls < 1):
        raise ConfigError("class-specific context (CSC) needs n_cls ≥ 1 class names")
    context_length = clip_model.positional_embedding.shape[0]

    use_words = bool(ctx_init) and (rule == "coop" or n_ctx <= 4)
    if use_words:
        if rule == "coop":
            n_ctx = len(ctx_init.split())
            if csc:
                logger.warning(
                    "CTX_INIT %r is set, so CSC is ignored: one unified context", ctx_init
                )
                csc = False
        token_ids = tokenize([ctx_init], context_length)
        n_tokens = int(token_ids[0].argmax()) - 1  # tokens between SOT and EOT
        if n_tokens < n_ctx:
            raise ConfigError(
                f"context init {ctx_init!r} has {n_tokens} tokens but N_CTX is {n_ctx}; "
                f"use an init phrase with at least {n_ctx} words or set N_CTX ≤ {n_tokens}"
            )
        ctx = _embed_tokens(clip_model, token_ids)[0, 1 : 1 + n_ctx].clone()
        if csc:
            ctx = ctx.unsqueeze(0).repeat(n_cls, 1, 1)
        return ctx, ctx_init, n_ctx

    if n_ctx < 1:
        raise ConfigError(f"N_CTX must be ≥ 1 for a random context, got {n_ctx}")
    width = clip_model.ln_final.weight.shape[0]
    shape = (n_cls, n_ctx, width) if csc else (n_ctx, width)
    ctx = torch.empty(shape, dtype=clip_dtype(clip_model), device=clip_model.ln_final.weight.device)
    nn.init.normal_(ctx, std=CTX_INIT_STD)
    return ctx, " ".join(["X"] * n_ctx), n_ctx


def _class_position_index(n_ctx: int, name_lens: Sequence[int], length: int) -> torch.Tensor:
    """Per-class gather indices (3, K, L) turning the "end" layout into end/middle/front.

    In the "end" layout [SOT; ctx(n); name(len_k); rest] the other layouts are permutations
    of positions: front = [SOT; name; ctx; rest], middle = [SOT; ctx[:n//2]; name;
    ctx[n//2:]; rest]. Precomputing them makes every splice one gather.
    """
    half = n_ctx // 2
    ctx = list(range(1, 1 + n_ctx))
    layouts = []
    for order in ("end", "middle", "front"):
        rows = []
        for name_len in name_lens:
            name = list(range(1 + n_ctx, 1 + n_ctx + name_len))
            rest = list(range(1 + n_ctx + name_len, length))
            if order == "end":
                body = ctx + name
            elif order == "middle":
                body = ctx[:half] + name + ctx[half:]
            else:
                body = name + ctx
            rows.append([0] + body + rest)
        layouts.append(rows)
    return torch.tensor(layouts, dtype=torch.long)


class ClassPrompts(nn.Module):
    """Frozen per-class scaffold embeddings and the splice of learnable context into them.

    Buffers: `token_prefix` (K, 1, d_t) = SOT embedding and `token_suffix` (K, L−1−n_ctx, d_t)
    = everything after the context slots (persistent, so checkpoints carry them under the
    reference names; loaders drop them and rebuild from the current class names);
    `token_ids` (K, L) and `eot_indices` (K,) (non-persistent). `name_lens[k]` is the BPE
    length of class name k. `prompt_prefix` is one scaffold prefix, or one per row (rows may
    repeat class names: PLOT's N prompt sets are N·K rows). `template` is what follows the
    prefix, "{}" standing for the class name ("{}." by default; TCP's per-dataset scaffolds
    such as "{}, a type of pet."; the "middle"/"front" layouts assume the default).
    Prompt learners subclass this.
    """

    def __init__(
        self,
        clip_model: nn.Module,
        classnames: Sequence[str],
        n_ctx: int,
        prompt_prefix: str | Sequence[str] | None = None,
        template: str = "{}.",
    ) -> None:
        super().__init__()
        if not classnames:
            raise ConfigError("ClassPrompts needs at least one class name")
        context_length = clip_model.positional_embedding.shape[0]
        self.n_ctx = n_ctx
        self.n_cls = len(classnames)
        self.classnames = [_clean(name) for name in classnames]
        self.prompt_prefix = " ".join(["X"] * n_ctx) if prompt_prefix is None else prompt_prefix
        # One prefix for every row, or one per row (PLOT++: a template phrase per prompt set).
        prefixes = (
            [self.prompt_prefix] * self.n_cls
            if isinstance(self.prompt_prefix, str)
            else [_clean(prefix) for prefix in self.prompt_prefix]
        )
        if len(prefixes) != self.n_cls:
            raise ValueError(f"{len(prefixes)} prompt prefixes for {self.n_cls} class rows")
        self.scaffolds = [
            f"{prefix} {template.format(name)}" for prefix, name in zip(prefixes, self.classnames)
        ]

        # Raises TextTooLongError (an AmmplError naming the text) instead of truncating.
        token_ids = tokenize(self.scaffolds, context_length)
        name_ids = tokenize(self.classnames, context_length)
        self.name_lens = (name_ids.argmax(dim=-1) - 1).tolist()

        embedding = _embed_tokens(clip_model, token_ids)
        self.register_buffer("token_prefix", embedding[:, :1].clone())
        self.register_buffer("token_suffix", embedding[:, 1 + n_ctx :].clone())
        device = embedding.device
        self.register_buffer("token_ids", token_ids.to(device), persistent=False)
        self.register_buffer("eot_indices", token_ids.argmax(dim=-1).to(device), persistent=False)
        self.register_buffer(
            "position_index",
            _class_position_index(n_ctx, self.name_lens, context_length).to(device),
            persistent=False,
        )

    def splice(
        self, ctx: torch.Tensor, position: str = "end", classes: slice | None = None
    ) -> torch.Tensor:
        """Prompt embeddings with `ctx` in the context slots.

        ctx (n, d) or (K, n, d) → (K, L, d); ctx (B, 1, n, d) or (B, K, n, d) → (B, K, L, d).
        `position` puts the class name after ("end"), inside ("middle") or before ("front")
        the context, as CoOp's CLASS_TOKEN_POSITION. `classes` restricts the prompts to a
        slice of the classes (K then means its length), for methods that process classes
        in chunks.
        """
        if position not in CLASS_POSITIONS:
            raise ConfigError(
                f"unknown class token position {position!r}; expected one of {CLASS_POSITIONS}"
            )
        if ctx.dim() not in (2, 3, 4) or ctx.shape[-2] != self.n_ctx:
            raise ValueError(
                f"ctx must be (n, d), (K, n, d) or (B, K, n, d) with n = {self.n_ctx}, "
                f"got {tuple(ctx.shape)}"
            )
        select = classes if classes is not None else slice(None)
        token_prefix, token_suffix = self.token_prefix[select], self.token_suffix[select]
        leading = (ctx.shape[0],) if ctx.dim() == 4 else ()
        shape = (*leading, token_prefix.shape[0])
        ctx = ctx.expand(*shape, *ctx.shape[-2:])
        prefix = token_prefix.expand(*shape, *token_prefix.shape[-2:])
        suffix = token_suffix.expand(*shape, *token_suffix.shape[-2:])
        prompts = torch.cat([prefix, ctx, suffix], dim=-2)
        if position == "end":
            return prompts
        index = self.position_index[CLASS_POSITIONS.index(position)][select]
        index = index[..., None].expand(*shape, -1, prompts.shape[-1])
        return prompts.gather(-2, index)


def phrase_token_embeddings(
    clip_model: nn.Module, phrases: Sequence[str], n_tokens: int
) -> torch.Tensor:
    """Token embeddings at positions 1..n_tokens of each tokenised phrase, (P, n, d_t).

    Positions past a short phrase's last word hold its EOT and padding embeddings, as a
    plain slice of the reference's tokenised phrase does (PLOT++ initialises every prompt
    set with the first phrase's word count).
    """
    context_length = clip_model.positional_embedding.shape[0]
    token_ids = tokenize([_clean(phrase) for phrase in phrases], context_length)
    return _embed_tokens(clip_model, token_ids)[:, 1 : 1 + n_tokens].clone()
