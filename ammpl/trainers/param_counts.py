"""Trainable-parameter counts of every method at its paper config, computed by the code.

Each method's model is built exactly as training builds it (the trainer's own
`build_custom_clip` on the config file), on a randomly initialised CLIP of the requested
architecture: counts depend on shapes only, so no weights are needed. docs/METHODS.md
quotes the table this prints:

    python -m ammpl.trainers.param_counts            # ViT-B/16 (random weights, ~1 s)
    python -m ammpl.trainers.param_counts --backbone tiny
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import torch
from torch import nn

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VIT_B16_ARCH = "ViT-B-16-quickgelu"


@dataclass(frozen=True)
class PaperConfig:
    """One row of the table: a method at the config a protocol uses."""

    method: str
    trainer: str
    config: str  # relative to configs/trainers/, "" = defaults only
    protocols: str
    n_classes: int = 2  # only class-specific context depends on it
    opts: tuple[str, ...] = ()


PAPER_CONFIGS: tuple[PaperConfig, ...] = (
    PaperConfig("ZS-CLIP", "ZeroshotCLIP", "CoOp/vit_b16.yaml", "all (no training)"),
    PaperConfig("CoOp (N 16)", "CoOp", "CoOp/vit_b16.yaml", "few-shot"),
    PaperConfig("CoOp (N 4, init)", "CoOp", "CoOp/vit_b16_ctxv1.yaml", "base-to-new"),
    PaperConfig(
        "CoOp (N 16, CSC, ImageNet)",
        "CoOp",
        "CoOp/vit_b16_ep50.yaml",
        "few-shot (CSC variant)",
        n_classes=1000,
        opts=("TRAINER.COOP.CSC", "True"),
    ),
    PaperConfig(
        "CoCoOp",
        "CoCoOp",
        "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml",
        "base-to-new, cross-dataset, DG, few-shot",
    ),
    PaperConfig(
        "IVLP", "IVLP", "IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml", "base-to-new, cross-dataset"
    ),
    PaperConfig(
        "DLP",
        "IVLP",
        "IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only.yaml",
        "base-to-new, cross-dataset",
    ),
    PaperConfig("VPT", "VPT", "VPT/vit_b16_c2_ep5_batch4_4.yaml", "base-to-new, cross-dataset"),
    PaperConfig("MaPLe", "MaPLe", "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml", "base-to-new, few-shot"),
    PaperConfig(
        "MaPLe (cross-dataset)",
        "MaPLe",
        "MaPLe/vit_b16_c2_ep5_batch4_2ctx_cross_datasets.yaml",
        "cross-dataset, DG",
    ),
    PaperConfig(
        "AMMPL (generalisable)",
        "AMMPL",
        "AMMPL/vit_b16_c4_ep5_batch4_ctxv1.yaml",
        "base-to-new, cross-dataset",
    ),
    PaperConfig(
        "AMMPL (class-specific, 100 classes)",
        "AMMPL",
        "AMMPL/vit_b16_c4_ep5_batch4_ctxv1_csc.yaml",
        "few-shot",
        n_classes=100,
    ),
    PaperConfig(
        "PromptSRC",
        "PromptSRC",
        "PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml",
        "base-to-new (few-shot: the 50-epoch config, same prompts)",
    ),
    PaperConfig(
        "PromptSRC (cross-dataset)",
        "PromptSRC",
        "PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets.yaml",
        "cross-dataset, DG",
    ),
    PaperConfig("KgCoOp", "KgCoOp", "KgCoOp/vit_b16_ep100_ctxv1.yaml", "base-to-new, all"),
)


# The values scripts/dpt/fewshot.sh passes (the reference's train_single.sh); a test keeps
# both in step.
DPT_SCRIPT_OPTS: tuple[str, ...] = (
    "TRAINER.COOP.N_CTX", "16", "TRAINER.COOP.CSC", "False",
    "TRAINER.COOP.CLASS_TOKEN_POSITION", "end", "TRAINER.DPT.N_CTX_VISION", "10",
    "TRAINER.DPT.BOTTOMLIMIT", "12", "TRAINER.DPT.CPN", "10", "OPTIM.LR", "0.01",
    "OPTIM.MAX_EPOCH", "60", "TRAINER.DPT.C", "30", "TRAINER.DPT.ALPHA", "0.3",
)  # fmt: skip
PAPER_CONFIGS += (
    PaperConfig("VP (pad 30, 224 px)", "VP", "VP/vit_b16.yaml", "few-shot (Figure 2)"),
    PaperConfig(
        "DPT (script config, 100 classes)",
        "DPT",
        "DPT/vit_b16.yaml",
        "few-shot (Figure 2)",
        n_classes=100,
        opts=DPT_SCRIPT_OPTS,
    ),
    PaperConfig("PLOT (N 4)", "PLOT", "PLOT/rn50.yaml", "few-shot (PLOT's own, RN50)"),
    PaperConfig("PLOT++ (M 4, joint)", "PLOTPP", "PLOTPP/vit.yaml", "few-shot (two stages)"),
)

# Issue 21's comparison set.
PAPER_CONFIGS += (
    PaperConfig("ProGrad", "ProGrad", "ProGrad/vit_b16_ep100.yaml", "base-to-new (ours: ViT-B/16)"),
    PaperConfig("ProGrad (RN50)", "ProGrad", "ProGrad/rn50.yaml", "few-shot (its own, RN50)"),
    PaperConfig(
        "TCP", "TCP", "TCP/vit_b16_ep100_ctxv1.yaml", "base-to-new, cross-dataset, few-shot"
    ),
    PaperConfig("MMA", "MMA", "MMA/vit_b16_ep5.yaml", "base-to-new, cross-dataset, DG"),
    PaperConfig(
        "CoPrompt (N 2, depth 9)",
        "CoPrompt",
        "CoPrompt/coprompt.yaml",
        "base-to-new, cross-dataset, DG (per-dataset N and depth: scripts/coprompt/)",
    ),
    PaperConfig(
        "CoPrompt (N 4, depth 12)",
        "CoPrompt",
        "CoPrompt/coprompt.yaml",
        "e.g. ImageNet, Caltech101, SUN397",
        opts=("TRAINER.CoPrompt.N_CTX", "4", "TRAINER.CoPrompt.PROMPT_DEPTH", "12"),
    ),
)


def build_random_clip(backbone: str = "vit_b16") -> nn.Module:
    """A frozen CLIP with random weights: "vit_b16" (open_clip ViT-B-16-quickgelu) or "tiny"."""
    if backbone == "tiny":
        from ammpl.clip.tiny import build_tiny_clip

        model = build_tiny_clip()
    elif backbone == "vit_b16":
        import open_clip

        with torch.random.fork_rng(devices=[]):
            model = open_clip.create_model(VIT_B16_ARCH, pretrained=None)
    else:
        raise ValueError(f"unknown backbone {backbone!r}; expected 'vit_b16' or 'tiny'")
    model.eval()
    for param in model.parameters():
        param.requires_grad_(False)
    return model


def load_paper_cfg(row: PaperConfig):
    """Defaults + every method node ← the row's config file ← its opts."""
    import ammpl.trainers  # noqa: F401  (registers every method's config node)
    from ammpl.engine import get_cfg_default
    from ammpl.engine.config import merge_from_file, merge_from_list

    cfg = get_cfg_default()
    if row.config:
        merge_from_file(cfg, os.path.join(REPO_ROOT, "configs", "trainers", row.config))
    if row.opts:
        merge_from_list(cfg, list(row.opts))
    return cfg


def build_method_model(trainer: str, cfg, classnames: list[str], clip_model: nn.Module):
    """The trainer's model, built by its own `build_custom_clip` without data or devices
    (that method reads nothing but `self.cfg`); None for methods that learn nothing."""
    from ammpl.clip.image_encoder import require_image_tower
    from ammpl.engine import TRAINER_REGISTRY

    trainer_cls = TRAINER_REGISTRY.get(trainer)
    if not getattr(trainer_cls, "LEARNS", True):
        return None
    require_image_tower(getattr(trainer_cls, "IMAGE_TOWER", None), clip_model, trainer)
    shell = trainer_cls.__new__(trainer_cls)
    shell.cfg = cfg
    return shell.build_custom_clip(classnames, clip_model)


def trainable_names(model: nn.Module | None) -> dict[str, tuple[int, ...]]:
    if model is None:
        return {}
    return {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}


def count_trainable(model: nn.Module | None) -> int:
    if model is None:
        return 0
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def paper_counts(
    backbone: str = "vit_b16", rows: tuple[PaperConfig, ...] = PAPER_CONFIGS
) -> list[tuple[PaperConfig, int]]:
    """(row, trainable count) for each paper config, all on one random backbone."""
    clip_model = build_random_clip(backbone)
    results = []
    for row in rows:
        classnames = [f"class {i}" for i in range(row.n_classes)]
        model = build_method_model(row.trainer, load_paper_cfg(row), classnames, clip_model)
        results.append((row, count_trainable(model)))
    return results


def main(argv: list[str] | None = None) -> None:
    from contextlib import redirect_stdout
    from io import StringIO

    from tabulate import tabulate

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="vit_b16", choices=["vit_b16", "tiny"])
    args = parser.parse_args(argv)
    with redirect_stdout(StringIO()):  # the builders' progress lines
        results = paper_counts(args.backbone)
    table = [
        [row.method, row.trainer, row.config or "(defaults)", row.protocols, f"{count:,}"]
        for row, count in results
    ]
    headers = ["method", "trainer", "config", "protocols", "trainable"]
    print(tabulate(table, headers=headers, tablefmt="github"))


if __name__ == "__main__":
    main()
