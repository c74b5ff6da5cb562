"""On-disk cache of frozen image features.

Zero-shot CLIP, linear probes, and the un-prompted image features of CoCoOp and AMMPL
(when augmentation is off) encode the same images with the same frozen tower again and
again. The cache keys a feature by everything it depends on: the backbone name, its
weights hash and the transform (one folder per combination) and the image's absolute
path, modification time and size (one entry per image).

Features live in shard files, each written to a temporary file and renamed into place, so
an interrupted run never leaves a half-written shard where a reader looks; a shard that
cannot be read anyway is deleted with a notice and its features are recomputed. Every
call writes its new features before it returns; many small shards are merged once their
number exceeds `max_shards`.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from ammpl.utils import DataError, atomic_write, write_json

FORMAT_VERSION = 1
SHARD_GLOB = "shard-*.pt"
STORAGE_DTYPES = (torch.float16, torch.float32)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "backbone"


def image_key(impath: str | os.PathLike) -> str:
    """Absolute path + mtime + size: an edited or replaced image gets a new entry."""
    path = os.path.abspath(impath)
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise DataError(f"image {path} not found (the feature cache needs it)") from None
    return f"{path}|{stat.st_mtime_ns}|{stat.st_size}"


class FeatureCache:
    """Features of images under one backbone, weights and transform.

    `dtype` is the storage dtype (float16 halves the disk use); hits and misses both come
    back in it, so a cached run gives the same numbers as the run that filled the cache.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        backbone_name: str,
        weights_hash: str,
        transform_repr: str,
        dtype: torch.dtype = torch.float32,
        max_shards: int = 64,
    ) -> None:
        if dtype not in STORAGE_DTYPES:
            raise ValueError(f"FeatureCache stores float16 or float32, not {dtype}")
        transform_digest = hashlib.sha256(transform_repr.encode()).hexdigest()[:12]
        folder = f"{_slug(backbone_name)}-{weights_hash}-{transform_digest}"
        self.directory = Path(os.path.expanduser(root)) / folder
        self.meta = {
            "backbone": backbone_name,
            "weights_hash": weights_hash,
            "transform": transform_repr,
        }
        self.dtype = dtype
        self.max_shards = max_shards
        self._shards: list[torch.Tensor] = []
        self._index: dict[str, tuple[int, int]] | None = None  # key → (shard, row)
        self._feature_shape: tuple[int, ...] | None = None

    # -- public -----------------------------------------------------------------------
    def get_or_compute(
        self,
        impaths: Sequence[str | os.PathLike],
        compute_fn: Callable[[list[int]], torch.Tensor],
    ) -> torch.Tensor:
        """Features (N, ...) of `impaths`, computing only the missing ones.

        `compute_fn(positions)` gets the positions in `impaths` of the images not yet
        cached (each distinct image once) and returns their features, one row each.
        """
        index = self._loaded_index()
        keys = [image_key(path) for path in impaths]
        missing: list[int] = []
        pending: set[str] = set()
        for position, key in enumerate(keys):
            if key not in index and key not in pending:
                pending.add(key)
                missing.append(position)
        if missing:
            features = self._checked_features(compute_fn(missing), len(missing))
            self._write_shard([keys[position] for position in missing], features)
        return self._gather(keys)

    def __len__(self) -> int:
        return len(self._loaded_index())

    def __contains__(self, impath: str | os.PathLike) -> bool:
        return image_key(impath) in self._loaded_index()

    # -- reading ----------------------------------------------------------------------
    def _loaded_index(self) -> dict[str, tuple[int, int]]:
        if self._index is None:
            self._index = {}
            self.directory.mkdir(parents=True, exist_ok=True)
            if not (self.directory / "meta.json").exists():
                write_json(self.meta, self.directory / "meta.json")
            shard_paths = sorted(self.directory.glob(SHARD_GLOB))
            readable = [path for path in shard_paths if self._read_shard(path)]
            if len(readable) > self.max_shards:
                self._compact(readable)
        return self._index

    def _read_shard(self, path: Path) -> bool:
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            keys, features = self._validated(payload)
        except FileNotFoundError:  # merged away by another process meanwhile
            return False
        except Exception as error:  # any unreadable shard is recomputed, whatever broke it
            reason = str(error).strip().splitlines()[0][:120] if str(error).strip() else ""
            print(
                f"feature cache: shard {path} is corrupt ({reason or type(error).__name__}); "
                f"its features will be recomputed"
            )
            path.unlink(missing_ok=True)
            return False
        self._add(keys, features)
        return True

    def _validated(self, payload: object) -> tuple[list[str], torch.Tensor]:
        if not isinstance(payload, dict) or payload.get("version") != FORMAT_VERSION:
            raise ValueError("not a feature shard of this version")
        keys, features = payload.get("keys"), payload.get("features")
        if not isinstance(keys, list) or not isinstance(features, torch.Tensor):
            raise ValueError("keys or features missing")
        if len(keys) != features.shape[0]:
            raise ValueError(f"{len(keys)} keys for {features.shape[0]} feature rows")
        shape = tuple(features.shape[1:])
        if self._feature_shape is not None and shape != self._feature_shape:
            raise ValueError(f"features of shape {shape}, others have {self._feature_shape}")
        return keys, features.to(self.dtype)

    def _add(self, keys: list[str], features: torch.Tensor) -> None:
        shard_id = len(self._shards)
        self._shards.append(features)
        self._feature_shape = tuple(features.shape[1:])
        self._index.update((key, (shard_id, row)) for row, key in enumerate(keys))

    def _gather(self, keys: list[str]) -> torch.Tensor:
        if not keys:
            return torch.empty((0, *(self._feature_shape or ())), dtype=self.dtype)
        locations = torch.tensor([self._index[key] for key in keys], dtype=torch.long)
        shard_ids, rows = locations[:, 0], locations[:, 1]
        result = torch.empty((len(keys), *self._feature_shape), dtype=self.dtype)
        for shard_id in shard_ids.unique().tolist():
            selected = shard_ids == shard_id
            result[selected] = self._shards[shard_id][rows[selected]]
        return result

    # -- writing ----------------------------------------------------------------------
    def _checked_features(self, computed: object, expected_rows: int) -> torch.Tensor:
        if not isinstance(computed, torch.Tensor) or computed.ndim == 0:
            raise TypeError(f"compute_fn must return a tensor, got {type(computed).__name__}")
        if computed.shape[0] != expected_rows:
            raise ValueError(
                f"compute_fn returned {computed.shape[0]} rows for {expected_rows} images"
            )
        shape = tuple(computed.shape[1:])
        if self._feature_shape is not None and shape != self._feature_shape:
            raise DataError(
                f"feature cache {self.directory} holds features of shape {self._feature_shape} "
                f"but compute_fn returned {shape}; delete that folder or use another root"
            )
        return computed.detach().to(device="cpu", dtype=self.dtype).contiguous()

    def _save(self, keys: list[str], features: torch.Tensor) -> Path:
        path = self.directory / f"shard-{uuid.uuid4().hex}.pt"
        payload = {"version": FORMAT_VERSION, "keys": keys, "features": features}
        with atomic_write(path) as handle:
            torch.save(payload, handle)
        return path

    def _write_shard(self, keys: list[str], features: torch.Tensor) -> None:
        self._save(keys, features)
        self._add(keys, features)

    def _compact(self, shard_paths: list[Path]) -> None:
        """Merge every shard into one, so opening the cache stays one read."""
        keys = list(self._index)
        merged = self._gather(keys)
        self._save(keys, merged)
        for path in shard_paths:
            path.unlink(missing_ok=True)
        self._shards, self._index = [], {}
        self._add(keys, merged)
