"""How much zero-shot accuracy a backbone keeps when patches of the test images are hidden.

AMMPL hides patches and pads them; VPT and MaPLe add tokens. A method can only learn that
way if the frozen image tower still sees the class in an edited image, which CLIP's does
and a tower pretrained on one small world may not (docs/MINI.md, "Masked patches"). This
takes the arguments of `train.py` with `--trainer ZeroshotCLIP`, hides each patch of every
test image with probability SHARE (for each `--shares` value; the same draw for every
backbone, seed `--mask-seed`) under the mean pixel (0 in normalised space) or Gaussian
noise, and prints zero-shot accuracy per share. Nothing is written.

    python bench/patch_mask_robustness.py --root DATA --trainer ZeroshotCLIP \\
        --dataset-config-file configs/datasets/mini_objects.yaml \\
        --config-file configs/trainers/CoOp/mini.yaml DATASET.SUBSAMPLE_CLASSES base
"""

from __future__ import annotations

import sys

import torch


@torch.no_grad()
def masked_zero_shot(
    model, images: torch.Tensor, labels: torch.Tensor, share: float, fill: str, seed: int
) -> float:
    """Zero-shot accuracy (%) on `images` with each patch hidden with probability `share`."""
    from ammpl.mini.pretrain import hide_patches
    from ammpl.trainers.coop import clip_logits

    visual = model.image_encoder.visual
    if not hasattr(visual, "patch_size"):
        raise SystemExit("error: patch_mask_robustness needs a ViT image tower (it hides patches)")
    patch = visual.patch_size[0]
    n, channels, height, width = images.shape
    generator = torch.Generator().manual_seed(seed)
    hidden = torch.rand(n, height // patch, width // patch, generator=generator) < share
    if fill == "noise":
        patches = torch.randn(n, channels, patch, patch, generator=generator)
    else:
        patches = torch.zeros(n, channels, patch, patch)
    features = model.image_encoder(hide_patches(images, hidden, patches)).float()
    features = features / features.norm(dim=-1, keepdim=True)
    logits = clip_logits(features, model.text_features, model.logit_scale)
    return (logits.argmax(1) == labels).float().mean().item() * 100


def main(argv: list[str] | None = None) -> int:
    from ammpl.cli.train import build_parser, scratch_trainer

    parser = build_parser()
    parser.add_argument("--shares", default="0,0.05,0.1,0.2,0.3", help="comma-separated")
    parser.add_argument("--fill", choices=("mean", "noise"), default="mean")
    parser.add_argument("--mask-seed", type=int, default=1)
    args = parser.parse_args(argv)
    with scratch_trainer(args) as trainer:
        trainer.model.eval()
        batches = list(trainer.test_loader)
        images = torch.cat([batch["img"] for batch in batches]).to(trainer.device)
        labels = torch.cat([batch["label"] for batch in batches]).to(trainer.device)
        print(f"{len(labels)} test images, {trainer.dm.num_classes} classes, fill {args.fill}")
        for share in [float(value) for value in args.shares.split(",")]:
            accuracy = masked_zero_shot(
                trainer.model, images, labels, share, args.fill, args.mask_seed
            )
            print(f"patches hidden {share:.2f}: zero-shot {accuracy:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
