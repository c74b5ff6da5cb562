"""Exact FLOPs and peak memory of every method's training step and evaluation batch at full
backbone size, as functions of batch size B and class count k, without a GPU.

Each method of bench/methods_step.py is built by its own trainer at its paper config on fake
tensors (ammpl.trainers.step_cost): FLOPs as torch's FlopCounterMode counts them, peak
memory as the largest sum of live tensors, for B ∈ {1, 2} × k ∈ {2, 4}; the bilinear fit
c0 + c1·B + c2·k + c3·B·k of each is printed, checked at (B, k) = (3, 3) with --verify,
and written as JSON (the model `ammpl-sweep --estimate` reads: ammpl/resources/
cost_model.json). AMMPL runs its B·k (image, class) pairs in one block here (CLASS_CHUNK
automatic on an 80 GB device); the "largest batch" line solves its memory fit for 80 GB.

    python bench/cost.py                                   # every method (~minutes on CPU)
    python bench/cost.py --methods AMMPL MaPLe --verify
    python bench/cost.py --write-model                     # refresh the sweep's cost model
    python bench/cost.py --write-model --methods TCP MMA   # refresh (or add) these rows only
    python bench/cost.py --check                           # agreement with measured numbers
    python bench/cost.py --compare output/gpu_check        # predicted next to measured (GPU)

--check compares (1) the image- and text-encoder FLOPs counted here on fake tensors with
those bench/clip_encoders.py counts on a real ViT-B/16 forward, and (2) the memory estimate
of a `tiny` AMMPL training step with the peak the CPU allocator reports for the same real
step (torch.profiler), both for the memory a step adds to what existed before it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import torch
from tabulate import tabulate

from ammpl.trainers.fake_device import TrainerCase, load_case_cfg
from ammpl.trainers.step_cost import StepCost, measure_steps
from ammpl.utils.bilinear import bilinear, fit_bilinear
from ammpl.utils.io import write_json
from bench.methods_step import ROWS

GRID_BATCHES, GRID_CLASSES = (1, 2), (2, 4)
VERIFY = (3, 3)
MODEL_FILE = Path(__file__).resolve().parents[1] / "ammpl" / "resources" / "cost_model.json"
DEVICE_MEMORY = 80e9
# The AMMPL row whose largest (image, class) batch the table reports.
AMMPL_CONFIG = "AMMPL/vit_b16_c4_ep5_batch4_ctxv1.yaml"


def method_cost(row, prec: str | None, verify: bool) -> dict:
    """Points, fits and the config's batch sizes of one bench row."""
    case = TrainerCase(row.trainer, row.config, tuple(row.opts))
    cfg = load_case_cfg(case)
    node = cfg.TRAINER.get(_node(row.trainer)) if _node(row.trainer) else None
    prec = prec or (node.PREC if node is not None and "PREC" in node else "fp32")
    points: list[StepCost] = []
    for classes in GRID_CLASSES:
        points += measure_steps(case, prec, list(GRID_BATCHES), classes)
    fits = fit_points([vars(p) for p in points])
    result = {
        "method": row.method,
        "trainer": row.trainer,
        "config": row.config,
        "opts": list(row.opts),
        "backbone": cfg.MODEL.BACKBONE.NAME,
        "prec": prec,
        "train_batch": cfg.DATALOADER.TRAIN_X.BATCH_SIZE,
        "eval_batch": cfg.DATALOADER.TEST.BATCH_SIZE,
        "weights_bytes": points[0].weights,
        "fits": fits,
        "points": [vars(p) for p in points],
    }
    if row.trainer == "AMMPL":
        result["pair_bytes"] = ammpl_pair_bytes(cfg.MODEL.BACKBONE.NAME)
    if verify:
        (point,) = measure_steps(case, prec, [VERIFY[0]], VERIFY[1])
        result["verify"] = {
            key: {"measured": getattr(point, key), "fit": bilinear(fit, *VERIFY)}
            for key, fit in fits.items()
        }
    return result


def ammpl_pair_bytes(backbone: str, text_tokens: int = 16) -> int:
    """The bytes per (image, class) pair AMMPL's automatic CLASS_CHUNK assumes in training
    (ammpl.trainers.ammpl.chunking.pair_bytes), for the sweep's estimate of its blocks."""
    from ammpl.clip.image_encoder import ImageEncoder
    from ammpl.clip.text_encoder import TextEncoder
    from ammpl.trainers.ammpl.chunking import pair_bytes
    from ammpl.trainers.fake_device import fake_mode, random_backbone

    with fake_mode() as mode:
        clip = random_backbone(backbone, mode)
        return pair_bytes(ImageEncoder(clip), TextEncoder(clip), text_tokens, training=True)


def fit_points(points: list[dict]) -> dict[str, list[float]]:
    """The bilinear fits of a method's grid points. FLOPs are bilinear exactly; a peak is
    the largest of several moments of a step, so where its fit bends down (c3 < 0, the peak
    moved between grid points) it is replaced by the additive fit through the steepest
    slopes, which grows with B and k instead of turning negative."""
    grid = {(p["batch"], p["classes"]): p for p in points}
    (b1, b2), (k1, k2) = GRID_BATCHES, GRID_CLASSES
    order = [(b1, k1), (b2, k1), (b1, k2), (b2, k2)]
    fits = {}
    for key in ("train_flops", "train_peak", "eval_flops", "eval_peak"):
        values = [grid[bk][key] for bk in order]
        if None in values:
            continue
        fit = fit_bilinear([(b, k, v) for (b, k), v in zip(order, values)])
        if key.endswith("peak") and fit[3] < 0:
            v11, v21, v12, v22 = values
            c1 = max(v21 - v11, v22 - v12, 0) / (b2 - b1)
            c2 = max(v12 - v11, v22 - v21, 0) / (k2 - k1)
            fit = [v11 - c1 * b1 - c2 * k1, c1, c2, 0.0]
        fits[key] = fit
    return fits


def _node(trainer: str) -> str | None:
    from ammpl.trainers.fake_device import trainer_cfg_node

    return trainer_cfg_node(trainer)


def largest_pairs(ammpl: dict, memory: float = DEVICE_MEMORY) -> tuple[int, int]:
    """(B·k, k) of the largest training batch of (image, class) pairs at the config's batch
    size B whose predicted peak fits in `memory` bytes, with every pair in one block."""
    fit, batch = ammpl["fits"]["train_peak"], ammpl["train_batch"]
    classes = 1
    while bilinear(fit, batch, classes + 1) <= memory:
        classes += 1
        if classes > 10**6:
            break
    return batch * classes, classes


def table(results: list[dict]) -> str:
    rows = []
    for r in results:
        fits, b, k = r["fits"], r["train_batch"], 100
        train = fits.get("train_flops")
        rows.append(
            [
                r["method"],
                r["backbone"],
                r["prec"],
                b,
                f"{bilinear(train, b, k) / 1e12:.2f}" if train else "-",
                f"{bilinear(fits['train_peak'], b, k) / 2**30:.2f}" if train else "-",
                f"{bilinear(fits['eval_flops'], r['eval_batch'], k) / r['eval_batch'] / 1e9:.1f}",
                f"{bilinear(fits['eval_peak'], r['eval_batch'], k) / 2**30:.2f}",
                " ".join(f"{c / 1e9:.3g}" for c in train) if train else "-",
            ]
        )
    headers = [
        "method",
        "backbone",
        "PREC",
        "B",
        "train step TFLOP (k=100)",
        "train peak GiB",
        "eval GFLOP/image (config batch)",
        "eval peak GiB (config batch)",
        "train GFLOP = c0 + c1·B + c2·k + c3·B·k",
    ]
    return tabulate(rows, headers=headers, tablefmt="github")


# -- agreement with measured numbers --------------------------------------------------------
def check_encoder_flops() -> list[list]:
    """Image and text encoder FLOPs: fake tensors here, real tensors as clip_encoders.py."""
    from ammpl.clip.image_encoder import ImageEncoder
    from ammpl.clip.text_encoder import TextEncoder
    from ammpl.clip.tokenizer import tokenize
    from ammpl.trainers.fake_device import fake_mode, random_backbone
    from ammpl.trainers.step_cost import count_flops
    from bench import clip_encoders

    cpu = torch.device("cpu")
    tokens = tokenize(["a photo of a dog.", "a photo of a golden retriever."])
    eot = tokens.argmax(dim=-1)
    real = clip_encoders.build_model("vit_b16", cpu)
    with torch.no_grad():
        images = torch.randn(2, 3, 224, 224)
        prompts = real.token_embedding(tokens)
        image_real = count_flops(lambda: ImageEncoder(real)(images))
        text_real = count_flops(lambda: TextEncoder(real)(prompts, eot))
    with fake_mode() as mode, torch.no_grad():
        fake = random_backbone("ViT-B/16", mode)
        images = torch.randn(2, 3, 224, 224)
        prompts = torch.randn(2, 77, 512)
        eot_fake = torch.empty(2, dtype=torch.long)
        mode.known_values.remember(eot_fake, eot)
        image_fake = count_flops(lambda: ImageEncoder(fake)(images))
        text_fake = count_flops(lambda: TextEncoder(fake)(prompts, eot_fake))
    return [
        ["ViT-B/16 image forward, per image", image_real / 2e9, image_fake / 2e9],
        ["ViT-B/16 text forward, per prompt", text_real / 2e9, text_fake / 2e9],
    ]


def measured_cpu_peak(fn) -> int:
    """Peak bytes the CPU allocator holds above its level at the call (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted(  # allocations are an operator's own, frees are "[memory]" events
        (
            e.time_range.start,
            e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage,
        )
        for e in prof.events()
    )
    current = peak = 0
    for _, delta in events:
        current += delta
        peak = max(peak, current)
    return peak


def check_tiny_memory(batch: int = 4, classes: int = 10) -> list:
    """(estimated, measured) bytes a tiny AMMPL training step adds, fp32 on the CPU."""
    from ammpl.clip import load_backbone
    from ammpl.trainers.fake_device import build_trainer, fake_batch

    case = TrainerCase("AMMPL", AMMPL_CONFIG, ("MODEL.BACKBONE.NAME", "tiny"))
    (point,) = measure_steps(case, "fp32", [batch], classes)
    inputs = batch * 3 * 224 * 224 * 4 + batch * 8
    estimated = point.train_peak - point.weights - inputs
    cpu = torch.device("cpu")
    torch.manual_seed(0)
    with open(os.devnull, "w") as sink:
        stdout, sys.stdout = sys.stdout, sink
        try:
            trainer = build_trainer(
                case, "fp32", cpu, backbone=load_backbone("tiny"), n_classes=classes
            )
        finally:
            sys.stdout = stdout
    from ammpl.trainers.fake_device import KnownValues

    images, labels = fake_batch(trainer, batch, cpu, KnownValues())
    labels = torch.arange(batch) % classes

    def step() -> None:
        trainer.set_model_mode("train")
        loss, _, _ = trainer.compute_loss(images, labels)
        trainer.backward_and_update(loss)

    measured = measured_cpu_peak(step)
    return [f"tiny AMMPL step (B={batch}, k={classes}, fp32)", estimated, measured]


def compare(folder: str, results: list[dict], tflops: float, utilisation: float) -> str:
    """Predicted next to measured for the methods_step records of a gpu_check folder."""
    rows = []
    for path in sorted(Path(folder).glob("methods_step_*.json")):
        record = json.loads(path.read_text())
        prec = record["settings"].get("precision", "fp32")
        classes = record["settings"].get("classes", 10)
        for row in record["rows"]:
            model = next((r for r in results if r["method"] == row["method"]), None)
            if model is None or row.get("step_ms") is None:
                continue
            fits, batch = model["fits"], row["train_batch"]
            flops = bilinear(fits["train_flops"], batch, classes)
            predicted_ms = 1000 * flops / (tflops * 1e12 * utilisation)
            peak = max(
                bilinear(fits["train_peak"], batch, classes),
                bilinear(fits["eval_peak"], row["eval_batch"], classes),
            )
            measured_tflops = flops / (row["step_ms"] / 1000) / 1e12
            rows.append(
                [
                    row["method"],
                    prec,
                    f"{predicted_ms:.1f}",
                    f"{row['step_ms']:.1f}",
                    f"{tflops * utilisation:.0f}",
                    f"{measured_tflops:.1f}",
                    f"{peak / 2**20:.0f}"
                    + ("" if model["prec"] == prec else f" ({model['prec']})"),
                    f"{row['peak_mib']:.0f}" if row.get("peak_mib") is not None else "-",
                ]
            )
    rate = tflops * utilisation
    for path in sorted(Path(folder).glob("clip_encoders*.json")):
        record = json.loads(path.read_text())
        for row in record["rows"]:
            if row.get("gflop") is None or not row.get("items_per_s"):
                continue
            batch = record["settings"]["batch"]
            measured_ms = 1000 * batch / row["items_per_s"]
            predicted_ms = 1000 * row["gflop"] * 1e9 * batch / (rate * 1e12)
            peak = row.get("peak_mib")
            rows.append(
                [
                    f"image forward, {row['variant']} (batch {batch})",
                    row["precision"],
                    f"{predicted_ms:.1f}",
                    f"{measured_ms:.1f}",
                    f"{rate:.0f}",
                    f"{row['tflops']:.1f}",
                    "-",
                    f"{peak:.0f}" if peak else "-",
                ]
            )
    headers = [
        "case",
        "PREC",
        "ms predicted",
        "ms measured",
        "TFLOP/s predicted",
        "TFLOP/s measured",
        "peak MiB predicted",
        "peak MiB measured",
    ]
    return tabulate(rows, headers=headers, tablefmt="github")


def merged_methods(results: list[dict]) -> list[dict]:
    """The model file's methods with `results` replacing (or adding) theirs, in ROWS order."""
    kept = json.loads(MODEL_FILE.read_text())["methods"] if MODEL_FILE.exists() else []
    by_method = {entry["method"]: entry for entry in kept}
    by_method.update({entry["method"]: entry for entry in results})
    order = [row.method for row in ROWS]
    return sorted(
        by_method.values(),
        key=lambda e: order.index(e["method"]) if e["method"] in order else len(order),
    )


def main(argv: list[str] | None = None) -> int:
    from ammpl.sweep.cost_model import DEFAULT_DEVICE_TFLOPS, DEFAULT_UTILISATION

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--methods", nargs="*", help="subset of bench/methods_step.py's methods")
    parser.add_argument("--prec", help="PREC for every method (default: each config's)")
    parser.add_argument("--verify", action="store_true", help="check each fit at (B, k) = (3, 3)")
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--write-model", action="store_true", help=f"write {MODEL_FILE.name}")
    parser.add_argument("--check", action="store_true", help="agreement with measured numbers")
    parser.add_argument("--compare", metavar="FOLDER", help="a bench/gpu_check.sh output folder")
    parser.add_argument("--device-tflops", type=float, default=DEFAULT_DEVICE_TFLOPS)
    parser.add_argument("--utilisation", type=float, default=DEFAULT_UTILISATION)
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    if args.check:
        rows = check_encoder_flops()
        print(
            tabulate(
                rows,
                headers=["encoder", "GFLOP (real, clip_encoders.py)", "GFLOP (fake, cost.py)"],
                floatfmt=".4f",
            )
        )
        label, estimated, measured = check_tiny_memory()
        print(
            f"{label}: estimated {estimated / 2**20:.1f} MiB, measured {measured / 2**20:.1f}"
            f" MiB (ratio {estimated / measured:.2f})"
        )
        return 0
    if args.compare:
        results = json.loads(MODEL_FILE.read_text())["methods"]
        print(compare(args.compare, results, args.device_tflops, args.utilisation))
        return 0

    results = []
    for row in ROWS:
        if args.methods and row.method not in args.methods:
            continue
        print(f"{row.method} ...", file=sys.stderr, flush=True)
        results.append(method_cost(row, args.prec, args.verify))
        if args.json:  # after every method: a long run keeps what it has
            write_json({"torch": torch.__version__, "methods": results}, args.json, indent=1)
    print(table(results))
    for r in results:
        for key, check in r.get("verify", {}).items():
            error = abs(check["fit"] - check["measured"]) / max(check["measured"], 1)
            print(f"{r['method']} {key} at (B, k) = {VERIFY}: fit within {100 * error:.2f}%")
    ammpl = next((r for r in results if r["config"] == AMMPL_CONFIG), None)
    if ammpl is not None:
        pairs, classes = largest_pairs(ammpl)
        print(
            f"AMMPL ({ammpl['prec']}, ViT-B/16, B = {ammpl['train_batch']}): the largest "
            f"training batch in 80 GB is {pairs:,} (image, class) pairs (k = {classes:,})"
        )
    record = {
        "torch": torch.__version__,
        "grid": {"batches": GRID_BATCHES, "classes": GRID_CLASSES},
        "methods": results,
    }
    if args.json:
        write_json(record, args.json, indent=1)
    if args.write_model:
        if args.methods:  # a subset refreshes its rows and keeps the others
            record["methods"] = merged_methods(results)
        write_json(record, str(MODEL_FILE), indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
