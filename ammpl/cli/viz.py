"""`ammpl-viz`: pictures of what a trained model learned.

    ammpl-viz masks --model-dir OUTPUT --images a.jpg b.jpg [--epochs 1 5] [--classes cat 3]
                    [--mode threshold|expected|sample] [--root DATA] --out grid.png

draws AMMPL's patch masks (paper Figure 3) over the given images: one row per
(image, class), one column per saved epoch, masked patches shaded.

    ammpl-viz mask-share --model-dir OUTPUT --root DATA --dataset-config-file CONFIG
                         [--split test] [--epochs 1 5] [--limit N] [--json FILE]

measures on a mini object dataset whether the masks hide background patches: per epoch, the
share of masked patches outside the object against the share of all patches outside it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ammpl.utils import AmmplError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ammpl-viz", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    commands = parser.add_subparsers(dest="command", required=True)
    masks = commands.add_parser("masks", help="AMMPL's patch masks over images and epochs")
    masks.add_argument("--model-dir", required=True, help="output folder of an AMMPL training run")
    masks.add_argument("--images", nargs="+", required=True, help="image files (rows)")
    masks.add_argument("--epochs", nargs="+", type=int, help="saved epochs (default: all)")
    masks.add_argument(
        "--classes", nargs="+", help="class names or indices (class-specific models)"
    )
    masks.add_argument(
        "--mode",
        choices=("threshold", "expected", "sample"),
        default="threshold",
        help="threshold: P ≥ 0.5 (default); expected: shade by 1 − P; sample: one draw",
    )
    masks.add_argument("--seed", type=int, default=0, help="seed of --mode sample")
    masks.add_argument(
        "--root",
        help="data root (or dataset folder): rows show each image's path under it "
        "(default: under the images' common folder)",
    )
    masks.add_argument("--out", required=True, help="PNG file to write")
    share = commands.add_parser(
        "mask-share", help="share of masked patches on background (mini object datasets)"
    )
    share.add_argument("--model-dir", required=True, help="output folder of an AMMPL training run")
    share.add_argument("--root", required=True, help="data root (or the dataset's folder)")
    share.add_argument(
        "--dataset-config-file", required=True, help="e.g. configs/datasets/mini_objects.yaml"
    )
    share.add_argument(
        "--split", choices=("train", "val", "test"), default="test", help="(default: test)"
    )
    share.add_argument("--epochs", nargs="+", type=int, help="saved epochs (default: all)")
    share.add_argument("--limit", type=int, help="at most this many images, spread over classes")
    share.add_argument("--json", help="also write the numbers to this JSON file")
    return parser


def dataset_name(config_file: str) -> str:
    """DATASET.NAME of a dataset config file."""
    from ammpl.engine.config import get_cfg_default, merge_from_file

    cfg = get_cfg_default()
    merge_from_file(cfg, config_file)
    return cfg.DATASET.NAME


def run_masks(args: argparse.Namespace) -> None:
    from ammpl.trainers.ammpl.viz import mask_picture

    path = mask_picture(
        args.model_dir,
        args.images,
        args.out,
        epochs=args.epochs,
        classes=args.classes,
        mode=args.mode,
        seed=args.seed,
        root=args.root,
    )
    print(f"Mask picture written to {path}")


def run_mask_share(args: argparse.Namespace) -> None:
    from ammpl.trainers.ammpl.mask_share import masked_background_shares, share_table
    from ammpl.utils import write_json

    name = dataset_name(args.dataset_config_file)
    results = masked_background_shares(
        args.model_dir, args.root, name, args.split, args.epochs, args.limit
    )
    print(share_table(results))
    if args.json:
        write_json(results, args.json)
        print(f"Numbers written to {args.json}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        {"masks": run_masks, "mask-share": run_mask_share}[args.command](args)
    except AmmplError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
