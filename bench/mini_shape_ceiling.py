"""How fast an image tower can learn the mini world's shapes, with the strongest signal.

Pretraining teaches shape through captions; this asks what plain supervision gives the
same tower at the same batch and schedule: the image tower (mini's ViT, optionally wider,
deeper or with other patches) or a small CNN control, with a linear 12-way head, trained
by cross-entropy on the shape of fresh pretraining-world images, and evaluated every N
steps on probe-style images (one object each, as `python -m ammpl.mini.probe` draws them),
split by object size. docs/MINI.md ("a supervised ceiling") reports its numbers.

    OMP_NUM_THREADS=1 python bench/mini_shape_ceiling.py [--tower vit|cnn] [--steps 1500]
        [--lr 1e-3] [--layers 4] [--width 96] [--patch 8] [--eval-every 100]
        [--vision pos_embed_type=sin_cos_2d] [--fix pattern=plain]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import open_clip
import torch
import torch.nn.functional as F
from torch import nn

from ammpl.mini.model import MINI_CLIP_CONFIG
from ammpl.mini.pretrain import normalise
from ammpl.mini.world import SHAPES, render, sample_scene, to_tensor_batch


def vit_tower(layers: int, width: int, patch: int, extra: dict | None = None) -> nn.Module:
    """The mini image tower, with these sizes (the mini itself: 4, 96, 8) and open_clip
    vision options (`extra`, e.g. pos_embed_type=sin_cos_2d)."""
    vision = dict(MINI_CLIP_CONFIG["vision_cfg"], layers=layers, width=width, patch_size=patch)
    vision.update(extra or {})
    text = dict(MINI_CLIP_CONFIG["text_cfg"], layers=1)
    embed = MINI_CLIP_CONFIG["embed_dim"]
    return open_clip.CLIP(embed_dim=embed, vision_cfg=vision, text_cfg=text, quick_gelu=True).visual


def cnn_tower() -> nn.Module:
    """A control for the images, not a possible mini tower (AMMPL masks ViT patches)."""
    stages: list[nn.Module] = []
    for inputs, outputs in ((3, 32), (32, 64), (64, 96), (96, 128)):
        stages += [nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs)]
        stages += [nn.ReLU(), nn.MaxPool2d(2)]
    embed = MINI_CLIP_CONFIG["embed_dim"]
    return nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, embed))


def pixels(images: list) -> torch.Tensor:
    return normalise(np.ascontiguousarray(to_tensor_batch(images)))


def _option(text: str) -> tuple[str, object]:
    key, _, value = text.partition("=")
    for kind in (int, float):
        try:
            return key, kind(value)
        except ValueError:
            pass
    return key, {"true": True, "false": False}.get(value.lower(), value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tower", choices=("vit", "cnn"), default="vit")
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--weight-decay", type=float, default=0.05)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--patch", type=int, default=8)
    parser.add_argument(
        "--vision",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an open_clip vision_cfg option (repeatable), e.g. pos_embed_type=sin_cos_2d",
    )
    parser.add_argument(
        "--fix",
        action="append",
        default=[],
        metavar="FACTOR=VALUE",
        help="pin a factor of the training scenes (repeatable), e.g. pattern=plain",
    )
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--probe-images", type=int, default=240)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    extra = dict(_option(text) for text in args.vision)
    tower = (
        vit_tower(args.layers, args.width, args.patch, extra)
        if args.tower == "vit"
        else cnn_tower()
    )
    head = nn.Linear(MINI_CLIP_CONFIG["embed_dim"], len(SHAPES))
    parameters = [*tower.parameters(), *head.parameters()]
    optimizer = torch.optim.AdamW(
        parameters, lr=args.lr, weight_decay=args.weight_decay, betas=(0.9, 0.98)
    )
    probe_rng = np.random.default_rng(5)
    labels = probe_rng.integers(0, len(SHAPES), args.probe_images)
    scenes = [sample_scene(probe_rng, shape=SHAPES[k], count="1") for k in labels]
    probe_images = pixels([render(scene, probe_rng) for scene in scenes])
    large = np.array([scene.size == "large" for scene in scenes])
    rng = np.random.default_rng(1)
    fixed = dict(text.partition("=")[::2] for text in args.fix)
    started = time.time()
    for step in range(args.steps):
        warm = min(1.0, (step + 1) / args.warmup)
        lr = args.lr * warm * 0.5 * (1 + math.cos(math.pi * step / args.steps))
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = [sample_scene(rng, **fixed) for _ in range(args.batch_size)]
        images = pixels([render(scene, rng) for scene in batch])
        targets = torch.tensor([SHAPES.index(scene.shape) for scene in batch])
        loss = F.cross_entropy(head(tower(images)), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if (step + 1) % args.eval_every == 0 or step + 1 == args.steps:
            tower.eval()
            with torch.no_grad():
                hit = head(tower(probe_images)).argmax(dim=1).numpy() == labels
            tower.train()
            print(
                f"step {step + 1}  loss {loss.item():.3f}  shape {hit.mean() * 100:.1f} %  "
                f"(large {hit[large].mean() * 100:.1f}, small {hit[~large].mean() * 100:.1f})  "
                f"{time.time() - started:.0f} s",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
