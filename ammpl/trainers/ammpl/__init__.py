"""AMMPL: Adaptive Multi-Modality Prompt Learning (AMMPL.md).

config (cfg.TRAINER.AMMPL), masks (P, Bernoulli, straight-through, test masks), padding
(N, tiling, embedding mix), interaction (f_I, f_T), chunking (memory-bounded blocks),
model (prompt learner + CLIP wrapper), trainer (the registered `AMMPL`), viz (mask pictures),
mask_stats (per-epoch statistics of P in log.txt and results.json).
"""

from ammpl.trainers.ammpl.config import AmmplSettings
from ammpl.trainers.ammpl.model import AmmplCLIP, AmmplPromptLearner
from ammpl.trainers.ammpl.trainer import AMMPL

__all__ = ["AMMPL", "AmmplCLIP", "AmmplPromptLearner", "AmmplSettings"]
