"""Dassl's `build_optimizer`: one function from OPTIM.* to a torch optimiser.

Weight decay is OPTIM.WEIGHT_DECAY for every parameter given (prompts included, as in the
reference runs). `radam` is torch's RAdam (Dassl ships its own copy of the same algorithm).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ammpl.utils.errors import ConfigError
from ammpl.utils.registry import closest_name

AVAILABLE_OPTIMIZERS = ("adam", "amsgrad", "sgd", "rmsprop", "radam", "adamw")


def _staged_param_groups(model: nn.Module, optim_cfg: Any) -> list[dict[str, Any]]:
    """Children named in NEW_LAYERS get the full LR, the others LR × BASE_LR_MULT."""
    if not isinstance(model, nn.Module):
        raise ConfigError(
            "OPTIM.STAGED_LR needs an nn.Module (its child names select NEW_LAYERS), "
            f"got {type(model).__name__}"
        )
    if isinstance(model, nn.DataParallel):
        model = model.module
    new_layers = optim_cfg.NEW_LAYERS
    new_layers = [new_layers] if isinstance(new_layers, str) else list(new_layers)
    if not new_layers:
        warnings.warn("OPTIM.NEW_LAYERS is empty, so OPTIM.STAGED_LR changes nothing", stacklevel=3)
    children = dict(model.named_children())
    unknown = [name for name in new_layers if name not in children]
    if unknown:
        raise ConfigError(
            f"OPTIM.NEW_LAYERS names {unknown}, which are not children of the model "
            f"(children: {', '.join(children)})"
        )
    base_params, new_params = [], []
    for name, module in children.items():
        (new_params if name in new_layers else base_params).extend(module.parameters())
    return [
        {"params": base_params, "lr": optim_cfg.LR * optim_cfg.BASE_LR_MULT},
        {"params": new_params},
    ]


def build_optimizer(
    model: nn.Module | Iterable[Any],
    optim_cfg: Any,
    param_groups: Iterable[Any] | None = None,
) -> torch.optim.Optimizer:
    """Optimiser for `model` (an nn.Module or an iterable of tensors / param groups)."""
    name = optim_cfg.NAME
    if name not in AVAILABLE_OPTIMIZERS:
        hint = closest_name(name, AVAILABLE_OPTIMIZERS)
        hint_text = f"; did you mean '{hint}'?" if hint else ""
        raise ConfigError(
            f"Unknown OPTIM.NAME '{name}'{hint_text} (available: {', '.join(AVAILABLE_OPTIMIZERS)})"
        )
    if param_groups is not None and optim_cfg.STAGED_LR:
        warnings.warn(
            "OPTIM.STAGED_LR is ignored because param_groups were given explicitly", stacklevel=2
        )
    if param_groups is None:
        if optim_cfg.STAGED_LR:
            param_groups = _staged_param_groups(model, optim_cfg)
        elif isinstance(model, nn.Module):
            param_groups = model.parameters()
        else:
            param_groups = model
    param_groups = list(param_groups)
    if not param_groups:
        raise ConfigError("build_optimizer got no parameters to optimise")

    lr, weight_decay = optim_cfg.LR, optim_cfg.WEIGHT_DECAY
    betas = (optim_cfg.ADAM_BETA1, optim_cfg.ADAM_BETA2)
    if name in ("adam", "amsgrad"):
        return torch.optim.Adam(
            param_groups, lr=lr, weight_decay=weight_decay, betas=betas, amsgrad=name == "amsgrad"
        )
    if name == "sgd":
        return torch.optim.SGD(
            param_groups,
            lr=lr,
            momentum=optim_cfg.MOMENTUM,
            weight_decay=weight_decay,
            dampening=optim_cfg.SGD_DAMPNING,
            nesterov=optim_cfg.SGD_NESTEROV,
        )
    if name == "rmsprop":
        return torch.optim.RMSprop(
            param_groups,
            lr=lr,
            momentum=optim_cfg.MOMENTUM,
            weight_decay=weight_decay,
            alpha=optim_cfg.RMSPROP_ALPHA,
        )
    if name == "radam":
        return torch.optim.RAdam(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
    return torch.optim.AdamW(param_groups, lr=lr, weight_decay=weight_decay, betas=betas)
