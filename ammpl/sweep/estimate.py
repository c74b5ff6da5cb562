"""`ammpl-sweep ... --estimate`: what the sweep's runs will cost, before any of them starts.

Each run's train.py command is read as train.py reads it (the merged config), and its cost
comes from the measured cost model (ammpl.sweep.cost_model) with the published dataset
sizes (ammpl.data.published): shots × classes training images (the whole train split
without shots), the epochs and batch sizes of the config, the test split (of the base or
new classes in base-to-new) evaluated at the end, and the validation split after every
epoch when the config selects the best epoch by it. Nothing is run and the data folder is
not read.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass

from ammpl.sweep.cost_model import (
    DEFAULT_DEVICE_MEMORY_GB,
    DEFAULT_DEVICE_TFLOPS,
    DEFAULT_UTILISATION,
    RunCost,
    base_new_classes,
    find_method,
    load_cost_model,
    pair_budget,
    run_cost,
)
from ammpl.utils.errors import ConfigError

CONFIG_MARK = os.path.join("configs", "trainers") + os.sep


def add_estimate_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("cost estimate (docs/REPRODUCING.md, bench/cost.py)")
    group.add_argument(
        "--estimate",
        action="store_true",
        help="print each run's and the total images, PFLOPs and GPU-hours; run nothing",
    )
    group.add_argument(
        "--device-tflops",
        type=float,
        default=DEFAULT_DEVICE_TFLOPS,
        help=f"device peak TFLOP/s (default {DEFAULT_DEVICE_TFLOPS:g}: H100 bf16 dense)",
    )
    group.add_argument(
        "--utilisation",
        type=float,
        default=DEFAULT_UTILISATION,
        help=f"fraction of the peak reached (default {DEFAULT_UTILISATION:g}, see README)",
    )
    group.add_argument(
        "--device-memory",
        type=float,
        default=DEFAULT_DEVICE_MEMORY_GB,
        help=f"GB of device memory; warn above it (default {DEFAULT_DEVICE_MEMORY_GB:g})",
    )


@dataclass
class RunEstimate:
    folder: str
    method: str
    dataset: str
    cost: RunCost
    note: str = ""


def _config_key(path: str) -> str:
    """configs/trainers/X/Y.yaml → X/Y.yaml (the cost model's key)."""
    path = os.path.normpath(path)
    return path.split(CONFIG_MARK, 1)[1] if CONFIG_MARK in path else os.path.basename(path)


def _cfg_of(train_args: list[str], cwd: str):
    import ammpl.trainers  # noqa: F401  (registers every method's config node)
    from ammpl.cli.train import build_parser
    from ammpl.engine.config import setup_cfg

    args = build_parser().parse_args(train_args)
    for name in ("config_file", "dataset_config_file"):
        value = getattr(args, name)
        if value and not os.path.isabs(value):
            setattr(args, name, os.path.join(cwd, value))
    return args, setup_cfg(args)


def estimate_run(
    run, model: list[dict], cwd: str, device_memory_gb: float = DEFAULT_DEVICE_MEMORY_GB
) -> RunEstimate:
    """The predicted cost of one planned run."""
    from ammpl.data.published import PUBLISHED

    args, cfg = _cfg_of(run.train_args, cwd)
    entry, exact = find_method(model, args.trainer, _config_key(args.config_file))
    if entry is None:
        raise ConfigError(
            f"the cost model has no trainer {args.trainer} (run bench/cost.py --write-model)"
        )
    published = PUBLISHED.get(cfg.DATASET.NAME)
    if published is None:
        raise ConfigError(
            f"no published size for dataset {cfg.DATASET.NAME} (ammpl.data.published)"
        )
    classes = base_new_classes(published.classes, cfg.DATASET.SUBSAMPLE_CLASSES)
    share = classes / published.classes
    train_images = 0
    if not args.eval_only:
        shots = int(cfg.DATASET.NUM_SHOTS)
        full = published.sizes.get("train", 0) * share
        train_images = int(min(shots * classes, full) if shots > 0 else full)
    test_images = 0 if cfg.TEST.NO_TEST else int(published.sizes["test"] * share)
    epochs = int(cfg.OPTIM.MAX_EPOCH)
    val_images = 0
    if not args.eval_only and cfg.TEST.FINAL_MODEL == "best_val":
        val_images = int(published.sizes.get("val", 0) * share) * epochs
    node = cfg.TRAINER.get(args.trainer.upper())
    chunk = int(node.CLASS_CHUNK) if node is not None and "CLASS_CHUNK" in node else 0
    cost = run_cost(
        entry,
        budget=pair_budget(entry, chunk, device_memory_gb),
        train_images=train_images,
        train_batch=int(cfg.DATALOADER.TRAIN_X.BATCH_SIZE),
        train_classes=classes,
        epochs=epochs,
        eval_images=test_images + val_images,
        eval_batch=int(cfg.DATALOADER.TEST.BATCH_SIZE),
        eval_classes=classes,
    )
    note = "" if exact else f"cost of {entry['config']}"
    return RunEstimate(run.output_dir, args.trainer, cfg.DATASET.NAME, cost, note)


def format_estimate(estimates: list[RunEstimate], args: argparse.Namespace) -> list[str]:
    from tabulate import tabulate

    hours = [e.cost.gpu_hours(args.device_tflops, args.utilisation) for e in estimates]
    rows = [
        [
            e.folder,
            e.method,
            e.cost.train_images,
            e.cost.eval_images,
            f"{e.cost.flops / 1e15:.3f}",
            f"{h:.3g}",
            f"{e.cost.peak_bytes / 1e9:.1f}",
            e.note,
        ]
        for e, h in zip(estimates, hours)
    ]
    rows.append(
        [
            "total",
            "",
            sum(e.cost.train_images for e in estimates),
            sum(e.cost.eval_images for e in estimates),
            f"{sum(e.cost.flops for e in estimates) / 1e15:.3f}",
            f"{sum(hours):.3g}",
            f"{max((e.cost.peak_bytes for e in estimates), default=0) / 1e9:.1f}",
            "",
        ]
    )
    headers = [
        "run",
        "trainer",
        "train images",
        "eval images",
        "PFLOP",
        "GPU-hours",
        "peak GB",
        "note",
    ]
    lines = [
        f"Estimate: {len(estimates)} run(s) at {args.device_tflops:g} TFLOP/s × "
        f"{args.utilisation:g} utilisation (cost model: bench/cost.py; nothing was run)",
        tabulate(rows, headers=headers, tablefmt="github"),
    ]
    for e in estimates:
        if e.cost.peak_bytes > args.device_memory * 1e9:
            lines.append(
                f"warning: {e.folder}: predicted peak memory {e.cost.peak_bytes / 1e9:.1f} GB "
                f"exceeds --device-memory {args.device_memory:g} GB"
            )
    return lines


def estimate_main(args: argparse.Namespace, spec_from_args) -> int:
    """The --estimate branch of ammpl-sweep: plan the runs, print their cost."""
    from ammpl.sweep.plan import expand

    if args.device_tflops <= 0 or not 0 < args.utilisation <= 1 or args.device_memory <= 0:
        raise ConfigError(
            "--device-tflops and --device-memory must be positive and --utilisation in (0, 1]"
        )
    if not args.data:  # the scripts need a DATA value; nothing is read from it
        args.data = os.getcwd()
    runs = expand(spec_from_args(args))
    model = load_cost_model()
    cwd = os.getcwd()
    estimates = [estimate_run(run, model, cwd, args.device_memory) for run in runs]
    for line in format_estimate(estimates, args):
        print(line, file=sys.stdout if not line.startswith("warning") else sys.stderr)
    return 0
