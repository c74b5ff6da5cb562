"""Name → class registries, with Dassl's behaviour and a closest-name hint."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable
from typing import Any

from ammpl.utils.errors import ConfigError


def closest_name(name: str, candidates: Iterable[str]) -> str | None:
    """The candidate most similar to `name` (case-insensitive), or None."""
    candidates = list(candidates)
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    match = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.5)
    return lowered[match[0]] if match else None


class Registry:
    """Stores objects under their __name__ (or an explicit name).

    Registering a name twice raises; an unknown name raises a KeyError listing the
    registered names and the closest one.
    """

    def __init__(self, name: str, error_cls: type[Exception] | None = None) -> None:
        self._name = name
        self._obj_map: dict[str, Any] = {}
        self._error_cls = error_cls or ConfigError

    def _do_register(self, name: str, obj: Any, force: bool = False) -> None:
        if name in self._obj_map and not force:
            raise KeyError(
                f'An object named "{name}" was already registered in "{self._name}" registry'
            )
        self._obj_map[name] = obj

    def register(self, obj: Any = None, force: bool = False, name: str | None = None) -> Any:
        if obj is None:

            def wrapper(fn_or_class: Callable) -> Callable:
                self._do_register(name or fn_or_class.__name__, fn_or_class, force=force)
                return fn_or_class

            return wrapper
        self._do_register(name or obj.__name__, obj, force=force)
        return obj

    def get(self, name: str) -> Any:
        if name not in self._obj_map:
            hint = closest_name(name, self._obj_map)
            hint_text = f' Did you mean "{hint}"?' if hint else ""
            message = (
                f'Unknown {self._name.lower()} "{name}".{hint_text} '
                f"Registered: {', '.join(sorted(self._obj_map))}"
            )
            raise self._error_cls(message)
        return self._obj_map[name]

    def registered_names(self) -> list[str]:
        return list(self._obj_map.keys())

    def __contains__(self, name: str) -> bool:
        return name in self._obj_map

    def __len__(self) -> int:
        return len(self._obj_map)
