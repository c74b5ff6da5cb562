"""The few-shot cache: reuse CoOp/Dassl pickles, else our own JSON, else sample and save.

Lookup order for (K, seed):
  1. `split_fewshot/shot_{K}-seed_{S}.pkl` written by CoOp / Dassl (read without Dassl through a
     restricted unpickler that only builds Datum records; paths re-rooted if the data moved);
  2. `split_fewshot/shot_{K}-seed_{S}.ammpl.json` (ours: paths relative to the dataset folder);
  3. sample with Dassl's rule (train with K, then val with min(K, 4)) and write the JSON.
A `.pkl` is never written: a CoOp fork expecting Dassl objects would choke on ours.

Where cached files are looked up (split files, few-shot caches, ImageNet's list cache): ONE
order, `find_cached_file`: the dataset folder under the data root first (as CoOp), then the
cache folder `<cache_dir>/<dataset folder name>/` (DATASET.CACHE_DIR, or ~/.cache/ammpl/data
when it is empty); within one folder, CoOp's pickle before our JSON. So a file next to the
data always wins over one in a cache folder, whatever its format. Writes go to the cache
folder when DATASET.CACHE_DIR is set or the data is read-only.
"""

from __future__ import annotations

import copyreg
import os
import pickle
import tempfile
from collections.abc import Sequence
from typing import Any

from ammpl.data.base import Datum
from ammpl.data.fewshot import generate_fewshot_dataset
from ammpl.utils.errors import DataError
from ammpl.utils.io import read_json, write_json

DEFAULT_CACHE_ROOT = os.path.join("~", ".cache", "ammpl", "data")
FEWSHOT_DIRNAME = "split_fewshot"
JSON_FORMAT = "ammpl-fewshot-v1"
MAX_VAL_SHOTS = 4
_DELETE_HINT = "delete it to resample"


def _dir_is_writable(path: str) -> bool:
    """True if a file can actually be created in `path` (os.access alone is wrong for root
    and for read-only mounts)."""
    if not os.access(path, os.W_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=path):
            return True
    except OSError:
        return False


def _redirected_dir(dataset_dir: str, cache_dir: str) -> str:
    root = os.path.abspath(os.path.expanduser(cache_dir or DEFAULT_CACHE_ROOT))
    return os.path.join(root, os.path.basename(os.path.normpath(dataset_dir)))


def dataset_cache_dir(dataset_dir: str, cache_dir: str = "") -> str:
    """Where files derived from a dataset are written: the dataset folder itself, or
    `<cache_dir>/<dataset folder name>` when `cache_dir` is set or the folder is read-only
    (`cache_dir` empty → ~/.cache/ammpl/data)."""
    if not cache_dir and _dir_is_writable(dataset_dir):
        return dataset_dir
    redirected = _redirected_dir(dataset_dir, cache_dir)
    if not cache_dir:
        print(f"Dataset folder {dataset_dir} is not writable; caching under {redirected}")
    return redirected


def cache_folders(dataset_dir: str, cache_dir: str = "") -> list[str]:
    """The folders searched for cached files, in precedence order: the dataset folder, then
    its cache folder (`<cache_dir or ~/.cache/ammpl/data>/<dataset folder name>`)."""
    folders = [dataset_dir]
    redirected = _redirected_dir(dataset_dir, cache_dir)
    if os.path.abspath(redirected) != os.path.abspath(dataset_dir):
        folders.append(redirected)
    return folders


def find_cached_file(
    dataset_dir: str, relpaths: str | Sequence[str], cache_dir: str = ""
) -> str | None:
    """The first existing `<folder>/<relpath>`: folders in `cache_folders` order, and within
    a folder the relpaths in the order given (so the dataset folder always wins)."""
    names = [relpaths] if isinstance(relpaths, str) else list(relpaths)
    for folder in cache_folders(dataset_dir, cache_dir):
        for relpath in names:
            candidate = os.path.join(folder, relpath)
            if os.path.isfile(candidate):
                return candidate
    return None


# ---------------------------------------------------------------- CoOp / Dassl pickles


_DATUM_FIELDS = ("_impath", "_label", "_domain", "_classname")


class _PickledDatum:
    """Receives the private attributes of a pickled `dassl...Datum`; nothing else."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # (dict state, slots state)
            merged: dict = {}
            for part in state:
                merged.update(part or {})
            state = merged
        if not isinstance(state, dict):
            raise pickle.UnpicklingError("a Datum record must carry a dict of attributes")
        self.fields = {key: state.get(key) for key in _DATUM_FIELDS}


_ALLOWED_GLOBALS = {
    ("copyreg", "_reconstructor"): copyreg._reconstructor,  # protocols 0 and 1
    ("builtins", "object"): object,
    ("__builtin__", "object"): object,
}


class _DasslDatumUnpickler(pickle.Unpickler):
    """Maps any `*.Datum` class to a plain record and refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if name == "Datum":
            return _PickledDatum
        if (module, name) in _ALLOWED_GLOBALS:
            return _ALLOWED_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _reroot(path: str, dataset_dir: str) -> str | None:
    """`path` moved under `dataset_dir`: keep the suffix after the dataset folder's name."""
    folder = os.path.basename(os.path.normpath(dataset_dir))
    parts = path.replace("\\", "/").split("/")
    for index in range(len(parts) - 2, -1, -1):
        if parts[index] == folder:
            candidate = os.path.join(dataset_dir, *parts[index + 1 :])
            if os.path.exists(candidate):
                return candidate
    return None


def _records_to_data(records: Any, source: str, part: str, dataset_dir: str) -> list[Datum]:
    if not isinstance(records, list):
        raise DataError(f"Few-shot cache {source}: '{part}' is not a list")
    items = []
    for index, record in enumerate(records):
        if not isinstance(record, _PickledDatum):
            raise DataError(f"Few-shot cache {source}: entry {index} of '{part}' is not a Datum")
        impath, label, domain, classname = (record.fields[key] for key in _DATUM_FIELDS)
        try:
            label, domain = int(label), int(domain or 0)
        except (TypeError, ValueError):
            label = None
        if not isinstance(impath, str) or label is None:
            raise DataError(f"Few-shot cache {source}: entry {index} of '{part}' is malformed")
        if not os.path.exists(impath):
            moved = _reroot(impath, dataset_dir)
            if moved is None:
                raise DataError(
                    f"Few-shot cache {source} lists {impath}, which is missing and not found "
                    f"under {dataset_dir} either; delete the cache file to resample"
                )
            impath = moved
        items.append(Datum._trusted(impath, label, domain, str(classname or "")))
    return items


def read_dassl_pickle(path: str, dataset_dir: str, parts: Sequence[str]) -> dict[str, list[Datum]]:
    """The lists named in `parts` from a pickle of Dassl Datum objects (CoOp's few-shot and
    ImageNet caches), read without Dassl installed; paths re-rooted if the data moved."""
    try:
        with open(path, "rb") as handle:
            data = _DasslDatumUnpickler(handle).load()
    except Exception as exc:  # any corrupt or foreign pickle: one actionable line
        raise DataError(f"Cannot read cache {path}: {exc}; {_DELETE_HINT}") from None
    if not isinstance(data, dict) or not set(parts) <= set(data):
        raise DataError(f"Cache {path} lacks the {'/'.join(parts)} lists; {_DELETE_HINT}")
    return {part: _records_to_data(data[part], path, part, dataset_dir) for part in parts}


def _read_pickle(path: str, dataset_dir: str, has_val: bool) -> tuple[list, list | None]:
    lists = read_dassl_pickle(path, dataset_dir, ("train", "val") if has_val else ("train",))
    return lists["train"], lists.get("val")


# ---------------------------------------------------------------- our JSON cache


def _to_entries(items: Sequence[Datum], dataset_dir: str) -> list[list]:
    prefix = os.path.join(os.path.abspath(dataset_dir), "")
    entries = []
    for item in items:
        path = os.path.abspath(item.impath)
        relpath = path[len(prefix) :] if path.startswith(prefix) else path
        entries.append([relpath.replace(os.sep, "/"), item.label, item.classname])
    return entries


def _from_entries(entries: Any, source: str, part: str, dataset_dir: str) -> list[Datum]:
    if not isinstance(entries, list):
        raise DataError(f"Few-shot cache {source}: '{part}' is not a list")
    items = []
    for index, entry in enumerate(entries):
        well_formed = (
            isinstance(entry, list)
            and len(entry) == 3
            and isinstance(entry[0], str)
            and isinstance(entry[1], int)
            and isinstance(entry[2], str)
        )
        if not well_formed:
            raise DataError(f"Few-shot cache {source}: entry {index} of '{part}' is malformed")
        impath = os.path.join(dataset_dir, entry[0])
        if not os.path.exists(impath):
            raise DataError(
                f"Few-shot cache {source} entry {index} of '{part}': image {impath} not found; "
                "delete the cache file to resample"
            )
        items.append(Datum._trusted(impath, entry[1], 0, entry[2]))
    return items


def _read_json_cache(path: str, dataset_dir: str, has_val: bool) -> tuple[list, list | None]:
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise DataError(f"Cannot read few-shot cache {path}: {exc}; {_DELETE_HINT}") from None
    if not isinstance(data, dict) or data.get("format") != JSON_FORMAT:
        raise DataError(f"Few-shot cache {path} is not an {JSON_FORMAT} file; {_DELETE_HINT}")
    if "train" not in data or (has_val and "val" not in data):
        raise DataError(f"Few-shot cache {path} lacks the train/val lists; {_DELETE_HINT}")
    train = _from_entries(data["train"], path, "train", dataset_dir)
    val = _from_entries(data["val"], path, "val", dataset_dir) if has_val else None
    return train, val


# ---------------------------------------------------------------- entry point


def load_or_create_fewshot(
    dataset_dir: str,
    train: list[Datum],
    val: list[Datum] | None,
    num_shots: int,
    seed: int,
    cache_dir: str = "",
    has_val: bool = True,
) -> tuple[list[Datum], list[Datum] | None]:
    """(train, val) reduced to `num_shots` per class, reusing a cached pick when one exists.

    `num_shots < 1` returns the lists unchanged. `has_val=False` (ImageNet) samples and stores
    only train; val is returned as given.
    """
    if num_shots < 1:
        return train, val
    dataset_dir = os.path.abspath(dataset_dir)
    stem = os.path.join(FEWSHOT_DIRNAME, f"shot_{num_shots}-seed_{seed}")
    path = find_cached_file(dataset_dir, (stem + ".pkl", stem + ".ammpl.json"), cache_dir)
    if path is not None:
        print(f"Loading preprocessed few-shot data from {path}")
        reader = _read_pickle if path.endswith(".pkl") else _read_json_cache
        cached_train, cached_val = reader(path, dataset_dir, has_val)
        return cached_train, (cached_val if has_val else val)

    train = generate_fewshot_dataset(train, num_shots=num_shots)
    data: dict[str, Any] = {"format": JSON_FORMAT, "num_shots": num_shots, "seed": seed}
    data["train"] = _to_entries(train, dataset_dir)
    if has_val:
        val = generate_fewshot_dataset(val or [], num_shots=min(num_shots, MAX_VAL_SHOTS))
        data["val"] = _to_entries(val, dataset_dir)
    path = os.path.join(dataset_cache_dir(dataset_dir, cache_dir), stem + ".ammpl.json")
    print(f"Saving preprocessed few-shot data to {path}")
    write_json(data, path, indent=None)
    return train, val
