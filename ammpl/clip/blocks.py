"""Our own forward through open_clip residual attention blocks.

Both encoders need to touch the hidden state between blocks (deep prompts) and want fused
attention, so they run the blocks themselves instead of calling `Transformer.forward`.
Attention is computed here from `attn.in_proj_weight/bias` and `attn.out_proj`, on
batch-first tensors, so the owning Transformer's `batch_first` flag never matters.
LayerNorms, LayerScales and the MLP are the block's own modules, called as they are.

Observing block inputs: `block.ln_1` is called with exactly the block input, so a forward
pre-hook on `ln_1` sees what the block receives (after any deep-prompt injection).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ammpl.utils.errors import BackboneError

BeforeBlock = Callable[[int, torch.Tensor], torch.Tensor]
AfterBlock = Callable[[int, torch.Tensor], torch.Tensor]
# Prompts a method appends for one block: (block index, hidden state (B, L, D)) → (B, n, D)
# tokens (or None for no prompts at that block).
BlockPrompts = Callable[[int, torch.Tensor], "torch.Tensor | None"]
# A residual branch beside block i (MMA's adapters): (block index, ln_1 of the block input
# (B, L, D)) → (B, L, D) added to the block output, or None for no branch at that block.
BlockAdapter = Callable[[int, torch.Tensor], "torch.Tensor | None"]


def check_block_supported(block: nn.Module) -> None:
    """Raise BackboneError unless `block` is a plain open_clip ResidualAttentionBlock."""
    attn = getattr(block, "attn", None)
    if not isinstance(attn, nn.MultiheadAttention) or not all(
        hasattr(block, name) for name in ("ln_1", "ln_2", "mlp", "ls_1", "ls_2")
    ):
        raise BackboneError(
            f"unsupported transformer block {type(block).__name__} (custom attention such as "
            "qk-norm or scaled-cosine attention); use a standard CLIP ViT/ResNet backbone"
        )
    if attn.bias_k is not None or attn.add_zero_attn or hasattr(block, "ln_1_kv"):
        raise BackboneError(
            f"unsupported attention in {type(block).__name__} (bias_k/bias_v, zero attention "
            "or cross-attention); use a standard CLIP backbone"
        )


def _qkv(attn: nn.MultiheadAttention, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Project batch-first x into per-head q, k, v of shape (B, H, L, head_dim)."""
    if attn.in_proj_weight is not None:
        q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
    else:
        bias = attn.in_proj_bias
        q_b, k_b, v_b = bias.chunk(3) if bias is not None else (None, None, None)
        q = F.linear(x, attn.q_proj_weight, q_b)
        k = F.linear(x, attn.k_proj_weight, k_b)
        v = F.linear(x, attn.v_proj_weight, v_b)
    batch, length, _ = x.shape
    heads = attn.num_heads
    return tuple(t.reshape(batch, length, heads, -1).transpose(1, 2) for t in (q, k, v))


def _additive_mask(attn_mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """nn.MultiheadAttention mask semantics (bool True = blocked) as an additive float mask."""
    if attn_mask.dtype == torch.bool:
        return torch.zeros(attn_mask.shape, dtype=dtype, device=attn_mask.device).masked_fill(
            attn_mask, float("-inf")
        )
    return attn_mask.to(dtype)


def _causal_mask(length: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    return torch.full((length, length), float("-inf"), dtype=dtype, device=device).triu(1)


def self_attention(
    attn: nn.MultiheadAttention,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    is_causal: bool = False,
    fused: bool = True,
) -> torch.Tensor:
    """Multi-head self-attention of batch-first x (B, L, D), as nn.MultiheadAttention does it."""
    if is_causal and attn_mask is not None:
        raise ValueError("pass either attn_mask or is_causal=True, not both")
    q, k, v = _qkv(attn, x)
    dropout_p = attn.dropout if attn.training else 0.0
    mask = _additive_mask(attn_mask, q.dtype) if attn_mask is not None else None
    if fused:
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
        )
    else:
        if is_causal:
            mask = _causal_mask(q.shape[-2], q.dtype, q.device)
        scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
        if mask is not None:
            scores = scores + mask
        weights = F.dropout(scores.softmax(dim=-1), p=dropout_p, training=dropout_p > 0)
        out = weights @ v
    batch, _, length, _ = out.shape
    out = out.transpose(1, 2).reshape(batch, length, -1)
    return attn.out_proj(out)


def run_block(
    block: nn.Module,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    fused: bool = True,
    *,
    is_causal: bool = False,
    adapter: Callable[[torch.Tensor], torch.Tensor | None] | None = None,
) -> torch.Tensor:
    """One open_clip ResidualAttentionBlock on batch-first x (B, L, D).

    `attn_mask` follows nn.MultiheadAttention (additive float, or bool with True = blocked;
    open_clip itself only ever passes float masks),
    shape (L, L). `is_causal=True` is the causal mask without materialising it, which lets
    the fused kernel take its causal fast path. `fused=False` is the plain
    softmax(QKᵀ/√d + mask)V reference computation. `adapter(ln_1(x))`, when given and not
    None, is a branch beside the block: its output is added to the block's output.
    """
    normed = block.ln_1(x)
    y = self_attention(block.attn, normed, attn_mask, is_causal=is_causal, fused=fused)
    branch = adapter(normed) if adapter is not None else None
    x = x + block.ls_1(y)
    x = x + block.ls_2(block.mlp(block.ln_2(x)))
    return x if branch is None else x + branch


def run_blocks(
    transformer: nn.Module,
    x: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    before_block: BeforeBlock | None = None,
    fused: bool = True,
    *,
    is_causal: bool = False,
    after_block: AfterBlock | None = None,
    adapter: BlockAdapter | None = None,
) -> torch.Tensor:
    """Every block of an open_clip Transformer on batch-first x, with optional hooks.

    `before_block(i, x) -> x` runs before block i; deep-prompt injection of both towers goes
    through it. `after_block(i, x) -> x` runs on block i's output (transient prompts are
    dropped there). `adapter(i, ln_1(x))` is a residual branch beside block i (see
    `run_block`). Honours the transformer's `grad_checkpointing` flag while grads are on.
    """
    use_checkpoint = getattr(transformer, "grad_checkpointing", False) and torch.is_grad_enabled()
    for index, block in enumerate(transformer.resblocks):
        if before_block is not None:
            x = before_block(index, x)
        branch = functools.partial(adapter, index) if adapter is not None else None
        if use_checkpoint:
            x = checkpoint(
                run_block,
                block,
                x,
                attn_mask,
                fused,
                is_causal=is_causal,
                adapter=branch,
                use_reentrant=False,
            )
        else:
            x = run_block(block, x, attn_mask, fused, is_causal=is_causal, adapter=branch)
        if after_block is not None:
            x = after_block(index, x)
    return x


def cast_prompts(prompts: torch.Tensor, dtype: torch.dtype, round_fp16: bool) -> torch.Tensor:
    """Prompts already expanded over the batch, in the hidden dtype. `round_fp16` first
    rounds them through fp16 (the reference's `.half()`, quirk Q5): after the expand, so
    each sequence's gradient is rounded, then summed in the prompt's own dtype."""
    if round_fp16:
        prompts = prompts.half()
    return prompts.to(dtype)


def transient_prompt_hooks(
    block_prompts: BlockPrompts, round_fp16: bool = False
) -> tuple[BeforeBlock, AfterBlock]:
    """Hooks that append `block_prompts(i, x)` after the tokens of block i's input and drop
    that many outputs after the block (DPT, BASELINES_EXTRA D-Q1): the prompts take part in
    block i's attention only, and every block returns the original sequence length. The
    prompts are computed from the hidden state entering the block, so class-aware prompts
    (CAVPT) can read it. `round_fp16` rounds them through fp16 first (reference `.half()`)."""
    appended: dict[int, int] = {}

    def append(index: int, x: torch.Tensor) -> torch.Tensor:
        prompts = block_prompts(index, x)
        if prompts is None or prompts.shape[1] == 0:
            appended[index] = 0
            return x
        if prompts.dim() != 3 or prompts.shape[0] != x.shape[0] or prompts.shape[2] != x.shape[2]:
            raise ValueError(
                f"prompts for block {index} must be (B, n, {x.shape[2]}) with B = {x.shape[0]}, "
                f"got {tuple(prompts.shape)}"
            )
        appended[index] = prompts.shape[1]
        return torch.cat([x, cast_prompts(prompts, x.dtype, round_fp16)], dim=1)

    def drop(index: int, x: torch.Tensor) -> torch.Tensor:
        n = appended.pop(index, 0)
        return x[:, :-n] if n else x

    return append, drop


def injection_hook(
    deep_prompts: Sequence[torch.Tensor | None] | None,
    first_slot: int | None,
    n_blocks: int,
    round_fp16: bool = False,
) -> BeforeBlock | None:
    """The `before_block` hook of deep prompting (BASELINES.md §1.3), for either tower.

    Before block i = 1..len(deep_prompts), the prompt slots of the hidden state are replaced
    by `deep_prompts[i-1]` (n, d), the same vectors for every sequence, or (N, n, d), one
    set per sequence of the N (TCP's class-aware tokens); a None entry leaves block i alone:
    slots
    `first_slot .. first_slot+n-1` (text: 1), or the last n tokens when `first_slot` is None
    (vision). Blocks from len(deep_prompts)+1 on are left alone. Prompts for blocks past the
    last one are never used, as in the reference. Prompts are cast to the hidden dtype;
    `round_fp16` first rounds them through fp16, the reference's unconditional `.half()`,
    in the reference's order (quirk Q5): expand over the batch first, then cast, so the
    gradient of every sequence is rounded to fp16 and the rounded pieces are summed in the
    prompt's own dtype (casting first would round the summed gradient once).
    """
    if not deep_prompts:
        return None
    prompts = list(deep_prompts)[: max(n_blocks - 1, 0)]
    for index, prompt in enumerate(prompts, start=1):
        if prompt is not None and prompt.dim() not in (2, 3):
            raise ValueError(
                f"deep prompt for block {index} must be (n, d) or (N, n, d), "
                f"got {tuple(prompt.shape)}"
            )

    def replace_slots(block_index: int, x: torch.Tensor) -> torch.Tensor:
        if not 1 <= block_index <= len(prompts) or prompts[block_index - 1] is None:
            return x
        prompt = prompts[block_index - 1]
        if prompt.dim() == 3 and prompt.shape[0] != x.shape[0]:
            raise ValueError(
                f"per-sequence deep prompt for block {block_index} has {prompt.shape[0]} sets "
                f"for {x.shape[0]} sequences"
            )
        prompt = prompt.expand(x.shape[0], -1, -1)
        prompt = cast_prompts(prompt, x.dtype, round_fp16)
        n = prompt.shape[1]
        if first_slot is None:
            return torch.cat([x[:, :-n], prompt], dim=1)
        if first_slot + n > x.shape[1]:
            raise ValueError(
                f"deep prompt of {n} tokens does not fit a sequence of {x.shape[1]} at "
                f"position {first_slot}"
            )
        return torch.cat([x[:, :first_slot], prompt, x[:, first_slot + n :]], dim=1)

    return replace_slots
