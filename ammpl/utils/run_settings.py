"""A run's settings, and when a run folder holds a run of them (the "already finished" rule).

The *settings* of a `train.py` command are what its files, flags and overrides set
(`requested_settings`): the merged keys of the dataset and method configs (compared by
content, so a moved checkout still matches), the flags that set config keys, every
`KEY VALUE` override, the seed, evaluation-only, the loaded model folder (relative to the
run folder) and epoch. train.py records them as `results.json["settings"]`; a folder holds
a run of the requested settings when every setting equals the recorded one, a key set on one
side only being compared with its default. Keys that cannot change a result (output folder,
data root, data-loader workers, print frequency) are left out. A run that fell back to the
tiny random backbone never counts as a run of the backbone it was asked for.

It lives here, below train.py (which records the settings) and `ammpl.sweep` (which compares
them), and needs neither torch nor the config defaults: callers pass `defaults`, a function
giving the flat default config (`ammpl.sweep.done` loads it only when a key is set on one
side only).
"""

from __future__ import annotations

import argparse
import ast
import os
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from ammpl.utils.errors import AmmplError, ConfigError
from ammpl.utils.io import read_json

Defaults = Callable[[], Mapping[str, Any]]

RESULTS_FILE = "results.json"
DONE, PENDING = "done", "pending"

# config keys that never change what a run computes
IGNORED_KEYS = frozenset(
    {"OUTPUT_DIR", "RESUME", "DATASET.ROOT", "DATALOADER.NUM_WORKERS", "TRAIN.PRINT_FREQ"}
)
# train.py flags that set a config key (reset_cfg_from_args); --seed is handled apart
FLAG_KEYS = (
    ("trainer", "TRAINER.NAME"),
    ("backbone", "MODEL.BACKBONE.NAME"),
    ("head", "MODEL.HEAD.NAME"),
    ("source_domains", "DATASET.SOURCE_DOMAINS"),
    ("target_domains", "DATASET.TARGET_DOMAINS"),
    ("transforms", "INPUT.TRANSFORMS"),
)
# compared first, so the message names the difference a user most likely made
LABELS = {
    "TRAINER.NAME": "trainer",
    "DATASET.NAME": "dataset",
    "MODEL.BACKBONE.NAME": "backbone",
    "MODEL.BACKBONE.PATH": "backbone weights file",
    "SEED": "seed",
    "DATASET.NUM_SHOTS": "shots",
    "DATASET.SUBSAMPLE_CLASSES": "subsample",
}
# what results.json recorded before settings were recorded (older runs)
LEGACY_FIELDS = {
    "trainer": "TRAINER.NAME",
    "dataset": "DATASET.NAME",
    "seed": "SEED",
    "num_shots": "DATASET.NUM_SHOTS",
    "subsample_classes": "DATASET.SUBSAMPLE_CLASSES",
    "max_epoch": "OPTIM.MAX_EPOCH",
}
_UNSET = "(not set)"


class RunConflictError(AmmplError):
    """The output folder holds a run with other settings than the requested one."""


# --- settings of a command ---------------------------------------------------------------


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def typed(raw: Any) -> Any:
    """An override's value as the config would read it (`"1"` → 1, `"True"` → True)."""
    if not isinstance(raw, str):
        return plain(raw)
    try:
        return plain(ast.literal_eval(raw))
    except (ValueError, SyntaxError):
        pass
    try:
        return plain(yaml.safe_load(raw))
    except yaml.YAMLError:
        return raw


def absolute(path: str, cwd: str) -> str:
    return os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))


def _config_keys(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except (OSError, yaml.YAMLError) as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from None
    if not isinstance(data, Mapping):
        raise ConfigError(f"config file {path} must hold a mapping of config keys")
    return {k: plain(v) for k, v in flatten(data).items()}


def requested_settings(args: argparse.Namespace, cwd: str | None = None) -> dict[str, Any]:
    """The settings a parsed train.py command asks for (recorded into results.json by
    train.py, compared by `run_state`). Relative paths are taken from `cwd`."""
    cwd = cwd or os.getcwd()
    config: dict[str, Any] = {}
    for attr in ("dataset_config_file", "config_file"):  # train.py's merge order
        path = getattr(args, attr, "") or ""
        if path:
            config.update(_config_keys(absolute(path, cwd)))
    for flag, key in FLAG_KEYS:
        value = getattr(args, flag, None)
        if value:
            config[key] = plain(value)
    seed = getattr(args, "seed", None)
    if seed is not None and int(seed) >= 0:
        config["SEED"] = int(seed)
    opts = list(getattr(args, "opts", None) or [])
    for key, raw in zip(opts[0::2], opts[1::2]):
        config[str(key)] = typed(raw)
    for key in IGNORED_KEYS:
        config.pop(key, None)
    model_dir = getattr(args, "model_dir", "") or ""
    if model_dir:
        output_dir = absolute(getattr(args, "output_dir", "") or ".", cwd)
        model_dir = os.path.relpath(absolute(model_dir, cwd), output_dir)
    return {
        "config": config,
        "eval_only": bool(getattr(args, "eval_only", False)),
        "model_dir": model_dir,
        "load_epoch": getattr(args, "load_epoch", None),
    }


# --- comparison -------------------------------------------------------------------------


def _canon(value: Any) -> Any:
    """Text that reads as a Python literal compares as that literal (YAML leaves `1e-5` a
    string, an override `1e-5` is a float)."""
    if isinstance(value, str):
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return value
        return plain(parsed) if isinstance(parsed, (int, float, list, tuple)) else value
    if isinstance(value, list):
        return [_canon(v) for v in value]
    return value


def same(a: Any, b: Any) -> bool:
    a, b = _canon(a), _canon(b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b if isinstance(a, bool) and isinstance(b, bool) else False
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    return a == b


def recorded_settings(record: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(settings, legacy): what the run recorded; older records give a few top-level fields."""
    settings = record.get("settings")
    if isinstance(settings, Mapping) and isinstance(settings.get("config"), Mapping):
        return dict(settings), False
    config = {key: record[field] for field, key in LEGACY_FIELDS.items() if field in record}
    backbone = record.get("backbone")
    name = backbone.get("name") if isinstance(backbone, Mapping) else backbone
    if name:
        config["MODEL.BACKBONE.NAME"] = name
    eval_only = record.get("eval_only")
    legacy: dict[str, Any] = {"config": config}
    if isinstance(eval_only, bool):
        legacy["eval_only"] = eval_only
    return legacy, True


def first_difference(
    record: Mapping[str, Any], requested: Mapping[str, Any], defaults: Defaults
) -> tuple[str, Any, Any] | None:
    """(what, recorded value, requested value) of the first setting that differs, or None;
    `defaults()` gives the flat default config (called only when a key is set on one side)."""
    recorded, legacy = recorded_settings(record)
    rec_cfg, req_cfg = recorded["config"], requested["config"]
    keys = set(rec_cfg) if legacy else set(rec_cfg) | set(req_cfg)
    keys -= IGNORED_KEYS
    ordered = [k for k in LABELS if k in keys] + sorted(keys - set(LABELS))
    for key in ordered:
        # a key set on one side only is compared with its default (loaded only then)
        old = rec_cfg[key] if key in rec_cfg else defaults().get(key, _UNSET)
        new = req_cfg[key] if key in req_cfg else defaults().get(key, _UNSET)
        if not same(plain(old), plain(new)):
            label = f"{LABELS[key]} ({key})" if key in LABELS else key
            return label, old, new
    backbone = record.get("backbone")
    source = backbone.get("source", "") if isinstance(backbone, Mapping) else ""
    wanted = req_cfg.get("MODEL.BACKBONE.NAME") or "the requested backbone"
    if "fallback" in str(source):
        return "backbone weights", source, f"{wanted} weights"
    for field in ("eval_only", "model_dir", "load_epoch"):
        if field in recorded and not same(recorded[field], requested.get(field)):
            return field.replace("_", "-"), recorded[field], requested.get(field)
    return None


def show(value: Any) -> str:
    return _UNSET if value is None or value == "" else str(value)


def has_test_result(record: Any) -> bool:
    results = record.get("results") if isinstance(record, Mapping) else None
    test = results.get("test") if isinstance(results, Mapping) else None
    accuracy = test.get("accuracy") if isinstance(test, Mapping) else None
    return isinstance(accuracy, (int, float)) and not isinstance(accuracy, bool)


def read_record(output_dir: str) -> dict[str, Any] | None:
    """The folder's results.json, or None when absent or unreadable (a run to redo)."""
    try:
        record = read_json(os.path.join(output_dir, RESULTS_FILE))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def check_folder(
    output_dir: str,
    requested: Mapping[str, Any] | None,
    defaults: Defaults,
    shown: str | None = None,
) -> str:
    """DONE or PENDING for `requested` settings in `output_dir` (None: test result only);
    raises RunConflictError (naming the folder as `shown`) when it holds a run with other
    settings."""
    record = read_record(output_dir)
    if record is None:
        return PENDING
    if requested is not None:
        difference = first_difference(record, requested, defaults)
        if difference is not None:
            what, old, new = difference
            raise RunConflictError(
                f"{shown or output_dir} holds a run with other settings ({what}: "
                f"{show(old)} there, {show(new)} requested); use another OUTPUT_ROOT or "
                "delete that folder"
            )
    return DONE if has_test_result(record) else PENDING
