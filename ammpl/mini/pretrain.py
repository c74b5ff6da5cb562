"""Contrastive pretraining of the `mini` CLIP on the mini world (CPU, minutes).

    OMP_NUM_THREADS=1 python -m ammpl.mini.pretrain --steps 900 --out mini_clip.pt

Every step draws a fresh batch of captioned images from the world (no data set on disk),
so the model sees each combination of factors in many phrasings. AdamW with linear warm-up
and cosine decay, CLIP's symmetric InfoNCE loss with a learned temperature. The run is a
pure function of `--seed`, the torch version and the thread count; the weights file is
written atomically with a JSON record of how it was made beside it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from ammpl.clip.tokenizer import tokenize
from ammpl.mini.model import build_mini_clip, pack_state
from ammpl.mini.world import SHAPES, caption, render, sample_scene, to_tensor_batch
from ammpl.utils.io import atomic_write, atomic_write_text

_MEAN = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)


def normalise(images: np.ndarray) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] → CLIP-normalised tensor (what the downstream pipeline feeds)."""
    return (torch.from_numpy(images) - _MEAN) / _STD


def sample_batch(rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` fresh images (normalised) and their captions (token ids)."""
    images, captions = [], []
    for _ in range(size):
        scene = sample_scene(rng)
        images.append(render(scene, rng))
        captions.append(caption(scene, rng))
    return normalise(to_tensor_batch(images)), tokenize(captions)


def encode_text_prefix(model: torch.nn.Module, texts: torch.Tensor) -> torch.Tensor:
    """`model.encode_text(texts)`, computed on the tokens up to the longest EOT only.

    The text tower is causal and pooled at EOT, so the padding after the last EOT cannot
    change any output: cutting it saves most of the text tower's work in pretraining.
    """
    length = int((texts != 0).sum(dim=1).max())
    texts = texts[:, :length]
    x = model.token_embedding(texts) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(len(texts)), texts.argmax(dim=-1)]  # the EOT token (largest id)
    return x @ model.text_projection


def contrastive_loss(model: torch.nn.Module, images: torch.Tensor, texts: torch.Tensor):
    """CLIP's symmetric cross-entropy over the batch's image–caption similarities."""
    image_features = F.normalize(model.encode_image(images), dim=-1)
    text_features = F.normalize(encode_text_prefix(model, texts), dim=-1)
    logits = model.logit_scale.exp() * image_features @ text_features.t()
    target = torch.arange(len(images))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


@torch.no_grad()
def zero_shot_accuracy(
    model: torch.nn.Module, images: list, labels: Sequence[int], prompts: list[str]
) -> float:
    """Accuracy (%) of naming each image by the most similar of `prompts` (one per label)."""
    image_features = F.normalize(model.encode_image(normalise(to_tensor_batch(images))), dim=-1)
    text_features = F.normalize(model.encode_text(tokenize(prompts)), dim=-1)
    predictions = (image_features @ text_features.t()).argmax(dim=1).numpy()
    return float((predictions == np.asarray(labels)).mean() * 100)


@torch.no_grad()
def shape_probe(model: torch.nn.Module, seed: int = 12345, count: int = 240) -> float:
    """Zero-shot accuracy (%) naming the shape of pretraining-style images (chance 8.3 %)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPES), size=count)
    images = [render(sample_scene(rng, shape=SHAPES[k], count=1), rng) for k in labels]
    return zero_shot_accuracy(model, images, labels, [f"a photo of a {s}." for s in SHAPES])


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only (not on gains, biases, embeddings or the temperature)."""
    no_decay_names = ("token_embedding", "positional_embedding", "class_embedding", "logit_scale")
    decay, rest = [], []
    for name, parameter in model.named_parameters():
        if parameter.ndim < 2 or any(part in name for part in no_decay_names):
            rest.append(parameter)
        else:
            decay.append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def learning_rate(step: int, steps: int, base_lr: float, warmup: int) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))


def pretrain(
    steps: int,
    batch_size: int = 96,
    lr: float = 2e-3,
    weight_decay: float = 0.1,
    seed: int = 0,
    warmup: int = 100,
    log_every: int = 50,
    log=print,
    checkpoint_every: int = 0,
    on_checkpoint=None,
) -> tuple[torch.nn.Module, list[float]]:
    """Train a fresh mini CLIP; returns it (eval mode) and the loss of every step."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = build_mini_clip(seed)
    model.train()
    optimizer = torch.optim.AdamW(_parameter_groups(model, weight_decay), lr=lr, betas=(0.9, 0.98))
    losses: list[float] = []
    start = time.time()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr, min(warmup, steps))
        images, texts = sample_batch(rng, batch_size)
        loss = contrastive_loss(model, images, texts)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(float(loss.detach()))
        if on_checkpoint is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
            on_checkpoint(model, step + 1)
            model.train()
        if log_every and ((step + 1) % log_every == 0 or step + 1 == steps):
            recent = float(np.mean(losses[-log_every:]))
            log(f"step {step + 1}/{steps}  loss {recent:.4f}  {time.time() - start:.0f} s")
    model.eval()
    return model, losses


def save_weights(model: torch.nn.Module, out: Path, record: dict) -> None:
    """The packed state dict at `out` and `<out>.json` describing the run (both atomic)."""
    with atomic_write(out) as handle:
        torch.save(pack_state(model.state_dict()), handle)
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ammpl.mini.pretrain", description=__doc__)
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True, help="weights file to write")
    parser.add_argument(
        "--checkpoint-every", type=int, default=0, help="also write <out>.step<N>.pt every N steps"
    )
    args = parser.parse_args(argv)

    def checkpoint(model: torch.nn.Module, step: int) -> None:
        model.eval()
        target = args.out.with_suffix(f".step{step}.pt")
        save_weights(
            model, target, {"steps_done": step, "shape_probe_accuracy": shape_probe(model)}
        )

    start = time.time()
    model, losses = pretrain(
        args.steps,
        args.batch_size,
        args.lr,
        args.weight_decay,
        args.seed,
        log_every=args.log_every,
        checkpoint_every=args.checkpoint_every,
        on_checkpoint=checkpoint,
    )
    probe = shape_probe(model)
    seconds = time.time() - start
    record = {
        "steps": args.steps,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "seed": args.seed,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seconds": round(seconds, 1),
        "first_loss": round(float(np.mean(losses[:20])), 4),
        "final_loss": round(float(np.mean(losses[-50:])), 4),
        "shape_probe_accuracy": round(probe, 2),
    }
    save_weights(model, args.out, record)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
