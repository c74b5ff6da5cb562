"""An evaluation builds the model its checkpoint was trained with.

`--eval-only --model-dir DIR` builds its model from its own config. When DIR's results.json
recorded the training's settings (train.py records them, `ammpl.utils.run_settings`) and
those shape the model differently (another backbone, other method settings: any `MODEL.*`
or `TRAINER.*` key), the evaluation takes the trained values, with a one-line notice. A
value the evaluation's own command line sets (a flag or a `KEY VALUE` override) is kept, as
evaluation-time choices such as AMMPL's `TRAINER.AMMPL.TEST_MASK` are, except the backbone
and the trainer: prompts only fit the backbone they were trained on, so a different one
stops with one line naming the override to pass.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from typing import Any

from ammpl.engine.config import get_cfg_default, merge_from_list
from ammpl.utils.errors import ConfigError
from ammpl.utils.run_settings import (
    FLAG_KEYS,
    flatten,
    plain,
    read_record,
    recorded_settings,
    same,
)

MODEL_PREFIXES = ("MODEL.", "TRAINER.")
# never taken from the evaluation's own command line when training used another value
FIXED_KEYS = ("TRAINER.NAME", "MODEL.BACKBONE.NAME")
# keys that do not describe the trained model
NOT_MODEL_KEYS = frozenset({"MODEL.BACKBONE.ALLOW_TINY_FALLBACK"})


def explicit_keys(args: argparse.Namespace) -> set[str]:
    """Config keys the command line itself sets (flags and trailing KEY VALUE pairs)."""
    keys = {key for flag, key in FLAG_KEYS if getattr(args, flag, None)}
    opts = list(getattr(args, "opts", None) or [])
    return keys | {str(key) for key in opts[0::2]}


def trained_model_settings(record: Mapping[str, Any]) -> dict[str, Any]:
    """The `MODEL.*` / `TRAINER.*` values a recorded training run used (defaults filled in
    for keys it did not set); only the backbone for records older than settings."""
    recorded, legacy = recorded_settings(record)
    config = dict(recorded["config"])
    backbone = record.get("backbone")
    used = backbone.get("name") if isinstance(backbone, Mapping) else None
    if used:  # what was actually loaded (a tiny fallback included)
        config["MODEL.BACKBONE.NAME"] = used
    if legacy:
        return {k: v for k, v in config.items() if k in FIXED_KEYS}
    defaults = flatten(get_cfg_default())
    keys = [k for k in defaults if k.startswith(MODEL_PREFIXES) and k not in NOT_MODEL_KEYS]
    return {key: plain(config.get(key, defaults[key])) for key in keys}


def _show(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def adopt_trained_settings(cfg, args: argparse.Namespace) -> str | None:
    """Give `cfg` the model settings `args.model_dir` was trained with; the notice to print
    (None when nothing changed). ConfigError when the command line asks for another backbone
    or the folder holds another method's model."""
    model_dir = getattr(args, "model_dir", "") or ""
    if not (getattr(args, "eval_only", False) and model_dir):
        return None
    record = read_record(model_dir)
    if record is None:  # not a folder of ours (e.g. CoOp's released prompts): nothing to check
        return None
    trained = trained_model_settings(record)
    current = {k: plain(v) for k, v in flatten(cfg).items()}
    explicit = explicit_keys(args)
    shown = os.path.normpath(model_dir)
    name = trained.get("TRAINER.NAME")
    if name and not same(name, current.get("TRAINER.NAME")):
        raise ConfigError(
            f"{shown} holds a {name} model, this evaluation is {current.get('TRAINER.NAME')}: "
            f"pass --trainer {name} and its config, or the --model-dir of a "
            f"{current.get('TRAINER.NAME')} run"
        )
    adopted: list[str] = []
    opts: list[Any] = []
    for key, value in trained.items():
        if key not in current or same(value, current[key]):
            continue
        if key in explicit:
            if key in FIXED_KEYS:
                raise ConfigError(
                    f"the model in {shown} was trained with {key} {_show(value)}, this "
                    f"evaluation asks for {_show(current[key])}: pass {key} {_show(value)}"
                )
            continue  # the evaluation's own choice
        adopted.append(f"{key} {_show(value)} (config: {_show(current[key])})")
        opts += [key, value]
    if not opts:
        return None
    was_frozen = cfg.is_frozen()
    cfg.defrost()
    merge_from_list(cfg, opts)
    if was_frozen:
        cfg.freeze()
    return (
        f"note: evaluating the model in {shown} with the settings it was trained with: "
        f"{', '.join(adopted)}"
    )
