"""The trainer every CLIP prompt-learning method derives from.

It owns everything the methods share, so that a method module only builds its model:
loading the backbone, the precision mode, freezing CLIP, registering the learnable part
with Dassl's model registry, the cross-entropy step, inference, the checkpoint loader
that tolerates a different class list, and the trainable-parameter report.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from tabulate import tabulate
from torch import nn

from ammpl.clip.precision import to_reference_half
from ammpl.engine import (
    TrainerX,
    build_lr_scheduler,
    build_optimizer,
    compute_accuracy,
    load_pretrained_weights,
)
from ammpl.engine.checkpoint import (
    BEST_MODEL_NAME,
    checkpoint_name,
    load_training_checkpoint,
    missing_checkpoint_error,
)
from ammpl.engine.precision import (
    PRECISIONS,
    autocast_context,
    make_grad_scaler,
    resolve_precision,
)
from ammpl.utils import CheckpointError, ConfigError

CLASS_BUFFER_KEYS = ("token_prefix", "token_suffix")


def load_clip_for(cfg, device: torch.device) -> nn.Module:
    """The frozen backbone named by the config, in eval mode, fp32 (precision comes later)."""
    from ammpl.clip import load_backbone

    backbone = cfg.MODEL.BACKBONE
    return load_backbone(
        backbone.NAME,
        path=backbone.PATH or None,
        device=None,
        allow_tiny_fallback=backbone.ALLOW_TINY_FALLBACK,
    )


def check_input_size(cfg, clip_model: nn.Module) -> None:
    visual = getattr(clip_model, "visual", None)
    image_size = getattr(visual, "image_size", None)
    if image_size is None:
        return
    expected = tuple(image_size) if isinstance(image_size, (tuple, list)) else (image_size,) * 2
    if tuple(cfg.INPUT.SIZE) != expected:
        raise ConfigError(
            f"INPUT.SIZE {tuple(cfg.INPUT.SIZE)} does not match the backbone's input resolution "
            f"{expected}; set INPUT.SIZE {list(expected)}"
        )


def trainable_parameters(module: nn.Module) -> OrderedDict[str, nn.Parameter]:
    return OrderedDict((n, p) for n, p in module.named_parameters() if p.requires_grad)


def parameter_report(module: nn.Module, title: str) -> str:
    """Trainable tensors grouped by their top-level module, so parameter budgets of methods
    can be compared at a glance."""
    groups: OrderedDict[str, int] = OrderedDict()
    for name, param in trainable_parameters(module).items():
        parts = name.split(".")
        group = ".".join(parts[:2]) if len(parts) > 2 else name
        groups[group] = groups.get(group, 0) + param.numel()
    total = sum(groups.values())
    frozen = sum(p.numel() for p in module.parameters() if not p.requires_grad)
    rows = [[group, f"{count:,}"] for group, count in groups.items()]
    rows.append(["total trainable", f"{total:,}"])
    rows.append(["frozen", f"{frozen:,}"])
    return f"Trainable parameters of {title}:\n" + tabulate(rows, headers=["module", "# params"])


class CLIPPromptTrainer(TrainerX):
    """Base class for prompt-learning trainers on a frozen CLIP.

    Subclasses set CFG_NODE, MODEL_NAME and REGISTER_WHOLE_MODEL, and implement
    `build_custom_clip(classnames, clip_model)` returning a module whose forward(images)
    gives (B, K) logits.
    """

    CFG_NODE: str = ""
    MODEL_NAME: str = "prompt_learner"
    REGISTER_WHOLE_MODEL: bool = False
    LEARNS: bool = True  # False: evaluation needs no --model-dir (zero-shot)

    # -- configuration -------------------------------------------------------------
    @property
    def method_cfg(self):
        return self.cfg.TRAINER.get(self.CFG_NODE) if self.CFG_NODE else None

    def requested_precision(self) -> str:
        node = self.method_cfg
        return node.PREC if node is not None and "PREC" in node else "fp32"

    def check_cfg(self, cfg) -> None:
        node = cfg.TRAINER.get(self.CFG_NODE) if self.CFG_NODE else None
        if node is not None and "PREC" in node and node.PREC not in PRECISIONS:
            raise ConfigError(
                f"TRAINER.{self.CFG_NODE}.PREC must be one of {', '.join(PRECISIONS)}, "
                f"got '{node.PREC}'"
            )

    # -- model ---------------------------------------------------------------------
    def build_custom_clip(self, classnames: list[str], clip_model: nn.Module) -> nn.Module:
        raise NotImplementedError

    def load_clip(self) -> nn.Module:
        """The frozen backbone in the run's precision; records where it came from."""
        cfg = self.cfg
        self.precision = resolve_precision(self.requested_precision(), self.device)
        print(f"Loading CLIP (backbone: {cfg.MODEL.BACKBONE.NAME})")
        clip_model = load_clip_for(cfg, self.device)
        check_input_size(cfg, clip_model)
        self.backbone_info = {
            "name": getattr(clip_model, "ammpl_backbone_name", cfg.MODEL.BACKBONE.NAME),
            "source": getattr(clip_model, "ammpl_source", ""),
        }
        if self.precision == "fp16":
            to_reference_half(clip_model)
        for param in clip_model.parameters():
            param.requires_grad_(False)
        return clip_model

    def build_model(self) -> None:
        cfg = self.cfg
        classnames = self.dm.dataset.classnames
        clip_model = self.load_clip()

        print(f"Building custom CLIP ({type(self).__name__})")
        self.model = self.build_custom_clip(classnames, clip_model)
        self.model.to(self.device)

        registered = self.model if self.REGISTER_WHOLE_MODEL else self.model.prompt_learner
        if cfg.MODEL.INIT_WEIGHTS:
            load_pretrained_weights(registered, cfg.MODEL.INIT_WEIGHTS)

        self.report_parameters()
        if trainable_parameters(registered):
            self.optim = build_optimizer(self.optimizer_param_groups(registered), cfg.OPTIM)
            self.sched = build_lr_scheduler(self.optim, cfg.OPTIM)
        else:
            self.optim, self.sched = None, None
        self.register_model(self.MODEL_NAME, registered, self.optim, self.sched)

        self.scaler = make_grad_scaler(self.precision, self.device)
        self.record_run_info()

    def optimizer_param_groups(self, registered: nn.Module) -> list:
        """What the optimiser trains: every trainable tensor in one group with Dassl's
        OPTIM settings. A method overrides this to give some tensors their own group (the
        first group must stay the main one: the logged lr is that of group 0)."""
        return list(trainable_parameters(registered).values())

    def report_parameters(self) -> None:
        print(parameter_report(self.model, type(self).__name__))
        self.num_trainable = sum(p.numel() for p in trainable_parameters(self.model).values())

    def record_run_info(self) -> None:
        record = getattr(self, "run_record", None)
        if record is None:
            return
        record.meta.update(
            backbone=self.backbone_info,
            precision=self.precision,
            trainable_params=self.num_trainable,
        )

    # -- precision -----------------------------------------------------------------
    def autocast(self) -> AbstractContextManager:
        return autocast_context(self.precision, self.device)

    # -- training / inference ------------------------------------------------------
    def forward_logits(self, image: torch.Tensor, label: torch.Tensor | None = None):
        """Training-time logits; methods that need labels in the forward override this."""
        return self.model(image)

    def forward_backward(self, batch: dict) -> dict:
        image, label = self.parse_batch_train(batch)
        with self.autocast():
            output = self.forward_logits(image, label)
            loss = F.cross_entropy(output.float(), label)

        if self.scaler is not None:
            self.detect_anomaly(loss)
            self.optim.zero_grad()
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optim)
            self.scaler.update()
        else:
            self.model_backward_and_update(loss)

        summary = {"loss": loss.item(), "acc": compute_accuracy(output, label)[0].item()}
        if (self.batch_idx + 1) == self.num_batches:
            self.update_lr()
        return summary

    def parse_batch_train(self, batch: dict):
        return batch["img"].to(self.device), batch["label"].to(self.device)

    @torch.no_grad()
    def model_inference(self, input: torch.Tensor) -> torch.Tensor:
        with self.autocast():
            return self.model(input).float()

    # -- checkpoints ---------------------------------------------------------------
    def checkpoint_state_dict(self, name: str) -> OrderedDict[str, torch.Tensor]:
        """What a checkpoint stores: trainable tensors and persistent buffers, never the
        frozen CLIP weights (BASELINES Q21: full-model checkpoints still load)."""
        module = self._models[name]
        frozen = {n for n, p in module.named_parameters() if not p.requires_grad}
        return OrderedDict((k, v) for k, v in module.state_dict().items() if k not in frozen)

    def map_checkpoint_keys(self, state_dict: dict) -> dict:
        """Hook for methods whose reference checkpoints use other key names."""
        return state_dict

    def load_model(self, directory: str, epoch: int | None = None) -> None:
        if not directory:
            print("Note that load_model() is skipped as no pretrained model is given")
            return
        model_file = BEST_MODEL_NAME if epoch is None else checkpoint_name(epoch)
        for name in self.get_model_names():
            model_path = os.path.join(directory, name, model_file)
            if not os.path.isfile(model_path):
                raise missing_checkpoint_error(model_path)
            checkpoint = load_training_checkpoint(model_path)
            state_dict = self.map_checkpoint_keys(dict(checkpoint["state_dict"]))
            for key in list(state_dict):
                if key.rsplit(".", 1)[-1] in CLASS_BUFFER_KEYS:
                    del state_dict[key]
            self.check_loadable(name, model_path, state_dict)
            print(
                f'Loading weights to {name} from "{model_path}" (epoch = {checkpoint.get("epoch")})'
            )
            self._models[name].load_state_dict(state_dict, strict=False)

    def check_loadable(self, name: str, path: str, state_dict: dict) -> None:
        """Strict where it matters: every trainable tensor must be present with its shape
        (a typo in key names would otherwise load nothing, BASELINES Q20)."""
        module = self._models[name]
        own = module.state_dict()
        missing = [k for k in trainable_parameters(module) if k not in state_dict]
        if missing:
            raise CheckpointError(
                f"Checkpoint {path} lacks trainable tensors {missing[:5]} of {type(self).__name__}"
                f" ({len(missing)} missing): it was saved by another method or config"
            )
        for key, value in state_dict.items():
            if key in own and tuple(own[key].shape) != tuple(value.shape):
                raise CheckpointError(
                    f"Checkpoint {path}: '{key}' has shape {tuple(value.shape)} but the model "
                    f"expects {tuple(own[key].shape)} (class-specific parameters cannot move to "
                    f"another label space; check TRAINER.{self.CFG_NODE} settings)"
                )
