"""AMMPL speed and memory: the plain computation against the exact fast paths.

For k classes it times one training step (forward, backward, SGD update; B images) and
evaluation throughput (images/s), and records peak memory, once with `fast = False`
(B·k materialised images, 77-token text, no blocks, no caches) and once with the fast
paths. It also checks that both give the same logits and gradients. The paths are timed in
turns (fast, plain, fast, plain, …), so a change in the load of a shared machine during the
run does not favour one of them.

At the initial P ~ N(0.9, 0.05²) the threshold test mask hides no patch, so the fast path
evaluates with the exact shortcut (each image encoded once, not once per class); the column
"eval img/s, mask hides a row" times the fast path again with one row of patches hidden
(P = 0.2 there), where every (image, class) pair is encoded. The plain path never takes the
shortcut, so its cost does not depend on the mask.

    python bench/ammpl_step.py                       # CPU, tiny backbone, k = 10, 100, 397
    python bench/ammpl_step.py --device cuda         # ViT-B/16-sized random weights, bf16

Peak memory: CUDA max_memory_allocated; on CPU the peak resident-set growth over the
measured section (sampled every millisecond after freed heap pages are handed back), an
approximation. On a shared CPU, `--threads 1` gives steadier times.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import os
import platform
import sys
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager, nullcontext
from pathlib import Path

import torch
from tabulate import tabulate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from ammpl.trainers.ammpl.config import AmmplSettings  # noqa: E402
from ammpl.trainers.ammpl.model import AmmplCLIP  # noqa: E402
from ammpl.trainers.param_counts import build_random_clip  # noqa: E402

MIB = 1024**2


def build_backbone(name: str, device: torch.device) -> torch.nn.Module:
    """Frozen tiny CLIP, or ViT-B/16 with random weights (cost does not depend on values)."""
    return build_random_clip(name).to(device)


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so that RSS growth measures live memory."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def peak_memory(device: torch.device):
    """Yields a dict whose "peak" (bytes) is filled when the block ends."""
    result = {"peak": 0}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result["peak"] = torch.cuda.max_memory_allocated(device) - base
        return
    _release_free_memory()
    base, peak, done = _rss_bytes(), [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes() - base)
            time.sleep(0.001)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
        result["peak"] = max(peak[0], _rss_bytes() - base)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def interleaved(
    variants: dict[str, Callable[[], object]],
    device: torch.device,
    min_seconds: float,
    max_repeats: int,
) -> dict[str, tuple[float, int]]:
    """Median seconds per call and peak memory (bytes) of each variant. After one warm-up
    call each, the variants take turns (one call each per round), so a change in the
    machine's load during the measurement hits every variant alike."""
    for fn in variants.values():
        fn()
        synchronize(device)
    times: dict[str, list[float]] = {name: [] for name in variants}
    peaks = dict.fromkeys(variants, 0)
    while True:
        for name, fn in variants.items():
            with peak_memory(device) as memory:
                start = time.perf_counter()
                fn()
                synchronize(device)
                times[name].append(time.perf_counter() - start)
            peaks[name] = max(peaks[name], memory["peak"])
        rounds = len(times[name])
        if rounds >= max_repeats or min(sum(t) for t in times.values()) >= min_seconds:
            break
    return {name: (sorted(t)[len(t) // 2], peaks[name]) for name, t in times.items()}


class Case:
    """One model (k classes) measured on both paths with the same weights and inputs."""

    def __init__(self, clip_model, k: int, args: argparse.Namespace, device: torch.device):
        torch.manual_seed(0)
        settings = AmmplSettings(class_specific=args.class_specific, seed=1)
        self.model = AmmplCLIP(settings, [f"class {i}" for i in range(k)], clip_model).to(device)
        self.params = [p for p in self.model.prompt_learner.parameters() if p.requires_grad]
        self.optim = torch.optim.SGD(self.params, lr=1e-9, momentum=0.9)
        generator = torch.Generator().manual_seed(0)
        size = clip_model.visual.image_size
        size = size[0] if isinstance(size, (tuple, list)) else size
        self.train_images = torch.randn(args.batch, 3, size, size, generator=generator).to(device)
        self.eval_images = torch.randn(args.eval_batch, 3, size, size, generator=generator).to(
            device
        )
        self.labels = (torch.arange(args.batch) % k).to(device)
        self.device = device
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()
        )

    def loss_and_grads(self, seed: int = 0):
        self.model.train()
        torch.manual_seed(seed)
        with self.autocast:
            logits = self.model(self.train_images)
        loss = torch.nn.functional.cross_entropy(logits.float(), self.labels)
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return logits.detach().float(), grads

    def train_step(self) -> None:
        self.model.train()
        with self.autocast:
            logits = self.model(self.train_images)
        loss = torch.nn.functional.cross_entropy(logits.float(), self.labels)
        self.optim.zero_grad(set_to_none=True)
        loss.backward()
        self.optim.step()

    @contextmanager
    def hidden_row(self):
        """P = 0.2 on the first row of patches (the threshold mask hides it) for the block."""
        P = self.model.prompt_learner.P
        saved = P.detach().clone()
        with torch.no_grad():
            P[..., 0, :] = 0.2
        try:
            yield
        finally:
            with torch.no_grad():
                P.copy_(saved)

    def evaluate(self) -> torch.Tensor:
        self.model.eval()
        with torch.no_grad(), self.autocast:
            return self.model(self.eval_images).float()


def compare(case: Case) -> dict[str, float]:
    """Largest logit difference (training and evaluation) and largest relative gradient
    difference between the plain and the fast path."""
    case.model.fast = False
    plain_logits, plain_grads = case.loss_and_grads()
    plain_eval = case.evaluate()
    case.model.fast = True
    fast_logits, fast_grads = case.loss_and_grads()
    fast_eval = case.evaluate()
    grad_diff = 0.0
    for a, b in zip(plain_grads, fast_grads):
        if a is None or b is None:
            continue
        grad_diff = max(grad_diff, ((a - b).abs().max() / a.abs().max().clamp_min(1e-12)).item())
    logit_diff = max(
        (plain_logits - fast_logits).abs().max().item(), (plain_eval - fast_eval).abs().max().item()
    )
    return {"logits": logit_diff, "grads": grad_diff}


def on_path(case: Case, fast: bool, fn: Callable[[], object], hide: bool = False):
    """fn on the fast or plain path (optionally with a row of patches hidden at test)."""

    def call() -> None:
        case.model.fast = fast
        with case.hidden_row() if hide else nullcontext():
            fn()

    return call


def measure(case: Case, paths: tuple[str, ...], args: argparse.Namespace) -> dict[str, dict]:
    """Training step, evaluation and (fast path) evaluation with a hiding mask, the paths
    measured in turns."""
    timing = (case.device, args.min_seconds, args.repeats)
    steps = interleaved({p: on_path(case, p == "fast", case.train_step) for p in paths}, *timing)
    evaluations = {p: on_path(case, p == "fast", case.evaluate) for p in paths}
    evaluations["hiding"] = on_path(case, True, case.evaluate, hide=True)
    evals = interleaved(evaluations, *timing)
    n_images = case.eval_images.shape[0]
    return {
        path: {
            "step": steps[path][0],
            "images_per_s": n_images / evals[path][0],
            "hiding_images_per_s": n_images / evals["hiding"][0] if path == "fast" else None,
            "train_mib": steps[path][1] / MIB,
            "eval_mib": evals[path][1] / MIB,
        }
        for path in paths
    }


def machine(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    parser.add_argument("--backbone", choices=("tiny", "vit_b16"), help="default: tiny on CPU")
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100, 397])
    parser.add_argument("--batch", type=int, default=4, help="training images per step")
    parser.add_argument("--eval-batch", type=int, default=8, help="images per evaluation batch")
    parser.add_argument("--class-specific", action="store_true", help="default: generalisable")
    parser.add_argument("--repeats", type=int, default=5, help="most timed calls per number")
    parser.add_argument("--min-seconds", type=float, default=1.0, help="time at least this long")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--skip-plain-above", type=int, default=10**9,
                        help="measure the plain path only up to this many classes")  # fmt: skip
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but no GPU is visible", file=sys.stderr)
        return 2
    backbone = args.backbone or ("tiny" if device.type == "cpu" else "vit_b16")
    clip_model = build_backbone(backbone, device)
    variant = "class-specific" if args.class_specific else "generalisable"
    print(
        f"AMMPL step bench: {machine(device)}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; backbone {backbone}, {variant}, "
        f"train batch {args.batch}, eval batch {args.eval_batch}"
        + (", bf16 autocast" if device.type == "cuda" else ", fp32")
    )
    rows = []
    for k in args.classes:
        case = Case(clip_model, k, args, device)
        with_plain = k <= args.skip_plain_above
        diff = compare(case) if with_plain else None
        results = measure(case, ("fast", "plain") if with_plain else ("fast",), args)
        for path in ("plain", "fast"):
            if path not in results:
                continue
            r = results[path]
            speedup = ""
            if path == "fast" and "plain" in results:
                plain = results["plain"]
                speedup = (
                    f"{plain['step'] / r['step']:.1f}× / "
                    f"{r['images_per_s'] / plain['images_per_s']:.1f}×"
                )
            hiding = r["hiding_images_per_s"]
            rows.append([
                k, path, f"{r['step'] * 1000:.0f}", f"{r['images_per_s']:.3g}",
                f"{hiding:.3g}" if hiding else "",
                f"{r['train_mib']:.0f}", f"{r['eval_mib']:.0f}", speedup,
                f"{diff['logits']:.1e} / {diff['grads']:.1e}" if diff and path == "fast" else "",
            ])  # fmt: skip
        print(f"  k = {k} done", flush=True)
        del case
    headers = ["k", "path", "train step ms", "eval img/s", "eval img/s, mask hides a row",
               "peak MiB train", "peak MiB eval",
               "fast/plain (step / eval)", "max |Δlogit| / rel Δgrad"]  # fmt: skip
    print(tabulate(rows, headers=headers, stralign="right"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
