"""ProGrad and TCP on the tiny backbone: trainable tensors and counts (the ViT-B/16 counts
are in tests/test_baselines_params.py), ProGrad's context initialisation and gradient
projection, TCP's class-aware tokens and loss against plain restatements, exact
resumption, and their protocol scripts."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ammpl.clip.tokenizer import tokenize
from ammpl.trainers.param_counts import (
    PAPER_CONFIGS,
    build_method_model,
    load_paper_cfg,
    trainable_names,
)
from ammpl.trainers.prograd import ProGradCLIP, prograd_losses, project_conflicting
from ammpl.trainers.tcp import TCPCLIP
from ammpl.trainers.templates import prograd_template, tcp_hand_template, tcp_scaffold
from ammpl.utils import ConfigError
from tests._baselines_helpers import (
    CLASSNAMES,
    D_T,
    EMBED,
    assert_close,
    build_fixture_trainer,
    images,
    method_node,
    reference_text_features,
    tiny_clip,
)
from tests.test_baselines_scripts import (
    TINY,
    dry_run,
    option,
    recorded_accuracy,
    run_script,
)

ROWS = {row.method: row for row in PAPER_CONFIGS}
LABELS = torch.tensor([1, 0, 2])


@pytest.fixture(scope="module")
def clip3():
    return tiny_clip(seed=1, layers=3)


# ------------------------------------------------------------------ shapes and counts


def test_tiny_trainable_names_and_counts():
    clip_model = tiny_clip()
    hidden = EMBED // 4
    expected = {
        "ProGrad": ({"prompt_learner.ctx": (16, D_T)}, 16 * D_T),
        "TCP": (
            {
                "prompt_learner.ctx": (4, D_T),
                "prompt_learner.meta_net.linear1.weight": (hidden, EMBED),
                "prompt_learner.meta_net.linear1.bias": (hidden,),
                "prompt_learner.meta_net.linear2.weight": (4 * D_T, hidden),
                "prompt_learner.meta_net.linear2.bias": (4 * D_T,),
            },
            4 * D_T + EMBED * hidden + hidden + hidden * 4 * D_T + 4 * D_T,
        ),
    }
    for method, (names, count) in expected.items():
        row = ROWS[method]
        model = build_method_model(row.trainer, load_paper_cfg(row), CLASSNAMES, clip_model)
        assert trainable_names(model) == names, method
        assert sum(p.numel() for p in model.parameters() if p.requires_grad) == count


def test_results_know_both_methods():
    from ammpl.results.names import METHOD_ORDER, method_name

    assert method_name("ProGrad", "vit_b16_ep100") == "ProGrad"
    assert method_name("TCP", "vit_b16_ep100_ctxv1") == "TCP"
    assert {"ProGrad", "TCP"} <= set(METHOD_ORDER)


# ------------------------------------------------------------------ ProGrad


def test_prograd_context_starts_from_its_template_as_the_reference(clip3):
    template = prograd_template("OxfordPets")
    assert template == "a type of pet, a photo of a {}."
    node = method_node("PROGRAD", CTX_INIT=True, N_CTX=16)
    model = ProGradCLIP(node, CLASSNAMES, clip3, template)
    learner = model.prompt_learner
    ctx = learner.ctx.detach()
    # 8 words, so 8 slots: the first 8 *tokens* ("," is one), after 8 zero vectors
    token_ids = tokenize(["a type of pet, a photo of a"])
    words = clip3.token_embedding(token_ids)[0, 1:9]
    assert torch.equal(ctx[:8], torch.zeros_like(ctx[:8]))
    assert torch.equal(ctx[8:], words)
    assert learner.scaffolds[0] == "X X X X X X X X a type of pet, a photo of a golden retriever."
    with pytest.raises(ConfigError, match="N_CTX is 4 .* 8 words"):
        ProGradCLIP(method_node("PROGRAD", CTX_INIT=True, N_CTX=4), CLASSNAMES, clip3, template)


def test_projection_equals_a_plain_restatement():
    generator = torch.Generator().manual_seed(0)
    for trial in range(20):
        grad = torch.randn(4, 6, generator=generator, dtype=torch.float64)
        general = torch.randn(4, 6, generator=generator, dtype=torch.float64)
        lam = 0.8 if trial % 2 else 1.0
        g, b = grad.flatten().tolist(), general.flatten().tolist()
        dot = sum(x * y for x, y in zip(g, b))
        norm_b = sum(y * y for y in b) ** 0.5
        if dot < 0:
            expected = [x - lam * dot / norm_b**2 * y for x, y in zip(g, b)]
        else:
            expected = g
        got = project_conflicting(grad, general, lam)
        assert torch.allclose(got.flatten(), torch.tensor(expected, dtype=torch.float64))
        if dot < 0 and lam == 1.0:  # the conflicting component is gone
            assert abs(float((got * general).sum())) < 1e-12


def test_prograd_losses_equal_a_hand_computation():
    generator = torch.Generator().manual_seed(1)
    logits, zs = torch.randn(2, 3, 5, generator=generator)
    label = torch.tensor([4, 0, 2])
    ce, kl = prograd_losses(logits, zs, label, 2.0)
    teacher = torch.softmax(zs / 2.0, dim=-1)
    student = torch.log_softmax(logits / 2.0, dim=-1)
    expected = -4.0 * sum(float((teacher[i] * student[i]).sum()) for i in range(3)) / 3
    assert kl.item() == pytest.approx(expected, rel=1e-6)
    assert ce.item() == pytest.approx(F.cross_entropy(logits, label).item(), rel=1e-6)


# ------------------------------------------------------------------ TCP


def test_tcp_scaffolds_are_the_reference_prompts():
    for dataset, reference in (
        ("OxfordPets", "X X X X {}, a type of pet."),
        ("StanfordCars", "X X X X {}, a type of car"),
        ("UCF101", "a photo of a person doing {}."),
        ("ImageNet", "a photo of a {}."),
    ):
        node = method_node("TCP", PREC="fp32")
        model = TCPCLIP(node, CLASSNAMES, tiny_clip(), "a photo of a {}.", tcp_scaffold(dataset))
        texts = [reference.format(name.replace("_", " ")) for name in CLASSNAMES]
        ours = model.prompt_learner.token_ids
        assert torch.equal(ours[:, 5:], tokenize(texts)[:, 5:]), dataset  # after the context
    assert tcp_hand_template("FGVCAircraft") == "a photo of an aircraft {}."
    assert tcp_hand_template("DescribableTextures") == "a photo of a {}, a type of texture."


@pytest.mark.parametrize("layer", [1, 2])
def test_class_aware_tokens_equal_a_plain_restatement(clip3, layer):
    template = "a photo of a {}."
    node = method_node("TCP", PREC="fp32", LAYER=layer)
    model = TCPCLIP(node, CLASSNAMES, clip3, template, "{}, a type of pet.")
    learner = model.prompt_learner
    with torch.no_grad():
        learner.ctx.add_(torch.randn(learner.ctx.shape, generator=torch.Generator().manual_seed(3)))

    hand = reference_text_features(clip3, template, CLASSNAMES)  # open_clip, normalised
    assert_close(learner.hand_text_features, hand)
    net = learner.meta_net
    hidden = F.linear(hand, net.linear1.weight, net.linear1.bias)
    hidden = hidden * torch.sigmoid(1.702 * hidden)
    tokens = F.linear(hidden, net.linear2.weight, net.linear2.bias).reshape(3, 4, D_T)
    assert not torch.allclose(tokens[0], tokens[1])  # one set per class

    # open_clip's own blocks, the class tokens written over positions 1..4 before `layer`
    x = learner.splice(learner.ctx) + clip3.positional_embedding
    for index, block in enumerate(clip3.transformer.resblocks):
        if index == layer:
            x = torch.cat([x[:, :1], tokens, x[:, 5:]], dim=1)
        x = block(x, attn_mask=clip3.attn_mask)
    x = clip3.ln_final(x[torch.arange(3), learner.eot_indices]) @ clip3.text_projection
    with torch.no_grad():
        assert_close(model.text_features(), x, tol=1e-5)


def test_per_sequence_deep_prompts_are_chunked_with_their_sequences(clip3):
    node = method_node("TCP", PREC="fp32", LAYER=2)
    model = TCPCLIP(node, CLASSNAMES, clip3, "a photo of a {}.", "{}.")
    with torch.no_grad():
        whole = model.text_features()
        model.text_encoder.chunk_size = 2  # 3 classes: chunks of 2 and 1
        assert torch.allclose(model.text_features(), whole, atol=1e-6)
        prompts, tokens = model.prompt_learner()
        eot = model.prompt_learner.eot_indices
        with pytest.raises(ValueError, match="block 2 has 2 sets for 3 sequences"):
            model.text_encoder(prompts, eot, [None, tokens[:2]])


def test_tcp_loss_is_ce_plus_w_times_the_consistency_term(clip3):
    node = method_node("TCP", PREC="fp32", LAYER=2)
    model = TCPCLIP(node, CLASSNAMES, clip3, "a photo of a {}.", "{}.")
    batch = images(3, seed=1)
    loss, logits, parts = model.train_loss(batch, LABELS)
    with torch.no_grad():
        text = model.text_features()
        text = text / text.norm(dim=-1, keepdim=True)
        hand = model.prompt_learner.hand_text_features
        term = 1.0 - sum(float(text[k] @ hand[k]) for k in range(3)) / 3
    assert parts["kg"].item() == pytest.approx(8.0 * term, rel=1e-5)
    assert loss.item() == pytest.approx(F.cross_entropy(logits, LABELS).item() + 8.0 * term)


def test_tcp_layer_outside_the_text_tower_is_an_error():
    node = method_node("TCP", PREC="fp32", LAYER=8)
    model = TCPCLIP(node, CLASSNAMES, tiny_clip(), "a photo of a {}.", "{}.")
    with pytest.raises(ConfigError, match=r"TRAINER.TCP.LAYER .* 1..1, got 8"):
        model(images(1))


# ------------------------------------------------------------------ trainers

METHODS = {
    "ProGrad": ("ProGrad/vit_b16_ep100.yaml", ["TRAINER.PROGRAD.PREC", "fp32"]),
    "TCP": ("TCP/vit_b16_ep100_ctxv1.yaml", ["TRAINER.TCP.LAYER", "1"]),
}
EPOCHS = 2


def build(repo_root: Path, data_root: Path, out: Path, method: str, opts: tuple = ()):
    config, own = METHODS[method]
    return build_fixture_trainer(
        repo_root,
        config,
        1,
        [
            "TRAINER.NAME", method,
            "DATASET.ROOT", str(data_root),
            "DATASET.NUM_SHOTS", "4",
            "DATASET.SUBSAMPLE_CLASSES", "base",
            "OUTPUT_DIR", str(out),
            "DATALOADER.TRAIN_X.BATCH_SIZE", "4",
            "DATALOADER.TEST.BATCH_SIZE", "8",
            "OPTIM.MAX_EPOCH", str(EPOCHS),
            "OPTIM.LR", "0.05",
            "SEED", "1",
        ],
        own,
        opts,
    )  # fmt: skip


def trainable(trainer) -> dict[str, torch.Tensor]:
    module = trainer._models["prompt_learner"]
    return {n: p.detach().clone() for n, p in module.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("lam", [1.0, 0.5])
def test_prograd_step_uses_the_projected_gradient(repo_root, benchmark_root, tmp_path, lam):
    trainer = build(repo_root, benchmark_root, tmp_path, "ProGrad")
    image, label = trainer.parse_batch_train(next(iter(trainer.train_loader_x)))
    ctx = trainer.model.prompt_learner.ctx
    start = ctx.detach().clone()
    seen = []
    trainer._optims["prompt_learner"].step = lambda: seen.append(ctx.grad.detach().clone())
    conflicts = []
    for seed in range(8):  # contexts away from the zero-shot prompt: both cases occur
        with torch.no_grad():
            noise = torch.randn(ctx.shape, generator=torch.Generator().manual_seed(seed))
            ctx.copy_(start + 0.5 * noise)
        logits, zs = trainer.model.forward_train(image)
        ce, kl = prograd_losses(logits, zs, label, 1.0)
        g_ce = torch.autograd.grad(ce, ctx, retain_graph=True)[0].double().flatten()
        g_kl = torch.autograd.grad(kl, ctx)[0].double().flatten()
        unit = g_kl / g_kl.norm()
        conflicts.append(float(g_ce @ unit) < 0)
        expected = g_ce - lam * (g_ce @ unit) * unit if conflicts[-1] else g_ce

        logits, zs = trainer.model.forward_train(image)
        trainer.prograd_backward_and_update(*prograd_losses(logits, zs, label, 1.0), lam)
        assert torch.allclose(seen[-1].double().flatten(), expected, rtol=1e-5, atol=1e-8)
    assert any(conflicts) and not all(conflicts), conflicts


def test_prograd_settings_errors(repo_root, benchmark_root, tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match="TRAINER.PROGRAD.T must be > 0"):
        build(repo_root, benchmark_root, tmp_path, "ProGrad", ("TRAINER.PROGRAD.T", "0"))
    from ammpl.engine import distributed

    monkeypatch.setattr(distributed, "current", lambda: object())
    with pytest.raises(ConfigError, match="run ProGrad in a single process"):
        build(repo_root, benchmark_root, tmp_path, "ProGrad")


def test_tcp_adam_uses_the_reference_eps(repo_root, benchmark_root, tmp_path):
    trainer = build(repo_root, benchmark_root, tmp_path, "TCP")
    groups = trainer._optims["prompt_learner"].param_groups
    assert [group["eps"] for group in groups] == [1e-3]
    assert sum(p.numel() for p in groups[0]["params"]) == trainer.num_trainable
    sgd = build(repo_root, benchmark_root, tmp_path, "TCP", ("OPTIM.NAME", "sgd"))
    assert "eps" not in sgd._optims["prompt_learner"].param_groups[0]


@pytest.fixture(scope="module")
def uninterrupted(repo_root, benchmark_root, tmp_path_factory):
    runs = {}
    for method in METHODS:
        trainer = build(repo_root, benchmark_root, tmp_path_factory.mktemp(method), method)
        with contextlib.redirect_stdout(io.StringIO()) as stdout:
            trainer.train()
        runs[method] = (trainer, stdout.getvalue())
    return runs


def test_training_logs_the_loss_terms(uninterrupted):
    assert "xe_loss" in uninterrupted["ProGrad"][1] and "kl_loss" in uninterrupted["ProGrad"][1]
    assert "kg" in uninterrupted["TCP"][1]


@pytest.mark.parametrize("method", sorted(METHODS))
def test_interrupted_run_resumes_exactly(
    repo_root, benchmark_root, tmp_path, uninterrupted, method
):
    reference, _ = uninterrupted[method]
    trainer = build(repo_root, benchmark_root, tmp_path, method)
    forward_backward = trainer.forward_backward

    def interrupt_in_last_epoch(batch):
        if trainer.epoch == EPOCHS - 1:
            raise KeyboardInterrupt
        return forward_backward(batch)

    trainer.forward_backward = interrupt_in_last_epoch
    with pytest.raises(KeyboardInterrupt), contextlib.redirect_stdout(io.StringIO()):
        trainer.train()

    resumed = build(repo_root, benchmark_root, tmp_path, method)
    with contextlib.redirect_stdout(io.StringIO()):
        resumed.train()
    assert resumed.start_epoch == EPOCHS - 1
    expected, got = trainable(reference), trainable(resumed)
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert torch.equal(got[name], value), name
    start = trainable(build(repo_root, benchmark_root, tmp_path / "fresh", method))
    assert any(not torch.equal(start[n], v) for n, v in expected.items())  # it trained


# ------------------------------------------------------------------ scripts


def test_command_lines(repo_root, tmp_path):
    b2n = dry_run(repo_root, "prograd/base2new_train.sh", ["dtd", 1], tmp_path)
    assert (
        option(b2n, "--output-dir")
        == "out/base2new/train_base/dtd/shots_16/ProGrad/vit_b16_ep100/seed1"
    )
    test = dry_run(repo_root, "prograd/base2new_test.sh", ["imagenet", 1], tmp_path)
    assert option(test, "--load-epoch") == "50" and "ProGrad/vit_b16_ep50/" in option(
        test, "--model-dir"
    )
    for shots, cfg in ((1, "rn50_ep50"), (4, "rn50_ep100"), (16, "rn50")):
        few = dry_run(repo_root, "prograd/fewshot.sh", ["dtd", shots, 1, "X.Y", "1"], tmp_path)
        assert option(few, "--output-dir") == f"out/dtd/ProGrad/{cfg}_{shots}shots/seed1"
        lam = ["TRAINER.PROGRAD.LAMBDA", "0.8"] if shots == 16 else []
        assert few[-4 - len(lam) :] == ["DATASET.NUM_SHOTS", str(shots), *lam, "X.Y", "1"]
    xd = dry_run(repo_root, "prograd/xd_test.sh", ["imagenet_a", 2], tmp_path)
    assert option(xd, "--model-dir") == "out/imagenet/ProGrad/vit_b16_ep50_16shots/seed2"

    cut = ["OPTIM.MAX_EPOCH", "25"]
    tcp = dry_run(repo_root, "tcp/base2new_train.sh", ["sun397", 1, "X.Y", "1"], tmp_path)
    assert tcp[-4:] == [*cut, "X.Y", "1"]
    tcp_test = dry_run(repo_root, "tcp/base2new_test.sh", ["imagenet", 1, "new"], tmp_path)
    assert option(tcp_test, "--load-epoch") == "25"
    assert dry_run(repo_root, "tcp/base2new_test.sh", ["dtd", 1], tmp_path)[-2:] != cut
    xd_test = dry_run(repo_root, "tcp/xd_test.sh", ["dtd", 1, 4], tmp_path)
    assert option(xd_test, "--load-epoch") == "25"
    assert option(xd_test, "--model-dir") == "out/imagenet/TCP/vit_b16_ep100_ctxv1_4shots/seed1"
    assert dry_run(repo_root, "tcp/xd_train.sh", [1], tmp_path)[-4:] == [
        "DATASET.NUM_SHOTS",
        "16",
        *cut,
    ]


def test_scripts_end_to_end(repo_root, benchmark_root, fast_python, tmp_path):
    env = {"DATA": str(benchmark_root), "PYTHON": fast_python, "OUTPUT_ROOT": str(tmp_path)}
    steps = [
        ("prograd/base2new_train.sh", ["caltech101", 1],
         "base2new/train_base/caltech101/shots_16/ProGrad/vit_b16_ep100/seed1"),
        ("prograd/base2new_test.sh", ["caltech101", 1],
         "base2new/test_new/caltech101/shots_16/ProGrad/vit_b16_ep100/seed1"),
        ("tcp/fewshot.sh", ["eurosat", 1, 1, "TRAINER.TCP.LAYER", "1"],
         "eurosat/TCP/vit_b16_ep100_ctxv1_1shots/seed1"),
    ]  # fmt: skip
    for script, args, out in steps:
        result = run_script(repo_root, script, [*args, *TINY], env, tmp_path)
        assert result.returncode == 0, f"{script}: {result.stdout[-2000:]}\n{result.stderr}"
        assert 0.0 <= recorded_accuracy(tmp_path / out) <= 100.0, script
