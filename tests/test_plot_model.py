"""PLOT and PLOT++ models on the tiny backbones (BASELINES_EXTRA §4: P2, P6–P9, P11 counts),
the settings the reference cannot run (P-Q4), tower checks, and PLOT++'s two stages."""

from __future__ import annotations

import open_clip
import pytest
import torch
import torch.nn.functional as F

from ammpl.clip.backbones import build_architecture, get_backbone_spec
from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.prompts import ClassPrompts, phrase_token_embeddings
from ammpl.clip.text_encoder import TextEncoder
from ammpl.clip.tiny import build_tiny_resnet_clip
from ammpl.trainers.coop import clip_logits
from ammpl.trainers.plot.plot import PLOTCLIP
from ammpl.trainers.plot.plotpp import PLOTPPCLIP, TEMPLATE_PHRASES
from ammpl.utils import BackboneError, ConfigError
from tests._baselines_helpers import CLASSNAMES, D_T, D_V, images, tiny_clip

K = len(CLASSNAMES)


def frozen(model):
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def resnet64():
    """Tiny ResNet CLIP at 64 px: a 2 × 2 attention-pool grid (M = 4)."""
    return frozen(build_tiny_resnet_clip(seed=0, image_size=64))


@pytest.fixture(scope="module")
def vit():
    return tiny_clip()


def plot_cfg(dataset: str = "Caltech101", node: str = "PLOT", **values):
    import ammpl.trainers  # noqa: F401
    from ammpl.engine import get_cfg_default

    cfg = get_cfg_default()
    cfg.DATASET.NAME = dataset
    for key, value in values.items():
        cfg.TRAINER[node][key] = value
    return cfg


def build_plot(clip_model, dataset="Caltech101", seed=0, **values) -> PLOTCLIP:
    torch.manual_seed(seed)
    return PLOTCLIP(plot_cfg(dataset, **values), CLASSNAMES, clip_model)


def pixels(batch: int, size: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(seed))


# -- local features ------------------------------------------------------------------
def test_p7_attention_pool_tokens(resnet64):
    encoder = ImageEncoder(resnet64)
    x = pixels(3, 64)
    with torch.no_grad():
        dense = encoder.forward_dense(x)
        stock = resnet64.encode_image(x)
    assert dense.shape == (3, 1 + 2 * 2, 48)
    assert torch.equal(dense[:, 0], stock)


def test_p8_vit_option_a(vit):
    encoder = ImageEncoder(vit)
    x = images(2)
    with torch.no_grad():
        dense = encoder.forward_dense(x)
        torch.testing.assert_close(dense[:, 0], vit.encode_image(x), atol=1e-5, rtol=1e-5)
    assert dense.shape == (2, 1 + 7 * 7, 48)


def test_p8_vit_b16_shaped_locals():
    """Shapes only (meta tensors): 196 locals of width 512 on a ViT-B/16."""
    with torch.device("meta"):
        model = build_architecture(get_backbone_spec("ViT-B/16"))
        dense = ImageEncoder(model).forward_dense(torch.empty(2, 3, 224, 224))
    local = dense[:, 1:].transpose(0, 1)
    assert tuple(local.shape) == (196, 2, 512)


def test_p7_forward_equals_a_plain_loop(resnet64):
    """Fixed iteration count (THRESH < 0): the batched forward equals one Sinkhorn per (b, c)."""
    model = build_plot(resnet64, MAX_ITER=7, THRESH=-1.0, N=3)
    x = pixels(2, 64, seed=1)
    with torch.no_grad():
        logits = model(x)
        dense = model.image_encoder.forward_dense(x)
        text = model.text_features()
    local = F.normalize(dense[:, 1:], dim=-1)  # (B, M, e)
    text = F.normalize(text, dim=-1)  # (N, K, e)
    n_local, n_prompts = local.shape[1], text.shape[0]
    expected = torch.empty(2, K)
    for b in range(2):
        for c in range(K):
            sim = local[b] @ text[:, c].T  # (M, N)
            kernel = torch.exp(-(1 - sim) / 0.1)
            r, col = torch.ones(n_local), torch.ones(n_prompts)
            for _ in range(7):
                r = (1 / n_local) / (kernel @ col)
                col = (1 / n_prompts) / (kernel.T @ r)
            plan = r[:, None] * kernel * col[None, :]
            expected[b, c] = resnet64.logit_scale.exp() * (plan * sim).sum()
    torch.testing.assert_close(logits, expected, atol=1e-5, rtol=1e-5)


# -- prompts -------------------------------------------------------------------------
def test_p6_prompt_rows_are_prompt_major(vit):
    phrases = ["a photo of a", "one picture of a", "this is a photo", "a good photo of"]
    model = build_plot(vit, N_CTX=4, N=4)
    with torch.no_grad():
        model.prompt_learner.ctx.copy_(phrase_token_embeddings(vit, phrases, 4))
        text = model.text_features()
    assert text.shape == (4, K, 48)
    for n, phrase in enumerate(phrases):
        expected = vit.encode_text(
            open_clip.tokenize([f"{phrase} {name.replace('_', ' ')}." for name in CLASSNAMES])
        )
        torch.testing.assert_close(text[n], expected, atol=1e-5, rtol=1e-5)


def test_p2_one_prompt_one_cell_is_coop():
    """N = 1 and a 1 × 1 grid (32 px): PLOT's logits are CoOp's with the cell feature."""
    clip_model = frozen(build_tiny_resnet_clip(seed=1, image_size=32))
    model = build_plot(clip_model, N=1)
    x = pixels(3, 32)
    with torch.no_grad():
        logits = model(x)
        cell = model.image_encoder.forward_dense(x)[:, 1]
        prompts = ClassPrompts(clip_model, CLASSNAMES, 16)
        text = TextEncoder(clip_model)(
            prompts.splice(model.prompt_learner.ctx[0]), prompts.eot_indices
        )
    torch.testing.assert_close(logits, clip_logits(cell, text, clip_model.logit_scale))


def test_p9_global_term_only_for_imagenet(resnet64):
    x = pixels(2, 64)
    with torch.no_grad():
        outputs = {
            name: build_plot(resnet64, name)(x) for name in ("ImageNet", "ImageNetV2", "Caltech101")
        }
        model = build_plot(resnet64, "ImageNet")
        dense = model.image_encoder.forward_dense(x)
        pooled = F.normalize(model.text_features().mean(0), dim=-1)
        global_logits = model.logit_scale.exp() * F.normalize(dense[:, 0], dim=-1) @ pooled.T
    torch.testing.assert_close(outputs["ImageNetV2"], outputs["Caltech101"])
    torch.testing.assert_close(
        outputs["ImageNet"] - outputs["Caltech101"], global_logits, atol=1e-3, rtol=1e-4
    )


def test_p11_trainable_count(vit):
    model = build_plot(vit, N=4)
    trainable = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"prompt_learner.ctx": (4, 16, D_T)}
    assert model.prompt_learner.token_suffix.shape == (4 * K, 77 - 17, D_T)


def test_class_positions_and_csc_are_implemented(vit):
    """P-Q4 fixed: middle / front put the name inside / before each row's context, and
    class-specific context gives every (prompt set, class) its own vectors."""
    for position in ("middle", "front"):
        model = build_plot(vit, N=2, CLASS_TOKEN_POSITION=position)
        ctx = model.prompt_learner.ctx
        rows = model.prompt_learner()
        one = ClassPrompts(vit, CLASSNAMES, 16)
        for n in range(2):
            torch.testing.assert_close(rows[n * K : (n + 1) * K], one.splice(ctx[n], position))
    csc = build_plot(vit, N=2, CSC=True)
    assert csc.prompt_learner.ctx.shape == (2, K, 16, D_T)
    rows = csc.prompt_learner()
    torch.testing.assert_close(rows[1 * K + 2, 1:17], csc.prompt_learner.ctx[1, 2])
    assert csc(images(1)).shape == (1, K)


@pytest.mark.parametrize(
    "values, match",
    [
        ({"CTX_INIT": "a photo of a"}, "TRAINER.PLOT.CTX_INIT must be ''"),
        ({"CLASS_TOKEN_POSITION": "start"}, "CLASS_TOKEN_POSITION must be one of end, middle"),
        ({"N": 0}, r"TRAINER.PLOT.N \(number of prompt sets\) must be ≥ 1"),
        ({"EPS": 0.0}, "TRAINER.PLOT.EPS must be > 0"),
        ({"LOCAL_FEATURES": "grid"}, "LOCAL_FEATURES must be one of auto, attnpool, tokens"),
    ],
)
def test_plot_bad_settings(vit, values, match):
    with pytest.raises(ConfigError, match=match):
        build_plot(vit, **values)


def test_tower_mismatches_are_one_line_errors(vit, resnet64):
    with pytest.raises(BackboneError, match="LOCAL_FEATURES attnpool needs a ResNet image tower"):
        build_plot(vit, LOCAL_FEATURES="attnpool")
    with pytest.raises(BackboneError, match="LOCAL_FEATURES tokens needs a ViT image tower"):
        build_plot(resnet64, LOCAL_FEATURES="tokens")
    with pytest.raises(BackboneError, match="PLOT\\+\\+ .* needs a ViT image tower"):
        PLOTPPCLIP(plot_cfg(node="PLOTPP"), CLASSNAMES, resnet64)


# -- PLOT++ --------------------------------------------------------------------------
def build_plotpp(clip_model, dataset="Caltech101", **values) -> PLOTPPCLIP:
    torch.manual_seed(0)
    return PLOTPPCLIP(plot_cfg(dataset, node="PLOTPP", **values), CLASSNAMES, clip_model)


def test_plotpp_prompts_and_counts(vit):
    model = build_plotpp(vit, M=3)
    trainable = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        "prompt_learner.ctx": (4, 4, D_T),
        "prompt_learner.ctx_vision": (3, 2, D_V),
    }
    phrases = TEMPLATE_PHRASES["Caltech101"]
    torch.testing.assert_close(model.prompt_learner.ctx, phrase_token_embeddings(vit, phrases, 4))
    with torch.no_grad():
        text = model.text_features()
    expected = vit.encode_text(
        open_clip.tokenize([f"{phrases[2]} {n.replace('_', ' ')}." for n in CLASSNAMES])
    )
    torch.testing.assert_close(text[2], expected, atol=1e-5, rtol=1e-5)
    vision_only = build_plotpp(vit, MODEL_UPD="vision")
    assert [n for n, p in vision_only.named_parameters() if p.requires_grad] == [
        "prompt_learner.ctx_vision"
    ]


def test_plotpp_short_phrase_keeps_its_eot_in_the_context(vit):
    """ImageNet's third phrase "this is a" has 3 words for 4 context slots: the 4th slot
    starts as its EOT embedding and the class name's first token is overwritten (reference)."""
    model = build_plotpp(vit, "ImageNet")
    eot = vit.token_embedding.weight[49407]
    torch.testing.assert_close(model.prompt_learner.ctx[2, 3], eot)
    row = 2 * K  # prompt set 2, class 0: "this is a golden retriever."
    ids = model.prompt_learner.token_ids[row]
    assert int(ids[4]) == int(open_clip.tokenize(["golden"])[0, 1])


def test_plotpp_image_path_equals_prompted_encoder(vit):
    """Each of the M prompt sets is one shallow-prompted pass; global = their mean."""
    model = build_plotpp(vit, M=2, TRADE_OFF=True)
    x = images(2)
    with torch.no_grad():
        glob, local = model.image_features(x)
        for m in range(2):
            expected = model.image_encoder(x, model.prompt_learner.ctx_vision[m])
            torch.testing.assert_close(local[m], expected, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(glob, local.mean(0))
        assert model(x).shape == (2, K)


@pytest.mark.parametrize(
    "values, match",
    [
        ({"CSC": True}, "TRAINER.PLOTPP.CSC must be False"),
        ({"CLASS_TOKEN_POSITION": "middle"}, "CLASS_TOKEN_POSITION must be end"),
        ({"MODEL_UPD": "text"}, "MODEL_UPD must be one of 'joint', 'vision'"),
        ({"M": 0}, r"TRAINER.PLOTPP.M \(number of prompt sets\) must be ≥ 1"),
        ({"N": 5}, "TRAINER.PLOTPP.N is 5 but CTX_INIT has 4 template phrases"),
    ],
)
def test_plotpp_bad_settings(vit, values, match):
    with pytest.raises(ConfigError, match=match):
        build_plotpp(vit, **values)


def test_plotpp_random_init_when_ctx_init_is_off(vit):
    """The reference crashes (NameError) without CTX_INIT; here: random ctx, "X" scaffolds."""
    model = build_plotpp(vit, CTX_INIT=False, N_CTX=3)
    assert model.prompt_learner.ctx.shape == (4, 3, D_T)
    assert model.prompt_learner.scaffolds[0] == "X X X golden retriever."


def test_p11_paper_counts_and_readme_rows(repo_root):
    """N·16·512 = 32,768 for PLOT at N 4 (same for RN50 and ViT-B/16: both text towers are
    512 wide); PLOT++ 4·4·512 + 4·2·768. The README's methods table quotes both."""
    from ammpl.trainers.param_counts import PAPER_CONFIGS, paper_counts

    rows = tuple(row for row in PAPER_CONFIGS if row.trainer in ("PLOT", "PLOTPP"))
    counts = {row.trainer: count for row, count in paper_counts("vit_b16", rows)}
    assert counts == {"PLOT": 4 * 16 * 512, "PLOTPP": 4 * 4 * 512 + 4 * 2 * 768}
    readme = (repo_root / "README.md").read_text()
    assert "| PLOT | `PLOT` |" in readme and f"| {counts['PLOT']:,} (N 4) |" in readme
    assert "| PLOT++ | `PLOTPP` |" in readme and f"| {counts['PLOTPP']:,} (M 4) |" in readme
