"""The backbone table, names, the loaded model's state, the tiny fallback, QuickGELU, the
tokenizer and the reference half-precision form."""

from __future__ import annotations

import copy
import time

import open_clip
import pytest
import torch
from _clip_weights_helpers import (
    TEST_BACKBONE,
    save_state_dict,
    seal_environment,
    tiny_state_dict,
)
from open_clip.model import convert_weights_to_lp
from open_clip.transformer import LayerNormFp32, QuickGELU
from torch import nn

from ammpl.clip import BACKBONE_REGISTRY, available_backbones, load_backbone, tokenize
from ammpl.clip.backbones import (
    DASSL_ARCHITECTURES,
    BackboneSpec,
    build_architecture,
    check_activation,
    get_backbone_spec,
)
from ammpl.clip.precision import to_reference_half
from ammpl.clip.tiny import TINY_CLIP_CONFIG, build_tiny_clip
from ammpl.clip.tokenizer import EOT_TOKEN_ID, SOT_TOKEN_ID, TextTooLongError
from ammpl.clip.weights import WeightsNotFoundError
from ammpl.utils import BackboneError


@pytest.fixture
def sealed(monkeypatch, tmp_path):
    return seal_environment(monkeypatch, tmp_path)


DASSL_NAMES = ["RN50", "RN101", "RN50x4", "RN50x16", "RN50x64"]
DASSL_NAMES += ["ViT-B/32", "ViT-B/16", "ViT-L/14", "ViT-L/14@336px"]


# -- the table and names ---------------------------------------------------------------
def test_table_has_dassl_names_and_tiny():
    assert available_backbones() == [*DASSL_NAMES, "tiny", "tiny-rn", "mini"]
    assert set(BACKBONE_REGISTRY) == set(available_backbones())


@pytest.mark.parametrize(
    "name, arch, openai_file",
    [("ViT-B/16", "ViT-B-16", "ViT-B-16.pt"), ("RN50", "RN50", "RN50.pt"),
     ("ViT-L/14@336px", "ViT-L-14-336", "ViT-L-14-336px.pt")],
)  # fmt: skip
def test_dassl_rows_point_at_openai_weights(name, arch, openai_file):
    spec = get_backbone_spec(name)
    assert (spec.arch, spec.pretrained, spec.quick_gelu) == (arch, "openai", True)
    assert spec.weights.openai_file == openai_file
    assert spec.weights.hf_hub.endswith(".openai/")
    assert f"create_model('{arch}', pretrained='openai')" in spec.weights.fetch_command


def test_every_openai_architecture_is_built_with_quick_gelu():
    for name in DASSL_ARCHITECTURES:
        spec = get_backbone_spec(name)
        with torch.device("meta"):  # shapes only: no memory, no init time
            model = build_architecture(spec)
        check_activation(model, spec)
        gelus = [m.mlp.gelu for m in model.modules() if hasattr(m, "mlp")]
        assert gelus and all(isinstance(g, QuickGELU) for g in gelus), name


def test_open_clip_names_with_tags():
    openai = get_backbone_spec("ViT-B-16:openai")
    assert (openai.arch, openai.pretrained, openai.quick_gelu) == ("ViT-B-16", "openai", True)
    siglip = get_backbone_spec("ViT-B-16-SigLIP:webli")
    assert (siglip.quick_gelu, siglip.weights.hf_hub) == (False, "timm/ViT-B-16-SigLIP/")
    with pytest.raises(BackboneError, match='no pretrained tag "opnai" for ViT-B-16.*openai'):
        get_backbone_spec("ViT-B-16:opnai")


@pytest.mark.parametrize(
    "typo, closest", [("ViT-B/61", "ViT-B/16"), ("ViT-B-16", "ViT-B/16"), ("rn-50", "RN50")]
)
def test_unknown_name_names_the_closest(typo, closest):
    with pytest.raises(BackboneError, match=f'Did you mean "{closest}"'):
        load_backbone(typo)


def test_activation_check_catches_gelu_for_quick_gelu_weights():
    config = copy.deepcopy(TINY_CLIP_CONFIG)
    config["quick_gelu"] = False
    gelu_model = open_clip.CLIP(**config)
    spec = BackboneSpec("x", "tiny", "openai", quick_gelu=True, weights=None)
    with pytest.raises(BackboneError, match="QuickGELU"):
        check_activation(gelu_model, spec)
    with pytest.raises(BackboneError, match="not trained with QuickGELU"):
        check_activation(build_tiny_clip(), BackboneSpec("y", "tiny", None, False, None))


# -- the loaded model ------------------------------------------------------------------
def assert_frozen_eval_fp32(model: nn.Module) -> None:
    assert not model.training and all(not m.training for m in model.modules())
    assert all(not p.requires_grad for p in model.parameters())
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_tiny_is_frozen_eval_fp32_and_seeded(sealed):
    model = load_backbone("tiny")
    assert_frozen_eval_fp32(model)
    assert model.ammpl_backbone_name == "tiny"
    assert model.ammpl_source == "random:tiny (seed 0)"
    reference = build_tiny_clip(seed=0).state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())
    assert load_backbone("tiny").ammpl_weights_hash == model.ammpl_weights_hash
    assert isinstance(model.transformer.resblocks[0].mlp.gelu, QuickGELU)


def test_tiny_ignores_env_path_but_takes_an_explicit_file(sealed, tmp_path, monkeypatch):
    monkeypatch.setenv("AMMPL_CLIP_PATH", str(tmp_path / "elsewhere.pt"))
    assert load_backbone("tiny").ammpl_source == "random:tiny (seed 0)"
    state = tiny_state_dict(seed=3)
    file = save_state_dict(tmp_path / "tiny3.pt", state)
    model = load_backbone("tiny", path=file)
    assert torch.equal(model.text_projection, state["text_projection"])
    assert model.ammpl_source == f"path:{file}"


def test_loaded_weights_are_frozen_eval_fp32_with_quick_gelu(sealed, tmp_path):
    state = {k: v.half() for k, v in tiny_state_dict().items()}  # OpenAI ships fp16
    model = load_backbone(TEST_BACKBONE, path=save_state_dict(tmp_path / "w.pt", state))
    assert_frozen_eval_fp32(model)
    assert all(isinstance(m.mlp.gelu, QuickGELU) for m in model.modules() if hasattr(m, "mlp"))


def test_device_argument_moves_the_model(sealed):
    assert load_backbone("tiny", device="meta").visual.conv1.weight.device.type == "meta"


def test_tiny_fallback_prints_one_notice_within_seconds(sealed, capsys):
    started = time.monotonic()
    model = load_backbone(TEST_BACKBONE, allow_tiny_fallback=True)
    assert time.monotonic() - started < 5
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{TEST_BACKBONE} weights not found (looked in path argument")
    assert "using the tiny random backbone instead" in lines[0]
    assert "demo" not in lines[0] and "ALLOW_TINY_FALLBACK" in lines[0]  # true outside the demo
    assert model.ammpl_backbone_name == "tiny"
    assert model.ammpl_source.startswith("random:tiny (fallback")
    assert_frozen_eval_fp32(model)


def test_no_fallback_without_the_flag(sealed, capsys):
    with pytest.raises(WeightsNotFoundError):
        load_backbone(TEST_BACKBONE)
    assert capsys.readouterr().out == ""


# -- tokenizer ----------------------------------------------------------------------------
def test_tokenizer_ids_for_a_known_string():
    ids = tokenize("a photo of a cat.")
    assert ids.dtype == torch.long and ids.shape == (1, 77)
    assert ids[0, :8].tolist() == [SOT_TOKEN_ID, 320, 1125, 539, 320, 2368, 269, EOT_TOKEN_ID]
    assert ids[0, 8:].eq(0).all()


def test_tokenizer_matches_open_clip_on_normal_texts():
    texts = ["A  Photo of a Golden_Retriever!", "caf\u00e9 &amp; cr\u00e8me", "x"]
    assert torch.equal(tokenize(texts), open_clip.tokenize(texts))
    assert tokenize(texts, context_length=16).shape == (3, 16)


def test_tokenizer_refuses_to_cut_unless_asked():
    long_text = " ".join(["word"] * 80)
    with pytest.raises(TextTooLongError, match="82 tokens .* context length 77"):
        tokenize(["short", long_text])
    cut = tokenize(long_text, truncate=True)
    assert cut[0, 0] == SOT_TOKEN_ID and cut[0, -1] == EOT_TOKEN_ID
    assert torch.equal(cut, open_clip.tokenize([long_text]))
    assert tokenize(" ".join(["word"] * 75)).shape == (1, 77)  # exactly fits


# -- the reference half form ------------------------------------------------------------
def half_names(model: nn.Module) -> set[str]:
    return {name for name, t in model.state_dict().items() if t.dtype == torch.float16}


def test_reference_half_split_on_the_vit():
    model = to_reference_half(build_tiny_clip())
    half = half_names(model)
    for name in ("visual.conv1.weight", "visual.proj", "text_projection",
                 "transformer.resblocks.0.attn.in_proj_weight",
                 "transformer.resblocks.0.attn.in_proj_bias",
                 "transformer.resblocks.0.attn.out_proj.weight",
                 "visual.transformer.resblocks.1.mlp.c_fc.bias"):  # fmt: skip
        assert name in half, name
    full = set(model.state_dict()) - half
    assert full == {
        name
        for name in model.state_dict()
        if "ln_" in name
        or name
        in {
            "token_embedding.weight",
            "positional_embedding",
            "logit_scale",
            "visual.positional_embedding",
            "visual.class_embedding",
        }  # fmt: skip
    }
    norms = [m for m in model.modules() if isinstance(m, nn.LayerNorm)]
    assert norms and all(type(m) is LayerNormFp32 for m in norms)
    # Same tensors as open_clip's converter; the difference is the LayerNorm compute.
    reference = build_tiny_clip()
    convert_weights_to_lp(reference)
    assert half == half_names(reference)
    assert not any(type(m) is LayerNormFp32 for m in reference.modules())


def test_reference_half_runs_and_stays_close_to_fp32():
    full = build_tiny_clip().eval()
    half = to_reference_half(build_tiny_clip().eval())
    images = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    ids = tokenize(["a photo of a cat.", "a dog"])
    with torch.no_grad():
        image_half, text_half = half.encode_image(images.half()), half.encode_text(ids)
        image_full, text_full = full.encode_image(images), full.encode_text(ids)
    assert image_half.dtype == text_half.dtype == torch.float16
    torch.testing.assert_close(image_half.float(), image_full, atol=2e-2, rtol=2e-2)
    torch.testing.assert_close(text_half.float(), text_full, atol=2e-2, rtol=2e-2)


def test_reference_half_on_a_resnet_keeps_batch_norm_fp32():
    config = copy.deepcopy(TINY_CLIP_CONFIG)
    config["vision_cfg"] = {"layers": [1, 1, 1, 1], "width": 8, "image_size": 64}
    model = to_reference_half(open_clip.CLIP(**config))
    half = half_names(model)
    assert {
        "visual.conv1.weight",
        "visual.attnpool.q_proj.weight",
        "visual.attnpool.c_proj.bias",
    } <= half
    assert "visual.attnpool.positional_embedding" not in half
    assert not any(name.startswith("visual.bn") for name in half)
