"""Contrastive pretraining of the `mini` CLIP on the mini world (CPU, minutes).

    OMP_NUM_THREADS=1 python -m ammpl.mini.pretrain --steps 900 --out mini_clip.pt

Every step draws a fresh batch of captioned images from the world (no data set on disk),
so the model sees each combination of factors in many phrasings. AdamW with linear warm-up
and cosine decay, CLIP's symmetric InfoNCE loss with a learned temperature. The run is a
pure function of its recipe (`--seed` and the options below), the torch version and the
thread count; the weights file is written atomically with a JSON record of how it was made
beside it.

Recipe options (docs/MINI.md, "Pretraining for shapes"): `--loss truth` counts every
caption of the batch that is true of an image as its positive; `--simple-share` and
`--shape-only` mix in simple scenes and shape-only captions on a linear schedule; `--pool`
re-uses pre-rendered scenes; `--patch-mask` hides a random share of each image's patches
under a random fill, so the model learns to name what stays visible. A long run writes
`<out>.state.pt` every `--state-minutes` and on SIGTERM / Ctrl-C; `--resume` continues it
bit for bit.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
import threading
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

from ammpl.clip.tokenizer import tokenize
from ammpl.clip.weights import read_state_dict
from ammpl.mini.model import build_mini_clip, pack_state, unpack_state
from ammpl.mini.world import SHAPES, describe, render, sample_scene, to_tensor_batch
from ammpl.utils.errors import AmmplError, CheckpointError, ConfigError
from ammpl.utils.io import atomic_write, atomic_write_text

_MEAN = torch.tensor(OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(OPENAI_DATASET_STD).view(1, 3, 1, 1)


def normalise(images: np.ndarray) -> torch.Tensor:
    """(N, 3, H, W) in [0, 1] → CLIP-normalised tensor (what the downstream pipeline feeds)."""
    return (torch.from_numpy(images) - _MEAN) / _STD


SIMPLE_SCENE = {"count": "1", "size": "large", "pattern": "plain", "background": "dark"}
# Scene factors a caption can name, in the order `scene_codes` encodes them.
_FACTORS = ("shape", "colour", "pattern", "size", "count", "background")


@dataclass
class Batch:
    """Rendered images (uint8, N×H×W×3), token ids, and which caption is true of which image."""

    pixels: np.ndarray
    tokens: np.ndarray
    truth: np.ndarray  # (N, N) bool: caption j describes image i

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.pixels.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
        return normalise(np.ascontiguousarray(images)), torch.from_numpy(self.tokens)


def caption_truth(scenes: Sequence, named: Sequence[dict[str, str]]) -> np.ndarray:
    """(N, N) bool: caption j (naming the factors `named[j]`) is true of scene i."""
    values = np.array([[str(getattr(s, f)) for f in _FACTORS] for s in scenes])
    said = np.array([[n.get(f, "") for f in _FACTORS] for n in named])
    agree = (said[None, :, :] == "") | (said[None, :, :] == values[:, None, :])
    return agree.all(axis=2)


def draw_batch(
    rng: np.random.Generator, size: int, simple: float = 0.0, shape_only: float = 0.0
) -> Batch:
    """`size` fresh captioned images: a share `simple` of them one large plain object on the
    dark background, a share `shape_only` of the captions naming only the shape.

    With both shares 0 the draws are exactly those of the original recipe.
    """
    images, texts, scenes, named = [], [], [], []
    for _ in range(size):
        fixed = SIMPLE_SCENE if simple and rng.uniform() < simple else {}
        scene = sample_scene(rng, **fixed)
        images.append(np.asarray(render(scene, rng), dtype=np.uint8))
        only = bool(shape_only) and bool(rng.uniform() < shape_only)
        text, factors = describe(scene, rng, shape_only=only)
        scenes.append(scene)
        texts.append(text)
        named.append(factors)
    tokens = tokenize(texts).numpy()
    return Batch(np.stack(images), tokens, caption_truth(scenes, named))


@dataclass
class ScenePool:
    """Scenes rendered once (full-world and simple ones), re-used with fresh captions.

    Rendering is about a quarter of a step's work; a pool renders each image once and every
    step draws images from it, flips half of them and captions them anew. Chunk `k` of the
    pool is drawn from the generator seeded (seed, k), so the pool is the same however many
    processes render it.
    """

    scenes: list
    pixels: np.ndarray
    simple_scenes: list
    simple_pixels: np.ndarray

    CHUNK = 500

    @classmethod
    def render(cls, seed: int, size: int, with_simple: bool, workers: int = 0) -> ScenePool:
        jobs = [(seed, k, fixed) for fixed in ((), tuple(SIMPLE_SCENE.items()))[: 1 + with_simple]
                for k in range(math.ceil(size / cls.CHUNK))]  # fmt: skip
        if workers:
            import multiprocessing

            with multiprocessing.get_context("fork").Pool(workers) as pool:
                chunks = pool.map(_render_chunk, jobs)
        else:
            chunks = [_render_chunk(job) for job in jobs]
        half = len(chunks) // (1 + with_simple)

        def join(part: list) -> tuple[list, np.ndarray]:
            scenes = [scene for chunk in part for scene in chunk[0]][:size]
            pixels = np.concatenate([chunk[1] for chunk in part])[:size]
            return scenes, pixels

        full, simple = join(chunks[:half]), join(chunks[half:]) if with_simple else ([], None)
        return cls(full[0], full[1], simple[0], simple[1])

    def draw(self, rng: np.random.Generator, size: int, simple: float, shape_only: float) -> Batch:
        pixels, texts, scenes, named = [], [], [], []
        for _ in range(size):
            use_simple = bool(simple) and rng.uniform() < simple
            source, images = (
                (self.simple_scenes, self.simple_pixels)
                if use_simple
                else (self.scenes, self.pixels)
            )
            index = int(rng.integers(len(source)))
            image = images[index]
            pixels.append(image[:, ::-1] if rng.uniform() < 0.5 else image)
            only = bool(shape_only) and bool(rng.uniform() < shape_only)
            text, factors = describe(source[index], rng, shape_only=only)
            scenes.append(source[index])
            texts.append(text)
            named.append(factors)
        tokens = tokenize(texts).numpy()
        return Batch(np.stack(pixels), tokens, caption_truth(scenes, named))


def _render_chunk(job: tuple[int, int, tuple]) -> tuple[list, np.ndarray]:
    seed, k, fixed = job
    rng = np.random.default_rng([seed, int(bool(fixed)), k])
    scenes = [sample_scene(rng, **dict(fixed)) for _ in range(ScenePool.CHUNK)]
    pixels = np.stack([np.asarray(render(scene, rng), dtype=np.uint8) for scene in scenes])
    return scenes, pixels


def sample_batch(rng: np.random.Generator, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`size` fresh images (normalised) and their captions (token ids)."""
    return draw_batch(rng, size).tensors()


def encode_text_prefix(model: torch.nn.Module, texts: torch.Tensor) -> torch.Tensor:
    """`model.encode_text(texts)`, computed on the tokens up to the longest EOT only.

    The text tower is causal and pooled at EOT, so the padding after the last EOT cannot
    change any output: cutting it saves most of the text tower's work in pretraining.
    """
    length = int((texts != 0).sum(dim=1).max())
    texts = texts[:, :length]
    x = model.token_embedding(texts) + model.positional_embedding[:length]
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = model.ln_final(x)
    x = x[torch.arange(len(texts)), texts.argmax(dim=-1)]  # the EOT token (largest id)
    return x @ model.text_projection


def contrastive_loss(
    model: torch.nn.Module,
    images: torch.Tensor,
    texts: torch.Tensor,
    truth: torch.Tensor | None = None,
) -> torch.Tensor:
    """CLIP's symmetric cross-entropy over the batch's image–caption similarities.

    Without `truth` each image's own caption is its only positive (CLIP). With it, every
    caption true of an image is a positive, with equal target weight (UniCL's targets): in
    this world "a photo of a star." describes every star of the batch, and CLIP's loss would
    push all but one of them away from it.
    """
    image_features = F.normalize(model.encode_image(images), dim=-1)
    text_features = F.normalize(encode_text_prefix(model, texts), dim=-1)
    logits = model.logit_scale.exp() * image_features @ text_features.t()
    if truth is None:
        target = torch.arange(len(images))
        return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2
    positives = truth.float()
    image_target = positives / positives.sum(dim=1, keepdim=True)
    text_target = positives.t() / positives.t().sum(dim=1, keepdim=True)
    return (F.cross_entropy(logits, image_target) + F.cross_entropy(logits.t(), text_target)) / 2


@torch.no_grad()
def zero_shot_predictions(model: torch.nn.Module, images: list, prompts: list[str]) -> np.ndarray:
    """The index of the most similar of `prompts` for each image."""
    image_features = F.normalize(model.encode_image(normalise(to_tensor_batch(images))), dim=-1)
    text_features = F.normalize(model.encode_text(tokenize(prompts)), dim=-1)
    return (image_features @ text_features.t()).argmax(dim=1).numpy()


def zero_shot_accuracy(
    model: torch.nn.Module, images: list, labels: Sequence[int], prompts: list[str]
) -> float:
    """Accuracy (%) of naming each image by the most similar of `prompts` (one per label)."""
    predictions = zero_shot_predictions(model, images, prompts)
    return float((predictions == np.asarray(labels)).mean() * 100)


@torch.no_grad()
def shape_probe(model: torch.nn.Module, seed: int = 12345, count: int = 240) -> float:
    """Zero-shot accuracy (%) naming the shape of pretraining-style images (chance 8.3 %)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(SHAPES), size=count)
    images = [render(sample_scene(rng, shape=SHAPES[k], count=1), rng) for k in labels]
    return zero_shot_accuracy(model, images, labels, [f"a photo of a {s}." for s in SHAPES])


def _parameter_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only (not on gains, biases, embeddings or the temperature)."""
    no_decay_names = ("token_embedding", "positional_embedding", "class_embedding", "logit_scale")
    decay, rest = [], []
    for name, parameter in model.named_parameters():
        if parameter.ndim < 2 or any(part in name for part in no_decay_names):
            rest.append(parameter)
        else:
            decay.append(parameter)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}]


def learning_rate(step: int, steps: int, base_lr: float, warmup: int) -> float:
    if step < warmup:
        return base_lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return base_lr * 0.5 * (1 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the weights a run produces (with the torch version and threads).

    `simple` and `shape_only` are (share at the first step, share at the last step), linear
    in between: a curriculum over simple scenes and shape-only captions.
    """

    steps: int = 900
    batch_size: int = 96
    lr: float = 2e-3
    weight_decay: float = 0.1
    seed: int = 0
    warmup: int = 100
    loss: str = "clip"  # "clip" | "truth" (every caption true of an image is a positive)
    simple: tuple[float, float] = (0.0, 0.0)
    shape_only: tuple[float, float] = (0.0, 0.0)
    pool: int = 0  # > 0: images come from a pool of this many pre-rendered scenes (per kind)
    init: str = ""  # weights file the run starts from ("" : seeded random weights)
    patch_mask: float = 0.0  # > 0: each image hides a share U(0, this) of its patches

    def shares(self, step: int) -> tuple[float, float]:
        """(simple, shape_only) at `step`."""
        t = step / max(1, self.steps - 1)
        return tuple(start + (end - start) * t for start, end in (self.simple, self.shape_only))


LOSSES = ("clip", "truth")


def _next_batch(
    recipe: Recipe, rng: np.random.Generator, step: int, pool: ScenePool | None
) -> Batch:
    simple, shape_only = recipe.shares(step)
    if pool is not None:
        return pool.draw(rng, recipe.batch_size, simple, shape_only)
    return draw_batch(rng, recipe.batch_size, simple, shape_only)


def _render_worker(
    recipe: Recipe, rng_state: dict, first_step: int, pool: ScenePool | None, queue
) -> None:
    """Draw the run's batches in order into `queue`, each with the RNG state after it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C: the training process decides
    # terminate() must end this process even where the parent had a Python SIGTERM handler
    # (pytest-xdist workers have one): otherwise a worker whose last batches nobody reads
    # waits forever to flush them, and the training process waits for it.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    torch.set_num_threads(1)
    rng = np.random.default_rng()
    rng.bit_generator.state = rng_state
    for step in range(first_step, recipe.steps):
        batch = _next_batch(recipe, rng, step, pool)
        queue.put((batch, rng.bit_generator.state))


class BatchStream:
    """The run's batches, drawn here or by a render process that works one batch ahead.

    Both give the same batches: the process owns a copy of the generator, and every batch
    comes with the generator state after it, which is what a checkpoint stores.
    """

    def __init__(
        self,
        recipe: Recipe,
        rng_state: dict,
        first_step: int,
        workers: int = 0,
        pool: ScenePool | None = None,
    ):
        self.recipe, self.step, self.pool = recipe, first_step, pool
        self.rng_state = rng_state
        self.process = None
        if workers:
            import multiprocessing

            context = multiprocessing.get_context("fork")
            self.queue = context.Queue(maxsize=2 * workers)
            self.process = context.Process(
                target=_render_worker,
                args=(recipe, rng_state, first_step, pool, self.queue),
                daemon=True,
            )
            self.process.start()
        else:
            self.rng = np.random.default_rng()
            self.rng.bit_generator.state = rng_state

    def next(self) -> Batch:
        if self.process is not None:
            batch, self.rng_state = self._receive()
        else:
            batch = _next_batch(self.recipe, self.rng, self.step, self.pool)
            self.rng_state = self.rng.bit_generator.state
        self.step += 1
        return batch

    POLL_SECONDS = 10.0  # how often a waiting training step checks that the process lives

    def _receive(self) -> tuple:
        import queue

        while True:
            try:
                return self.queue.get(timeout=self.POLL_SECONDS)
            except queue.Empty:
                if not self.process.is_alive():
                    raise AmmplError(
                        "the render process of the pretraining run stopped "
                        f"(exit code {self.process.exitcode}); continue with --resume"
                    ) from None

    def close(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
            self.process = None


def state_path(out: Path) -> Path:
    """Where a run writing `out` keeps its resumable state."""
    return out.with_suffix(".state.pt")


def pretrain(
    steps: int = 900,
    batch_size: int = 96,
    lr: float = 2e-3,
    weight_decay: float = 0.1,
    seed: int = 0,
    warmup: int = 100,
    log_every: int = 50,
    log=print,
    checkpoint_every: int = 0,
    on_checkpoint=None,
    recipe: Recipe | None = None,
    state_file: Path | None = None,
    state_seconds: float = 300.0,
    resume: bool = False,
    stop_after: int | None = None,
    workers: int = 0,
) -> tuple[torch.nn.Module, list[float]]:
    """Train a fresh mini CLIP; returns it (eval mode) and the loss of every step.

    `recipe` replaces the first six arguments. With `state_file` the run writes its whole
    state (weights, optimiser, generator, losses) there every `state_seconds` and when it
    stops; `resume` continues from that file exactly as if the run had not stopped.
    `stop_after` ends this call after that many steps (state written); `workers` processes
    render the pool, and one of them draws the batches ahead of the training step.
    """
    recipe = recipe or Recipe(steps, batch_size, lr, weight_decay, seed, warmup)
    if recipe.loss not in LOSSES:
        raise ConfigError(f"unknown pretraining loss {recipe.loss!r}; choose from {LOSSES}")
    torch.manual_seed(recipe.seed)
    model = build_mini_clip(recipe.seed)
    if recipe.init:
        _load_initial_weights(model, Path(recipe.init))
    model.train()
    optimizer = torch.optim.AdamW(
        _parameter_groups(model, recipe.weight_decay), lr=recipe.lr, betas=(0.9, 0.98)
    )
    losses: list[float] = []
    first_step, seconds_before = 0, 0.0
    rng_state = np.random.default_rng(recipe.seed).bit_generator.state
    if resume:
        saved = load_state(state_file, recipe)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["torch_rng"])
        rng_state, losses = saved["rng"], list(saved["losses"])
        first_step, seconds_before = saved["step"], saved["seconds"]
        log(f"resumed at step {first_step}/{recipe.steps} from {state_file}")
    pool = None
    if recipe.pool:
        started = time.time()
        with_simple = max(recipe.simple) > 0
        pool = ScenePool.render(recipe.seed, recipe.pool, with_simple, workers)
        log(f"rendered a pool of {recipe.pool} scenes per kind in {time.time() - started:.0f} s")
    stream = BatchStream(recipe, rng_state, first_step, workers, pool)
    start = time.time() - seconds_before
    last_save = time.time()

    def save(step: int) -> None:
        if state_file is not None:
            save_state(
                state_file, recipe, step, model, optimizer, stream.rng_state, losses,
                time.time() - start,
            )  # fmt: skip

    last = recipe.steps if stop_after is None else min(recipe.steps, first_step + stop_after)
    done = first_step
    try:
        with _stop_requests(state_file is not None) as stop:
            for step in range(first_step, last):
                losses.append(_train_step(model, optimizer, recipe, step, stream.next()))
                done = step + 1
                if on_checkpoint is not None and checkpoint_every and done % checkpoint_every == 0:
                    on_checkpoint(model, done)
                    model.train()
                if state_file is not None and time.time() - last_save >= state_seconds:
                    save(done)
                    last_save = time.time()
                if log_every and (done % log_every == 0 or done == recipe.steps):
                    recent = float(np.mean(losses[-log_every:]))
                    seconds = time.time() - start
                    log(f"step {done}/{recipe.steps}  loss {recent:.4f}  {seconds:.0f} s")
                if stop:
                    log(f"stopped at step {done}/{recipe.steps}; continue with --resume")
                    break
    finally:
        stream.close()
    if done > first_step or not resume:
        save(done)
    model.eval()
    return model, losses


def _load_initial_weights(model: torch.nn.Module, path: Path) -> None:
    """`--init`: the run starts from a mini weights file (one-line errors: missing, unreadable,
    or weights of another architecture)."""
    state = unpack_state(read_state_dict(path))
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        reason = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
        raise CheckpointError(
            f"--init: {path} does not hold mini weights of this architecture ({reason})"
        ) from None


def hide_patches(images: torch.Tensor, hidden: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
    """`images` (N, C, H, W) with the patches where `hidden` (N, rows, cols) is true replaced
    by the image's `fill` patch (N, C, h, w)."""
    rows, cols = hidden.shape[1:]
    patch_h, patch_w = fill.shape[2:]
    pixels = hidden.repeat_interleave(patch_h, 1).repeat_interleave(patch_w, 2).unsqueeze(1)
    return torch.where(pixels, fill.repeat(1, 1, rows, cols), images)


def mask_patches(images: torch.Tensor, max_share: float, patch: int) -> torch.Tensor:
    """`images` with a share U(0, `max_share`) of each image's `patch`-pixel patches hidden.

    Prompt learners edit what the image tower sees (AMMPL pads masked patches with a learned
    patch, VPT and MaPLe add tokens). CLIP's photos come with occlusions and crops of every
    kind; a tower trained on whole objects of one small world had never seen a hidden patch
    and could not name such images (docs/MINI.md, "Masked patches"). The
    fill is one random patch per image, a colour plus noise of random strength in
    normalised-pixel space, as a learned pad may be. Draws from torch's global generator,
    which the resumable state saves.
    """
    n, channels, height, width = images.shape
    share = torch.rand(n, 1, 1) * max_share
    hidden = torch.rand(n, height // patch, width // patch) < share
    colour = torch.randn(n, channels, 1, 1)
    noise = torch.rand(n, 1, 1, 1) * torch.randn(n, channels, patch, patch)
    return hide_patches(images, hidden, colour + noise)


def _train_step(
    model: torch.nn.Module, optimizer: torch.optim.Optimizer, recipe: Recipe, step: int, batch
) -> float:
    """One AdamW step on `batch` at the schedule's learning rate; the loss."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(step, recipe.steps, recipe.lr, min(recipe.warmup, recipe.steps))
    images, texts = batch.tensors()
    if recipe.patch_mask:
        images = mask_patches(images, recipe.patch_mask, model.visual.patch_size[0])
    truth = torch.from_numpy(batch.truth) if recipe.loss == "truth" else None
    loss = contrastive_loss(model, images, texts, truth)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        model.logit_scale.clamp_(0, math.log(100))
    return float(loss.detach())


@contextmanager
def _stop_requests(enabled: bool):
    """A list that becomes non-empty on SIGTERM or Ctrl-C: the run finishes its step, writes
    its state and stops, so an interrupted run loses nothing."""
    requests: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield requests
        return
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = [signal.signal(number, lambda n, _: requests.append(n)) for number in signals]
    try:
        yield requests
    finally:
        for number, handler in zip(signals, previous, strict=True):
            signal.signal(number, handler)


def save_state(
    path: Path,
    recipe: Recipe,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    rng_state: dict,
    losses: list[float],
    seconds: float,
) -> None:
    """Everything `--resume` needs to continue the run bit for bit (written atomically)."""
    state = {
        "recipe": asdict(recipe),
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "rng": rng_state,
        "torch_rng": torch.get_rng_state(),
        "losses": losses,
        "seconds": seconds,
        "torch": str(torch.__version__),  # a plain str: the file stays loadable weights-only
        "threads": torch.get_num_threads(),
    }
    with atomic_write(path) as handle:
        torch.save(state, handle)


STATE_KEYS = ("recipe", "step", "model", "optimizer", "rng", "losses", "seconds")


def read_run_state(path: Path | str) -> dict:
    """A run's saved state, read without running code from the file.

    Unpickling a state file runs whatever a pickle asks for, so it is read weights-only: a
    shared or damaged file can at worst be refused. (States written before torch's version
    was saved as a str hold it as a TorchVersion, a str subclass, allowed here.)
    """
    from torch.torch_version import TorchVersion

    try:
        with torch.serialization.safe_globals([TorchVersion]):
            state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError as exc:
        reason = exc.strerror or exc
        raise CheckpointError(f"cannot read pretraining state {path}: {reason}") from exc
    except Exception as exc:  # refused globals, truncated archives: torch raises many types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "weights only load failed" in reason.lower():
            reason = "it holds Python objects besides tensors and plain data, which could run code"
        raise CheckpointError(
            f"{path} is not a pretraining state that can be read safely ({reason}); "
            "start the run again without --resume"
        ) from exc
    missing = [key for key in STATE_KEYS if not isinstance(state, dict) or key not in state]
    if missing:
        raise CheckpointError(
            f"{path} is not a pretraining state (no {', '.join(missing)}); "
            "start the run again without --resume"
        )
    return state


def load_state(path: Path | None, recipe: Recipe) -> dict:
    """The saved state of a run with this recipe; a one-line error when it cannot resume."""
    if path is None or not Path(path).is_file():
        raise CheckpointError(
            f"no pretraining state at {path} to resume; start the run without --resume"
        )
    saved = read_run_state(path)
    mine = json.loads(json.dumps(asdict(recipe)))
    theirs = {**json.loads(json.dumps(asdict(Recipe()))), **json.loads(json.dumps(saved["recipe"]))}
    if mine != theirs:
        changed = sorted(k for k in mine if mine[k] != theirs.get(k))
        raise CheckpointError(
            f"{path} was written by a run with other settings ({', '.join(changed)}); "
            "resume with the same options or write to another --out"
        )
    return saved


def save_weights(model: torch.nn.Module, out: Path, record: dict) -> None:
    """The packed state dict at `out` and `<out>.json` describing the run (both atomic)."""
    with atomic_write(out) as handle:
        torch.save(pack_state(model.state_dict()), handle)
    atomic_write_text(out.with_suffix(".json"), json.dumps(record, indent=2) + "\n")


def _shares(text: str) -> tuple[float, float]:
    """ "0.5" → (0.5, 0.5); "1:0.2" → (1.0, 0.2)."""
    parts = [float(part) for part in text.split(":")]
    if len(parts) not in (1, 2) or not all(0 <= part <= 1 for part in parts):
        raise argparse.ArgumentTypeError(f"expected SHARE or START:END in [0, 1], got {text!r}")
    return (parts[0], parts[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ammpl.mini.pretrain", description=__doc__)
    parser.add_argument("--steps", type=int, default=900)
    parser.add_argument("--batch-size", type=int, default=96)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument(
        "--loss",
        choices=LOSSES,
        default="clip",
        help="clip: each image's own caption is its only positive; truth: every caption of "
        "the batch that is true of the image is a positive",
    )
    parser.add_argument(
        "--simple-share",
        type=_shares,
        default=(0.0, 0.0),
        metavar="START[:END]",
        help="share of simple scenes (one large plain object on dark), linear from START to END",
    )
    parser.add_argument(
        "--shape-only",
        type=_shares,
        default=(0.0, 0.0),
        metavar="START[:END]",
        help="share of captions that name only the shape, linear from START to END",
    )
    parser.add_argument(
        "--pool",
        type=int,
        default=0,
        help="render this many scenes (and as many simple ones) once and re-use them with "
        "fresh captions and flips; 0: render every batch afresh",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="processes that render the pool; with any, batches are drawn in a second process",
    )
    parser.add_argument(
        "--patch-mask",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="hide a random share, up to SHARE, of each image's patches under a random fill",
    )
    parser.add_argument(
        "--init",
        type=Path,
        default=None,
        help="start from this mini weights file (e.g. an earlier run's) instead of random",
    )
    parser.add_argument("--log-every", type=int, default=50)
    parser.add_argument("--out", type=Path, required=True, help="weights file to write")
    parser.add_argument(
        "--checkpoint-every", type=int, default=0, help="also write <out>.step<N>.pt every N steps"
    )
    parser.add_argument(
        "--state-minutes",
        type=float,
        default=5.0,
        help="write the resumable state <out>.state.pt this often (and at the end)",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue the run from <out>.state.pt"
    )
    args = parser.parse_args(argv)
    recipe = Recipe(
        args.steps, args.batch_size, args.lr, args.weight_decay, args.seed, args.warmup,
        args.loss, args.simple_share, args.shape_only, args.pool,
        str(args.init) if args.init else "", args.patch_mask,
    )  # fmt: skip

    def checkpoint(model: torch.nn.Module, step: int) -> None:
        model.eval()
        target = args.out.with_suffix(f".step{step}.pt")
        save_weights(
            model, target, {"steps_done": step, "shape_probe_accuracy": shape_probe(model)}
        )

    start = time.time()
    try:
        model, losses = pretrain(
            recipe=recipe,
            log_every=args.log_every,
            checkpoint_every=args.checkpoint_every,
            on_checkpoint=checkpoint,
            state_file=state_path(args.out),
            state_seconds=args.state_minutes * 60,
            resume=args.resume,
            workers=args.workers,
        )
    except AmmplError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if len(losses) < recipe.steps:
        return 130  # stopped by a signal; the state is written
    probe = shape_probe(model)
    seconds = time.time() - start
    if args.resume:  # the whole run's time, over every invocation
        seconds = read_run_state(state_path(args.out))["seconds"]
    record = {
        **asdict(recipe),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seconds": round(seconds, 1),
        "first_loss": round(float(np.mean(losses[:20])), 4),
        "final_loss": round(float(np.mean(losses[-50:])), 4),
        "shape_probe_accuracy": round(probe, 2),
    }
    save_weights(model, args.out, record)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
