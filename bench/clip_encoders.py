"""Throughput of the shared CLIP encoders with and without their exact speed-ups.

Text: sequences/s for CoOp-style prompts ("a photo of a {name}."), with truncation at the
longest EOT and fused attention switched on and off; image: images/s with fused attention
on and off; open_clip's own encode_text / encode_image as the baseline row. On CUDA the
ViT-B/16 rows also run under bf16 autocast.

    python bench/clip_encoders.py                       # tiny backbone, CPU (< 60 s)
    python bench/clip_encoders.py --backbone vit_b16 --device cuda --batch 256
    python bench/clip_encoders.py ... --json out.json  # rows with peak memory, GFLOP, TFLOP/s

Image rows also give the FLOPs of one image forward (torch's FlopCounterMode over the
plain path, a multiply-add counted as 2) and the achieved TFLOP/s; on CUDA every row
records its peak allocated memory.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import open_clip
import torch
from tabulate import tabulate

from ammpl.clip.image_encoder import ImageEncoder
from ammpl.clip.prompts import ClassPrompts, init_context
from ammpl.clip.text_encoder import TextEncoder
from ammpl.clip.tiny import build_tiny_clip
from bench.records import count_flops, peak_memory_mib, reset_peak_memory, write_records

CLASS_NAMES = [
    "dog", "golden retriever", "sea lion", "airliner", "red wine", "maple leaf", "daisy",
    "apple pie", "boeing 747", "striped texture", "annual crop land", "playing guitar",
]  # fmt: skip


def build_model(backbone: str, device: torch.device) -> torch.nn.Module:
    if backbone == "tiny":
        model = build_tiny_clip(seed=0)
    else:  # random weights: throughput does not depend on their values
        model = open_clip.create_model("ViT-B-16-quickgelu", pretrained=None)
    return model.to(device).eval().requires_grad_(False)


def throughput(fn: Callable[[], torch.Tensor], items: int, iters: int, device: torch.device):
    """Items per second of `fn`: best of `iters` timed calls after one warm-up call.

    The best call, not the mean, so that other processes on a shared machine do not decide
    the number.
    """

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    best = float("inf")
    for _ in range(iters):
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return items / best


def text_rows(model, batch: int, iters: int, device: torch.device, precision: str) -> list:
    ctx, prefix, n_ctx = init_context(model, 4, "a photo of a", "coop")
    names = [CLASS_NAMES[i % len(CLASS_NAMES)] for i in range(batch)]
    prompts = ClassPrompts(model, names, n_ctx, prefix).to(device)
    embeddings = prompts.splice(ctx.to(device))
    token_ids = prompts.token_ids
    encoder = TextEncoder(model)
    rows = [
        [
            "text",
            precision,
            "open_clip encode_text",
            throughput(lambda: model.encode_text(token_ids), batch, iters, device),
        ]
    ]
    for truncate, fused in [(False, False), (True, False), (False, True), (True, True)]:
        encoder.truncate, encoder.fused = truncate, fused
        label = f"truncate={'on' if truncate else 'off'} fused={'on' if fused else 'off'}"
        rate = throughput(lambda: encoder(embeddings, prompts.eot_indices), batch, iters, device)
        rows.append(["text", precision, label, rate])
    return rows


def image_rows(model, batch: int, iters: int, device: torch.device, precision: str) -> list:
    """Rows [tower, precision, variant, images/s, peak MiB, GFLOP per image, TFLOP/s]."""
    size = model.visual.image_size[0]
    images = torch.randn(batch, 3, size, size, device=device)
    encoder = ImageEncoder(model)

    def fused_encoder(fused: bool) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            encoder.fused = fused
            return encoder(images)

        return run

    variants = [("open_clip encode_image", lambda: model.encode_image(images))]
    variants += [(f"fused={'on' if f else 'off'}", fused_encoder(f)) for f in (False, True)]
    # One FLOP count for every variant (same work; plain matmuls are all counted, which a
    # fused kernel or open_clip's fast attention path may not be): TFLOP/s compare rates.
    gflop = count_flops(fused_encoder(False)) / batch / 1e9
    rows = []
    for label, fn in variants:
        reset_peak_memory(device)
        rate = throughput(fn, batch, iters, device)
        rows.append(
            ["image", precision, label, rate, peak_memory_mib(device), gflop, gflop * rate / 1e3]
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", choices=("tiny", "vit_b16"), default="tiny")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch", type=int, default=64, help="sequences / images per call")
    parser.add_argument("--iters", type=int, default=5, help="timed calls per row")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda asked for but no CUDA GPU is available", file=sys.stderr)
        return 2

    torch.manual_seed(0)
    model = build_model(args.backbone, device)
    precisions = ["fp32"] + (["bf16 autocast"] if device.type == "cuda" else [])
    rows = []
    with torch.no_grad():
        for precision in precisions:
            autocast = (
                torch.autocast(device.type, dtype=torch.bfloat16)
                if precision != "fp32"
                else nullcontext()
            )
            with autocast:
                rows += [
                    row + [None, None, None]
                    for row in text_rows(model, args.batch, args.iters, device, precision)
                ]
                rows += image_rows(model, args.batch, args.iters, device, precision)
    print(
        f"backbone {args.backbone}, device {device}, batch {args.batch}, iters {args.iters}, "
        f"torch {torch.__version__}, threads {torch.get_num_threads()}"
    )
    headers = ["tower", "precision", "variant", "items/s", "peak MiB", "GFLOP/item", "TFLOP/s"]
    print(tabulate(rows, headers=headers, floatfmt=".1f", missingval="-"))
    if args.json:
        keys = ["tower", "precision", "variant", "items_per_s", "peak_mib", "gflop", "tflops"]
        settings = {"backbone": args.backbone, "batch": args.batch, "iters": args.iters}
        records = [dict(zip(keys, row)) for row in rows]
        write_records(args.json, "clip_encoders", device, settings, records)
    return 0


if __name__ == "__main__":
    sys.exit(main())
