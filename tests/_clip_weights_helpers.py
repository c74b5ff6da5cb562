"""Weight files in every format users have, written for the tiny architecture, and a
sealed environment (private HOME and caches, no network) to resolve them in."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import torch
from torch import nn

from ammpl.clip.backbones import BACKBONE_REGISTRY, BackboneSpec
from ammpl.clip.tiny import build_tiny_clip
from ammpl.clip.weights import JIT_EXTRA_KEYS, WeightSources

TEST_BACKBONE = "tiny-openai"
TEST_OPENAI_FILE = "tiny-openai.pt"
TEST_HF_REPO = "ammpl-test/tiny-clip"
TEST_FETCH_COMMAND = "python fetch_tiny.py"
HF_REVISION = "0123456789abcdef0123456789abcdef01234567"


def tiny_state_dict(seed: int = 1) -> dict[str, torch.Tensor]:
    """Weights of the tiny architecture that differ from the seed-0 random backbone."""
    return build_tiny_clip(seed=seed).state_dict()


def save_state_dict(path: Path, state: dict[str, torch.Tensor]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


class _Holder(nn.Module):
    """A node of the archive's module tree; forward exists only so TorchScript compiles."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def save_torchscript_archive(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """An archive shaped like OpenAI's: TorchScript, fp16 weights under OpenAI's key names,
    plus the scalar entries OpenAI's archives carry."""
    root = _Holder()
    for key, tensor in state.items():
        *parents, leaf = key.split(".")
        module = root
        for name in parents:
            if name not in module._modules:
                module.add_module(name, _Holder())
            module = module._modules[name]
        module.register_buffer(leaf, tensor.half() if tensor.is_floating_point() else tensor)
    for key in JIT_EXTRA_KEYS:
        root.register_buffer(key, torch.tensor(224))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(root).save(str(path))
    return path


def hf_snapshot_file(hub_cache: Path, repo_id: str, filename: str) -> Path:
    """Where huggingface_hub keeps `filename` of `repo_id` (refs/main → snapshot)."""
    repo_dir = hub_cache / f"models--{repo_id.replace('/', '--')}"
    (repo_dir / "refs").mkdir(parents=True, exist_ok=True)
    (repo_dir / "refs" / "main").write_text(HF_REVISION)
    return repo_dir / "snapshots" / HF_REVISION / filename


def make_test_spec(name: str = TEST_BACKBONE) -> BackboneSpec:
    """A registry row for the tiny architecture with every kind of weight source."""
    return BackboneSpec(
        name=name,
        arch="tiny",
        pretrained="test",
        quick_gelu=True,
        weights=WeightSources(
            display_name=name,
            openai_file=TEST_OPENAI_FILE,
            hf_hub=f"{TEST_HF_REPO}/",
            url=None,
            fetch_command=TEST_FETCH_COMMAND,
        ),
        builder=build_tiny_clip,
    )


def _refuse_network(*args, **kwargs):
    raise OSError("network access is blocked in tests")


def seal_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A private HOME, no cache or path variables, no network, the test backbone registered;
    returns the HOME. Test files wrap it in their `sealed` fixture.

    HF_HUB_OFFLINE is unset on purpose: the connectivity check itself must fail fast.
    """
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for variable in (
        "AMMPL_CLIP_PATH",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HUGGINGFACE_HUB_CACHE",
        "XDG_CACHE_HOME",
        "HF_HUB_OFFLINE",
        "HF_ENDPOINT",
    ):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(socket, "create_connection", _refuse_network)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse_network)
    monkeypatch.setattr(socket.socket, "connect", _refuse_network)
    monkeypatch.setitem(BACKBONE_REGISTRY, TEST_BACKBONE, make_test_spec())
    return home
