"""Zero-shot CLIP and CoOp at the model level: templates, ensembling, CSC, init equivalence."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from yacs.config import CfgNode as CN

from ammpl.clip.tiny import build_tiny_clip
from ammpl.data.registry import DATASET_REGISTRY
from ammpl.trainers.coop import CoOpCLIP, extend_cfg
from ammpl.trainers.templates import (
    CUSTOM_TEMPLATES,
    IMAGENET_TEMPLATES,
    IMAGENET_TEMPLATES_SELECT,
)
from ammpl.trainers.zsclip import ZeroshotModel

CLASSNAMES = ["golden_retriever", "tabby cat", "fire truck"]
SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "BASELINES.md"


@pytest.fixture(scope="module")
def clip_model():
    model = build_tiny_clip().eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def images():
    return torch.randn(5, 3, 224, 224, generator=torch.Generator().manual_seed(0))


def coop_node(**overrides) -> CN:
    cfg = CN()
    cfg.TRAINER = CN()
    extend_cfg(cfg)
    node = cfg.TRAINER.COOP
    for key, value in overrides.items():
        setattr(node, key, value)
    return node


def test_every_dataset_has_its_zero_shot_template():
    import ammpl.data.datasets  # noqa: F401  (registers the readers)

    assert set(DATASET_REGISTRY.registered_names()) <= set(CUSTOM_TEMPLATES)
    templates = [*CUSTOM_TEMPLATES.values(), *IMAGENET_TEMPLATES, *IMAGENET_TEMPLATES_SELECT]
    assert all(t.count("{}") == 1 for t in templates)
    assert len(IMAGENET_TEMPLATES) == 80 and len(set(IMAGENET_TEMPLATES)) == 80
    assert set(IMAGENET_TEMPLATES_SELECT) <= set(IMAGENET_TEMPLATES)


@pytest.mark.skipif(not SPEC.exists(), reason="the shared specs are not beside this checkout")
def test_template_data_equals_the_specification_entry_for_entry():
    spec = SPEC.read_text()
    table = dict(re.findall(r"^\| (\w+) \| `([^`]+)` \|$", spec, flags=re.M))
    assert len(table) == 15
    for name, template in table.items():
        assert CUSTOM_TEMPLATES[name] == template, name
    block = spec[spec.index("```\n 1- 5:") + 4 :]
    block = block[: block.index("```")]
    listed = [
        t.strip() for line in block.strip().splitlines() for t in line.split(":", 1)[1].split(" | ")
    ]
    assert list(IMAGENET_TEMPLATES) == listed
    select = spec[spec.index("`IMAGENET_TEMPLATES_SELECT` (7,") :].split("\n\n", 1)[0]
    assert list(IMAGENET_TEMPLATES_SELECT) == re.findall(r"`([^`]+)`", select)[2:]


def encode(clip_model, texts: list[str]) -> torch.Tensor:
    from ammpl.clip.tokenizer import tokenize

    features = clip_model.encode_text(tokenize(texts))
    return features / features.norm(dim=-1, keepdim=True)


def test_zero_shot_ensemble_is_the_normalised_mean_of_normalised_templates(clip_model, images):
    templates = ["a photo of a {}.", "art of the {}.", "{} texture."]
    model = ZeroshotModel(clip_model, CLASSNAMES, templates)
    names = [name.replace("_", " ") for name in CLASSNAMES]
    per_template = [encode(clip_model, [t.format(n) for n in names]) for t in templates]
    mean = torch.stack(per_template).mean(0)
    expected_text = mean / mean.norm(dim=-1, keepdim=True)
    image_features = clip_model.encode_image(images)
    image_features = image_features / image_features.norm(dim=-1, keepdim=True)
    expected = clip_model.logit_scale.exp() * image_features @ expected_text.t()
    torch.testing.assert_close(model(images), expected, rtol=1e-5, atol=1e-4)


def test_coop_initialised_from_a_photo_of_a_equals_zero_shot(clip_model, images):
    coop = CoOpCLIP(coop_node(CTX_INIT="a photo of a"), CLASSNAMES, clip_model)
    zero_shot = ZeroshotModel(clip_model, CLASSNAMES, ["a photo of a {}."])
    with torch.no_grad():
        torch.testing.assert_close(coop(images), zero_shot(images), rtol=1e-5, atol=1e-4)


def test_class_specific_context_with_equal_rows_equals_unified_context(clip_model, images):
    unified = CoOpCLIP(coop_node(N_CTX=4), CLASSNAMES, clip_model)
    specific = CoOpCLIP(coop_node(N_CTX=4, CSC=True), CLASSNAMES, clip_model)
    assert specific.prompt_learner.ctx.shape == (len(CLASSNAMES), 4, 64)
    with torch.no_grad():
        specific.prompt_learner.ctx.copy_(unified.prompt_learner.ctx.expand(3, -1, -1))
        torch.testing.assert_close(specific(images), unified(images), rtol=1e-6, atol=1e-5)
