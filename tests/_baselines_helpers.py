"""Shared pieces of the baseline tests: tiny CLIPs, method config nodes, reference encoders."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import open_clip
import pytest
import torch

from ammpl.clip.tiny import build_tiny_clip

D_T, D_V, EMBED = 64, 96, 48  # the tiny backbone's text / vision / joint widths
CLASSNAMES = ["golden_retriever", "tabby cat", "fire truck"]
NEW_CLASSNAMES = ["airliner", "sea turtle", "red fox", "tulip"]


def tiny_clip(seed: int = 0, layers: int = 2) -> open_clip.CLIP:
    """The tiny test CLIP (optionally deeper), frozen and in eval mode as the trainers get it."""
    model = build_tiny_clip(seed, layers)
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def method_node(name: str, **values):
    """`cfg.TRAINER.<name>` with the registered defaults, then `values`."""
    import ammpl.trainers  # noqa: F401  (registers the config nodes)
    from ammpl.engine import get_cfg_default

    node = get_cfg_default().TRAINER[name].clone()
    for key, value in values.items():
        if key not in node:
            raise KeyError(f"TRAINER.{name} has no key {key}")
        node[key] = value
    return node


def images(batch: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 224, 224, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module", name="clip3")
def clip3_fixture() -> open_clip.CLIP:
    """The 3-block tiny CLIP (seed 1) of the equivalence and PromptSRC tests; import
    `clip3_fixture` to use it as `clip3`."""
    return tiny_clip(seed=1, layers=3)


@pytest.fixture(scope="module", name="batch")
def batch_fixture() -> torch.Tensor:
    """Three random images (seed 0) shared by those tests; import `batch_fixture`."""
    return images(3)


@torch.no_grad()
def reference_text_features(clip_model, template: str, classnames: list[str]) -> torch.Tensor:
    """open_clip's own encode_text of the filled template, L2-normalised."""
    texts = [template.format(name.replace("_", " ")) for name in classnames]
    features = clip_model.encode_text(open_clip.tokenize(texts))
    return features / features.norm(dim=-1, keepdim=True)


def normalise(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def assert_close(actual: torch.Tensor, expected: torch.Tensor, tol: float = 1e-5) -> None:
    """Relative to the largest magnitude of `expected`."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    error = (actual.float() - expected.float()).abs().max().item()
    scale = max(expected.float().abs().max().item(), 1e-12)
    assert error <= tol * scale, f"max abs error {error:.3g} (scale {scale:.3g})"


def record_block_inputs(transformer) -> tuple[list[torch.Tensor], list]:
    """Every block's input, as seen by a pre-hook on its ln_1 (called with the block input)."""
    inputs: list[torch.Tensor] = []
    handles = [
        block.ln_1.register_forward_pre_hook(lambda _m, args: inputs.append(args[0].detach()))
        for block in transformer.resblocks
    ]
    return inputs, handles


def build_fixture_trainer(repo_root: Path, config: str, seed: int, *option_lists: Sequence[str]):
    """The trainer of `configs/trainers/<config>` on the fixture Caltech101 with the tiny
    backbone on the CPU, each of `option_lists` merged in turn (later ones win), seeded."""
    import ammpl.data.datasets  # noqa: F401
    import ammpl.trainers  # noqa: F401
    from ammpl.engine import (
        build_trainer,
        get_cfg_default,
        merge_from_file,
        merge_from_list,
        set_random_seed,
    )

    cfg = get_cfg_default()
    merge_from_file(cfg, repo_root / "configs" / "trainers" / config)
    merge_from_list(
        cfg,
        [
            "DATASET.NAME", "Caltech101",
            "MODEL.BACKBONE.NAME", "tiny",
            "DATALOADER.NUM_WORKERS", "0",
            "USE_CUDA", "False",
        ],
    )  # fmt: skip
    for options in option_lists:
        merge_from_list(cfg, list(options))
    cfg.freeze()
    set_random_seed(seed)
    return build_trainer(cfg)
