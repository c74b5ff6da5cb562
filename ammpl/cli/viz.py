"""`ammpl-viz`: pictures of what a trained model learned.

    ammpl-viz masks --model-dir OUTPUT --images a.jpg b.jpg [--epochs 1 5] [--classes cat 3]
                    [--mode threshold|expected|sample] [--root DATA] --out grid.png

draws AMMPL's patch masks (paper Figure 3) over the given images: one row per
(image, class), one column per saved epoch, masked patches shaded.
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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
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
    except AmmplError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    print(f"Mask picture written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
