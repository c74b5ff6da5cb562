"""Where a mini pretraining step spends its time, and what the scene pool saves.

Times (CPU seconds of this process, so the load of a shared machine matters less than for
wall time) the three parts of a step at batch B: drawing a fresh batch (rendering B
images and captioning them), drawing a batch from a scene pool (index, flip, caption), and
the training step itself (forward, backward, AdamW). With `--workers 1` the drawing runs in
a second process ahead of the step, so on an idle second core only the step is left.

    OMP_NUM_THREADS=1 python bench/mini_pretrain_speed.py [--batch-size 96] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ammpl.mini.model import build_mini_clip
from ammpl.mini.pretrain import ScenePool, contrastive_loss, draw_batch


def cpu_seconds(fn, repeats: int) -> float:
    """Median CPU seconds of `fn()` over `repeats` calls (after one warm-up call)."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--pool", type=int, default=1000, help="scenes rendered for the pool")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    size = args.batch_size

    fresh = cpu_seconds(lambda: draw_batch(rng, size, 0.3, 0.3), args.repeats)
    start = time.process_time()
    pool = ScenePool.render(seed=0, size=args.pool, with_simple=False)
    per_image = (time.process_time() - start) / len(pool.scenes)
    pooled = cpu_seconds(lambda: pool.draw(rng, size, 0.0, 0.3), args.repeats)

    model = build_mini_clip(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = draw_batch(rng, size, 0.3, 0.3)
    images, texts = batch.tensors()
    truth = torch.from_numpy(batch.truth)

    def step() -> None:
        loss = contrastive_loss(model, images, texts, truth)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    train = cpu_seconds(step, args.repeats)
    print(f"batch {size}, torch {torch.__version__}, 1 thread, CPU seconds (median)")
    print(f"fresh batch (render + captions)   {fresh:.3f} s")
    print(
        f"pool batch (index, flip, captions) {pooled:.3f} s   pool: {per_image * 1e3:.2f} ms/image"
    )
    print(f"training step                     {train:.3f} s")
    print(f"step with fresh batches {fresh + train:.3f} s, with the pool {pooled + train:.3f} s "
          f"({100 * (fresh - pooled) / (fresh + train):.0f} % less)")  # fmt: skip


if __name__ == "__main__":
    main()
