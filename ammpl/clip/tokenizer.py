"""CLIP's byte-pair tokenizer (through open_clip), without silent truncation.

open_clip's and OpenAI's `tokenize` cut a text that is too long and put EOT at the end;
a class name or prompt cut that way changes results without a word. Here that is an
error naming the text, unless the caller asks for truncation.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from open_clip.tokenizer import SimpleTokenizer

from ammpl.utils import AmmplError

SOT_TOKEN_ID = 49406
EOT_TOKEN_ID = 49407
CONTEXT_LENGTH = 77


class TextTooLongError(AmmplError, ValueError):
    """A text does not fit the context length (a long class name or prompt)."""


@lru_cache(maxsize=1)
def _bpe() -> SimpleTokenizer:
    """Built once: reading the vocabulary takes a noticeable fraction of a second."""
    return SimpleTokenizer()


def tokenize(
    texts: str | Sequence[str], context_length: int = CONTEXT_LENGTH, truncate: bool = False
) -> torch.Tensor:
    """Token ids (N, context_length) as int64: SOT, the text's BPE ids, EOT, zero padding.

    Texts are cleaned as OpenAI's tokenizer does (ftfy, HTML unescape, whitespace, lower
    case). With `truncate=True` a long text keeps its first context_length − 1 tokens and
    ends with EOT (OpenAI's behaviour); otherwise it raises TextTooLongError.
    """
    if isinstance(texts, str):
        texts = [texts]
    bpe = _bpe()
    result = torch.zeros(len(texts), context_length, dtype=torch.long)
    for row, text in enumerate(texts):
        ids = [SOT_TOKEN_ID, *bpe.encode(text), EOT_TOKEN_ID]
        if len(ids) > context_length:
            if not truncate:
                shown = text if len(text) <= 60 else text[:57] + "..."
                raise TextTooLongError(
                    f'text "{shown}" is {len(ids)} tokens with SOT/EOT, more than the context '
                    f"length {context_length}; shorten it (class name, prompt template or "
                    f"context init) or pass truncate=True"
                )
            ids = ids[:context_length]
            ids[-1] = EOT_TOKEN_ID
        result[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return result
