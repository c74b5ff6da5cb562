"""Training-step time and evaluation throughput of every method at its paper config.

Each method's model is built by its own trainer code from its config file (as
`ammpl.trainers.param_counts` does), on the tiny backbone (CPU) or a ViT-B/16-sized CLIP
with random weights (throughput does not depend on weight values). A training step is
forward + the method's training loss (cross-entropy, plus PromptSRC's or KgCoOp's
regularisers) + backward + SGD step at the config's training batch size; the
evaluation rate is images/s at the evaluation batch size (the configs' 100 by default).

    python bench/methods_step.py                                     # tiny, CPU
    python bench/methods_step.py --backbone vit_b16 --device cuda --prec fp16
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext, redirect_stdout
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torch
import torch.nn.functional as F
from tabulate import tabulate

from ammpl.trainers.fake_device import SHALLOW_OPTS
from ammpl.trainers.param_counts import (
    DPT_SCRIPT_OPTS,
    REPO_ROOT,
    PaperConfig,
    build_method_model,
    build_random_clip,
    count_trainable,
    load_paper_cfg,
)
from ammpl.trainers.prograd import prograd_losses
from bench.records import peak_memory_mib, reset_peak_memory, write_records


@dataclass(frozen=True)
class BenchRow:
    method: str
    trainer: str
    config: str
    opts: tuple[str, ...] = ()


ROWS = (
    BenchRow("ZS-CLIP", "ZeroshotCLIP", "CoOp/vit_b16.yaml"),
    BenchRow("CoOp", "CoOp", "CoOp/vit_b16_ctxv1.yaml"),
    BenchRow("CoCoOp", "CoCoOp", "CoCoOp/vit_b16_c4_ep10_batch1_ctxv1.yaml"),
    BenchRow("IVLP", "IVLP", "IVLP/vit_b16_c2_ep5_batch4_2+2ctx.yaml"),
    BenchRow("DLP", "IVLP", "IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only.yaml"),
    BenchRow("VPT", "VPT", "VPT/vit_b16_c2_ep5_batch4_4.yaml"),
    BenchRow("MaPLe", "MaPLe", "MaPLe/vit_b16_c2_ep5_batch4_2ctx.yaml"),
    BenchRow("AMMPL", "AMMPL", "AMMPL/vit_b16_c4_ep5_batch4_ctxv1.yaml"),
    BenchRow("PromptSRC", "PromptSRC", "PromptSRC/vit_b16_c2_ep20_batch4_4+4ctx.yaml"),
    BenchRow("KgCoOp", "KgCoOp", "KgCoOp/vit_b16_ep100_ctxv1.yaml"),
)
ROWS += (
    BenchRow("VP", "VP", "VP/vit_b16.yaml"),
    BenchRow("DPT", "DPT", "DPT/vit_b16.yaml", DPT_SCRIPT_OPTS),
    BenchRow("PLOT", "PLOT", "PLOT/rn50.yaml"),  # on a ViT backbone: final-token locals
    BenchRow("PLOT++", "PLOTPP", "PLOTPP/vit.yaml"),
)
ROWS += (
    BenchRow("ProGrad", "ProGrad", "ProGrad/vit_b16_ep100.yaml"),
    BenchRow("TCP", "TCP", "TCP/vit_b16_ep100_ctxv1.yaml"),
    BenchRow("MMA", "MMA", "MMA/vit_b16_ep5.yaml"),
    BenchRow("CoPrompt", "CoPrompt", "CoPrompt/coprompt.yaml"),
)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_time(fn: Callable[[], object], iters: int, device: torch.device) -> float:
    """Seconds of the fastest of `iters` calls after one warm-up call (robust to noise)."""
    fn()
    sync(device)
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def autocast_for(prec: str, device: torch.device):
    if prec == "amp":
        return torch.autocast(device.type, dtype=torch.float16)
    if prec == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def zero_shot_model(clip_model, classnames: list[str]) -> torch.nn.Module:
    from ammpl.trainers.zsclip import ZeroshotModel

    return ZeroshotModel(clip_model, classnames, ["a photo of a {}."])


def bench_row(row: BenchRow, clip_model, args, device: torch.device) -> list | None:
    config = os.path.join(REPO_ROOT, "configs", "trainers", row.config)
    if not os.path.isfile(config):
        return None
    opts = row.opts
    if args.backbone == "tiny":  # one block per tower: block numbers that exist (TCP, MMA)
        opts = (*opts, *SHALLOW_OPTS.get(row.trainer, ()))
    cfg = load_paper_cfg(PaperConfig(row.method, row.trainer, row.config, "", opts=opts))
    classnames = [f"class {i}" for i in range(args.classes)]
    with redirect_stdout(StringIO()):
        model = build_method_model(row.trainer, cfg, classnames, clip_model)
        if model is None:
            model = zero_shot_model(clip_model, classnames)
        if hasattr(model, "set_descriptions"):  # CoPrompt: placeholder class descriptions
            model.set_descriptions([[f"a photo of a {name}."] for name in classnames])
    model.to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    train_batch = cfg.DATALOADER.TRAIN_X.BATCH_SIZE
    eval_batch = args.eval_batch or cfg.DATALOADER.TEST.BATCH_SIZE
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(max(train_batch, eval_batch), 3, 224, 224, generator=generator)
    images = images.to(device)
    labels = torch.randint(args.classes, (train_batch,), generator=generator).to(device)
    autocast = autocast_for(args.prec, device)

    reset_peak_memory(device)
    step_ms = float("nan")
    if params:
        optimizer = torch.optim.SGD(params, lr=cfg.OPTIM.LR, momentum=0.9, weight_decay=5e-4)

        def train_step() -> None:
            model.train()
            batch = images[:train_batch]
            optimizer.zero_grad()
            with autocast:
                if row.trainer == "ProGrad":  # two gradients (the step projects one off)
                    logits, zs_logits = model.forward_train(batch)
                    loss, general = prograd_losses(logits, zs_logits, labels, cfg.TRAINER.PROGRAD.T)
                elif row.trainer == "CoPrompt":  # the batch as both views, description 0
                    loss = model.train_loss(batch, batch, labels, 0)[0]
                elif hasattr(model, "train_loss"):  # methods with regularisers
                    loss = model.train_loss(batch, labels)[0]
                else:
                    logits = model(batch)
                    loss = F.cross_entropy(logits.float(), labels)
            if row.trainer == "ProGrad":
                torch.autograd.grad(general, params, retain_graph=True, allow_unused=True)
            loss.backward()
            optimizer.step()

        step_ms = 1000 * best_time(train_step, args.iters, device)

    @torch.no_grad()
    def evaluate() -> None:
        model.eval()
        with autocast:
            model(images[:eval_batch])

    eval_rate = eval_batch / best_time(evaluate, args.iters, device)
    train_rate = train_batch / (step_ms / 1000) if params else None
    return {
        "method": row.method,
        "trainable": count_trainable(model),
        "train_batch": train_batch,
        "step_ms": step_ms if params else None,
        "train_images_per_s": train_rate,
        "eval_batch": eval_batch,
        "eval_images_per_s": eval_rate,
        "peak_mib": peak_memory_mib(device),
    }


def table_row(result: dict) -> list:
    trains = result["step_ms"] is not None
    peak = result["peak_mib"]
    return [
        result["method"],
        f"{result['trainable']:,}",
        result["train_batch"],
        f"{result['step_ms']:.1f}" if trains else "-",
        f"{result['train_images_per_s']:.1f}" if trains else "-",
        result["eval_batch"],
        f"{result['eval_images_per_s']:.1f}",
        f"{peak:.0f}" if peak is not None else "-",
    ]


@torch.no_grad()
def warm_up(clip_model, args, device: torch.device) -> None:
    """A few untimed image-tower passes, so the first row does not pay for thread-pool and
    allocator start-up."""
    images = torch.randn(args.eval_batch or 100, 3, 224, 224, device=device)
    for _ in range(3):
        clip_model.encode_image(images)
    sync(device)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", default="tiny", choices=["tiny", "vit_b16"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prec", default="fp32", choices=["fp32", "fp16", "amp", "bf16"])
    parser.add_argument("--classes", type=int, default=10, help="classes in the label space")
    parser.add_argument("--eval-batch", type=int, default=0, help="0 = the config's (100)")
    parser.add_argument("--iters", type=int, default=3, help="timed calls (best is kept)")
    parser.add_argument("--methods", nargs="*", help="subset of method names")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads (0 = torch default)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but no GPU is available")
    if args.prec in ("fp16", "amp") and device.type != "cuda":
        parser.error(f"--prec {args.prec} needs --device cuda")

    torch.manual_seed(0)
    float_clip = build_random_clip(args.backbone).to(device)
    clip_model = float_clip
    if args.prec == "fp16":  # the reference half CLIP; VPT keeps a float one, as its trainer
        import copy

        from ammpl.clip.precision import to_reference_half

        clip_model = to_reference_half(copy.deepcopy(float_clip))

    warm_up(float_clip, args, device)
    results = []
    for row in ROWS:
        if args.methods and row.method not in args.methods:
            continue
        model_clip = float_clip if row.trainer == "VPT" else clip_model
        result = bench_row(row, model_clip, args, device)
        if result is not None:
            results.append(result)
    print(
        f"backbone {args.backbone}, device {device}, precision {args.prec}, "
        f"{args.classes} classes, {torch.get_num_threads()} CPU threads, best of {args.iters}"
    )
    headers = ["method", "trainable", "train batch", "step ms", "train img/s", "eval batch",
               "eval img/s", "peak MiB"]  # fmt: skip
    print(tabulate([table_row(r) for r in results], headers=headers, tablefmt="github"))
    if args.json:
        settings = {"backbone": args.backbone, "precision": args.prec, "classes": args.classes}
        write_records(args.json, "methods_step", device, settings, results)


if __name__ == "__main__":
    main()
