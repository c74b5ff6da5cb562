"""`dassl.utils`: the registry, seeding, meters and the checkpoint functions (contract §3, §8)."""

import os
import random
import shutil
from collections import OrderedDict, defaultdict

import numpy as np
import torch


class Registry:
    """Stores objects under their `__name__`; a second registration of a name raises."""

    def __init__(self, name):
        self._name = name
        self._obj_map = {}

    def register(self, obj=None, force=False):
        if obj is None:

            def decorator(fn_or_class):
                self._do_register(fn_or_class.__name__, fn_or_class, force)
                return fn_or_class

            return decorator
        self._do_register(obj.__name__, obj, force)

    def _do_register(self, name, obj, force=False):
        if name in self._obj_map and not force:
            raise KeyError(f'An object named "{name}" was already registered in "{self._name}"')
        self._obj_map[name] = obj

    def get(self, name):
        if name not in self._obj_map:
            raise KeyError(
                f'Object name "{name}" does not exist in "{self._name}" registry; '
                f"available: {list(self._obj_map)}"
            )
        return self._obj_map[name]

    def registered_names(self):
        return list(self._obj_map)


def mkdir_if_missing(dirname):
    os.makedirs(dirname, exist_ok=True)


def set_random_seed(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)


class AverageMeter:
    def __init__(self):
        self.val = self.avg = self.sum = 0.0
        self.count = 0

    def update(self, val, n=1):
        self.val = float(val)
        self.sum += self.val * n
        self.count += n
        self.avg = self.sum / self.count


class MetricMeter:
    def __init__(self, delimiter=" "):
        self.meters = defaultdict(AverageMeter)
        self.delimiter = delimiter

    def update(self, input_dict):
        if not isinstance(input_dict, dict):
            raise TypeError("Input to MetricMeter.update() must be a dictionary")
        for key, value in input_dict.items():
            self.meters[key].update(value.item() if torch.is_tensor(value) else value)

    def __str__(self):
        return self.delimiter.join(f"{k} {m.val:.4f} ({m.avg:.4f})" for k, m in self.meters.items())


def save_checkpoint(state, save_dir, is_best=False, remove_module_from_keys=True, model_name=""):
    """`{state_dict, epoch, optimizer, scheduler, val_result}` → `<save_dir>/<file>`, the
    file name into `<save_dir>/checkpoint`, a copy to model-best.pth.tar when best."""
    mkdir_if_missing(save_dir)
    if remove_module_from_keys:
        state["state_dict"] = OrderedDict(
            (k[7:] if k.startswith("module.") else k, v) for k, v in state["state_dict"].items()
        )
    fpath = os.path.join(save_dir, model_name or f"model.pth.tar-{state['epoch']}")
    torch.save(state, fpath)
    print(f"Checkpoint saved to {fpath}")
    with open(os.path.join(save_dir, "checkpoint"), "w") as handle:
        handle.write(f"{os.path.basename(fpath)}\n")
    if is_best:
        shutil.copy(fpath, os.path.join(os.path.dirname(fpath), "model-best.pth.tar"))


def load_checkpoint(fpath):
    """torch.load with the torch default for `weights_only` (True since torch 2.6), as Dassl."""
    if fpath is None:
        raise ValueError("File path is None")
    if not os.path.exists(fpath):
        raise FileNotFoundError(f'File is not found at "{fpath}"')
    map_location = None if torch.cuda.is_available() else "cpu"
    return torch.load(fpath, map_location=map_location)


def resume_from_checkpoint(fdir, model, optimizer=None, scheduler=None):
    with open(os.path.join(fdir, "checkpoint")) as handle:
        fpath = os.path.join(fdir, handle.readline().strip("\n"))
    print(f'Loading checkpoint from "{fpath}"')
    checkpoint = load_checkpoint(fpath)
    model.load_state_dict(checkpoint["state_dict"])
    if optimizer is not None and "optimizer" in checkpoint:
        optimizer.load_state_dict(checkpoint["optimizer"])
    if scheduler is not None and "scheduler" in checkpoint:
        scheduler.load_state_dict(checkpoint["scheduler"])
    start_epoch = checkpoint["epoch"]
    print(f"Previous epoch: {start_epoch}")
    return start_epoch
