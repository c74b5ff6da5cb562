"""PromptSRC (Khattak et al., ICCV 2023): IVLP's deep prompts regulated by frozen CLIP.

`model` (config node, the prompted + zero-shot forward), `losses` (the self-regulating
terms), `gpa` (Gaussian prompt aggregation over epochs), `trainer` (the registered trainer).
"""

from __future__ import annotations

from ammpl.trainers.promptsrc.trainer import PromptSRC

__all__ = ["PromptSRC"]
