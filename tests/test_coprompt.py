"""CoPrompt: trainable names and counts (tiny), its loss and consistency terms against a
plain restatement on open_clip's own encoders, the user's description files (resolution and
one-line errors), the randaugment views, and an interrupted run resuming exactly."""

from __future__ import annotations

import contextlib
import io
import json

import open_clip
import pytest
import torch
import torch.nn.functional as F

from ammpl.data.transforms import build_transform
from ammpl.trainers.coprompt import CoPromptCLIP, description_file, load_descriptions
from ammpl.utils import DataError
from tests._baselines_helpers import (
    CLASSNAMES,
    D_T,
    D_V,
    EMBED,
    assert_close,
    build_fixture_trainer,
    images,
    method_node,
    normalise,
    tiny_clip,
)

DESCRIPTIONS = [
    [f"a {name} seen from afar.", f"a close-up photo of a {name}."] for name in CLASSNAMES
]


def node(**values):
    return method_node("CoPrompt", PREC="fp32", **values)


@pytest.fixture(scope="module")
def clip_model():
    return tiny_clip()


def test_trainable_names_and_counts(clip_model):
    model = CoPromptCLIP(node(), CLASSNAMES, clip_model)
    names = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    adapters = {
        f"adapter_{side}.fc.{i}.weight": shape
        for side in ("image", "text")
        for i, shape in ((0, (EMBED // 4, EMBED)), (2, (EMBED, EMBED // 4)))
    }
    maple = {n: s for n, s in names.items() if n.startswith("prompt_learner.")}
    assert names == {**maple, **adapters}
    depth = 2  # paper depth 9 on the 2-block tiny towers
    assert maple["prompt_learner.ctx"] == (2, D_T)
    assert len(maple) == 3 + 3 * (depth - 1)  # ctx, proj.{weight,bias}; per deep layer 3
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert count == depth * 2 * D_T + depth * (D_T * D_V + D_V) + 4 * EMBED * EMBED // 4
    assert model(images(2)).shape == (2, len(CLASSNAMES))


def plain_adapter(adapter, x: torch.Tensor) -> torch.Tensor:
    first, _, second, _ = adapter.fc
    return F.relu(F.relu(x @ first.weight.t()) @ second.weight.t())


def plain_cosine_term(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1)).clamp_min(1e-7)
    return 1 - cos.mean()


@pytest.mark.parametrize("distill", ["cosine", "mse"])
def test_loss_and_consistency_terms_equal_a_plain_restatement(clip_model, distill):
    torch.manual_seed(0)
    model = CoPromptCLIP(node(W=2.5, DISTILL=distill), CLASSNAMES, clip_model)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(torch.randn_like(param) * 0.05)
    model.set_descriptions(DESCRIPTIONS)
    image, view, label = images(3, seed=1), images(3, seed=2), torch.tensor([0, 2, 1])
    model.train()
    loss, logits, terms = model.train_loss(image, view, label, index=1)

    # restatement: learned features through our prompted encoders, the frozen ones through
    # open_clip's own encode_image / encode_text, adapters and terms written out
    text = model.text_features()
    feature = model.image_features(image)
    text = normalise(0.2 * plain_adapter(model.adapter_text, text) + 0.8 * text)
    feature = normalise(0.1 * plain_adapter(model.adapter_image, feature) + 0.9 * feature)
    with torch.no_grad():
        described = clip_model.encode_text(open_clip.tokenize([d[1] for d in DESCRIPTIONS]))
        frozen_image = clip_model.encode_image(view)
    described, frozen_image = normalise(described), normalise(frozen_image)
    if distill == "cosine":
        text_term = plain_cosine_term(text, described)
        image_term = plain_cosine_term(feature, frozen_image)
    else:
        text_term = ((text - described) ** 2).mean()
        image_term = ((feature - frozen_image) ** 2).mean()
    expected_logits = clip_model.logit_scale.exp() * feature @ text.t()
    ce = F.cross_entropy(expected_logits, label)
    assert_close(logits, expected_logits, 1e-5)
    assert_close(terms["cons_text"], text_term, 1e-5)
    assert_close(terms["cons_image"], image_term, 1e-5)
    assert_close(terms["ce"], ce, 1e-5)
    assert_close(loss, ce + 2.5 * (text_term + image_term), 1e-5)
    assert terms["cons_text"] > 1e-3 and terms["cons_image"] > 1e-4  # both terms are live
    # evaluation logits are the training ones (no consistency, same features)
    model.eval()
    with torch.no_grad():
        assert_close(model(image), expected_logits.detach(), 1e-5)


def test_description_files_resolve_like_the_references_gpt_file(tmp_path):
    assert description_file("gpt_file", "Caltech101") == "gpt_file/caltech_prompt.json"
    assert description_file("gpt_file", "FGVCAircraft") == "gpt_file/fgvc_prompt.json"
    assert description_file(str(tmp_path), "MiniColors").endswith("/minicolors_prompt.json")
    assert description_file("my.json", "Caltech101") == "my.json"
    path = tmp_path / "caltech_prompt.json"
    path.write_text(json.dumps({"golden retriever": ["x", "y"], "tabby cat": ["z", "w"]}))
    got = load_descriptions(str(tmp_path), "Caltech101", ["golden_retriever", "tabby cat"])
    assert got == [["x", "y"], ["z", "w"]]


@pytest.mark.parametrize(
    "content, message",
    [
        (None, r"no file .*/caltech_prompt\.json .*DESCRIPTIONS.*\{\"class name\""),
        ("{not json", "cannot read class descriptions"),
        (json.dumps({"golden retriever": ["x"]}), r"lack 1 of the 2 classes .*tabby cat"),
        (json.dumps({"golden retriever": ["x"], "tabby cat": []}), "non-empty list"),
        (json.dumps({"golden retriever": ["x"], "tabby cat": ["y", "z"]}), "same number"),
    ],
)
def test_bad_description_files_are_one_line_data_errors(tmp_path, content, message):
    if content is not None:
        (tmp_path / "caltech_prompt.json").write_text(content)
    with pytest.raises(DataError, match=message) as error:
        load_descriptions(str(tmp_path), "Caltech101", ["golden_retriever", "tabby cat"])
    assert "\n" not in str(error.value)


def test_randaugment_views_differ_and_keep_the_input_size(repo_root):
    from PIL import Image

    from ammpl.engine import get_cfg_default, merge_from_file

    cfg = get_cfg_default()
    merge_from_file(cfg, repo_root / "configs/trainers/CoPrompt/coprompt.yaml")
    with contextlib.redirect_stdout(io.StringIO()) as out:
        transform = build_transform(cfg, is_train=True)
    assert "+ randaugment (n=2, m=10)" in out.getvalue()
    picture = Image.fromarray(
        (torch.rand(50, 70, 3, generator=torch.Generator().manual_seed(0)) * 255)
        .to(torch.uint8)
        .numpy()
    )
    torch.manual_seed(0)
    views = [transform(picture) for _ in range(4)]
    assert all(v.shape == (3, 224, 224) for v in views)
    assert any(not torch.equal(views[0], v) for v in views[1:])


EPOCHS = 2


def build(repo_root, data_root, out, descriptions):
    return build_fixture_trainer(
        repo_root,
        "CoPrompt/coprompt.yaml",
        1,
        [
            "TRAINER.NAME", "CoPrompt", "DATASET.ROOT", str(data_root),
            "DATASET.NUM_SHOTS", "2", "OUTPUT_DIR", str(out),
            "DATALOADER.TRAIN_X.BATCH_SIZE", "4", "DATALOADER.TEST.BATCH_SIZE", "8",
            "OPTIM.MAX_EPOCH", str(EPOCHS), "OPTIM.LR", "0.5", "OPTIM.WARMUP_EPOCH", "0",
            "TRAINER.CoPrompt.PREC", "fp32", "TRAINER.CoPrompt.W", "2.0",
            "TRAINER.CoPrompt.DESCRIPTIONS", str(descriptions),
        ],
    )  # fmt: skip


def write_descriptions(folder, classnames) -> None:
    folder.mkdir(exist_ok=True)
    table = {
        name.replace("_", " "): [f"a photo of a {name}.", f"a {name}, described.", f"{name}!"]
        for name in classnames
    }
    (folder / "caltech_prompt.json").write_text(json.dumps(table))


def weights(trainer) -> dict[str, torch.Tensor]:
    module = trainer._models["MultiModalPromptLearner"]
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


def test_training_without_descriptions_stops_with_the_expected_path(
    repo_root, benchmark_root, tmp_path
):
    trainer = build(repo_root, benchmark_root, tmp_path / "run", tmp_path / "none")
    with pytest.raises(DataError, match=r"none/caltech_prompt\.json"):
        trainer.train()


def test_interrupted_run_resumes_exactly(repo_root, benchmark_root, tmp_path):
    folder = tmp_path / "gpt_file"
    reference = build(repo_root, benchmark_root, tmp_path / "full", folder)
    write_descriptions(folder, reference.dm.dataset.classnames)
    assert reference.cfg.DATALOADER.K_TRANSFORMS == 2
    start = weights(reference)
    with contextlib.redirect_stdout(io.StringIO()) as log:
        reference.train()
    assert "cons_text" in log.getvalue() and "cons_image" in log.getvalue()
    trained = weights(reference)
    assert all(not torch.equal(trained[n], start[n]) for n in start if "adapter" in n)

    trainer = build(repo_root, benchmark_root, tmp_path / "cut", folder)
    forward_backward = trainer.forward_backward

    def interrupt_in_last_epoch(batch):
        if trainer.epoch == EPOCHS - 1:
            raise KeyboardInterrupt
        return forward_backward(batch)

    trainer.forward_backward = interrupt_in_last_epoch
    with pytest.raises(KeyboardInterrupt), contextlib.redirect_stdout(io.StringIO()):
        trainer.train()
    resumed = build(repo_root, benchmark_root, tmp_path / "cut", folder)
    with contextlib.redirect_stdout(io.StringIO()):
        resumed.train()
    assert resumed.start_epoch == EPOCHS - 1
    got = weights(resumed)
    for name, value in trained.items():
        assert torch.equal(got[name], value), name
