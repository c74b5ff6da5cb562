"""Dassl-format checkpoints, written atomically and read with clear errors.

A checkpoint is a dict `{state_dict, epoch (1-based), optimizer, scheduler, val_result}`
saved as `<dir>/model.pth.tar-<epoch>`; the text file `<dir>/checkpoint` names the newest
one (what resuming loads). Files are written to a temporary sibling and renamed, so an
interrupted save never leaves a truncated checkpoint or pointer behind.
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import warnings
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ammpl.utils.errors import CheckpointError
from ammpl.utils.io import atomic_write, atomic_write_text, mkdir_if_missing

__all__ = [
    "BEST_MODEL_NAME",
    "POINTER_NAME",
    "TRUST_ENV",
    "checkpoint_name",
    "latest_checkpoint_path",
    "load_checkpoint",
    "load_pretrained_weights",
    "load_state_dict_checked",
    "load_training_checkpoint",
    "missing_checkpoint_error",
    "remove_checkpoint",
    "restore_checkpoint",
    "resume_from_checkpoint",
    "save_checkpoint",
    "saved_epochs",
]

POINTER_NAME = "checkpoint"
BEST_MODEL_NAME = "model-best.pth.tar"
_EPOCH_FILE = re.compile(r"^model\.pth\.tar-(\d+)$")


def checkpoint_name(epoch: int) -> str:
    return f"model.pth.tar-{epoch}"


def saved_epochs(save_dir: str | os.PathLike) -> list[int]:
    """Epochs that have a `model.pth.tar-<epoch>` file in `save_dir`, ascending."""
    if not os.path.isdir(save_dir):
        return []
    found = (_EPOCH_FILE.match(name) for name in os.listdir(save_dir))
    return sorted(int(m.group(1)) for m in found if m)


def missing_checkpoint_error(model_path: str | os.PathLike) -> CheckpointError:
    """A one-line error for a model file that is not there, listing what the folder holds."""
    model_path = os.fspath(model_path)
    folder, name = os.path.split(model_path)
    if not os.path.isdir(folder):
        return CheckpointError(
            f"No checkpoint at {model_path}: folder {folder} does not exist "
            "(is --model-dir the output folder of the training run?)"
        )
    epochs = saved_epochs(folder)
    if epochs:
        listed = ", ".join(str(e) for e in epochs)
        held = f"saved epochs there: {listed} (pass --load-epoch {epochs[-1]})"
    else:
        held = "the folder holds no model.pth.tar-<epoch> file"
    if name == BEST_MODEL_NAME:
        held += "; model-best.pth.tar exists only for TEST.FINAL_MODEL best_val runs"
    return CheckpointError(f"No checkpoint at {model_path}; {held}")


def _strip_module_prefix(state_dict: dict[str, Any]) -> OrderedDict:
    return OrderedDict(
        (key[len("module.") :] if key.startswith("module.") else key, value)
        for key, value in state_dict.items()
    )


def _atomic_copy(src: str, dst: str) -> None:
    with open(src, "rb") as source, atomic_write(dst, "wb") as target:
        shutil.copyfileobj(source, target)


def save_checkpoint(
    state: dict[str, Any],
    save_dir: str | os.PathLike,
    is_best: bool = False,
    remove_module_from_keys: bool = True,
    model_name: str = "",
) -> str:
    """Save `state` as `<save_dir>/<model_name or model.pth.tar-<epoch>>`, update the pointer
    file, copy to model-best.pth.tar when `is_best`. Returns the path written."""
    save_dir = os.fspath(save_dir)
    mkdir_if_missing(save_dir)
    state = dict(state)
    if remove_module_from_keys and "state_dict" in state:
        state["state_dict"] = _strip_module_prefix(state["state_dict"])
    if not model_name:
        model_name = checkpoint_name(state["epoch"])
    fpath = os.path.join(save_dir, model_name)
    with atomic_write(fpath, "wb") as handle:
        torch.save(state, handle)
    print(f"Checkpoint saved to {fpath}")
    atomic_write_text(os.path.join(save_dir, POINTER_NAME), f"{model_name}\n")
    if is_best:
        best_path = os.path.join(save_dir, BEST_MODEL_NAME)
        _atomic_copy(fpath, best_path)
        print(f'Best checkpoint saved to "{best_path}"')
    return fpath


def remove_checkpoint(save_dir: str | os.PathLike, epoch: int) -> None:
    """Delete `model.pth.tar-<epoch>` if present (rolling per-epoch checkpoints)."""
    try:
        os.remove(os.path.join(save_dir, checkpoint_name(epoch)))
    except FileNotFoundError:
        pass


def _corrupt(fpath: str) -> CheckpointError:
    size = os.path.getsize(fpath)
    return CheckpointError(
        f"Checkpoint {fpath} is corrupt or truncated ({size:,} bytes): "
        "delete it and re-run training"
    )


TRUST_ENV = "AMMPL_TRUST_CHECKPOINTS"


def _defaultdict_as_dict(default_factory: Any = None) -> dict:
    """Stands in for `collections.defaultdict` (an optimizer's `state` inside Dassl's
    scheduler state), which torch's restricted loader cannot fill; a plain dict holds the
    same entries."""
    return {}


def _dassl_safe_globals() -> list[Any]:
    """The classes and functions a Dassl/CoOp checkpoint pickles besides tensors.

    Numpy scalars and dtypes (a `val_result` or a metric), and Dassl's warm-up schedulers,
    whose `state_dict()` holds the successor scheduler object and, through it, the
    optimizer. Rebuilding any of these runs no code from the file; anything else is refused.
    """
    import numpy as np

    scalar = np._core.multiarray.scalar if hasattr(np, "_core") else np.core.multiarray.scalar
    allowed: list[Any] = [
        (scalar, "numpy.core.multiarray.scalar"),  # files written under numpy 1
        (scalar, "numpy._core.multiarray.scalar"),  # files written under numpy 2
        np.dtype,
        dict,
        (_defaultdict_as_dict, "collections.defaultdict"),
    ]
    dtypes = getattr(np, "dtypes", None)
    if dtypes is not None:
        allowed += [getattr(dtypes, n) for n in dir(dtypes) if n.endswith("DType")]
    for module, base in (
        (torch.optim, torch.optim.Optimizer),
        (torch.optim.lr_scheduler, torch.optim.lr_scheduler.LRScheduler),
    ):
        allowed += [
            obj
            for obj in vars(module).values()
            if isinstance(obj, type) and issubclass(obj, base) and obj is not base
        ]
    return allowed


def _trusted_by_environment() -> bool:
    return os.environ.get(TRUST_ENV, "").strip().lower() in ("1", "true", "yes")


def _refused_globals(fpath: str, exc: Exception) -> list[str]:
    """The globals of `fpath` that the restricted loader refused; [] when it stopped on
    something else (a damaged or foreign file)."""
    named = re.findall(r"GLOBAL ([\w.]+)", str(exc))
    if not named:
        return []
    allowed = set()
    for entry in _dassl_safe_globals():
        allowed.add(
            entry[1] if isinstance(entry, tuple) else f"{entry.__module__}.{entry.__qualname__}"
        )
    try:
        found = torch.serialization.get_unsafe_globals_in_checkpoint(fpath)
    except Exception:  # legacy (non-zip) files: torch's message names the first one
        found = named
    return [name for name in found if name not in allowed] or named


def load_checkpoint(fpath: str | os.PathLike, trust: bool = False) -> Any:
    """Load a checkpoint onto the CPU without running code from it.

    The file is unpickled with torch's `weights_only` loader, which also accepts what
    Dassl/CoOp checkpoints hold beside tensors (`_dassl_safe_globals`). A file that needs any
    other Python object is refused with one line naming it: such a pickle can run arbitrary
    code. `trust=True`, or the environment variable AMMPL_TRUST_CHECKPOINTS=1, loads it
    fully; do that only for a file you made or trust.
    """
    if not fpath:
        raise CheckpointError("No checkpoint path given")
    fpath = os.fspath(fpath)
    if not os.path.isfile(fpath):
        raise CheckpointError(f"No checkpoint at {fpath}")
    try:
        with warnings.catch_warnings():  # torch warns about odd pickle protocols of junk files
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            with torch.serialization.safe_globals(_dassl_safe_globals()):
                return torch.load(fpath, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "weights only load failed" not in str(exc).lower():
            raise _corrupt(fpath) from exc
        refused = exc
    except OSError as exc:
        raise CheckpointError(f"Cannot read checkpoint {fpath}: {exc.strerror or exc}") from exc
    except Exception as exc:  # torch reports a damaged archive with many exception types
        raise _corrupt(fpath) from exc
    if not (trust or _trusted_by_environment()):
        names = _refused_globals(fpath, refused)
        if not names:
            raise _corrupt(fpath) from refused
        raise CheckpointError(
            f"Refusing to load {fpath}: it holds Python objects other than tensors and "
            f"Dassl checkpoint data ({', '.join(names)}), and unpickling them can run code; "
            f"if you trust this file, set {TRUST_ENV}=1 and re-run"
        )
    print(f"Loading {fpath} with full unpickling ({TRUST_ENV} is set)")
    try:
        return torch.load(fpath, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise _corrupt(fpath) from exc


def load_training_checkpoint(fpath: str | os.PathLike) -> dict[str, Any]:
    """`load_checkpoint` for files that must be training checkpoints (a dict with a
    'state_dict' entry), so a stray file ends in a CheckpointError, not a KeyError."""
    checkpoint = load_checkpoint(fpath)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{fpath} is not a training checkpoint (no 'state_dict' entry)")
    return checkpoint


def _preview(keys: list[str], limit: int = 5) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", … ({len(keys)} in all)" if len(keys) > limit else "")


def load_state_dict_checked(
    model: nn.Module,
    state_dict: dict[str, Any],
    fpath: str = "",
    strict: bool = True,
    required_keys: Iterable[str] | None = None,
) -> None:
    """`model.load_state_dict` with a one-line CheckpointError instead of torch's dump.

    Shape mismatches are always errors; with `strict`, keys the model lacks are errors
    and so are missing keys: all of the model's, or only `required_keys` when given
    (for checkpoints that store a subset, e.g. trainable tensors only).
    """
    where = f" {fpath}" if fpath else ""
    own = model.state_dict()
    mismatched = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and hasattr(v, "shape") and tuple(v.shape) != tuple(own[k].shape)
    ]
    if mismatched:
        raise CheckpointError(
            f"Checkpoint{where} does not fit the model: shape mismatch in "
            f"{_preview(mismatched)} (checkpoint vs model); was it trained with another "
            "config or backbone?"
        )
    if strict:
        needed = own if required_keys is None else list(required_keys)
        missing = [k for k in needed if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing keys {_preview(missing)}")
            if unexpected:
                parts.append(f"unexpected keys {_preview(unexpected)}")
            raise CheckpointError(
                f"Checkpoint{where} does not fit the model: {'; '.join(parts)}; was it "
                "trained with another trainer or config?"
            )
    model.load_state_dict(state_dict, strict=strict and required_keys is None)


def latest_checkpoint_path(fdir: str | os.PathLike) -> str:
    """The file named by `<fdir>/checkpoint`."""
    fdir = os.fspath(fdir)
    pointer = os.path.join(fdir, POINTER_NAME)
    if not os.path.isfile(pointer):
        raise CheckpointError(f"No checkpoint pointer file at {pointer}; nothing to resume")
    with open(pointer, encoding="utf-8") as handle:
        lines = [line.strip() for line in handle if line.strip()]
    if not lines:
        raise CheckpointError(f"Checkpoint pointer {pointer} is empty: delete it and re-run")
    return os.path.join(fdir, lines[0])


def restore_checkpoint(
    fdir: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    required_keys: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Load the newest checkpoint of `fdir` into model/optimizer/scheduler; return it.

    `required_keys`: see `load_state_dict_checked` (default: every key of the model)."""
    fpath = latest_checkpoint_path(fdir)
    checkpoint = load_training_checkpoint(fpath)
    load_state_dict_checked(model, checkpoint["state_dict"], fpath, required_keys=required_keys)
    try:
        if optimizer is not None and checkpoint.get("optimizer") is not None:
            optimizer.load_state_dict(checkpoint["optimizer"])
        if scheduler is not None and checkpoint.get("scheduler") is not None:
            scheduler.load_state_dict(checkpoint["scheduler"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(
            f"Optimizer/scheduler state in {fpath} does not fit this run ({exc}); "
            "was it trained with another OPTIM config?"
        ) from exc
    print(f'Successfully loaded checkpoint "{fpath}" (epoch {checkpoint.get("epoch")})')
    return checkpoint


def resume_from_checkpoint(
    fdir: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> int:
    """Dassl's resume helper: load the newest checkpoint, return its (1-based) epoch."""
    return int(restore_checkpoint(fdir, model, optimizer, scheduler)["epoch"])


def load_pretrained_weights(model: nn.Module, weight_path: str | os.PathLike) -> list[str]:
    """Copy every tensor whose name and shape match into `model`; return the loaded keys.

    Unlike Dassl (which only warns), a file where nothing matches is an error.
    """
    checkpoint = load_checkpoint(weight_path)
    state_dict = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else None
    if not isinstance(state_dict, dict):
        raise CheckpointError(f"{weight_path} holds no state dict of tensors")
    model_dict = model.state_dict()
    matched: OrderedDict[str, Any] = OrderedDict()
    discarded = []
    for key, value in _strip_module_prefix(state_dict).items():
        if key in model_dict and getattr(value, "shape", None) == model_dict[key].shape:
            matched[key] = value
        else:
            discarded.append(key)
    if not matched:
        raise CheckpointError(
            f"No tensor in {weight_path} matches the model by name and shape "
            f"(file keys: {_preview(list(state_dict))}); check MODEL.INIT_WEIGHTS"
        )
    model_dict.update(matched)
    model.load_state_dict(model_dict)
    print(f"Successfully loaded pretrained weights from {weight_path}")
    if discarded:
        print(f"Layers discarded due to unmatched keys or size: {discarded}")
    return list(matched)
