"""Run ammpl's CLIP trainers (AMMPL first) inside a CoOp fork on the original Dassl.

The fork's `train.py` needs two additions (docs/DASSL.md, "Using ammpl trainers inside a
CoOp fork"): `register_ammpl_trainers()` once its own trainers are imported, and
`extend_cfg(cfg)` inside its own `extend_cfg`. Dassl's constructor, loop, data manager,
few-shot sampling, evaluator and checkpoint files then drive our trainers.

How a trainer moves engines: our trainer classes derive from `ammpl.engine.TrainerX`. For
Dassl, every class between the method and our engine (e.g. `AMMPL`, `CLIPPromptTrainer`) is
re-created from its own attribute dictionary on top of `dassl.engine.TrainerX`, with the
`__class__` cell of its functions pointed at the new class so that zero-argument `super()`
keeps working. The method code is shared, never copied or edited; plain mixins (those that
do not derive from our engine) are reused as they are.
"""

from __future__ import annotations

import importlib
import types
from collections.abc import Iterable
from typing import Any

from yacs.config import CfgNode

from ammpl.integrations.dassl_errors import REQUIRED_KEYS, install_error_hook
from ammpl.integrations.dassl_schedulers import repair_warmup_schedulers
from ammpl.utils import AmmplError, ConfigError, closest_name

__all__ = ["PREFIX", "dassl_trainer_class", "extend_cfg", "register_ammpl_trainers"]

PREFIX = "AMMPL_"  # ours under another name when the fork has a trainer of the same name
FIRST = "AMMPL"
NOT_INSTALLED = (
    "the original Dassl is not installed: this integration is for CoOp forks running on "
    "Dassl; use ammpl's own train.py otherwise"
)
EXTENDED_SECTIONS = ("TRAINER", "MODEL.BACKBONE")
ENGINE_CLASS_NAMES = ("TrainerBase", "SimpleTrainer", "TrainerX")

# (our class, Dassl's TrainerX) -> its Dassl twin; keyed on Dassl's class so that a
# re-imported Dassl (tests) gets fresh twins.
_TWINS: dict[tuple[type, type], type] = {}


# ----------------------------------------------------------------------------- Dassl


def _dassl_engine() -> types.ModuleType:
    """`dassl.engine`, or an AmmplError saying why it cannot be used."""
    try:
        importlib.import_module("dassl")
    except ImportError as exc:
        if exc.name == "dassl":
            raise AmmplError(NOT_INSTALLED) from None
        raise AmmplError(f"the original Dassl is installed but importing it fails: {exc}") from exc
    try:
        engine = importlib.import_module("dassl.engine")
    except ImportError as exc:
        raise AmmplError(f"Dassl is installed but `import dassl.engine` fails: {exc}") from exc
    missing = [n for n in ("TRAINER_REGISTRY", "TrainerX") if not hasattr(engine, n)]
    if missing:
        raise AmmplError(
            f"the installed `dassl` has no dassl.engine.{missing[0]}: is it Dassl.pytorch "
            "(github.com/KaiyangZhou/Dassl.pytorch)?"
        )
    return engine


def _registered_names(registry: Any) -> list[str]:
    if hasattr(registry, "registered_names"):
        return list(registry.registered_names())
    return list(registry._obj_map)  # Dassl's Registry before registered_names() existed


# ----------------------------------------------------------------------------- our trainers


def _our_trainers() -> dict[str, type]:
    """Our registered CLIP trainers by name, AMMPL first."""
    import ammpl.trainers  # noqa: F401  (registers every method)
    from ammpl.engine import TRAINER_REGISTRY
    from ammpl.trainers.base import CLIPPromptTrainer

    registered = {name: TRAINER_REGISTRY.get(name) for name in TRAINER_REGISTRY.registered_names()}
    trainers = {
        name: cls
        for name, cls in registered.items()
        if isinstance(cls, type) and issubclass(cls, CLIPPromptTrainer)
    }
    ordered = sorted(trainers, key=lambda name: name != FIRST)  # stable: the rest keep order
    return {name: trainers[name] for name in ordered}


def _source_name(name: str, ours: dict[str, type]) -> str:
    """Which of our trainers a requested name means (`AMMPL_CoOp` → `CoOp`)."""
    if name in ours:
        return name
    if name.startswith(PREFIX) and name[len(PREFIX) :] in ours:
        return name[len(PREFIX) :]
    hint = closest_name(name, list(ours) + [PREFIX + n for n in ours])
    hint_text = f" Did you mean '{hint}'?" if hint else ""
    raise ConfigError(
        f"ammpl has no trainer '{name}'.{hint_text} Available: {', '.join(ours)} "
        f"(each also as '{PREFIX}<name>')"
    )


# ----------------------------------------------------------------------------- rebasing

_EMPTY = object()


def _cell_contents(cell: types.CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # a cell not yet filled
        return _EMPTY


def _rebind_function(
    func: types.FunctionType, cls: type, cell: types.CellType, seen: set[int] | None = None
) -> Any:
    """`func` with its `__class__` cell (also inside decorator closures) replaced by
    `cell` where it refers to `cls`; `func` itself if it does not refer to `cls`."""
    seen = set() if seen is None else seen
    if not func.__closure__ or id(func) in seen:
        return func
    seen.add(id(func))
    cells, changed = [], False
    for var, old in zip(func.__code__.co_freevars, func.__closure__):
        contents, new = _cell_contents(old), old
        if var == "__class__" and contents is cls:
            new = cell
        elif isinstance(contents, types.FunctionType):
            rebound = _rebind_function(contents, cls, cell, seen)
            if rebound is not contents:
                new = types.CellType(rebound)
        cells.append(new)
        changed = changed or new is not old
    if not changed:
        return func
    clone = types.FunctionType(
        func.__code__, func.__globals__, func.__name__, func.__defaults__, tuple(cells)
    )
    clone.__kwdefaults__ = dict(func.__kwdefaults__) if func.__kwdefaults__ else None
    clone.__qualname__ = func.__qualname__
    clone.__doc__ = func.__doc__
    clone.__module__ = func.__module__
    clone.__annotations__ = dict(func.__annotations__)
    clone.__dict__.update(func.__dict__)
    return clone


def _rebind(value: Any, cls: type, cell: types.CellType, attribute: str) -> Any:
    """One class attribute for the twin class (functions, static/class methods, properties)."""
    if isinstance(value, types.FunctionType):
        return _rebind_function(value, cls, cell)
    if isinstance(value, (staticmethod, classmethod)):
        return type(value)(_rebind(value.__func__, cls, cell, attribute))
    if isinstance(value, property):
        accessors = [
            None if f is None else _rebind(f, cls, cell, attribute)
            for f in (value.fget, value.fset, value.fdel)
        ]
        return property(*accessors, value.__doc__)
    inner = getattr(value, "func", None)
    if isinstance(inner, types.FunctionType) and _rebind_function(inner, cls, cell) is not inner:
        raise AmmplError(
            f"{cls.__name__}.{attribute} ({type(value).__name__}) uses super() in a form this "
            "integration cannot move to Dassl; make it a plain method"
        )
    return value


def _engine_classes() -> dict[type, str]:
    from ammpl.engine import trainer as our_engine

    return {getattr(our_engine, name): name for name in ENGINE_CLASS_NAMES}


def _twin(cls: type, engine: types.ModuleType) -> type:
    """`cls` rebuilt on Dassl's engine classes (cached per Dassl)."""
    engine_classes = _engine_classes()
    if cls in engine_classes:
        counterpart = getattr(engine, engine_classes[cls], None)
        if counterpart is None:
            raise AmmplError(f"the installed Dassl has no dassl.engine.{engine_classes[cls]}")
        return counterpart
    from ammpl.engine import TrainerBase

    if not issubclass(cls, TrainerBase):
        return cls  # a plain mixin or `object`: engine-free, usable as it is
    key = (cls, engine.TrainerX)
    if key not in _TWINS:
        bases = tuple(_twin(base, engine) for base in cls.__bases__)
        cell = types.CellType()
        namespace = {
            name: _rebind(value, cls, cell, name)
            for name, value in vars(cls).items()
            if name not in ("__dict__", "__weakref__")
        }
        twin = type(cls)(cls.__name__, bases, namespace)
        cell.cell_contents = twin
        _TWINS[key] = twin
    return _TWINS[key]


class DasslCompatibility:
    """First base of every class registered into Dassl: names the trainer it came from and
    turns a config without our keys into a one-line error instead of an AttributeError."""

    ammpl_trainer: type  # set on each registered class

    def check_cfg(self, cfg: Any) -> None:
        node = getattr(self, "CFG_NODE", "")
        keys = REQUIRED_KEYS + ((f"TRAINER.{node}",) if node else ())
        missing = [key for key in keys if not _has_key(cfg, key)]
        if missing:
            raise ConfigError(
                f"The config lacks {', '.join(missing)}, which ammpl's {type(self).__name__} "
                "reads: call ammpl.integrations.dassl.extend_cfg(cfg) inside your train.py's "
                "extend_cfg()"
            )
        super().check_cfg(cfg)


def dassl_trainer_class(trainer: str | type, name: str | None = None) -> type:
    """A `dassl.engine.TrainerX` subclass running our trainer `trainer` (a name such as
    "AMMPL" or one of our trainer classes), named `name` (default: the trainer's name).
    Not registered: `register_ammpl_trainers` does that."""
    engine = _dassl_engine()
    if isinstance(trainer, str):
        ours = _our_trainers()
        trainer = ours[_source_name(trainer, ours)]
    from ammpl.engine import TrainerBase

    if not (isinstance(trainer, type) and issubclass(trainer, TrainerBase)):
        raise AmmplError(f"{trainer!r} is not an ammpl trainer class")
    namespace = {
        "__module__": __name__,
        "__doc__": f"ammpl's {trainer.__name__} trainer on Dassl's engine.",
        "ammpl_trainer": trainer,
    }
    return type(name or trainer.__name__, (DasslCompatibility, _twin(trainer, engine)), namespace)


# ----------------------------------------------------------------------------- public API


def register_ammpl_trainers(names: Iterable[str] | None = None) -> list[str]:
    """Register our CLIP trainers into `dassl.engine.TRAINER_REGISTRY`; return the names
    under which they are available.

    `names`: which ones (default: every CLIP trainer of ammpl, AMMPL first). A name the
    code base already registered (its own `CoOp`) is never replaced: it is skipped with a
    one-line note; ask for ours under the prefixed name (`AMMPL_CoOp`) instead. Calling this
    again is harmless. Call it after the fork's own trainers are imported: a fork trainer
    registered later under one of our names would fail Dassl's duplicate-name check.

    It also repairs Dassl's warm-up schedulers if this torch breaks them (one notice line,
    `dassl_schedulers`) and makes our errors, and a config missing our keys, one line
    (`dassl_errors`).
    """
    engine = _dassl_engine()
    repair_warmup_schedulers()  # the fork's own trainers need them too (torch ≥ 2.10)
    install_error_hook()  # the fork's train.py would show tracebacks for our one-line errors
    registry = engine.TRAINER_REGISTRY
    ours = _our_trainers()
    available: list[str] = []
    for name in list(ours) if names is None else list(names):
        trainer = ours[_source_name(name, ours)]
        if name in _registered_names(registry):
            if getattr(registry.get(name), "ammpl_trainer", None) is trainer:
                available.append(name)  # registered by an earlier call
            else:
                print(
                    f"ammpl: kept this code base's own trainer '{name}' (ask for ammpl's as "
                    f"'{PREFIX}{name}': register_ammpl_trainers(names=['{PREFIX}{name}']))"
                )
            continue
        registry.register(dassl_trainer_class(trainer, name))
        available.append(name)
    if available:
        print(f"ammpl: trainers available to Dassl: {', '.join(available)}")
    return available


def _has_key(cfg: Any, dotted: str) -> bool:
    node = cfg
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def _copy_into(parent: CfgNode, value: Any) -> Any:
    """A deep copy of `value` made of the parent's node class (the fork's CfgNode)."""
    if isinstance(value, CfgNode):
        return type(parent)(dict(value))
    return value.copy() if isinstance(value, (list, dict)) else value


def _add_missing(target: CfgNode, source: CfgNode, prefix: str, added: list[str]) -> None:
    for key, value in source.items():
        if key not in target:
            setattr(target, key, _copy_into(target, value))
            added.append(prefix + key)
        elif isinstance(value, CfgNode) and isinstance(target[key], CfgNode):
            _add_missing(target[key], value, f"{prefix}{key}.", added)


def extend_cfg(cfg: CfgNode) -> list[str]:
    """Add every method node of ours (`TRAINER.AMMPL`, `TRAINER.COOP`, …) with our defaults,
    and `MODEL.BACKBONE.PATH` / `ALLOW_TINY_FALLBACK`, to a Dassl config; return the dotted
    keys added. Keys the config already has (the fork's own `TRAINER.COOP`) keep their
    values; only keys missing inside them are added. Needs no Dassl (plain yacs)."""
    if not isinstance(cfg, CfgNode):
        raise ConfigError(f"extend_cfg expects a yacs CfgNode (Dassl's config), got {type(cfg)}")
    if cfg.is_frozen():
        raise ConfigError(
            "extend_cfg(cfg) got a frozen config; call it inside your train.py's extend_cfg(), "
            "before the config files are merged and cfg.freeze()"
        )
    import ammpl.trainers  # noqa: F401  (registers every method's config node)
    from ammpl.engine import get_cfg_default

    ours = get_cfg_default()
    added: list[str] = []
    for section in EXTENDED_SECTIONS:
        if not _has_key(cfg, section):
            raise ConfigError(
                f"extend_cfg expects Dassl's config tree (dassl.config.get_cfg_default()); "
                f"this one has no {section} section"
            )
        target, source = cfg, ours
        for part in section.split("."):
            target, source = target[part], source[part]
        _add_missing(target, source, section + ".", added)
    return added
