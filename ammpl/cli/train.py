"""`train.py` / `ammpl-train`: CoOp's and MaPLe's command line, on our engine.

Same flags, same config precedence (defaults ← dataset yaml ← method yaml ← flags ← trailing
KEY VALUE pairs), same log lines. Differences, all deliberate: `--seed 0` is a seed;
user errors print one line and exit with code 2 (`--debug` shows the traceback); an
existing log.txt is appended to, never replaced.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from ammpl.utils import AmmplError, ConfigError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ammpl-train",
        description="Train or evaluate a CLIP prompt-learning method (CoOp-compatible flags).",
    )
    parser.add_argument("--root", type=str, default="", help="path to the dataset folder ($DATA)")
    parser.add_argument("--output-dir", type=str, default="", help="output directory")
    parser.add_argument(
        "--resume", type=str, default="", help="checkpoint directory to resume training from"
    )
    parser.add_argument(
        "--seed", type=int, default=-1, help="random seed; 0 is a valid seed, negative = unseeded"
    )
    parser.add_argument("--source-domains", type=str, nargs="+", help="source domains for DA/DG")
    parser.add_argument("--target-domains", type=str, nargs="+", help="target domains for DA/DG")
    parser.add_argument("--transforms", type=str, nargs="+", help="data augmentation methods")
    parser.add_argument("--config-file", type=str, default="", help="path to the method config")
    parser.add_argument(
        "--dataset-config-file", type=str, default="", help="path to the dataset config"
    )
    parser.add_argument("--trainer", type=str, default="", help="name of the trainer")
    parser.add_argument("--backbone", type=str, default="", help="name of the CNN backbone")
    parser.add_argument("--head", type=str, default="", help="name of the head")
    parser.add_argument("--eval-only", action="store_true", help="evaluation only")
    parser.add_argument(
        "--model-dir", type=str, default="", help="load the model from this directory (eval-only)"
    )
    parser.add_argument(
        "--load-epoch", type=int, help="load the weights of this epoch (default: model-best)"
    )
    parser.add_argument("--no-train", action="store_true", help="build everything, do not train")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="print the full config and environment on the terminal (always in log.txt)",
    )
    parser.add_argument(
        "opts",
        default=None,
        nargs=argparse.REMAINDER,
        help="modify config options using the command line (KEY VALUE pairs)",
    )
    return parser


def format_args(args: argparse.Namespace, cfg) -> str:
    """Dassl's "Arguments" and "Config" blocks, as they appear in log.txt."""
    lines = ["***************", "** Arguments **", "***************"]
    lines += [f"{key}: {getattr(args, key)}" for key in sorted(vars(args))]
    lines += ["************", "** Config **", "************", str(cfg)]
    return "\n".join(lines)


def run_header(cfg, eval_only: bool = False) -> str:
    """The few lines a terminal gets instead of the ~180-line config."""
    shots = cfg.DATASET.NUM_SHOTS
    facts = [
        f"trainer {cfg.TRAINER.NAME}",
        f"dataset {cfg.DATASET.NAME}",
        f"backbone {cfg.MODEL.BACKBONE.NAME}",
        f"{shots} shots" if shots >= 1 else "all training images",
        f"classes {cfg.DATASET.SUBSAMPLE_CLASSES}",
        f"seed {cfg.SEED}",
        "evaluation only" if eval_only else f"{cfg.OPTIM.MAX_EPOCH} epochs",
    ]
    where = cfg.OUTPUT_DIR or "(no output folder)"
    return (
        f"Run: {', '.join(facts)}\n"
        f"Output: {where} (full config and environment in log.txt; --verbose prints them here)"
    )


def print_args(args: argparse.Namespace, cfg, verbose: bool = False) -> None:
    """Full arguments, config and environment into log.txt; a short header on the terminal."""
    from ammpl.engine import collect_env_info
    from ammpl.engine.logger import log_only

    full = f"{format_args(args, cfg)}\nCollecting env info ...\n** System info **\n"
    full += f"{collect_env_info()}\n"
    if verbose or not log_only(full):
        print(full)
    print(run_header(cfg, eval_only=bool(getattr(args, "eval_only", False))))


def check_before_building(args: argparse.Namespace, cfg) -> None:
    """Errors that need no data or model, raised before anything is written."""
    from ammpl.engine import TRAINER_REGISTRY

    if not cfg.TRAINER.NAME:
        raise ConfigError("No trainer given: pass --trainer NAME (e.g. CoOp, AMMPL)")
    trainer_cls = TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    if args.eval_only and not args.model_dir and getattr(trainer_cls, "LEARNS", True):
        raise ConfigError(
            f"--eval-only with trainer {cfg.TRAINER.NAME} needs --model-dir: the output folder "
            f"of the training run (it holds {getattr(trainer_cls, 'MODEL_NAME', '<model>')}/)"
        )
    if not (args.eval_only or args.no_train or getattr(trainer_cls, "LEARNS", True)):
        raise ConfigError(f"Trainer {cfg.TRAINER.NAME} learns nothing: run it with --eval-only")
    if not cfg.DATASET.NAME:
        raise ConfigError(
            "No dataset given: pass --dataset-config-file configs/datasets/<name>.yaml"
        )
    from ammpl.data.registry import check_dataset_folder

    check_dataset_folder(cfg)  # a wrong --root stops here, before the output folder exists


@contextmanager
def scratch_trainer(args: argparse.Namespace) -> Iterator:
    """The trainer `train.py` would build from `args`, seeded, writing only to a temporary
    output folder that is removed afterwards: for tools that measure a configured (or, with
    `--model-dir`, trained) run without leaving a run folder behind (bench/)."""
    import tempfile

    import ammpl.data.datasets  # noqa: F401  (registers the dataset readers)
    import ammpl.trainers  # noqa: F401  (registers trainers and their config nodes)
    from ammpl.engine import build_trainer, set_random_seed
    from ammpl.engine.config import setup_cfg

    with tempfile.TemporaryDirectory() as scratch:
        args.output_dir = os.path.join(scratch, "out")
        cfg = setup_cfg(args)
        set_random_seed(max(cfg.SEED, 0))
        trainer = build_trainer(cfg)
        if args.model_dir:
            trainer.load_model(args.model_dir, epoch=args.load_epoch)
        yield trainer


@contextmanager
def hold_output_folder(folder: str, rank_info) -> Iterator[None]:
    """One run folder, one writer (ammpl.utils.run_lock): the run holds OUTPUT_DIR's lock
    from before its first write to its end; under torchrun rank 0 holds it for all ranks
    (a refused rank 0 exits, and torchrun ends the others). A SIGTERM (Slurm preemption,
    scancel) releases it before the process ends."""
    if not folder or (rank_info is not None and rank_info.rank != 0):
        yield
        return
    import signal

    from ammpl.utils.run_lock import RunLock

    lock = RunLock(folder)
    lock.acquire()  # RunLockedError (exit 2) before anything is written

    def on_sigterm(signum, frame):  # noqa: ARG001
        lock.release()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    previous = None
    try:
        if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            previous = signal.signal(signal.SIGTERM, on_sigterm)
    except ValueError:  # not the main thread: no signal handlers there
        pass
    try:
        yield
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        lock.release()


def run(args: argparse.Namespace) -> int:
    # torch and the engine are imported here, not at module level: `ammpl.sweep.done` loads
    # build_parser only
    import ammpl.data.datasets  # noqa: F401  (registers the dataset readers)
    import ammpl.trainers  # noqa: F401  (registers trainers and their config nodes)
    from ammpl.engine import distributed
    from ammpl.engine.config import setup_cfg
    from ammpl.engine.trained_settings import adopt_trained_settings

    cfg = setup_cfg(args)
    check_before_building(args, cfg)
    adopted = adopt_trained_settings(cfg, args)  # an evaluation loads the model it tests

    rank_info = distributed.rank_info_from_env()  # None unless started by torchrun
    if rank_info is not None and not (args.eval_only or args.no_train):
        distributed.check_batch_size(cfg.DATALOADER.TRAIN_X.BATCH_SIZE, rank_info.world_size)
    with hold_output_folder(cfg.OUTPUT_DIR, rank_info):
        return _run_held(args, cfg, adopted)


def _run_held(args: argparse.Namespace, cfg, adopted: str | None) -> int:
    """The run itself, once it holds its output folder."""
    import torch

    from ammpl.engine import build_trainer, distributed, set_random_seed, setup_logger

    run_group = distributed.setup(cfg.USE_CUDA, cfg.SEED)
    if run_group is not None and not run_group.is_main:
        distributed.silence_stdout()
    if cfg.SEED >= 0:
        print(f"Setting fixed seed: {cfg.SEED}")
        set_random_seed(cfg.SEED)
    elif run_group is not None:  # every rank must draw the same few-shot subset
        print(f"Setting seed shared by the {run_group.world_size} processes: {run_group.seed}")
        set_random_seed(run_group.seed)
    if distributed.is_main_process():
        setup_logger(cfg.OUTPUT_DIR)
    if torch.cuda.is_available() and cfg.USE_CUDA:
        torch.backends.cudnn.benchmark = True

    print_args(args, cfg, verbose=args.verbose)
    if adopted:
        print(adopted)

    trainer = build_trainer(cfg)
    from ammpl.utils.run_settings import requested_settings

    trainer.run_record.meta.update(
        config_file=args.config_file,
        dataset_config_file=args.dataset_config_file,
        argv=list(sys.argv),
        eval_only=bool(args.eval_only),
        model_dir=args.model_dir,
        settings=requested_settings(args),  # what "already finished" compares
    )

    if args.eval_only:
        trainer.load_model(args.model_dir, epoch=args.load_epoch)
        trainer.test()
        return 0
    if not args.no_train:
        trainer.train()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except AmmplError as error:
        if args.debug:
            raise
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print("Interrupted: the last completed epoch's checkpoint is kept; re-run to resume.")
        return 130
    finally:
        leave_process_group()


def leave_process_group() -> None:
    """End the torchrun process group if this run joined one."""
    module = sys.modules.get("ammpl.engine.distributed")
    if module is not None:
        module.shutdown()


if __name__ == "__main__":
    sys.exit(main())
