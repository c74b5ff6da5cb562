"""KgCoOp on the tiny backbone: the hand-crafted prompt, the knowledge-guided term against a
hand computation, and the reduction to CoOp at W = 0."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ammpl.trainers.coop import CoOpCLIP
from ammpl.trainers.kgcoop import KgCoOpCLIP
from ammpl.trainers.templates import CUSTOM_TEMPLATES, dataset_template, kgcoop_template
from tests._baselines_helpers import (
    CLASSNAMES,
    assert_close,
    images,
    method_node,
    reference_text_features,
    tiny_clip,
)

LABELS = torch.tensor([1, 0, 2])


@pytest.fixture(scope="module")
def clip_model():
    return tiny_clip(seed=2)


@pytest.fixture(scope="module")
def batch():
    return images(3, seed=1)


def move_context_(model: torch.nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        ctx = model.prompt_learner.ctx
        ctx.add_(torch.randn(ctx.shape, generator=generator) * 0.2)


def test_hand_crafted_prompt_is_the_zero_shot_one_except_for_textures():
    assert kgcoop_template("DescribableTextures") == "a photo of a {}, a type of texture."
    for name in CUSTOM_TEMPLATES:
        if name != "DescribableTextures":
            assert kgcoop_template(name) == dataset_template(name)
    assert kgcoop_template("SomethingElse") == "a photo of a {}."


def test_knowledge_guided_term_equals_a_hand_computation(clip_model, batch):
    node = method_node("KGCOOP", CTX_INIT="a photo of a", W=8.0)
    template = kgcoop_template("OxfordPets")
    model = KgCoOpCLIP(node, CLASSNAMES, clip_model, template)
    hand = reference_text_features(clip_model, template, CLASSNAMES)  # open_clip, normalised
    assert_close(model.hand_text_features, hand)

    # at init ("a photo of a" context) the learned prompt differs from the pet template
    move_context_(model)
    loss, logits, parts = model.train_loss(batch, LABELS)
    with torch.no_grad():
        text = model.text_features()
        text = text / text.norm(dim=-1, keepdim=True)
        cosines = [float(text[k] @ hand[k]) for k in range(len(CLASSNAMES))]
        term = 1.0 - sum(cosines) / len(cosines)
        ce = F.cross_entropy(logits, LABELS).item()
    assert term > 1e-3
    assert parts["kg"].item() == pytest.approx(8.0 * term, rel=1e-5)
    assert loss.item() == pytest.approx(ce + 8.0 * term, rel=1e-6)


def test_term_is_zero_when_the_learned_prompt_is_the_hand_crafted_one(clip_model, batch):
    node = method_node("KGCOOP", CTX_INIT="a photo of a", W=1.0)
    model = KgCoOpCLIP(node, CLASSNAMES, clip_model, "a photo of a {}.")
    _, _, parts = model.train_loss(batch, LABELS)
    assert abs(parts["kg"].item()) < 1e-6


@pytest.mark.parametrize(("ctx_init", "csc"), [("a photo of a", False), ("", False), ("", True)])
def test_weight_zero_equals_coop(clip_model, batch, ctx_init, csc):
    values = {"N_CTX": 4, "CTX_INIT": ctx_init, "CSC": csc, "PREC": "fp32"}
    coop = CoOpCLIP(method_node("COOP", **values), CLASSNAMES, clip_model)
    move_context_(coop, seed=3)
    kg_node = method_node("KGCOOP", W=0.0, **values)
    kgcoop = KgCoOpCLIP(kg_node, CLASSNAMES, clip_model, kgcoop_template("Caltech101"))
    kgcoop.load_state_dict(coop.state_dict())

    coop_logits = coop(batch)
    coop_loss = F.cross_entropy(coop_logits, LABELS)
    coop_loss.backward()
    loss, logits, _ = kgcoop.train_loss(batch, LABELS)
    loss.backward()
    assert torch.equal(logits, coop_logits)
    assert torch.equal(loss, coop_loss)
    assert torch.equal(kgcoop.prompt_learner.ctx.grad, coop.prompt_learner.ctx.grad)
    with torch.no_grad():
        assert torch.equal(kgcoop(batch), coop(batch))
    trainable = [n for n, p in kgcoop.named_parameters() if p.requires_grad]
    assert trainable == ["prompt_learner.ctx"]


def test_results_names_and_order_know_both_methods():
    from ammpl.results.layout import infer_layout
    from ammpl.results.names import METHOD_ORDER, method_name, method_sort_key

    assert method_name("KgCoOp", "vit_b16_ep100_ctxv1") == "KgCoOp"
    assert method_name("PromptSRC", "vit_b16_c2_ep20_batch4_4+4ctx") == "PromptSRC"
    assert {"KgCoOp", "PromptSRC"} <= set(METHOD_ORDER)
    keys = [method_sort_key(m) for m in ("AMMPL", "KgCoOp", "PromptSRC")]
    assert keys == sorted(keys) and keys[-1][0] < len(METHOD_ORDER)
    run = infer_layout("out/base2new/train_base/dtd/shots_16/PromptSRC/cfg/seed1")
    assert run.trainer == "PromptSRC" and run.protocol == "base2new"
