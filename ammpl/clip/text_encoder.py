"""CLIP's frozen text tower run on prompt embeddings, with deep prompts (BASELINES.md §1.1, §1.3).

The encoder holds references to the CLIP model's own text modules (no copies), registered
under the reference's names so that checkpoint keys read `text_encoder.transformer.*`,
`text_encoder.positional_embedding`, `text_encoder.ln_final.*`, `text_encoder.text_projection`.
The token embedding is deliberately held outside the module tree: the reference checkpoints
do not carry it (it is only used by `encode_token_ids`).

Exact speed-ups: sequences are cut to (largest EOT index + 1) because the tower is causal
(nothing after EOT reaches it), attention is fused, and `chunk_size` bounds memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ammpl.clip.blocks import BlockAdapter, check_block_supported, injection_hook, run_blocks
from ammpl.utils.errors import BackboneError


def _is_causal_mask(mask: torch.Tensor | None) -> bool:
    if mask is None or mask.dim() != 2 or mask.shape[0] != mask.shape[1]:
        return False
    if mask.dtype == torch.bool:
        return torch.equal(mask, torch.ones_like(mask).triu(1))
    causal = torch.full(mask.shape, float("-inf"), device=mask.device).triu(1)
    return torch.equal(mask.float(), causal)


class TextEncoder(nn.Module):
    """Prompt embeddings (..., L, d_t) + EOT indices → projected text features (..., e).

    Attributes callers may switch: `truncate` (cut at max EOT + 1; exact), `fused`
    (scaled_dot_product_attention), `chunk_size` (sequences per pass; None = all at once),
    `round_prompts_fp16` (round deep prompts through fp16 before inserting them, as the
    reference's `.half()` does in every precision mode, quirk Q5 — for the faithful
    reference-fp16 mode; default False).
    """

    def __init__(self, clip_model: nn.Module) -> None:
        super().__init__()
        for name in ("transformer", "positional_embedding", "ln_final", "token_embedding"):
            if not hasattr(clip_model, name):
                raise BackboneError(
                    f"{type(clip_model).__name__} has no CLIP text tower attribute {name!r} "
                    "(e.g. a Hugging Face text tower); use a standard CLIP backbone"
                )
        for block in clip_model.transformer.resblocks:
            check_block_supported(block)
        self.transformer = clip_model.transformer
        self.positional_embedding = clip_model.positional_embedding
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        attn_mask = getattr(clip_model, "attn_mask", None)
        self.register_buffer("attn_mask", attn_mask, persistent=False)
        self.causal = _is_causal_mask(attn_mask)
        # A plain attribute, not a submodule: see the module docstring.
        object.__setattr__(self, "token_embedding", clip_model.token_embedding)
        self.pool_type = getattr(clip_model, "text_pool_type", "argmax")
        self.eos_id = getattr(clip_model, "text_eos_id", None)

        self.truncate = True
        self.fused = True
        self.chunk_size: int | None = None
        self.round_prompts_fp16 = False

    @property
    def dtype(self) -> torch.dtype:
        """The tower's weight dtype: prompts are cast to it (as open_clip's encode_text)."""
        return self.transformer.resblocks[0].mlp.c_fc.weight.dtype

    def forward(
        self,
        prompts: torch.Tensor,
        eot_indices: torch.Tensor,
        deep_prompts: Sequence[torch.Tensor | None] | None = None,
        adapter: BlockAdapter | None = None,
    ) -> torch.Tensor:
        """Features at the EOT positions; `deep_prompts[i-1]` (n, d_t) replaces positions
        1..n at the input of block i = 1..J−1 (J = len(deep_prompts) + 1); an entry of shape
        (..., n, d_t) with the prompts' leading shape gives every sequence its own tokens,
        None leaves block i alone; `adapter` adds a residual branch beside the blocks
        (`blocks.run_blocks`)."""
        *leading, length, width = prompts.shape
        if length > self.positional_embedding.shape[0]:
            raise ValueError(
                f"prompts have {length} positions, the text tower only "
                f"{self.positional_embedding.shape[0]}"
            )
        eot = torch.as_tensor(eot_indices, device=prompts.device).broadcast_to(leading)
        flat = prompts.reshape(-1, length, width)
        eot = eot.reshape(-1)
        chunk = self.chunk_size or max(flat.shape[0], 1)
        per_sequence = [
            p.reshape(-1, *p.shape[-2:]) if p is not None and p.dim() > 2 else None
            for p in deep_prompts or ()
        ]
        for index, prompt in enumerate(per_sequence, start=1):
            if prompt is not None and prompt.shape[0] != flat.shape[0]:
                raise ValueError(
                    f"per-sequence deep prompt for block {index} has {prompt.shape[0]} sets "
                    f"for {flat.shape[0]} sequences"
                )

        def chunk_prompts(start: int) -> list | None:
            if not deep_prompts:
                return deep_prompts
            return [
                p if flat_p is None else flat_p[start : start + chunk]
                for p, flat_p in zip(deep_prompts, per_sequence)
            ]

        features = [
            self._encode(
                flat[start : start + chunk],
                eot[start : start + chunk],
                chunk_prompts(start),
                adapter,
            )
            for start in range(0, flat.shape[0], chunk)
        ]
        out = torch.cat(features) if len(features) != 1 else features[0]
        return out.reshape(*leading, out.shape[-1])

    def encode_token_ids(self, token_ids: torch.Tensor) -> torch.Tensor:
        """open_clip's `encode_text(token_ids)` (un-normalised), through the same blocks."""
        embedding = self.token_embedding
        prompts = embedding(token_ids.to(embedding.weight.device))
        prompts = prompts.to(self.positional_embedding.device)
        return self.forward(prompts, self._pool_indices(token_ids.to(prompts.device)))

    def _pool_indices(self, token_ids: torch.Tensor) -> torch.Tensor:
        if self.pool_type == "argmax":
            return token_ids.argmax(dim=-1)
        if self.pool_type == "eos" and self.eos_id is not None:
            return (token_ids == self.eos_id).int().argmax(dim=-1)
        if self.pool_type in ("first", "last"):
            index = 0 if self.pool_type == "first" else token_ids.shape[-1] - 1
            return torch.full(token_ids.shape[:-1], index, device=token_ids.device)
        raise BackboneError(f"unsupported text pooling {self.pool_type!r}; use a CLIP backbone")

    def _encode(
        self,
        prompts: torch.Tensor,
        eot: torch.Tensor,
        deep_prompts: Sequence[torch.Tensor | None] | None,
        adapter: BlockAdapter | None = None,
    ) -> torch.Tensor:
        dtype = self.dtype
        length = prompts.shape[1]
        if self.truncate and self.causal:
            length = int(eot.max()) + 1
        x = prompts[:, :length].to(dtype) + self.positional_embedding[:length].to(dtype)

        mask, is_causal = None, False
        if self.causal and self.fused:
            is_causal = True
        elif self.attn_mask is not None:
            mask = self.attn_mask[:length, :length]
        hook = injection_hook(
            deep_prompts, 1, len(self.transformer.resblocks), self.round_prompts_fp16
        )
        x = run_blocks(
            self.transformer,
            x,
            mask,
            before_block=hook,
            fused=self.fused,
            is_causal=is_causal,
            adapter=adapter,
        )
        # LayerNorm is per token, so normalising only the pooled tokens is exact.
        x = self.ln_final(x[torch.arange(x.shape[0], device=x.device), eot])
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        if self.text_projection is not None:
            return x @ self.text_projection
        return x
