"""Dassl's configuration tree, with merges that fail loudly on typos.

`get_cfg_default()` holds every Dassl default (DASSL_API.md §2) plus the keys CoOp's
train.py adds and a few of ours; method modules add their `TRAINER.<NAME>` node through
`register_cfg_extension`. Merging a YAML file or `KEY VALUE` pairs never creates keys: an
unknown key raises a ConfigError naming the closest valid dotted key, a value of the wrong
type raises a one-line ConfigError.

Differences from yacs/Dassl, all deliberate: an int is accepted where a float is expected,
a string key keeps the literal text it was given (`DATASET.NAME 101` stays "101"),
`true`/`false`/`yes`/`no` are accepted for booleans, and `--seed 0` is a valid seed
(Dassl drops it because 0 is falsy).
"""

from __future__ import annotations

import difflib
import os
from ast import literal_eval
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import yaml
from yacs.config import CfgNode as _YacsCfgNode

from ammpl.utils.errors import ConfigError

CfgExtension = Callable[["CfgNode"], None]

_CFG_EXTENSIONS: list[CfgExtension] = []

_COMMAND_LINE = "the command line"
_BOOL_WORDS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


class CfgNode(_YacsCfgNode):
    """A yacs CfgNode whose merge methods use ammpl's checked merges."""

    def merge_from_file(self, cfg_filename: str | os.PathLike) -> None:
        merge_from_file(self, cfg_filename)

    def merge_from_list(self, cfg_list: Sequence[Any] | None) -> None:
        merge_from_list(self, cfg_list)


def register_cfg_extension(fn: CfgExtension) -> CfgExtension:
    """Register `fn(cfg)` that adds a method's config node; usable as a decorator.

    Registering the same function twice is a no-op, so re-importing a module is harmless.
    """
    if fn not in _CFG_EXTENSIONS:
        _CFG_EXTENSIONS.append(fn)
    return fn


def _dassl_defaults() -> CfgNode:
    """Dassl 0.6.3 defaults (keys the prompt-learning code bases read, and their siblings)."""
    c = CfgNode()
    c.VERSION = 1
    c.OUTPUT_DIR = "./output"
    c.RESUME = ""
    c.SEED = -1
    c.USE_CUDA = True
    c.VERBOSE = True

    c.INPUT = CfgNode()
    c.INPUT.SIZE = (224, 224)
    c.INPUT.INTERPOLATION = "bilinear"
    c.INPUT.TRANSFORMS = ()
    c.INPUT.NO_TRANSFORM = False
    c.INPUT.PIXEL_MEAN = [0.485, 0.456, 0.406]
    c.INPUT.PIXEL_STD = [0.229, 0.224, 0.225]
    c.INPUT.CROP_PADDING = 4
    c.INPUT.RRCROP_SCALE = (0.08, 1.0)
    c.INPUT.CUTOUT_N = 1
    c.INPUT.CUTOUT_LEN = 16
    c.INPUT.GN_MEAN = 0.0
    c.INPUT.GN_STD = 0.15
    c.INPUT.RANDAUGMENT_N = 2
    c.INPUT.RANDAUGMENT_M = 10
    c.INPUT.COLORJITTER_B = 0.4
    c.INPUT.COLORJITTER_C = 0.4
    c.INPUT.COLORJITTER_S = 0.4
    c.INPUT.COLORJITTER_H = 0.1
    c.INPUT.RGS_P = 0.2
    c.INPUT.GB_P = 0.5
    c.INPUT.GB_K = 21

    c.DATASET = CfgNode()
    c.DATASET.ROOT = ""
    c.DATASET.NAME = ""
    c.DATASET.SOURCE_DOMAINS = ()
    c.DATASET.TARGET_DOMAINS = ()
    c.DATASET.NUM_LABELED = -1
    c.DATASET.NUM_SHOTS = -1
    c.DATASET.VAL_PERCENT = 0.1
    c.DATASET.STL10_FOLD = -1
    c.DATASET.CIFAR_C_TYPE = ""
    c.DATASET.CIFAR_C_LEVEL = 1
    c.DATASET.ALL_AS_UNLABELED = False

    c.DATALOADER = CfgNode()
    c.DATALOADER.NUM_WORKERS = 4
    c.DATALOADER.K_TRANSFORMS = 1
    c.DATALOADER.RETURN_IMG0 = False
    c.DATALOADER.TRAIN_X = CfgNode()
    c.DATALOADER.TRAIN_X.SAMPLER = "RandomSampler"
    c.DATALOADER.TRAIN_X.BATCH_SIZE = 32
    c.DATALOADER.TRAIN_X.N_DOMAIN = 0
    c.DATALOADER.TRAIN_X.N_INS = 16
    c.DATALOADER.TRAIN_U = CfgNode()
    c.DATALOADER.TRAIN_U.SAME_AS_X = True
    c.DATALOADER.TRAIN_U.SAMPLER = "RandomSampler"
    c.DATALOADER.TRAIN_U.BATCH_SIZE = 32
    c.DATALOADER.TRAIN_U.N_DOMAIN = 0
    c.DATALOADER.TRAIN_U.N_INS = 16
    c.DATALOADER.TEST = CfgNode()
    c.DATALOADER.TEST.SAMPLER = "SequentialSampler"
    c.DATALOADER.TEST.BATCH_SIZE = 32

    c.MODEL = CfgNode()
    c.MODEL.INIT_WEIGHTS = ""
    c.MODEL.BACKBONE = CfgNode()
    c.MODEL.BACKBONE.NAME = ""
    c.MODEL.BACKBONE.PRETRAINED = True
    c.MODEL.HEAD = CfgNode()
    c.MODEL.HEAD.NAME = ""
    c.MODEL.HEAD.HIDDEN_LAYERS = ()
    c.MODEL.HEAD.ACTIVATION = "relu"
    c.MODEL.HEAD.BN = True
    c.MODEL.HEAD.DROPOUT = 0.0

    c.OPTIM = CfgNode()
    c.OPTIM.NAME = "adam"
    c.OPTIM.LR = 0.0003
    c.OPTIM.WEIGHT_DECAY = 5e-4
    c.OPTIM.MOMENTUM = 0.9
    c.OPTIM.SGD_DAMPNING = 0
    c.OPTIM.SGD_NESTEROV = False
    c.OPTIM.RMSPROP_ALPHA = 0.99
    c.OPTIM.ADAM_BETA1 = 0.9
    c.OPTIM.ADAM_BETA2 = 0.999
    c.OPTIM.STAGED_LR = False
    c.OPTIM.NEW_LAYERS = ()
    c.OPTIM.BASE_LR_MULT = 0.1
    c.OPTIM.LR_SCHEDULER = "single_step"
    c.OPTIM.STEPSIZE = (-1,)
    c.OPTIM.GAMMA = 0.1
    c.OPTIM.MAX_EPOCH = 10
    c.OPTIM.WARMUP_EPOCH = -1
    c.OPTIM.WARMUP_TYPE = "linear"
    c.OPTIM.WARMUP_CONS_LR = 1e-5
    c.OPTIM.WARMUP_MIN_LR = 1e-5
    c.OPTIM.WARMUP_RECOUNT = True

    c.TRAIN = CfgNode()
    c.TRAIN.CHECKPOINT_FREQ = 0
    c.TRAIN.PRINT_FREQ = 10
    c.TRAIN.COUNT_ITER = "train_x"

    c.TEST = CfgNode()
    c.TEST.EVALUATOR = "Classification"
    c.TEST.PER_CLASS_RESULT = False
    c.TEST.COMPUTE_CMAT = False
    c.TEST.NO_TEST = False
    c.TEST.SPLIT = "test"
    c.TEST.FINAL_MODEL = "last_step"

    c.TRAINER = CfgNode()
    c.TRAINER.NAME = ""
    return c


def _ammpl_additions(c: CfgNode) -> None:
    """Keys CoOp's train.py adds, and ours (documented in docs/DASSL.md)."""
    c.DATASET.SUBSAMPLE_CLASSES = "all"  # all | base | new (CoOp's train.py)
    c.DATASET.CACHE_DIR = ""  # "" = caches inside the dataset folder
    c.DATASET.SKIP_BAD_IMAGES = False
    c.MODEL.BACKBONE.PATH = ""  # explicit weight file for the backbone
    c.MODEL.BACKBONE.ALLOW_TINY_FALLBACK = False


def get_cfg_default() -> CfgNode:
    """A fresh default config: Dassl keys, ours, and every registered method node."""
    cfg = _dassl_defaults()
    _ammpl_additions(cfg)
    for extend in _CFG_EXTENSIONS:
        extend(cfg)
    return cfg


# ----------------------------------------------------------------------------- merging


def _dotted_keys(node: _YacsCfgNode, prefix: str = "") -> list[str]:
    keys = []
    for name, value in node.items():
        full = f"{prefix}{name}"
        if isinstance(value, _YacsCfgNode):
            keys.extend(_dotted_keys(value, full + "."))
        else:
            keys.append(full)
    return keys


def _dotted_sections(node: _YacsCfgNode, prefix: str = "") -> list[str]:
    sections = []
    for name, value in node.items():
        if isinstance(value, _YacsCfgNode):
            sections.append(f"{prefix}{name}")
            sections.extend(_dotted_sections(value, f"{prefix}{name}."))
    return sections


def closest_config_key(cfg: _YacsCfgNode, key: str) -> str | None:
    """The valid dotted key a misspelt `key` most likely meant, or None.

    Tried in order: a sibling in the same (or the closest-named) section
    (`TRAINER.COOP.NCTX` → `TRAINER.COOP.N_CTX`), a key with the same last component
    elsewhere (`TRAIN.MAX_EPOCH` → `OPTIM.MAX_EPOCH`), any key that is very similar.
    """
    valid = _dotted_keys(cfg)
    parent, _, leaf = key.upper().rpartition(".")
    sections = ["", *_dotted_sections(cfg)]
    if parent not in sections:
        close = difflib.get_close_matches(parent, sections, 1, 0.6)
        parent = close[0] if close else None
    if parent is not None:
        siblings = [k.rpartition(".")[2] for k in valid if k.rpartition(".")[0] == parent]
        match = difflib.get_close_matches(leaf, siblings, 1, 0.6)
        if match:
            return f"{parent}.{match[0]}" if parent else match[0]
    same_leaf = [k for k in valid if k.rpartition(".")[2] == leaf]
    if same_leaf:
        return difflib.get_close_matches(key.upper(), same_leaf, 1, 0.0)[0]
    match = difflib.get_close_matches(key.upper(), valid, 1, 0.8)
    return match[0] if match else None


def _unknown_key_error(cfg: _YacsCfgNode, key: str, source: str) -> ConfigError:
    hint = closest_config_key(cfg, key)
    if hint:
        return ConfigError(f"Unknown config key '{key}' in {source}; did you mean '{hint}'?")
    sections = ", ".join(k for k, v in cfg.items() if isinstance(v, _YacsCfgNode))
    return ConfigError(
        f"Unknown config key '{key}' in {source}; no similar key exists "
        f"(top-level sections: {sections})"
    )


def _decode(value: Any) -> Any:
    """yacs' decoding: strings that read as Python literals become those literals."""
    if not isinstance(value, str):
        return value
    try:
        return literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return value


def _coerce(raw: Any, default: Any, key: str, source: str) -> Any:
    """Check (and where lossless, convert) a new value against the default's type."""
    value = _decode(raw)
    if type(value) is type(default) or value is None or default is None:
        return value
    if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)):
        return type(default)(value)
    if isinstance(default, str) and isinstance(raw, str):
        return raw
    if type(default) is float and type(value) is int:
        return float(value)
    if type(default) is bool and isinstance(value, str) and value.lower() in _BOOL_WORDS:
        return _BOOL_WORDS[value.lower()]
    expected = type(default).__name__
    article = "an" if expected[0] in "aeiou" else "a"
    raise ConfigError(
        f"Config key '{key}' in {source} expects {article} {expected} (default {default!r}), "
        f"got {type(value).__name__} {value!r}"
    )


def _check_not_frozen(cfg: _YacsCfgNode) -> None:
    if cfg.is_frozen():
        raise ConfigError("The config is frozen; merge files and options before cfg.freeze()")


def _merge_mapping(
    root: _YacsCfgNode, node: _YacsCfgNode, data: dict, prefix: str, source: str
) -> None:
    for name, raw in data.items():
        key = f"{prefix}{name}"
        if name not in node:
            if node.is_new_allowed():
                node[name] = CfgNode(raw) if isinstance(raw, dict) else _decode(raw)
                continue
            raise _unknown_key_error(root, key, source)
        current = node[name]
        if isinstance(current, _YacsCfgNode):
            if not isinstance(raw, dict):
                raise ConfigError(
                    f"Config key '{key}' in {source} is a section; expected a mapping of "
                    f"keys under it, got {raw!r}"
                )
            _merge_mapping(root, current, raw, key + ".", source)
        elif isinstance(raw, dict):
            raise ConfigError(
                f"Config key '{key}' in {source} is a single value, not a section; "
                f"got a mapping {raw!r}"
            )
        else:
            node[name] = _coerce(raw, current, key, source)


def _yaml_error_line(path: str, error: yaml.YAMLError) -> str:
    """`Config file <file>:<line>:<column> is not valid YAML: <problem>`: where the parser
    gave up, 1-based as editors count (the file alone when YAML names no place)."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else path
    problem = getattr(error, "problem", None)
    if not problem:
        text = str(error).strip()
        problem = text.splitlines()[0] if text else type(error).__name__
    context = getattr(error, "context", None)
    detail = f"{problem} ({context})" if context else problem
    return f"Config file {where} is not valid YAML: {detail}"


def merge_from_file(cfg: _YacsCfgNode, path: str | os.PathLike) -> _YacsCfgNode:
    """Merge a YAML file into `cfg` (in place; also returned)."""
    _check_not_frozen(cfg)
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ConfigError(f"Config file not found: {path} (check the path and the cwd)")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as exc:
        raise ConfigError(_yaml_error_line(path, exc)) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}") from exc
    if data is None:
        return cfg
    if not isinstance(data, dict):
        raise ConfigError(
            f"Config file {path} must hold a mapping of config keys, got {type(data).__name__}"
        )
    _merge_mapping(cfg, cfg, data, "", path)
    return cfg


def merge_from_list(cfg: _YacsCfgNode, opts: Sequence[Any] | None) -> _YacsCfgNode:
    """Merge trailing `KEY VALUE` pairs (e.g. `["OPTIM.LR", "0.01"]`) into `cfg`."""
    if not opts:
        return cfg
    _check_not_frozen(cfg)
    opts = list(opts)
    flags = [str(o) for o in opts[0::2] if str(o).startswith("--")]
    if flags:
        raise ConfigError(
            f"'{flags[0]}' appears among the trailing KEY VALUE config overrides; "
            "put command-line flags before the first KEY VALUE pair"
        )
    if len(opts) % 2:
        raise ConfigError(
            f"Config overrides must be KEY VALUE pairs; got {len(opts)} items "
            f"(the last one, {opts[-1]!r}, has no value)"
        )
    for key, raw in zip(opts[0::2], opts[1::2]):
        key = str(key)
        node = cfg
        parts = key.split(".")
        for depth, part in enumerate(parts):
            if not isinstance(node, _YacsCfgNode) or part not in node:
                raise _unknown_key_error(cfg, key, _COMMAND_LINE)
            if depth < len(parts) - 1:
                node = node[part]
        if isinstance(node[parts[-1]], _YacsCfgNode):
            raise ConfigError(
                f"Config key '{key}' in {_COMMAND_LINE} is a section; "
                "give a full key such as "
                f"'{_dotted_keys(node[parts[-1]], key + '.')[0]}'"
            )
        node[parts[-1]] = _coerce(raw, node[parts[-1]], key, _COMMAND_LINE)
    return cfg


def _flag(args: Any, name: str) -> Any:
    return getattr(args, name, None)


def reset_cfg_from_args(cfg: _YacsCfgNode, args: Any) -> None:
    """Apply the train.py flags that were given (Dassl's `reset_cfg`; seed 0 is kept)."""
    flag_to_key: Iterable[tuple[str, tuple[str, ...]]] = (
        ("root", ("DATASET", "ROOT")),
        ("output_dir", ("OUTPUT_DIR",)),
        ("resume", ("RESUME",)),
        ("source_domains", ("DATASET", "SOURCE_DOMAINS")),
        ("target_domains", ("DATASET", "TARGET_DOMAINS")),
        ("transforms", ("INPUT", "TRANSFORMS")),
        ("trainer", ("TRAINER", "NAME")),
        ("backbone", ("MODEL", "BACKBONE", "NAME")),
        ("head", ("MODEL", "HEAD", "NAME")),
    )
    for flag, path in flag_to_key:
        value = _flag(args, flag)
        if not value:
            continue
        node = cfg
        for part in path[:-1]:
            node = node[part]
        default = node[path[-1]]
        if isinstance(default, (tuple, list)) and isinstance(value, (tuple, list)):
            value = type(default)(value)
        node[path[-1]] = value
    seed = _flag(args, "seed")
    if seed is not None and int(seed) >= 0:
        cfg.SEED = int(seed)


def setup_cfg(args: Any) -> CfgNode:
    """The train.py merge order: defaults + method nodes → dataset YAML → method YAML →
    flags that were given → trailing opts → freeze. Missing attributes count as not given."""
    cfg = get_cfg_default()
    if _flag(args, "dataset_config_file"):
        merge_from_file(cfg, args.dataset_config_file)
    if _flag(args, "config_file"):
        merge_from_file(cfg, args.config_file)
    reset_cfg_from_args(cfg, args)
    merge_from_list(cfg, _flag(args, "opts"))
    cfg.freeze()
    return cfg
