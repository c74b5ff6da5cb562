"""Feature cache: hits and misses, what the key depends on, interruption, corrupt shards."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ammpl.clip import feature_cache as cache_module
from ammpl.clip.feature_cache import FeatureCache
from ammpl.utils import DataError

DIM = 6


@pytest.fixture
def images(tmp_path: Path) -> list[str]:
    folder = tmp_path / "images"
    folder.mkdir()
    paths = []
    for index in range(5):
        path = folder / f"img{index}.jpg"
        path.write_bytes(bytes([index]) * (10 + index))
        paths.append(str(path))
    return paths


class Encoder:
    """A stand-in image tower: features are a function of the file's bytes; calls are logged."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def features(self, paths: list[str]) -> torch.Tensor:
        self.calls.append(list(paths))
        rows = [torch.arange(DIM, dtype=torch.float32) + Path(p).read_bytes()[0] / 3 for p in paths]
        return torch.stack(rows)

    def compute_fn(self, impaths: list[str]):
        return lambda positions: self.features([impaths[i] for i in positions])


def make_cache(root: Path, **kwargs) -> FeatureCache:
    options = {"backbone_name": "ViT-B/16", "weights_hash": "abc123", "transform_repr": "T()"}
    options.update(kwargs)
    return FeatureCache(root, **options)


def shards(cache: FeatureCache) -> list[Path]:
    return sorted(cache.directory.glob("shard-*.pt"))


def test_miss_then_hit_across_instances(tmp_path, images):
    encoder = Encoder()
    first = make_cache(tmp_path / "cache").get_or_compute(images, encoder.compute_fn(images))
    assert encoder.calls == [images]
    torch.testing.assert_close(first, encoder.features(images))

    encoder.calls.clear()
    reopened = make_cache(tmp_path / "cache")  # a new run reads the shards from disk
    again = reopened.get_or_compute(images[::-1], encoder.compute_fn(images[::-1]))
    assert encoder.calls == []
    assert torch.equal(again, first.flip(0))
    assert len(reopened) == 5 and images[0] in reopened


def test_partial_hits_compute_only_missing_and_duplicates_once(tmp_path, images):
    encoder = Encoder()
    cache = make_cache(tmp_path)
    cache.get_or_compute(images[:2], encoder.compute_fn(images[:2]))
    encoder.calls.clear()
    batch = [images[3], images[0], images[3], images[4]]
    result = cache.get_or_compute(batch, encoder.compute_fn(batch))
    assert encoder.calls == [[images[3], images[4]]]
    torch.testing.assert_close(result, encoder.features(batch))


def test_key_covers_file_change_and_folder_covers_weights_and_transform(tmp_path, images):
    encoder = Encoder()
    cache = make_cache(tmp_path)
    cache.get_or_compute(images, encoder.compute_fn(images))
    Path(images[1]).write_bytes(b"\x09" * 40)  # replaced image: new size and mtime
    encoder.calls.clear()
    result = cache.get_or_compute(images, encoder.compute_fn(images))
    assert encoder.calls == [[images[1]]]
    assert result[1, 0].item() == pytest.approx(3.0)

    directories = {
        make_cache(tmp_path).directory,
        make_cache(tmp_path, weights_hash="def456").directory,
        make_cache(tmp_path, transform_repr="T(size=336)").directory,
        make_cache(tmp_path, backbone_name="RN50").directory,
    }
    assert len(directories) == 4


def test_float16_storage_same_for_hit_and_miss(tmp_path, images):
    encoder = Encoder()
    miss = make_cache(tmp_path, dtype=torch.float16).get_or_compute(
        images, encoder.compute_fn(images)
    )
    hit = make_cache(tmp_path, dtype=torch.float16).get_or_compute(
        images, encoder.compute_fn(images)
    )
    assert miss.dtype == hit.dtype == torch.float16
    assert torch.equal(miss, hit) and len(encoder.calls) == 1


def test_interrupted_write_leaves_no_shard(tmp_path, images, monkeypatch):
    encoder = Encoder()
    real_save = torch.save

    def save_half_then_interrupt(payload, handle):
        real_save(payload, handle)
        handle.truncate(handle.tell() // 2)
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.torch, "save", save_half_then_interrupt)
    cache = make_cache(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute(images, encoder.compute_fn(images))
    monkeypatch.setattr(cache_module.torch, "save", real_save)

    assert shards(cache) == []
    assert not [p for p in os.listdir(cache.directory) if p.endswith(".tmp")]
    # A temp file left by a killed process (no cleanup ran) is never read either.
    (cache.directory / ".shard-dead.pt.x1.tmp").write_bytes(b"half a shard")
    encoder.calls.clear()
    result = make_cache(tmp_path).get_or_compute(images, encoder.compute_fn(images))
    assert encoder.calls == [images]
    torch.testing.assert_close(result, encoder.features(images))


def test_corrupt_shard_is_recomputed_with_a_notice(tmp_path, images, capsys):
    encoder = Encoder()
    cache = make_cache(tmp_path)
    cache.get_or_compute(images[:3], encoder.compute_fn(images[:3]))
    cache.get_or_compute(images[3:], encoder.compute_fn(images[3:]))
    first_shard = next(p for p in shards(cache) if torch.load(p)["keys"][0].startswith(images[0]))
    first_shard.write_bytes(first_shard.read_bytes()[:50])

    encoder.calls.clear()
    result = make_cache(tmp_path).get_or_compute(images, encoder.compute_fn(images))
    notice = capsys.readouterr().out
    assert "is corrupt" in notice and str(first_shard) in notice and "recomputed" in notice
    assert encoder.calls == [images[:3]]
    torch.testing.assert_close(result, encoder.features(images))
    assert not first_shard.exists()


def test_many_shards_are_merged(tmp_path, images):
    encoder = Encoder()
    cache = make_cache(tmp_path, max_shards=2)
    for path in images:
        cache.get_or_compute([path], encoder.compute_fn([path]))
    assert len(shards(cache)) == 5
    encoder.calls.clear()
    reopened = make_cache(tmp_path, max_shards=2)
    result = reopened.get_or_compute(images, encoder.compute_fn(images))
    assert encoder.calls == [] and len(shards(reopened)) == 1
    torch.testing.assert_close(result, encoder.features(images))


def test_bad_compute_results_and_missing_images(tmp_path, images):
    cache = make_cache(tmp_path)
    with pytest.raises(ValueError, match="returned 1 rows for 2 images"):
        cache.get_or_compute(images[:2], lambda positions: torch.zeros(1, DIM))
    cache.get_or_compute(images[:1], lambda positions: torch.zeros(1, DIM))
    with pytest.raises(DataError, match="holds features of shape"):
        cache.get_or_compute(images[1:2], lambda positions: torch.zeros(1, DIM + 1))
    with pytest.raises(DataError, match="not found"):
        cache.get_or_compute([str(tmp_path / "gone.jpg")], lambda positions: torch.zeros(1, DIM))
    assert cache.get_or_compute([], lambda positions: pytest.fail("called")).shape == (0, DIM)
