"""Where an AMMPL run's learning goes: gradient per tensor and the sizes of h and E.

Issue 18's readings study asks, per variant, how much of the gradient reaches the text
context and how large the image → text shift h and the class fill E are beside the context
tokens and the padding N. This takes the same arguments as `train.py` (config files, dataset,
overrides), builds the trainer, optionally loads a trained run (`--model-dir`), and averages
over `--batches` training batches (training mode: random masks, the training transform):

- grad ‖·‖: the mean over batches of the L2 norm of each tensor's gradient of the training
  loss (ctx, P, pad, f_I, f_T), and the context's share of their sum;
- ‖ctx‖: mean L2 norm of one context token; ‖h‖: mean L2 norm of f_I's output (the shift
  added to every context token) over (image, class);
- ‖N‖: L2 norm of the padding patch (pixel space); ‖E‖: mean L2 norm of f_T's output.

The measuring is `ammpl.trainers.ammpl.diagnostics.measure_learning`. Nothing is written;
the optimiser never steps. Example (step 0, then the trained run):

    python bench/ammpl_readings.py --root DATA --trainer AMMPL \\
        --dataset-config-file configs/datasets/mini_objects.yaml \\
        --config-file configs/trainers/AMMPL/mini.yaml --seed 1 --batches 8 \\
        [--model-dir RUN] DATASET.NUM_SHOTS 16 DATASET.SUBSAMPLE_CLASSES base
"""

from __future__ import annotations

import json
import sys


def main(argv: list[str] | None = None) -> int:
    from ammpl.cli.train import build_parser, scratch_trainer

    parser = build_parser()
    parser.add_argument("--batches", type=int, default=8, help="training batches to average")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    from ammpl.trainers.ammpl.diagnostics import measure_learning

    with scratch_trainer(args) as trainer:
        result = measure_learning(trainer, args.batches)
    result["model_dir"] = args.model_dir or "step 0"
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
