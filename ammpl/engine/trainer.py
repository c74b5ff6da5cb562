"""Dassl's trainer classes: same method names, signatures, call order and log lines.

`TrainerBase` keeps the registered models (with optimiser and scheduler) and the generic
loop; `SimpleTrainer` adds config, data, evaluation and checkpoint policy; `TrainerX`
trains on labelled batches. Lifecycle: DASSL_API.md §5.

Ours on top of Dassl:
- a checkpoint after *every* epoch (`model.pth.tar-<epoch>` + `checkpoint` pointer),
  carrying the RNG states (`rng_state`) and the best val result, so that an interrupted
  run resumed from its folder continues the same random stream and ends with the same
  weights. The previous epoch's file is deleted unless TRAIN.CHECKPOINT_FREQ keeps it,
  so a finished folder holds what Dassl would leave;
- `--resume DIR` with no checkpoint in DIR is an error (Dassl silently starts over);
- `self.run_record` writes `<output>/results.json` after every epoch and every test;
- progress bars only on a terminal; tensorboard only when the package is installed.
"""

from __future__ import annotations

import datetime
import math
import os
import sys
import time
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from ammpl.engine import distributed
from ammpl.engine.checkpoint import (
    BEST_MODEL_NAME,
    POINTER_NAME,
    checkpoint_name,
    load_state_dict_checked,
    load_training_checkpoint,
    missing_checkpoint_error,
    remove_checkpoint,
    restore_checkpoint,
    save_checkpoint,
)
from ammpl.engine.evaluator import build_evaluator
from ammpl.engine.logger import terminal_stream
from ammpl.engine.run_record import RunRecord
from ammpl.engine.utils import AverageMeter, MetricMeter, capture_rng_state, restore_rng_state
from ammpl.utils.errors import AmmplError, CheckpointError
from ammpl.utils.io import mkdir_if_missing
from ammpl.utils.registry import Registry

TRAINER_REGISTRY = Registry("Trainer")


class NonFiniteLossError(AmmplError, FloatingPointError):
    """The training loss became NaN or infinite."""


def build_trainer(cfg: Any) -> TrainerBase:
    """`TRAINER_REGISTRY.get(cfg.TRAINER.NAME)(cfg)`."""
    trainer_cls = TRAINER_REGISTRY.get(cfg.TRAINER.NAME)
    if cfg.VERBOSE:
        print(f"Loading trainer: {cfg.TRAINER.NAME}")
    return trainer_cls(cfg)


def _as_list(names: str | Iterable[str]) -> list[str]:
    return [names] if isinstance(names, str) else list(names)


def _format_duration(seconds: float) -> str:
    return str(datetime.timedelta(seconds=int(round(seconds))))


class TrainerBase:
    """Registered models and the generic train loop (no config, no data)."""

    def __init__(self) -> None:
        self._models: OrderedDict[str, nn.Module] = OrderedDict()
        self._optims: OrderedDict[str, torch.optim.Optimizer | None] = OrderedDict()
        self._scheds: OrderedDict[str, Any] = OrderedDict()
        self._writer: Any = None
        self.best_result = -np.inf

    # ------------------------------------------------------------------ models
    def register_model(
        self,
        name: str = "model",
        model: nn.Module | None = None,
        optim: torch.optim.Optimizer | None = None,
        sched: Any = None,
    ) -> None:
        if self.__dict__.get("_models") is None:
            raise AttributeError("Cannot assign model before super().__init__() call")
        if self.__dict__.get("_optims") is None or self.__dict__.get("_scheds") is None:
            raise AttributeError("Cannot assign optim/sched before super().__init__() call")
        if name in self._models:
            raise KeyError(f"Found duplicate model names: {name!r} is already registered")
        if model is None:
            raise ValueError(f"register_model({name!r}) needs a model")
        self._models[name] = model
        self._optims[name] = optim
        self._scheds[name] = sched

    def get_model_names(self, names: str | Iterable[str] | None = None) -> list[str]:
        registered = list(self._models.keys())
        if names is None:
            return registered
        names = _as_list(names)
        unknown = [n for n in names if n not in registered]
        if unknown:
            raise KeyError(f"Models {unknown} are not registered (registered: {registered})")
        return names

    def set_model_mode(self, mode: str = "train", names: str | Iterable[str] | None = None) -> None:
        if mode not in ("train", "test", "eval"):
            raise ValueError(f"Unknown model mode {mode!r}; use 'train' or 'eval'")
        for name in self.get_model_names(names):
            self._models[name].train(mode == "train")

    def update_lr(self, names: str | Iterable[str] | None = None) -> None:
        for name in self.get_model_names(names):
            if self._scheds[name] is not None:
                self._scheds[name].step()

    def get_current_lr(self, names: str | Iterable[str] | None = None) -> float:
        """lr of the first param group of the first (given) model's optimiser."""
        name = self.get_model_names(names)[0]
        return self._optims[name].param_groups[0]["lr"]

    def _current_lr_or_none(self) -> float | None:
        optims = [o for o in self._optims.values() if o is not None]
        return float(optims[0].param_groups[0]["lr"]) if optims else None

    # ------------------------------------------------------------------ optimisation
    def detect_anomaly(self, loss: torch.Tensor) -> None:
        if not torch.isfinite(loss).all():
            where = ""
            if hasattr(self, "epoch") and hasattr(self, "batch_idx"):
                where = f" (epoch {self.epoch + 1}, batch {self.batch_idx + 1})"
            raise NonFiniteLossError(
                f"Loss is infinite or NaN!{where}; try a lower OPTIM.LR or PREC fp32/amp"
            )

    def model_zero_grad(self, names: str | Iterable[str] | None = None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].zero_grad()

    def model_backward(self, loss: torch.Tensor) -> None:
        self.detect_anomaly(loss)
        loss.backward()

    def model_update(self, names: str | Iterable[str] | None = None) -> None:
        for name in self.get_model_names(names):
            if self._optims[name] is not None:
                self._optims[name].step()

    def model_backward_and_update(
        self, loss: torch.Tensor, names: str | Iterable[str] | None = None
    ) -> None:
        self.model_zero_grad(names)
        self.model_backward(loss)
        self.model_update(names)

    # ------------------------------------------------------------------ checkpoints
    def checkpoint_state_dict(self, name: str) -> dict[str, Any]:
        """What a checkpoint of model `name` stores (override to save a subset, e.g. the
        trainable tensors only); resuming then requires exactly these keys."""
        return self._models[name].state_dict()

    def _extra_checkpoint_state(self) -> dict[str, Any]:
        """Trainer state saved beside every model's weights (extend in subclasses)."""
        best = float(self.best_result) if self.best_result is not None else None
        return {"rng_state": capture_rng_state(), "best_result": best}

    def _restore_extra_checkpoint_state(self, checkpoint: dict[str, Any]) -> None:
        """Inverse of `_extra_checkpoint_state`, called when a run resumes."""
        if checkpoint.get("best_result") is not None:
            self.best_result = checkpoint["best_result"]
        if checkpoint.get("rng_state"):
            restore_rng_state(checkpoint["rng_state"])

    def save_model(
        self,
        epoch: int,
        directory: str,
        is_best: bool = False,
        val_result: float | None = None,
        model_name: str = "",
    ) -> None:
        """One checkpoint per registered model under `<directory>/<name>/` (epoch is 0-based).

        Under torchrun only rank 0 writes; every rank leaves once the files exist."""
        if not distributed.is_main_process():
            distributed.barrier()
            return
        extra = self._extra_checkpoint_state()
        for name in self.get_model_names():
            optim, sched = self._optims[name], self._scheds[name]
            state = {
                "state_dict": self.checkpoint_state_dict(name),
                "epoch": epoch + 1,
                "optimizer": optim.state_dict() if optim is not None else None,
                "scheduler": sched.state_dict() if sched is not None else None,
                "val_result": val_result,
                **extra,
            }
            save_checkpoint(
                state, os.path.join(directory, name), is_best=is_best, model_name=model_name
            )
        distributed.barrier()

    def has_checkpoint(self, directory: str) -> bool:
        names = self.get_model_names()
        return bool(names) and all(
            os.path.isfile(os.path.join(directory, name, POINTER_NAME)) for name in names
        )

    def resume_model_if_exist(self, directory: str) -> int:
        """Load the newest checkpoint of every model (and the RNG states); return its epoch."""
        if not self.has_checkpoint(directory):
            print("No checkpoint found, train from scratch")
            return 0
        print(f"Found checkpoint at {directory} (will resume training)")
        epochs, first = set(), None
        for name in self.get_model_names():
            checkpoint = restore_checkpoint(
                os.path.join(directory, name),
                self._models[name],
                self._optims[name],
                self._scheds[name],
                required_keys=list(self.checkpoint_state_dict(name).keys()),
            )
            epochs.add(int(checkpoint["epoch"]))
            first = first or checkpoint
        if len(epochs) > 1:
            raise CheckpointError(
                f"The model checkpoints in {directory} are from different epochs "
                f"{sorted(epochs)}; delete the folder's checkpoints and re-run training"
            )
        self._restore_extra_checkpoint_state(first)
        return epochs.pop()

    def load_model(self, directory: str, epoch: int | None = None) -> None:
        """Load `<directory>/<name>/model.pth.tar-<epoch>` (model-best.pth.tar if no epoch)."""
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        model_file = BEST_MODEL_NAME if epoch is None else checkpoint_name(epoch)
        for name in self.get_model_names():
            model_path = os.path.join(directory, name, model_file)
            if not os.path.isfile(model_path):
                raise missing_checkpoint_error(model_path)
            checkpoint = load_training_checkpoint(model_path)
            saved_epoch = checkpoint.get("epoch")
            val_result = checkpoint.get("val_result")
            extra = f", val_result={val_result:.1f}" if val_result is not None else ""
            print(f"Load {model_path} to {name} (epoch={saved_epoch}{extra})")
            load_state_dict_checked(
                self._models[name],
                checkpoint["state_dict"],
                model_path,
                required_keys=list(self.checkpoint_state_dict(name).keys()),
            )
            if saved_epoch is not None:
                self._epochs_done = int(saved_epoch)

    # ------------------------------------------------------------------ tensorboard
    def init_writer(self, log_dir: str) -> None:
        """Open a SummaryWriter if tensorboard is installed; otherwise stay silent."""
        if self.__dict__.get("_writer") is not None or not distributed.is_main_process():
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return
        mkdir_if_missing(log_dir)
        print(f"Initialize tensorboard (log_dir={log_dir})")
        self._writer = SummaryWriter(log_dir=log_dir)

    def close_writer(self) -> None:
        if self.__dict__.get("_writer") is not None:
            self._writer.close()
            self._writer = None

    def write_scalar(self, tag: str, scalar_value: float, global_step: int | None = None) -> None:
        if self._writer is not None:
            self._writer.add_scalar(tag, scalar_value, global_step)

    # ------------------------------------------------------------------ loop
    def train(self, start_epoch: int, max_epoch: int) -> None:
        self.start_epoch = start_epoch
        self.max_epoch = max_epoch
        try:
            self.before_train()
            for self.epoch in range(self.start_epoch, self.max_epoch):  # noqa: B020
                self.before_epoch()
                self.run_epoch()
                self.after_epoch()
            self.after_train()
        except BaseException as error:
            self.on_train_interrupted(error)
            raise

    def on_train_interrupted(self, error: BaseException) -> None:
        """Called when train() is left by an exception (KeyboardInterrupt included)."""
        self.close_writer()

    def before_train(self) -> None:
        pass

    def after_train(self) -> None:
        pass

    def before_epoch(self) -> None:
        pass

    def after_epoch(self) -> None:
        pass

    def run_epoch(self) -> None:
        raise NotImplementedError

    def test(self, split: str | None = None) -> float:
        raise NotImplementedError

    def parse_batch_train(self, batch: Any) -> Any:
        raise NotImplementedError

    def parse_batch_test(self, batch: Any) -> Any:
        raise NotImplementedError

    def forward_backward(self, batch: Any) -> dict[str, float]:
        raise NotImplementedError

    def model_inference(self, input: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SimpleTrainer(TrainerBase):
    """Config, data, one evaluator, Dassl's epoch/checkpoint/test policy."""

    distributed_run: distributed.DistributedRun | None = None  # set under torchrun

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.check_cfg(cfg)
        if torch.cuda.is_available() and cfg.USE_CUDA:
            self.device = torch.device("cuda")
        else:
            self.device = torch.device("cpu")
        self.start_epoch = self.epoch = 0
        self.max_epoch = cfg.OPTIM.MAX_EPOCH
        self.output_dir = cfg.OUTPUT_DIR
        self.cfg = cfg
        self._train_started = False
        self._epochs_done = 0
        self._bar: Any = None
        self.run_record = RunRecord(cfg, self.output_dir)  # build_model may add to its meta
        # torchrun: rank 0 first, so that it alone writes caches (few-shot split, weights)
        with distributed.main_process_first():
            self.build_data_loader()
            self.build_model()
        self.distributed_run = distributed.current()  # torchrun: shard loaders, DDP
        if self.distributed_run is not None:
            self.distributed_run.attach(self)
        self.evaluator = build_evaluator(cfg, lab2cname=self.lab2cname)
        self.best_result = -np.inf

    def check_cfg(self, cfg: Any) -> None:
        """Hook for trainers to validate their config before anything is built."""

    def build_data_loader(self) -> None:
        from ammpl.data import DataManager

        dm = DataManager(self.cfg)
        self.train_loader_x = dm.train_loader_x
        self.train_loader_u = getattr(dm, "train_loader_u", None)
        self.val_loader = dm.val_loader
        self.test_loader = dm.test_loader
        self.num_classes = dm.num_classes
        self.num_source_domains = dm.num_source_domains
        self.lab2cname = dm.lab2cname
        self.dm = dm
        self.run_record.meta["shots_per_class"] = getattr(dm, "shots_per_class", None)
        if hasattr(dm, "skipped_image_paths"):  # undecodable images skipped (SKIP_BAD_IMAGES)
            self.run_record.skipped_images = lambda: len(set(dm.skipped_image_paths))

    def build_model(self) -> None:
        raise NotImplementedError(
            f"{type(self).__name__} must implement build_model() and register its model"
        )

    # ------------------------------------------------------------------ display
    def _progress(self, iterable: Iterable[Any], total: int, desc: str) -> Iterable[Any]:
        """A tqdm bar on the terminal (never into log.txt); the bare iterable otherwise."""
        if not sys.stdout.isatty():
            return iterable
        from tqdm import tqdm

        self._bar = tqdm(
            iterable,
            total=total,
            desc=desc,
            leave=False,
            file=terminal_stream(),
            dynamic_ncols=True,
        )
        return self._bar

    def _end_progress(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def _print_line(self, line: str) -> None:
        """print() that keeps an active progress bar intact."""
        if self._bar is not None:
            self._bar.clear()
        print(line, flush=self._bar is not None)
        if self._bar is not None:
            self._bar.refresh()

    # ------------------------------------------------------------------ loop
    def train(self) -> None:  # type: ignore[override]
        super().train(self.start_epoch, self.max_epoch)

    def before_train(self) -> None:
        self._train_started = True
        directory = self.cfg.OUTPUT_DIR
        if self.cfg.RESUME:
            directory = self.cfg.RESUME
            if not self.has_checkpoint(directory):
                name = (self.get_model_names() or ["<model>"])[0]
                raise CheckpointError(
                    f"RESUME {directory}: no checkpoint to resume from (expected "
                    f"{os.path.join(directory, name, POINTER_NAME)})"
                )
        self.start_epoch = self.resume_model_if_exist(directory)
        self._epochs_done = self.start_epoch
        self.init_writer(os.path.join(self.output_dir, "tensorboard"))
        self.time_start = time.time()
        self.run_record.status = "training"

    def after_epoch(self) -> None:
        self._epochs_done = self.epoch + 1
        self._record_epoch()
        if not self.cfg.TEST.NO_TEST and self.cfg.TEST.FINAL_MODEL == "best_val":
            curr_result = self.test(split="val")
            if curr_result > self.best_result:
                self.best_result = curr_result
                self.save_model(
                    self.epoch,
                    self.output_dir,
                    val_result=curr_result,
                    model_name=BEST_MODEL_NAME,
                )
        self.save_model(self.epoch, self.output_dir)
        self._prune_previous_checkpoint()
        self.run_record.save()

    def _keeps_epoch(self, epoch: int) -> bool:
        """Does Dassl keep `model.pth.tar-<epoch>` (1-based) at the end of training?"""
        freq = self.cfg.TRAIN.CHECKPOINT_FREQ
        return epoch == self.max_epoch or (freq > 0 and epoch % freq == 0)

    def _prune_previous_checkpoint(self) -> None:
        previous = self.epoch  # 1-based number of the epoch before this one
        if previous < 1 or self._keeps_epoch(previous) or not distributed.is_main_process():
            return
        for name in self.get_model_names():
            remove_checkpoint(os.path.join(self.output_dir, name), previous)

    def after_train(self) -> None:
        print("Finish training")
        if not self.cfg.TEST.NO_TEST:
            if self.cfg.TEST.FINAL_MODEL == "best_val":
                print("Deploy the model with the best val performance")
                self.load_model(self.output_dir)
            else:
                print("Deploy the last-epoch model")
            self.test()
        print(f"Elapsed: {_format_duration(time.time() - self.time_start)}")
        self.close_writer()
        self.run_record.status = "finished"
        self.run_record.save()

    def on_train_interrupted(self, error: BaseException) -> None:
        self._end_progress()
        super().on_train_interrupted(error)
        interrupted = isinstance(error, KeyboardInterrupt)
        self.run_record.status = "interrupted" if interrupted else f"failed: {type(error).__name__}"
        try:
            self.run_record.save()
        except OSError:
            pass

    def _record_epoch(self) -> None:
        meters = getattr(self, "_epoch_meters", None)
        metrics = {name: meter.avg for name, meter in meters.meters.items()} if meters else {}
        if getattr(self, "_epoch_seconds", None) is not None:
            metrics["time_s"] = round(self._epoch_seconds, 3)
        metrics.update(self.epoch_extras())
        self.run_record.record_epoch(self.epoch + 1, metrics, getattr(self, "_epoch_lr", None))

    def epoch_extras(self) -> dict[str, Any]:
        """Method-specific facts of the epoch just trained, stored in its results.json
        entry (e.g. AMMPL's mask statistics)."""
        return {}

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def test(self, split: str | None = None) -> float:
        """Evaluate on `split` (default TEST.SPLIT); returns the first metric (accuracy)."""
        self.set_model_mode("eval")
        self.evaluator.reset()
        if split is None:
            split = self.cfg.TEST.SPLIT
        if split == "val" and self.val_loader is not None:
            data_loader = self.val_loader
        else:
            split = "test"
            data_loader = self.test_loader
        print(f"Evaluate on the *{split}* set")
        try:
            for batch in self._progress(data_loader, len(data_loader), f"eval {split}"):
                input, label = self.parse_batch_test(batch)
                output = self.model_inference(input)
                self.evaluator.process(output, label)
        finally:
            self._end_progress()
        results = distributed.evaluate(self.evaluator)  # gathered over ranks under torchrun
        for key, value in results.items():
            self.write_scalar(f"{split}/{key}", value, self.epoch)
        self._record_test(split, results)
        return list(results.values())[0]

    def _record_test(self, split: str, results: dict[str, float]) -> None:
        record = self.run_record
        record.eval_only = not self._train_started
        record.record_test(
            split,
            dict(results),
            total=getattr(self.evaluator, "total", None),
            correct=getattr(self.evaluator, "correct", None),
            epoch=self._epochs_done,
        )
        if record.eval_only:
            record.status = "evaluated"
        record.save()

    def model_inference(self, input: torch.Tensor) -> torch.Tensor:
        return self.model(input)

    def parse_batch_test(self, batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        return batch["img"].to(self.device), batch["label"].to(self.device)


class TrainerX(SimpleTrainer):
    """Trains on labelled data only (`train_loader_x`)."""

    def run_epoch(self) -> None:
        self.set_model_mode("train")
        losses = MetricMeter()
        batch_time = AverageMeter()
        data_time = AverageMeter()
        self.num_batches = len(self.train_loader_x)
        self._epoch_meters = losses
        self._epoch_lr = self._current_lr_or_none()
        print_freq = max(int(self.cfg.TRAIN.PRINT_FREQ), 1)
        if self.distributed_run is not None:
            self.distributed_run.before_epoch(self.epoch)
        epoch_start = end = time.time()
        batches = self._progress(
            self.train_loader_x, self.num_batches, f"epoch {self.epoch + 1}/{self.max_epoch}"
        )
        try:
            for self.batch_idx, batch in enumerate(batches):
                data_time.update(time.time() - end)
                if self.distributed_run is not None:
                    self.distributed_run.before_step(batch)
                loss_summary = self.forward_backward(batch)
                batch_time.update(time.time() - end)
                losses.update(loss_summary)

                meet_freq = (self.batch_idx + 1) % print_freq == 0
                only_few_batches = self.num_batches < print_freq
                if meet_freq or only_few_batches:
                    self._print_line(self._batch_line(losses, batch_time, data_time))

                n_iter = self.epoch * self.num_batches + self.batch_idx
                for name, meter in losses.meters.items():
                    self.write_scalar("train/" + name, meter.avg, n_iter)
                lr = self._current_lr_or_none() if self._writer is not None else None
                if lr is not None:
                    self.write_scalar("train/lr", lr, n_iter)
                end = time.time()
        finally:
            self._end_progress()
        self._epoch_seconds = time.time() - epoch_start

    def _batch_line(
        self, losses: MetricMeter, batch_time: AverageMeter, data_time: AverageMeter
    ) -> str:
        remaining = self.num_batches - self.batch_idx - 1
        remaining += (self.max_epoch - self.epoch - 1) * self.num_batches
        eta_seconds = batch_time.avg * remaining
        lr = self._current_lr_or_none()
        lr_text = f"{lr:.4e}" if lr is not None and math.isfinite(lr) else "n/a"
        return " ".join(
            [
                f"epoch [{self.epoch + 1}/{self.max_epoch}]",
                f"batch [{self.batch_idx + 1}/{self.num_batches}]",
                f"time {batch_time.val:.3f} ({batch_time.avg:.3f})",
                f"data {data_time.val:.3f} ({data_time.avg:.3f})",
                f"{losses}",
                f"lr {lr_text}",
                f"eta {datetime.timedelta(seconds=int(eta_seconds))}",
            ]
        )

    def parse_batch_train(
        self, batch: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return (
            batch["img"].to(self.device),
            batch["label"].to(self.device),
            batch["domain"].to(self.device),
        )
