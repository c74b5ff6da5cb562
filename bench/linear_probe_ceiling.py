"""How much a classifier on frozen image features can gain over zero-shot on a dataset.

A prompt learned on the text side is a linear classifier on the frozen image features, so
a linear probe trained on the same few-shot images bounds what CoOp-style methods can gain
(docs/MINI.md, "AMMPL's readings on the object datasets"). This takes the arguments of
`train.py` with `--trainer ZeroshotCLIP` (dataset, config, shots, base/new subsample),
extracts the features of the few-shot training images and of the test images, prints the
zero-shot accuracy, then fits a logistic regression (Adam, full batch, fixed seed) at each
`--weight-decay` (comma-separated) and prints its train and test accuracy. Nothing is written.

    python bench/linear_probe_ceiling.py --root DATA --trainer ZeroshotCLIP --seed 1 \\
        --dataset-config-file configs/datasets/mini_objects.yaml \\
        --config-file configs/trainers/CoOp/mini.yaml \\
        DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F

STEPS = 2000


@torch.no_grad()
def features(trainer, loader) -> tuple[torch.Tensor, torch.Tensor]:
    """L2-normalised image features and labels of every batch of `loader`."""
    feats, labels = [], []
    for batch in loader:
        image = batch["img"].to(trainer.device)
        x = trainer.model.image_encoder(image).float()
        feats.append(x / x.norm(dim=-1, keepdim=True))
        labels.append(batch["label"].to(trainer.device))
    return torch.cat(feats), torch.cat(labels)


def fit_probe(
    x: torch.Tensor, y: torch.Tensor, classes: int, weight_decay: float, scale: float
) -> torch.nn.Linear:
    torch.manual_seed(0)
    probe = torch.nn.Linear(x.shape[1], classes).to(x.device)
    optimizer = torch.optim.Adam(probe.parameters(), lr=1e-2, weight_decay=weight_decay)
    for _ in range(STEPS):
        optimizer.zero_grad()
        F.cross_entropy(probe(x * scale), y).backward()
        optimizer.step()
    return probe


def main(argv: list[str] | None = None) -> int:
    from ammpl.cli.train import build_parser, scratch_trainer

    parser = build_parser()
    parser.add_argument(
        "--weight-decay", default="0,1e-4,1e-3,1e-2", help="comma-separated probe weight decays"
    )
    args = parser.parse_args(argv)
    from ammpl.trainers.coop import clip_logits

    with scratch_trainer(args) as trainer:
        trainer.model.eval()
        x_train, y_train = features(trainer, trainer.train_loader_x)
        x_test, y_test = features(trainer, trainer.test_loader)
        # zero-shot from the same test features (ZeroshotModel's logits, without a second pass)
        model = trainer.model
        zero_shot = clip_logits(x_test, model.text_features, model.logit_scale)
    classes = trainer.dm.num_classes
    scale = float(trainer.model.logit_scale.exp())
    zs = (zero_shot.argmax(1) == y_test).float().mean().item() * 100
    print(f"{len(y_train)} training and {len(y_test)} test images, {classes} classes")
    print(f"zero-shot: {zs:.2f}")
    for wd in [float(value) for value in args.weight_decay.split(",")]:
        probe = fit_probe(x_train, y_train, classes, wd, scale)
        with torch.no_grad():
            train = (probe(x_train * scale).argmax(1) == y_train).float().mean().item() * 100
            test = (probe(x_test * scale).argmax(1) == y_test).float().mean().item() * 100
        print(f"linear probe, weight decay {wd:g}: train {train:.2f}, test {test:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
