"""Trainable parameters of every baseline: exact names and counts (BASELINES.md T11), the
tiny backbone against the §13 formulas, ViT-B/16 against the T11 table, nothing else
trainable, and the precision map of the reference "fp16" mode (T13)."""

from __future__ import annotations

import pytest
import torch

from ammpl.clip.precision import to_reference_half
from ammpl.trainers.param_counts import (
    PAPER_CONFIGS,
    build_method_model,
    load_paper_cfg,
    paper_counts,
    trainable_names,
)
from tests._baselines_helpers import CLASSNAMES, D_T, D_V, EMBED, tiny_clip

J = 2  # the tiny backbone has 2 blocks per tower: paper depths 9/12 act as 2


def hidden(e: int = EMBED) -> int:
    return e // 16


def deep(prefix: str, n: int, width: int, depth: int = J) -> dict:
    return {f"{prefix}.{i}": (n, width) for i in range(1, depth)}


TINY_EXPECTED = {
    "CoCoOp": (
        {
            "prompt_learner.ctx": (4, D_T),
            "prompt_learner.meta_net.linear1.weight": (hidden(), EMBED),
            "prompt_learner.meta_net.linear1.bias": (hidden(),),
            "prompt_learner.meta_net.linear2.weight": (D_T, hidden()),
            "prompt_learner.meta_net.linear2.bias": (D_T,),
        },
        4 * D_T + EMBED * hidden() + hidden() + hidden() * D_T + D_T,
    ),
    "IVLP": (
        {
            "prompt_learner.ctx": (2, D_T),
            **deep("text_prompts.deep", 2, D_T),
            "vision_prompts.shallow": (2, D_V),
            **deep("vision_prompts.deep", 2, D_V),
        },
        J * 2 * D_T + J * 2 * D_V,
    ),
    "DLP": (
        {"prompt_learner.ctx": (4, D_T), **deep("text_prompts.deep", 4, D_T)},
        J * 4 * D_T,
    ),
    "VPT": (
        {"vision_prompts.shallow": (8, D_V), **deep("vision_prompts.deep", 8, D_V)},
        J * 8 * D_V,
    ),
    "MaPLe": (
        {
            "prompt_learner.ctx": (2, D_T),
            "prompt_learner.proj.weight": (D_V, D_T),
            "prompt_learner.proj.bias": (D_V,),
            **{f"prompt_learner.compound_prompts_text.{k}": (2, D_T) for k in range(J - 1)},
            **{
                f"prompt_learner.compound_prompt_projections.{k}.{name}": shape
                for k in range(J - 1)
                for name, shape in (("weight", (D_V, D_T)), ("bias", (D_V,)))
            },
        },
        J * 2 * D_T + J * (D_T * D_V + D_V),
    ),
    "PromptSRC": (
        {
            "prompt_learner.ctx": (4, D_T),
            **deep("text_prompts.deep", 4, D_T),
            "vision_prompts.shallow": (4, D_V),
            **deep("vision_prompts.deep", 4, D_V),
        },
        J * 4 * D_T + J * 4 * D_V,
    ),
    "KgCoOp": ({"prompt_learner.ctx": (4, D_T)}, 4 * D_T),
}

ROWS = {row.method: row for row in PAPER_CONFIGS}


@pytest.fixture(scope="module")
def clip_model():
    return tiny_clip()


@pytest.mark.parametrize("method", sorted(TINY_EXPECTED))
def test_tiny_trainable_names_and_counts(clip_model, method):
    names, count = TINY_EXPECTED[method]
    row = ROWS[method]
    model = build_method_model(row.trainer, load_paper_cfg(row), CLASSNAMES, clip_model)
    assert trainable_names(model) == names
    assert sum(p.numel() for p in model.parameters() if p.requires_grad) == count
    clip_ids = {id(p) for p in clip_model.parameters()}
    for name, param in model.named_parameters():
        if id(param) in clip_ids:
            assert not param.requires_grad, name


def test_vit_b16_counts_equal_the_t11_table():
    counts = {row.method: count for row, count in paper_counts("vit_b16")}
    assert counts["ZS-CLIP"] == 0
    assert counts["CoOp (N 16)"] == 8_192
    assert counts["CoOp (N 4, init)"] == 2_048
    assert counts["CoOp (N 16, CSC, ImageNet)"] == 8_192_000
    assert counts["CoCoOp"] == 35_360
    assert counts["IVLP"] == 30_720
    assert counts["DLP"] == 24_576
    assert counts["VPT"] == 73_728
    assert counts["MaPLe"] == 3_555_072
    assert counts["MaPLe (cross-dataset)"] == 1_185_024
    assert counts["PromptSRC"] == 46_080  # 9·4·512 + 9·4·768 (the paper's "46K")
    assert counts["PromptSRC (cross-dataset)"] == 15_360  # depth 3
    assert counts["KgCoOp"] == 2_048
    assert counts["AMMPL (generalisable)"] == 78_084  # published (AMMPL.md): ctx 2,048 + P 196
    # + N 768 + f_I 33,312 + f_T 41,760
    assert counts["AMMPL (class-specific, 100 classes)"] == 100 * 78_084
    assert counts["ProGrad"] == counts["ProGrad (RN50)"] == 8_192  # CoOp's N 16
    assert counts["TCP"] == 331_904  # ctx 2,048 + meta-net 65,664 + 264,192 (TCP's "331.9K")
    # MMA, layers 5..12, r 32: (512·32+32+32·512+512) + (768·32+32+32·768+768) + (32·32+32)
    assert counts["MMA"] == 8 * (33_312 + 49_952 + 1_056) == 674_560
    # CoPrompt: MaPLe's prompts (2 tokens, depth 9: 3,555,072) + two 512→128→512 adapters
    adapters = 2 * (512 * 128 + 128 * 512)
    assert counts["CoPrompt (N 2, depth 9)"] == 3_555_072 + adapters == 3_817_216
    maple_4_12 = 12 * 4 * 512 + 12 * (512 * 768 + 768)
    assert counts["CoPrompt (N 4, depth 12)"] == maple_4_12 + adapters


def test_reference_fp16_precision_map():
    """T13: in a half CLIP, ctx / meta-net / MaPLe proj are fp16, deep prompts and deep
    projections fp32."""
    clip_model = to_reference_half(tiny_clip())
    dtypes = {}
    for method in ("CoCoOp", "IVLP", "MaPLe"):
        row = ROWS[method]
        model = build_method_model(row.trainer, load_paper_cfg(row), CLASSNAMES, clip_model)
        dtypes.update(
            {f"{method}:{n}": p.dtype for n, p in model.named_parameters() if p.requires_grad}
        )
    half = {n for n, dtype in dtypes.items() if dtype == torch.float16}
    assert half == {
        "CoCoOp:prompt_learner.ctx",
        "CoCoOp:prompt_learner.meta_net.linear1.weight",
        "CoCoOp:prompt_learner.meta_net.linear1.bias",
        "CoCoOp:prompt_learner.meta_net.linear2.weight",
        "CoCoOp:prompt_learner.meta_net.linear2.bias",
        "IVLP:prompt_learner.ctx",
        "MaPLe:prompt_learner.ctx",
        "MaPLe:prompt_learner.proj.weight",
        "MaPLe:prompt_learner.proj.bias",
    }
    assert all(dtypes[n] == torch.float32 for n in set(dtypes) - half)


def test_maple_float_modes_keep_proj_in_the_model_dtype(clip_model):
    """Quirk Q6 fixed: with a float CLIP, `proj` is float like `ctx`."""
    row = ROWS["MaPLe"]
    model = build_method_model(row.trainer, load_paper_cfg(row), CLASSNAMES, clip_model)
    assert model.prompt_learner.proj.weight.dtype == model.prompt_learner.ctx.dtype == torch.float32


def test_maple_deep_projections_start_identical(clip_model):
    """Quirk Q8: one Linear deep-copied, so all deep projections start equal (and apart)."""
    row = ROWS["MaPLe"]
    clip3 = tiny_clip(layers=3)
    model = build_method_model(row.trainer, load_paper_cfg(row), CLASSNAMES, clip3)
    first, second = model.prompt_learner.compound_prompt_projections
    assert torch.equal(first.weight, second.weight) and first.weight is not second.weight
    assert not torch.equal(first.weight, model.prompt_learner.proj.weight)


@pytest.mark.parametrize(("prec", "expected"), [("fp16", "fp32"), ("fp32", "fp32"), ("amp", "amp")])
def test_vpt_runs_a_float_clip_whatever_prec_says(prec, expected):
    """Quirk Q7: the reference VPT loads CLIP in fp32 even with PREC fp16; amp stays amp."""
    from ammpl.engine import TRAINER_REGISTRY

    row = ROWS["VPT"]
    cfg = load_paper_cfg(row)
    cfg.TRAINER.VPT.PREC = prec
    trainer_cls = TRAINER_REGISTRY.get("VPT")
    shell = trainer_cls.__new__(trainer_cls)
    shell.cfg = cfg
    assert shell.requested_precision() == expected
