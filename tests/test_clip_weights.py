"""Weight resolution order, file formats, and the errors for missing, broken or mismatched
weights, all on the tiny architecture in a sealed HOME without network."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import open_clip.pretrained
import pytest
import torch
from _clip_weights_helpers import (
    TEST_BACKBONE,
    TEST_FETCH_COMMAND,
    TEST_HF_REPO,
    TEST_OPENAI_FILE,
    hf_snapshot_file,
    save_state_dict,
    save_torchscript_archive,
    seal_environment,
    tiny_state_dict,
)

from ammpl.clip import load_backbone
from ammpl.clip import weights as weights_module
from ammpl.clip.weights import WeightsNotFoundError, network_reachable, weights_hash
from ammpl.utils import BackboneError


@pytest.fixture
def sealed(monkeypatch, tmp_path):
    return seal_environment(monkeypatch, tmp_path)


@pytest.fixture(scope="module")
def state() -> dict[str, torch.Tensor]:
    return tiny_state_dict(seed=1)


def assert_weights_equal(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    loaded = model.state_dict()
    for key, tensor in state.items():
        assert torch.equal(loaded[key], tensor.to(loaded[key].dtype)), key


def clip_cache(home: Path) -> Path:
    return home / ".cache" / "clip"


# -- every source, in order ----------------------------------------------------------------
def test_explicit_path_state_dict(sealed, tmp_path, state):
    file = save_state_dict(tmp_path / "weights" / "mine.pt", state)
    model = load_backbone(TEST_BACKBONE, path=file)
    assert_weights_equal(model, state)
    assert model.ammpl_source == f"path:{file}"
    assert model.ammpl_weights_hash == weights_hash(file)
    assert model.ammpl_backbone_name == TEST_BACKBONE


def test_explicit_path_folder_uses_openai_file_name(sealed, tmp_path, state):
    save_state_dict(tmp_path / "folder" / TEST_OPENAI_FILE, state)
    model = load_backbone(TEST_BACKBONE, path=tmp_path / "folder")
    assert model.ammpl_source == f"path:{tmp_path / 'folder' / TEST_OPENAI_FILE}"


def test_missing_explicit_path_is_an_error_even_with_fallback(sealed, tmp_path, state):
    save_state_dict(clip_cache(sealed) / TEST_OPENAI_FILE, state)  # not used instead
    with pytest.raises(BackboneError, match="does not exist") as info:
        load_backbone(TEST_BACKBONE, path=tmp_path / "typo.pt", allow_tiny_fallback=True)
    assert str(tmp_path / "typo.pt") in str(info.value)


def test_env_file_and_folder(sealed, tmp_path, monkeypatch, state):
    file = save_state_dict(tmp_path / "env" / "any-name.pt", state)
    monkeypatch.setenv("AMMPL_CLIP_PATH", str(file))
    assert load_backbone(TEST_BACKBONE).ammpl_source == f"env:{file}"

    in_folder = save_state_dict(tmp_path / "shared" / TEST_OPENAI_FILE, state)
    monkeypatch.setenv("AMMPL_CLIP_PATH", str(tmp_path / "shared"))
    assert load_backbone(TEST_BACKBONE).ammpl_source == f"env:{in_folder}"


def test_clip_cache_plain_state_dict(sealed, state):
    file = save_state_dict(clip_cache(sealed) / TEST_OPENAI_FILE, state)
    model = load_backbone(TEST_BACKBONE)
    assert model.ammpl_source == f"clip-cache:{file}"
    assert_weights_equal(model, state)


def test_clip_cache_torchscript_archive(sealed, state):
    file = save_torchscript_archive(clip_cache(sealed) / TEST_OPENAI_FILE, state)
    model = load_backbone(TEST_BACKBONE)
    assert model.ammpl_source == f"clip-cache:{file}"
    # OpenAI's archives hold fp16 weights: loaded and widened to fp32, values kept.
    assert all(p.dtype == torch.float32 for p in model.parameters())
    half_state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    assert_weights_equal(model, half_state)


def test_wrapped_ddp_state_dict(sealed, tmp_path, state):
    wrapped = {"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}
    file = tmp_path / "ddp.pt"
    torch.save(wrapped, file)
    assert_weights_equal(load_backbone(TEST_BACKBONE, path=file), state)


@pytest.mark.parametrize("variable", ["HF_HUB_CACHE", "HF_HOME"])
def test_hf_cache_hit(sealed, tmp_path, monkeypatch, state, variable):
    hub = tmp_path / "hf" / ("hub" if variable == "HF_HOME" else "")
    monkeypatch.setenv(variable, str(tmp_path / "hf") if variable == "HF_HOME" else str(hub))
    file = save_state_dict(
        hf_snapshot_file(hub, TEST_HF_REPO, "open_clip_pytorch_model.bin"), state
    )
    model = load_backbone(TEST_BACKBONE)
    assert model.ammpl_source == f"hf-cache:{file}"
    assert_weights_equal(model, state)


def test_order_env_then_clip_cache_then_hf(sealed, tmp_path, monkeypatch, state):
    hub = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(hub))
    save_state_dict(hf_snapshot_file(hub, TEST_HF_REPO, "open_clip_pytorch_model.bin"), state)
    cached = save_state_dict(clip_cache(sealed) / TEST_OPENAI_FILE, state)
    assert load_backbone(TEST_BACKBONE).ammpl_source == f"clip-cache:{cached}"

    env_file = save_state_dict(tmp_path / "env.pt", state)
    monkeypatch.setenv("AMMPL_CLIP_PATH", str(env_file))
    assert load_backbone(TEST_BACKBONE).ammpl_source == f"env:{env_file}"

    explicit = save_state_dict(tmp_path / "explicit.pt", state)
    assert load_backbone(TEST_BACKBONE, path=explicit).ammpl_source == f"path:{explicit}"


def test_download_through_open_clip_when_online(sealed, tmp_path, monkeypatch, state):
    calls = []

    def fake_download(cfg, prefer_hf_hub=True, cache_dir=None):
        calls.append((cfg["hf_hub"], cache_dir))
        return str(save_state_dict(tmp_path / "downloaded" / "open_clip_pytorch_model.bin", state))

    monkeypatch.setattr(weights_module, "network_reachable", lambda host, timeout=3.0: True)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained", fake_download)
    model = load_backbone(TEST_BACKBONE)
    assert calls == [(f"{TEST_HF_REPO}/", str(sealed / ".cache" / "huggingface" / "hub"))]
    assert model.ammpl_source.startswith("download:")
    assert_weights_equal(model, state)


def test_download_skipped_when_hf_hub_offline(sealed, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(weights_module, "network_reachable", lambda *a, **k: pytest.fail("probed"))
    with pytest.raises(WeightsNotFoundError, match="skipped: HF_HUB_OFFLINE=1"):
        load_backbone(TEST_BACKBONE)


def test_offline_error_lists_every_place_fast(sealed):
    started = time.monotonic()
    with pytest.raises(WeightsNotFoundError) as info:
        load_backbone(TEST_BACKBONE)
    assert time.monotonic() - started < 5
    message = str(info.value)
    assert "\n" not in message
    for expected in (
        "path argument",
        "AMMPL_CLIP_PATH (not set)",
        str(sealed / ".cache" / "clip" / TEST_OPENAI_FILE),
        f"Hugging Face cache {sealed / '.cache' / 'huggingface' / 'hub'} for {TEST_HF_REPO}",
        "download (skipped: offline",
        TEST_FETCH_COMMAND,
    ):
        assert expected in message, expected


def test_connectivity_check_bounded_when_connect_hangs(monkeypatch):
    def hang(*args, **kwargs):
        time.sleep(2)
        raise OSError("timed out")

    monkeypatch.setattr(socket, "create_connection", hang)
    started = time.monotonic()
    assert network_reachable("example.invalid", timeout=0.2) is False
    assert time.monotonic() - started < 1.5


# -- broken and mismatched files -----------------------------------------------------------
def test_truncated_file_reported_with_path(sealed, tmp_path, state):
    good = save_state_dict(tmp_path / "good.pt", state)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(BackboneError, match="truncated") as info:
        load_backbone(TEST_BACKBONE, path=truncated)
    assert str(truncated) in str(info.value)


def test_truncated_torchscript_archive_in_cache(sealed, tmp_path, state):
    archive = save_torchscript_archive(tmp_path / "archive.pt", state)
    cached = clip_cache(sealed) / TEST_OPENAI_FILE
    cached.parent.mkdir(parents=True)
    cached.write_bytes(archive.read_bytes()[:-5000])
    with pytest.raises(BackboneError, match="truncated or corrupt") as info:
        load_backbone(TEST_BACKBONE, allow_tiny_fallback=True)  # broken ≠ missing
    assert str(cached) in str(info.value)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all" * 50])
def test_empty_or_garbage_file_is_corrupt(sealed, tmp_path, content):
    file = tmp_path / "bad.pt"
    file.write_bytes(content)
    with pytest.raises(BackboneError, match="corrupt") as info:
        load_backbone(TEST_BACKBONE, path=file)
    assert str(file) in str(info.value)


def test_shape_mismatch_names_first_key_and_both_shapes(sealed, tmp_path, state):
    bad = dict(state)
    bad["text_projection"] = torch.zeros(64, 32)
    file = save_state_dict(tmp_path / "other.pt", bad)
    with pytest.raises(BackboneError) as info:
        load_backbone(TEST_BACKBONE, path=file)
    message = str(info.value)
    assert "text_projection has shape (64, 32) in the file but (64, 48)" in message
    assert str(file) in message


def test_missing_and_extra_keys(sealed, tmp_path, state):
    missing = {k: v for k, v in state.items() if k != "ln_final.weight"}
    with pytest.raises(BackboneError, match="ln_final.weight is missing"):
        load_backbone(TEST_BACKBONE, path=save_state_dict(tmp_path / "missing.pt", missing))
    extra = {**state, "visual.extra_head.weight": torch.zeros(2)}
    with pytest.raises(BackboneError, match="visual.extra_head.weight"):
        load_backbone(TEST_BACKBONE, path=save_state_dict(tmp_path / "extra.pt", extra))


def test_not_a_state_dict(sealed, tmp_path):
    file = tmp_path / "list.pt"
    torch.save([1, 2, 3], file)
    with pytest.raises(BackboneError, match="holds no state dict"):
        load_backbone(TEST_BACKBONE, path=file)


def test_weights_hash_tracks_content(tmp_path, state):
    first = save_state_dict(tmp_path / "a.pt", state)
    second = save_state_dict(tmp_path / "b.pt", tiny_state_dict(seed=2))
    copy = tmp_path / "copy.pt"
    copy.write_bytes(first.read_bytes())
    assert weights_hash(first) == weights_hash(copy)  # the content counts, not the name
    assert weights_hash(first) != weights_hash(second)
    assert len(weights_hash(first)) == 16
