"""A tiny synthetic TrainerX (linear model, in-memory data) for the engine tests."""

from __future__ import annotations

import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler

from ammpl.engine import (
    TrainerX,
    build_lr_scheduler,
    build_optimizer,
    compute_accuracy,
    get_cfg_default,
)

NUM_CLASSES = 3
FEATURES = 8


class SyntheticSet(Dataset):
    """Gaussian blobs; training items get noise from Python's and NumPy's RNGs, so a
    resumed run only matches if every generator state was restored."""

    def __init__(self, n: int, seed: int, noisy: bool) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.labels = torch.arange(n) % NUM_CLASSES
        centres = torch.randn(NUM_CLASSES, FEATURES, generator=gen) * 2
        self.x = centres[self.labels] + torch.randn(n, FEATURES, generator=gen)
        self.noisy = noisy

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        x = self.x[index]
        if self.noisy:
            x = x + 0.05 * random.random() + 0.05 * float(np.random.rand())
        return {"img": x, "label": self.labels[index], "domain": 0, "index": index}


def make_cfg(output_dir, **opts):
    """Default config for the synthetic trainer; `opts` as {"OPTIM.MAX_EPOCH": 4, ...}."""
    cfg = get_cfg_default()
    cfg.OUTPUT_DIR = str(output_dir)
    cfg.SEED = 1
    cfg.USE_CUDA = False
    cfg.OPTIM.NAME = "sgd"
    cfg.OPTIM.LR = 0.05
    cfg.OPTIM.MAX_EPOCH = 4
    cfg.OPTIM.LR_SCHEDULER = "cosine"
    cfg.OPTIM.WARMUP_EPOCH = 1
    cfg.OPTIM.WARMUP_TYPE = "constant"
    cfg.TRAIN.PRINT_FREQ = 2
    cfg.DATALOADER.TRAIN_X.BATCH_SIZE = 4
    cfg.DATALOADER.TEST.BATCH_SIZE = 8
    cfg.DATASET.NAME = "Synthetic"
    cfg.TRAINER.NAME = "SyntheticTrainer"
    for key, value in opts.items():
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    cfg.freeze()
    return cfg


class SyntheticTrainer(TrainerX):
    """Dropout in the model and noisy data: every RNG matters for reproducibility."""

    interrupt_at: tuple[int, int] | None = None  # (0-based epoch, 0-based batch)
    with_val = True

    def build_data_loader(self) -> None:
        train = SyntheticSet(24, seed=0, noisy=True)
        test = SyntheticSet(18, seed=1, noisy=False)
        val = SyntheticSet(9, seed=2, noisy=False)
        self.train_loader_x = DataLoader(
            train, batch_size=4, sampler=RandomSampler(train), drop_last=True
        )
        self.val_loader = (
            DataLoader(val, batch_size=8, sampler=SequentialSampler(val)) if self.with_val else None
        )
        self.test_loader = DataLoader(test, batch_size=8, sampler=SequentialSampler(test))
        self.num_classes = NUM_CLASSES
        self.num_source_domains = 1
        self.lab2cname = {0: "circle", 1: "square", 2: "triangle"}

    def build_model(self) -> None:
        self.model = nn.Sequential(
            nn.Linear(FEATURES, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, NUM_CLASSES)
        )
        self.optim = build_optimizer(self.model, self.cfg.OPTIM)
        self.sched = build_lr_scheduler(self.optim, self.cfg.OPTIM)
        self.register_model("model", self.model, self.optim, self.sched)

    def forward_backward(self, batch: dict) -> dict:
        if self.interrupt_at == (self.epoch, self.batch_idx):
            raise KeyboardInterrupt
        image, label, _ = self.parse_batch_train(batch)
        output = self.model(image)
        loss = F.cross_entropy(output, label)
        self.model_backward_and_update(loss)
        summary = {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary
