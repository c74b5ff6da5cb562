"""PromptSRC on the tiny backbone: the teacher, every loss term against a hand computation,
the reduction to IVLP, and Gaussian prompt aggregation (weights, aggregate, errors).

End-to-end training, GPA through the trainer and exact resume: tests/test_promptsrc_kgcoop_runs.py.
"""

from __future__ import annotations

import math

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F

from ammpl.trainers.ivlp import IVLPCLIP
from ammpl.trainers.promptsrc.gpa import GaussianPromptAggregator, gaussian_epoch_weights
from ammpl.trainers.promptsrc.losses import SRCWeights, promptsrc_loss
from ammpl.trainers.promptsrc.model import PromptSRCCLIP
from ammpl.trainers.templates import IMAGENET_TEMPLATES, PROMPTSRC_TEMPLATES
from ammpl.utils import ConfigError
from tests._baselines_helpers import (
    CLASSNAMES,
    assert_close,
    batch_fixture,  # noqa: F401  (pytest fixture `batch`)
    clip3_fixture,  # noqa: F401  (pytest fixture `clip3`)
    method_node,
    normalise,
    tiny_clip,
)

LABELS = torch.tensor([0, 2, 1])


def randomise_prompts_(model: torch.nn.Module, seed: int = 0) -> None:
    """Move every trainable tensor away from its init (so each term is non-trivial)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn(param.shape, generator=generator) * 0.2)


def test_teacher_templates_are_the_reference_selection():
    assert len(PROMPTSRC_TEMPLATES) == 60 == len(set(PROMPTSRC_TEMPLATES))
    assert PROMPTSRC_TEMPLATES[0] == "a photo of a {}."
    assert set(PROMPTSRC_TEMPLATES) == set(IMAGENET_TEMPLATES[:60])
    assert PROMPTSRC_TEMPLATES[1:4] == ("a bad photo of a {}.", "a photo of many {}.",
                                        "a sculpture of a {}.")  # fmt: skip
    assert PROMPTSRC_TEMPLATES[-1] == "itap of the {}."


def test_teacher_text_is_the_normalised_mean_of_raw_template_features(clip3):
    model = PromptSRCCLIP(method_node("PROMPTSRC"), CLASSNAMES, clip3)
    with torch.no_grad():
        raw = [
            clip3.encode_text(
                open_clip.tokenize([t.format(n.replace("_", " ")) for n in CLASSNAMES])
            )
            for t in PROMPTSRC_TEMPLATES
        ]
    expected = normalise(sum(raw) / len(raw))  # mean of un-normalised features, then L2
    assert_close(model.zero_shot_text_features(), expected)
    assert "zs_text_features" not in model.state_dict()  # rebuilt per label space
    given = PromptSRCCLIP(method_node("PROMPTSRC"), CLASSNAMES, clip3, sum(raw) / len(raw))
    assert_close(given.zs_text_features, expected)  # the trainer passes fp32 ones in


def test_each_loss_term_equals_a_hand_computation(clip3, batch):
    node = method_node("PROMPTSRC", TEXT_LOSS_WEIGHT=25.0, IMAGE_LOSS_WEIGHT=10.0)
    model = PromptSRCCLIP(node, CLASSNAMES, clip3)
    randomise_prompts_(model)
    model.train()
    loss, logits, parts = model.train_loss(batch, LABELS)
    out = model.forward_train(batch)

    with torch.no_grad():
        model.eval()
        prompted_logits = model(batch)  # IVLP's eval forward: the prompted model
        model.train()
        scale = clip3.logit_scale.exp()
        zs_image = normalise(clip3.encode_image(batch))  # open_clip itself, no prompts
        zs_logits = scale * zs_image @ model.zero_shot_text_features().t()
        text = normalise(model.text_features())
        image = normalise(model.image_features(batch))
    assert_close(logits, prompted_logits)
    assert_close(out.zs_image_features, zs_image)
    assert_close(out.zs_logits, zs_logits)

    batch_size, n_classes = logits.shape
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    ce = -sum(log_p[i, LABELS[i]] for i in range(batch_size)) / batch_size
    l1_text = (text - model.zero_shot_text_features()).abs().sum() / text.numel()
    l1_image = (image - zs_image).abs().sum() / image.numel()
    p_zs = torch.softmax(zs_logits, dim=1)
    kl = (p_zs * (torch.log(p_zs) - log_p)).sum() / (batch_size * n_classes)
    expected = {"ce": ce, "scl_kl": kl, "scl_text": 25 * l1_text, "scl_image": 10 * l1_image}
    for name, value in expected.items():
        assert parts[name].item() == pytest.approx(value.item(), rel=1e-5, abs=1e-7), name
        assert parts[name].item() > 0, name
    assert loss.item() == pytest.approx(sum(v.item() for v in expected.values()), rel=1e-5)


def test_loss_weights_scale_their_terms_only(clip3, batch):
    model = PromptSRCCLIP(method_node("PROMPTSRC"), CLASSNAMES, clip3)
    randomise_prompts_(model, seed=1)
    with torch.no_grad():
        out = model.forward_train(batch)
        _, unit = promptsrc_loss(out, LABELS, SRCWeights(1.0, 1.0, 1.0))
        _, scaled = promptsrc_loss(out, LABELS, SRCWeights(3.0, 5.0, 7.0))
    assert scaled["ce"] == unit["ce"]
    for name, factor in (("scl_text", 3.0), ("scl_image", 5.0), ("scl_kl", 7.0)):
        assert scaled[name].item() == pytest.approx(factor * unit[name].item(), rel=1e-6)


def test_zero_weights_without_gpa_equal_ivlp_4_plus_4_depth_9(clip3, batch):
    """Logits, loss and gradients of PromptSRC with its regularisers off are IVLP's."""
    ivlp_node = method_node("IVLP", N_CTX_TEXT=4, N_CTX_VISION=4, PREC="fp32")
    ivlp = IVLPCLIP(ivlp_node, CLASSNAMES, clip3)
    randomise_prompts_(ivlp, seed=2)
    node = method_node(
        "PROMPTSRC", TEXT_LOSS_WEIGHT=0.0, IMAGE_LOSS_WEIGHT=0.0, LOGIT_LOSS_WEIGHT=0.0, GPA=False
    )
    assert (node.PROMPT_DEPTH_TEXT, node.PROMPT_DEPTH_VISION) == (9, 9)
    src = PromptSRCCLIP(node, CLASSNAMES, clip3)
    src.load_state_dict(ivlp.state_dict())
    assert set(src.state_dict()) == set(ivlp.state_dict())

    ivlp.train()
    src.train()
    ivlp_logits = ivlp(batch)
    ivlp_loss = F.cross_entropy(ivlp_logits, LABELS)
    ivlp_loss.backward()
    loss, logits, _ = src.train_loss(batch, LABELS)
    loss.backward()
    assert torch.equal(logits, ivlp_logits)
    assert torch.equal(loss, ivlp_loss)
    ivlp_params = dict(ivlp.named_parameters())
    trainable = [(n, p) for n, p in src.named_parameters() if p.requires_grad]
    assert len(trainable) == 2 * 3  # ctx + 2 deep text, shallow + 2 deep vision (3 blocks)
    for name, param in trainable:
        assert torch.equal(param.grad, ivlp_params[name].grad), name
    src.eval()
    ivlp.eval()
    with torch.no_grad():
        assert torch.equal(src(batch), ivlp(batch))


# ------------------------------------------------------------------ GPA


@pytest.mark.parametrize(("mean", "std", "epochs"), [(15, 1, 20), (6, 10, 20), (45, 5, 50)])
def test_gpa_weights_are_a_normalised_gaussian_over_epochs(mean, std, epochs):
    weights = gaussian_epoch_weights(mean, std, epochs)
    assert weights.shape == (epochs,)
    assert math.fsum(weights) == pytest.approx(1.0, abs=1e-12)
    density = [math.exp(-((e - mean) ** 2) / (2 * std**2)) for e in range(1, epochs + 1)]
    expected = np.array(density) / math.fsum(density)
    np.testing.assert_allclose(weights, expected, rtol=1e-12, atol=1e-300)
    assert int(np.argmax(weights)) + 1 == min(mean, epochs)


def test_gpa_settings_without_weights_are_errors():
    with pytest.raises(ConfigError, match="GPA_STD must be > 0"):
        gaussian_epoch_weights(15, 0, 20)
    with pytest.raises(ConfigError, match="GPA weights vanish"):
        gaussian_epoch_weights(1e6, 1, 20)


def test_gpa_aggregate_is_the_weighted_sum_and_its_state_round_trips():
    weights = gaussian_epoch_weights(2, 1, 3)
    generator = torch.Generator().manual_seed(0)
    per_epoch = [{"a": torch.randn(2, 5, generator=generator)} for _ in range(3)]
    aggregator = GaussianPromptAggregator(weights)
    for epoch in range(2):
        aggregator.add(epoch, per_epoch[epoch])
    resumed = GaussianPromptAggregator(weights)
    resumed.load_state_dict(aggregator.state_dict())
    for agg in (aggregator, resumed):
        agg.add(2, per_epoch[2])
    target = {"a": torch.zeros(2, 5)}
    resumed.apply(target)
    expected = sum(float(w) * p["a"].double() for w, p in zip(weights, per_epoch))
    assert torch.allclose(target["a"].double(), expected, atol=1e-6)
    assert torch.equal(aggregator.total["a"], resumed.total["a"])
    with pytest.raises(RuntimeError, match="already holds epoch 3"):
        aggregator.add(2, per_epoch[2])


def test_reference_fp16_precision_map():
    """In the half CLIP, ctx is fp16 (derived from the token embedding), the deep and vision
    prompts fp32, and GPA sums each tensor in its own dtype."""
    from ammpl.clip.precision import to_reference_half

    model = PromptSRCCLIP(method_node("PROMPTSRC"), CLASSNAMES, to_reference_half(tiny_clip()))
    dtypes = {n: p.dtype for n, p in model.named_parameters() if p.requires_grad}
    assert dtypes.pop("prompt_learner.ctx") == torch.float16
    assert dtypes and set(dtypes.values()) == {torch.float32}
    aggregator = GaussianPromptAggregator(gaussian_epoch_weights(1, 1, 2))
    aggregator.add(0, dict(model.named_parameters()))
    assert aggregator.total["prompt_learner.ctx"].dtype == torch.float16
    assert aggregator.total["vision_prompts.shallow"].dtype == torch.float32
