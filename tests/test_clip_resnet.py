"""ResNet image towers: the `tiny-rn` test backbone, ResNet weights through the normal
loader, the attention-pool local features on RN50 shapes and in the reference half form."""

from __future__ import annotations

import torch

from ammpl.clip import load_backbone
from ammpl.clip.backbones import build_architecture, get_backbone_spec
from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.precision import to_reference_half
from ammpl.clip.tiny import build_tiny_resnet_clip


def test_tiny_rn_is_a_seeded_resnet_clip_at_224_px():
    model = load_backbone("tiny-rn")
    assert type(model.visual).__name__ == "ModifiedResNet"
    assert model.visual.image_size == 224
    assert model.visual.attnpool.positional_embedding.shape[0] == 1 + 7 * 7
    assert model.ln_final.weight.shape == (64,) and model.text_projection.shape == (64, 48)
    again = build_tiny_resnet_clip(seed=0)
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values())
    )
    assert ImageEncoder(model).is_resnet and not ImageEncoder(load_backbone("tiny")).is_resnet


def test_resnet_weights_load_from_a_file(tmp_path):
    """A ResNet checkpoint (batch-norm buffers included) goes through the weight resolution."""
    source = build_tiny_resnet_clip(seed=3)
    path = tmp_path / "tiny-rn.pt"
    torch.save(source.state_dict(), path)
    model = load_backbone("tiny-rn", path=path)
    for key, value in source.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert str(path) in model.ammpl_source


def test_rn50_local_features_have_rn50_shapes():
    """Shapes only (meta tensors): RN50 gives 1 + 7·7 tokens of width 1024 at 224 px."""
    with torch.device("meta"):
        model = build_architecture(get_backbone_spec("RN50"))
        dense = ImageEncoder(model).forward_dense(torch.empty(2, 3, 224, 224))
    assert tuple(dense.shape) == (2, 50, 1024)


def test_local_features_in_the_reference_half_form():
    full = build_tiny_resnet_clip(seed=0, image_size=64).eval()
    half = to_reference_half(build_tiny_resnet_clip(seed=0, image_size=64).eval())
    x = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        dense_half = ImageEncoder(half).forward_dense(x)
        dense_full = ImageEncoder(full).forward_dense(x)
    assert dense_half.dtype == torch.float16
    torch.testing.assert_close(dense_half.float(), dense_full, atol=2e-3, rtol=2e-2)
