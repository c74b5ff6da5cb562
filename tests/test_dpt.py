"""DPT: the numerical checks D1–D8 of BASELINES_EXTRA §4 on the tiny backbone, the loss,
the schedules of its three optimisers, checkpoints across label spaces, config errors."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import open_clip
import pytest
import torch
import torch.nn.functional as F

from ammpl.clip.blocks import run_block
from ammpl.clip.precision import to_reference_half
from ammpl.engine import build_lr_scheduler, build_optimizer, get_cfg_default
from ammpl.trainers.dpt import (
    DPTCLIP,
    DPTOutputs,
    aux_loss,
    dpt_loss,
    optim_configs,
)
from ammpl.trainers.param_counts import PAPER_CONFIGS, load_paper_cfg, paper_counts
from ammpl.utils import BackboneError, ConfigError
from tests._baselines_helpers import (
    D_V,
    EMBED,
    assert_close,
    images,
    method_node,
    normalise,
    reference_text_features,
    tiny_clip,
)

CLASSES = ["annual_crop", "forest", "herbaceous vegetation", "highway", "sea_lake"]
TOKENS = 50  # tiny backbone: CLS + 7×7 patches at 224 px
ROWS = {row.method: row for row in PAPER_CONFIGS}


@pytest.fixture(scope="module")
def clip3():
    return tiny_clip(layers=3)


def dpt_model(clip_model, classes=CLASSES, dataset="EuroSAT", **values) -> DPTCLIP:
    values = {"N_CTX_VISION": 4, "BOTTOMLIMIT": 2, "CPN": 3, **values}
    coop = get_cfg_default().TRAINER.COOP
    return DPTCLIP(method_node("DPT", **values), coop, classes, clip_model, dataset)


def test_d1_sequence_bookkeeping(clip3):
    """Block inputs are 50 + N_v below b and 50 + K' from b on; every block gives back 50;
    the feature is ln_post(CLS after the last block) @ proj."""
    model = dpt_model(clip3)
    lengths: list[int] = []
    encoder = model.image_encoder
    handles = [
        block.ln_1.register_forward_pre_hook(lambda _m, a: lengths.append(a[0].shape[1]))
        for block in encoder.transformer.resblocks
    ]
    x = images(2)
    prompts_seen = []

    def prompts(block, hidden):
        assert hidden.shape[1] == TOKENS  # the previous block's prompts were dropped
        p = torch.randn(2, 4 if block == 0 else 3, D_V)
        prompts_seen.append(p)
        return p

    with torch.no_grad():
        features = encoder(x, block_prompts=prompts)
        for handle in handles:
            handle.remove()
        assert lengths == [TOKENS + 4, TOKENS + 3, TOKENS + 3]
        model.forward_all(x)
        assert lengths == [TOKENS + 4, TOKENS + 3, TOKENS + 3]  # hooks removed: unchanged
        hidden = encoder.patch_embed(x)
        cls = encoder.class_embedding.expand(2, 1, -1)
        hidden = encoder.ln_pre(torch.cat([cls, hidden], 1) + encoder.positional_embedding)
        for block, p in zip(encoder.transformer.resblocks, prompts_seen):
            hidden = run_block(block, torch.cat([hidden, p], 1), fused=False)[:, :TOKENS]
        assert_close(features, encoder.ln_post(hidden[:, 0]) @ encoder.proj)


def test_d1_model_prompt_counts(clip3):
    lengths: list[int] = []
    handles = [
        block.ln_1.register_forward_pre_hook(lambda _m, a: lengths.append(a[0].shape[1]))
        for block in clip3.visual.transformer.resblocks
    ]
    try:
        with torch.no_grad():
            dpt_model(clip3, N_CTX_VISION=6, CPN=2).forward_all(images(2))
    finally:
        for handle in handles:
            handle.remove()
    # the frozen zero-shot pass (50 per block), then block 0 with 6, blocks 1-2 with K' = 2
    assert lengths == [TOKENS] * 3 + [TOKENS + 6, TOKENS + 2, TOKENS + 2]


def test_d2_cavpt_attention_by_hand(clip3):
    cavpt = dpt_model(clip3).cavpt
    torch.manual_seed(3)
    hidden, text = torch.randn(2, TOKENS, D_V), torch.randn(2, 3, EMBED)
    prompts, logits = cavpt(1, hidden, text)
    g = text @ cavpt.meta_nets[1].weight.t() + cavpt.meta_nets[1].bias
    kv = torch.cat([hidden, cavpt.ctx[1].expand(2, -1, -1)], 1)
    assert kv.shape[1] == TOKENS + 10
    attn = cavpt.attns[1]
    scores = (g @ attn.qmlp.weight.t()) @ (kv @ attn.kmlp.weight.t()).transpose(1, 2)
    weights = torch.softmax(scores / math.sqrt(32), dim=-1)
    out = (weights @ kv) @ attn.vmlp.weight.t()
    assert_close(logits, cavpt.classfiers[1](cavpt.lns[1](out)))
    assert_close(prompts, cavpt.lns2[1](out + g))
    _, rows = attn(g, kv)
    assert_close(rows.sum(-1), torch.ones(2, 3))


def test_d3_detached_keys_and_gradient_paths(clip3):
    model = dpt_model(clip3)
    hidden = torch.randn(2, TOKENS, D_V, requires_grad=True)
    prompts, _ = model.cavpt(0, hidden, torch.randn(2, 3, EMBED))
    (grad,) = torch.autograd.grad(prompts.sum(), hidden, allow_unused=True)
    assert grad is None or not grad.any()

    out = model.forward_all(images(2))
    lower = model.vision_prompts.ctx
    ctx = model.prompt_learner.ctx
    # CAVPT outputs of block b read the lower prompts only through detached keys/values
    (via_aux,) = torch.autograd.grad(
        out.aux_logits[:, 0].sum(), lower, retain_graph=True, allow_unused=True
    )
    assert via_aux is None or not via_aux.any()
    (via_logits,) = torch.autograd.grad(out.logits.sum(), lower, retain_graph=True)
    assert via_logits.abs().sum() > 0  # … and through the token sequence
    (ctx_query,) = torch.autograd.grad(out.aux_logits.sum(), ctx, retain_graph=True)
    (ctx_text,) = torch.autograd.grad(out.logits_frozen_image.sum(), ctx)
    assert ctx_query.abs().sum() > 0 and ctx_text.abs().sum() > 0


def test_d4_zero_shot_ranking(clip3):
    model = dpt_model(clip3)
    x = images(4)
    with torch.no_grad():
        text = reference_text_features(clip3, "a centered satellite photo of {}.", CLASSES)
        scores = 100 * normalise(clip3.encode_image(x)) @ text.t()
        out = model.forward_all(x)
    assert torch.equal(out.indices, scores.topk(3, dim=-1).indices)
    assert out.aux_logits.shape == (4, 2, 3, len(CLASSES))
    assert dpt_model(clip3, CPN=99).n_select == len(CLASSES)


def hand_outputs(indices: list[list[int]], n_classes: int = 6, n_blocks: int = 2) -> DPTOutputs:
    generator = torch.Generator().manual_seed(0)
    batch, n_select = len(indices), len(indices[0])

    def logits() -> torch.Tensor:
        return torch.randn(batch, n_classes, generator=generator)

    aux = torch.randn(batch, n_blocks, n_select, n_classes, generator=generator)
    return DPTOutputs(logits(), aux, torch.tensor(indices), logits(), logits())


def test_d5_aux_loss_mask():
    out = hand_outputs([[5, 4, 2, 1], [0, 2, 3, 4]])
    label = torch.tensor([1, 5])  # image 0: slot 3 in every block; image 1: absent
    expected = F.cross_entropy(out.aux_logits[0, :, 3], torch.tensor([1, 1]))
    assert_close(aux_loss(out, label), expected)
    absent = torch.tensor([3, 5])
    assert aux_loss(out, absent) is None
    loss = dpt_loss(out, absent, epoch=40, guidance_epochs=30, alpha=0.3)
    assert torch.isfinite(loss) and loss == F.cross_entropy(out.logits, absent)


def test_d6_phase_switch():
    out = hand_outputs([[5, 4, 2, 1], [0, 2, 3, 4]])
    label = torch.tensor([1, 2])
    ce = {name: F.cross_entropy(getattr(out, name), label) for name in
          ("logits", "logits_frozen_image", "logits_zeroshot_text")}  # fmt: skip
    aux = aux_loss(out, label)
    guided = ce["logits_frozen_image"] + ce["logits_zeroshot_text"] + 0.1 * ce["logits"]
    assert_close(dpt_loss(out, label, 29, 30, 0.3), guided + 0.3 * aux)
    assert_close(dpt_loss(out, label, 30, 30, 0.3), ce["logits"] + 0.3 * aux)


def test_d7_counts_vit_b16_and_tiny(clip3):
    vp_row, dpt_row = ROWS["VP (pad 30, 224 px)"], ROWS["DPT (script config, 100 classes)"]
    ten = type(dpt_row)(**{**dpt_row.__dict__, "n_classes": 10})
    counts = [count for _, count in paper_counts("vit_b16", rows=(vp_row, dpt_row, ten))]
    assert counts == [69_840, 1_136_384 + 768 * 100, 1_136_384 + 768 * 10]
    per_class = (counts[1] - counts[2]) // 90
    base = counts[1] - 100 * per_class
    for doc in ("README.md", "docs/METHODS.md"):  # the documented rows quote these numbers
        text = (Path(__file__).resolve().parents[1] / doc).read_text()
        rows = [line for line in text.splitlines() if line.startswith("| VP (padding")]
        assert len(rows) == 1 and f"{counts[0]:,} (224 px, pad 30)" in rows[0], doc
        rows = [line for line in text.splitlines() if line.startswith("| DPT | `DPT`")]
        assert len(rows) == 1 and f"{base:,} + {per_class}·K" in rows[0], doc
    model = dpt_model(clip3, N_CTX_VISION=10, BOTTOMLIMIT=2, CPN=10)
    per_block = EMBED * D_V + D_V + 2 * 32 * D_V + D_V * D_V + 4 * D_V + 10 * D_V
    expected = 16 * 64 + 1 * 10 * D_V + 2 * (per_block + D_V * len(CLASSES))
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == expected


def lr_table(optim_cfg, epochs: int = 60) -> list[float]:
    optimizer = build_optimizer([torch.nn.Parameter(torch.zeros(1))], optim_cfg)
    scheduler = build_lr_scheduler(optimizer, optim_cfg)
    rates = []
    for _ in range(epochs):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return rates


def test_d7_schedules_of_the_three_optimisers():
    cfg = load_paper_cfg(ROWS["DPT (script config, 100 classes)"])
    tables = {name: lr_table(optim_cfg) for name, optim_cfg in optim_configs(cfg).items()}
    visual = tables["image_encoder.transformer.ctx_learner"]
    assert tables["image_encoder.transformer.extractor"] == visual
    for e, lr in enumerate(visual):
        expected = 1e-5 if e < 10 else 0.01 * 0.5 * (1 + math.cos(math.pi * (e - 10) / 60))
        assert lr == pytest.approx(expected, abs=1e-9)
    assert [f"{visual[e]:.4e}" for e in (10, 11, 30, 59)] == [
        "1.0000e-02", "9.9931e-03", "7.5000e-03", "8.0665e-04"]  # fmt: skip
    text = tables["prompt_learner"]
    for e, lr in enumerate(text):
        expected = 1e-5 if e < 1 else 0.002 * 0.5 * (1 + math.cos(math.pi * (e - 1) / 60))
        assert lr == pytest.approx(expected, abs=1e-9)
    assert [f"{text[e]:.4e}" for e in (1, 2, 30, 59)] == [
        "2.0000e-03", "1.9986e-03", "1.0523e-03", "5.4781e-06"]  # fmt: skip


def test_d8_faithful_fp16_precision_map(clip3):
    half = to_reference_half(copy.deepcopy(clip3))
    model = dpt_model(half)
    assert model.prompt_learner.ctx.dtype == torch.float16
    assert model.vision_prompts.ctx.dtype == torch.float16
    assert {p.dtype for p in model.cavpt.parameters()} == {torch.float16}
    out = model.forward_all(images(2))
    loss = dpt_loss(out, torch.tensor([0, 1]), 0, 30, 0.3)
    loss.backward()
    assert torch.isfinite(loss)
    assert model.cavpt.ctx.grad.dtype == torch.float16
    float_model = dpt_model(clip3)
    assert {p.dtype for p in float_model.parameters() if p.requires_grad} == {torch.float32}


def test_bad_settings_are_one_line_errors(clip3):
    with pytest.raises(ConfigError, match=r"TRAINER.DPT.CPN must be ≥ 1 .*got 0"):
        dpt_model(clip3, CPN=0)
    with pytest.raises(ConfigError, match="TRAINER.DPT.BOTTOMLIMIT must be ≥ 1"):
        dpt_model(clip3, BOTTOMLIMIT=0)
    resnet = open_clip.CLIP(
        embed_dim=48,
        vision_cfg={"layers": (1, 1, 1, 1), "width": 8, "image_size": 64},
        text_cfg={"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 1},
    )
    with pytest.raises(BackboneError, match="DPT needs a CLIP ViT image tower"):
        dpt_model(resnet)


def test_bottomlimit_beyond_the_tower_means_the_last_block(clip3):
    model = dpt_model(clip3, BOTTOMLIMIT=12)
    assert model.n_plain == 2 and model.vision_prompts.ctx.shape == (2, 4, D_V)
    assert len(model.cavpt.meta_nets) == 1
    every_block = dpt_model(clip3, BOTTOMLIMIT=1)
    assert every_block.n_plain == 0 and len(every_block.cavpt.meta_nets) == 3
    with torch.no_grad():
        assert every_block(images(2)).shape == (2, len(CLASSES))


def test_cavpt_attn_dim_sets_the_query_key_width(clip3):
    """TRAINER.DPT.CAVPT_ATTN_DIM: the width of CAVPT's query and key projections."""
    model = dpt_model(clip3, CAVPT_ATTN_DIM=8)
    assert model.cavpt.attns
    for attention in model.cavpt.attns:
        assert attention.qmlp.out_features == attention.kmlp.out_features == 8
    with torch.no_grad():
        assert model(images(2)).shape == (2, len(CLASSES))


def test_eval_text_cache_is_exact_and_follows_parameter_updates(clip3):
    """In evaluation the learned text features are encoded once, not once per batch."""
    model = dpt_model(clip3).eval()
    with torch.no_grad():
        first = model.learned_text_features()
        assert model.learned_text_features() is first  # reused while nothing changed
        ctx = model.prompt_learner.ctx
        step = torch.randn(ctx.shape, generator=torch.Generator().manual_seed(0))
        ctx.add_(0.5 * step)  # what an optimiser step does: in place
        cached = model.learned_text_features()
    fresh = model.learned_text_features().detach()  # grads on: never cached
    assert_close(cached, fresh)
    assert (cached - first).abs().max() > 1e-3
