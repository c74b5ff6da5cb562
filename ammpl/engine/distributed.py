"""DDP for one run started by `torchrun --nproc_per_node N train.py ...`.

What a distributed run keeps equal to a single process (README "One large run"):

- the global batch is the config's BATCH_SIZE: every step takes the next BATCH_SIZE
  images of one seeded shuffle shared by all ranks, and rank r trains on `batch[r::N]`
  (sizes differ by at most one when N does not divide BATCH_SIZE);
- gradients are averaged with the weight `local images / global images` of each rank, so a
  step is the single-process step on that global batch whatever the split (plain DDP
  averages with 1/N, exact only for equal shares);
- evaluation gives each rank a contiguous run of whole TEST.BATCH_SIZE batches (the very
  batches one process would see, no padding, no duplicates); predictions are gathered in
  dataset order and rank 0 computes the metrics, which every rank receives;
- only the trainable tensors are wrapped in DistributedDataParallel (through a small module
  that holds them), never the frozen CLIP; rank 0 alone writes log.txt, checkpoints,
  results.json, tensorboard and cmat.pt.

Training randomness (augmentation, AMMPL's masks) is reseeded at every epoch from
(seed, rank, epoch), so each rank draws its own stream and a resumed run repeats it.
The engine calls the module-level helpers (`current`, `is_main_process`, `barrier`,
`evaluate`, `main_process_first`), which do nothing outside torchrun.
"""

# No `from __future__ import annotations`: DDP checks the comm hook's annotations at runtime.
import contextlib
import datetime
import hashlib
import os
import random
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, RandomSampler, Sampler

from ammpl.utils.errors import ConfigError

TORCHRUN_KEYS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
INIT_TIMEOUT = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class RankInfo:
    """Where this process sits in a torchrun job."""

    rank: int
    world_size: int
    local_rank: int


def rank_info_from_env(environ: Mapping[str, str] | None = None) -> RankInfo | None:
    """The torchrun variables of this process, or None when it was not started by torchrun."""
    environ = os.environ if environ is None else environ
    if not all(key in environ for key in TORCHRUN_KEYS):
        return None
    try:
        info = RankInfo(
            int(environ["RANK"]), int(environ["WORLD_SIZE"]), int(environ["LOCAL_RANK"])
        )
    except ValueError as exc:
        raise ConfigError(
            f"Malformed torchrun environment (RANK/WORLD_SIZE/LOCAL_RANK): {exc}"
        ) from exc
    if not 0 <= info.rank < info.world_size:
        raise ConfigError(f"RANK {info.rank} is outside WORLD_SIZE {info.world_size}")
    return info


def derived_seed(*parts: int) -> int:
    """A 31-bit seed from integers, with no overlap between neighbours (unlike seed + epoch,
    which would give seed 1 epoch 1 the stream of seed 2 epoch 0)."""
    return int(np.random.SeedSequence([int(p) % 2**63 for p in parts]).generate_state(1)[0]) >> 1


def check_batch_size(batch_size: int, world_size: int) -> None:
    """Fail before any process group or model exists when a process would get no image of
    a training batch (checked from the torchrun environment alone, so every rank stops the
    same way without waiting on the others)."""
    if batch_size < world_size:
        raise ConfigError(
            f"DATALOADER.TRAIN_X.BATCH_SIZE {batch_size} cannot be split over "
            f"{world_size} processes (the global batch is BATCH_SIZE): start at most "
            f"{batch_size} process(es), or raise BATCH_SIZE (a different config)"
        )


# --------------------------------------------------------------------------------- samplers
class ShardedTrainBatches(Sampler[list[int]]):
    """This rank's share of the global training batches of one epoch.

    One permutation per epoch (from `derived_seed(seed, epoch)`, the same on every rank; the
    identity when `shuffle` is False) is cut into global batches of `batch_size`; the last
    partial batch is dropped when `drop_last`. Rank r yields `batch[r::world_size]`, so the
    union over ranks of step j is exactly step j of a one-process run with this sampler.
    """

    def __init__(
        self,
        num_samples: int,
        batch_size: int,
        rank: int,
        world_size: int,
        seed: int,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0
        smallest = min(self.global_sizes(), default=0)
        if smallest < world_size:
            raise ConfigError(
                f"A training batch of {smallest} image(s) cannot be split over {world_size} "
                f"processes (BATCH_SIZE {batch_size}, {num_samples} training images): use at "
                f"most {max(smallest, 1)} process(es) or raise DATALOADER.TRAIN_X.BATCH_SIZE"
            )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_sizes(self) -> list[int]:
        """Images per global batch, step by step."""
        full, rest = divmod(self.num_samples, self.batch_size)
        return [self.batch_size] * full + ([rest] if rest and not self.drop_last else [])

    def global_batches(self) -> list[list[int]]:
        if self.shuffle:
            generator = torch.Generator().manual_seed(derived_seed(self.seed, self.epoch))
            order = torch.randperm(self.num_samples, generator=generator).tolist()
        else:
            order = list(range(self.num_samples))
        batches, start = [], 0
        for size in self.global_sizes():
            batches.append(order[start : start + size])
            start += size
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches():
            yield batch[self.rank :: self.world_size]

    def __len__(self) -> int:
        return len(self.global_sizes())


class ShardedEvalBatches(Sampler[list[int]]):
    """A contiguous run of whole evaluation batches for this rank.

    The batches are those of a one-process SequentialSampler loader (indices
    [j·b, (j+1)·b)), so every image is evaluated once, in the same batch as in one process,
    and concatenating the ranks' outputs in rank order gives dataset order.
    """

    def __init__(self, num_samples: int, batch_size: int, rank: int, world_size: int) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        num_batches = -(-num_samples // batch_size)
        self.first = num_batches * rank // world_size
        self.stop = num_batches * (rank + 1) // world_size

    def __iter__(self) -> Iterator[list[int]]:
        for j in range(self.first, self.stop):
            yield list(range(j * self.batch_size, min((j + 1) * self.batch_size, self.num_samples)))

    def __len__(self) -> int:
        return self.stop - self.first


def rebuild_loader(loader: DataLoader, batch_sampler: Sampler[list[int]]) -> DataLoader:
    """`loader` over the same dataset and workers, batched by `batch_sampler`."""
    from ammpl.data.manager import CheckedDataLoader

    options: dict[str, Any] = {
        "num_workers": loader.num_workers,
        "collate_fn": loader.collate_fn,
        "pin_memory": loader.pin_memory,
        "worker_init_fn": loader.worker_init_fn,
        "timeout": loader.timeout,
    }
    if isinstance(loader, CheckedDataLoader):
        options.update(
            skip_bad_images=loader.skip_bad_images,
            skipped=loader.skipped,
            check_command=loader.check_command,
        )
        return CheckedDataLoader(loader.dataset, batch_sampler=batch_sampler, **options)
    return DataLoader(loader.dataset, batch_sampler=batch_sampler, **options)


def dataset_fingerprint(dataset: Any) -> str:
    """What the training set is (image paths and labels when known), as a short hash."""
    source = getattr(dataset, "data_source", None)
    if source is None:
        return f"len={len(dataset)}"
    digest = hashlib.sha1()
    for item in source:
        digest.update(f"{getattr(item, 'impath', '')}\t{getattr(item, 'label', '')}\n".encode())
    return digest.hexdigest()


# --------------------------------------------------------------------------------- gradients
class TrainableTensors(nn.Module):
    """The trainable parameters of a run (the very Parameter objects the model uses), so DDP
    synchronises them and nothing else: the frozen CLIP stays outside DDP."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        super().__init__()
        self.tensors = nn.ParameterList(params)

    def forward(self) -> None:
        """DDP's forward only prepares the gradient reduction of the coming backward; the
        method's own forward then runs on the model as in one process."""
        return None


class StepWeight:
    """The weight of this rank's gradient in the current step (local / global images)."""

    def __init__(self, group: Any = None) -> None:
        self.group = group
        self.value = 1.0


def weighted_allreduce(
    state: StepWeight, bucket: dist.GradBucket
) -> torch.futures.Future[torch.Tensor]:
    """DDP comm hook: sum over ranks of `weight · gradient`, i.e. the gradient of the mean
    loss over the global batch even when ranks hold different numbers of images."""
    tensor = bucket.buffer()
    tensor.mul_(state.value)
    work = dist.all_reduce(tensor, group=state.group, async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


# --------------------------------------------------------------------------------- the run
class DistributedRun:
    """One process of a torchrun job: its rank, seed and the pieces it attaches to a trainer."""

    def __init__(self, info: RankInfo, device: torch.device, seed: int) -> None:
        self.rank = info.rank
        self.world_size = info.world_size
        self.local_rank = info.local_rank
        self.device = device
        self.seed = seed
        self.ddp: nn.parallel.DistributedDataParallel | None = None
        self.train_batches: ShardedTrainBatches | None = None
        self.shard_eval = True
        self._weight = StepWeight()
        self._step = 0
        self._train_error: ConfigError | None = None  # raised when training starts

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        dist.barrier()

    # -- setup ----------------------------------------------------------------------
    def attach(self, trainer: Any) -> None:
        """Shard the trainer's loaders and wrap its trainable tensors in DDP."""
        self._check_same_training_set(trainer)
        self.shard_eval = bool(getattr(trainer, "eval_shardable", True))
        if self.shard_eval:
            for name in ("val_loader", "test_loader"):
                loader = getattr(trainer, name, None)
                if loader is not None:
                    sampler = ShardedEvalBatches(
                        len(loader.dataset), loader.batch_size, self.rank, self.world_size
                    )
                    setattr(trainer, name, rebuild_loader(loader, sampler))
        params = {  # by identity: registered models may share tensors
            id(p): p
            for model in trainer._models.values()
            for p in model.parameters()
            if p.requires_grad
        }
        params = list(params.values())
        if params:  # zero-shot runs learn nothing: evaluation is all they shard
            try:
                self._shard_train_loader(trainer)
            except ConfigError as error:  # an --eval-only run never trains: fine
                self._train_error = error
            self._wrap(params)
        record = getattr(trainer, "run_record", None)
        if record is not None:
            record.meta["distributed"] = {
                "world_size": self.world_size,
                "backend": dist.get_backend(),
                "global_batch": self.train_batches.batch_size if self.train_batches else None,
                "eval_sharded": self.shard_eval,
            }

    def _shard_train_loader(self, trainer: Any) -> None:
        loader = trainer.train_loader_x
        if loader.batch_size is None:
            raise ConfigError("DDP needs a training loader with a batch size")
        self.train_batches = ShardedTrainBatches(
            len(loader.dataset),
            loader.batch_size,
            self.rank,
            self.world_size,
            self.seed,
            shuffle=isinstance(loader.sampler, RandomSampler),
            drop_last=loader.drop_last,
        )
        trainer.train_loader_x = rebuild_loader(loader, self.train_batches)
        global_batch = self.train_batches.global_sizes()[0]  # < BATCH_SIZE: a tiny split
        print(
            f"DDP: {self.world_size} processes, global batch {global_batch} "
            f"(≈{global_batch / self.world_size:.3g} images per process and step)"
        )

    def _wrap(self, params: list[nn.Parameter]) -> None:
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = nn.parallel.DistributedDataParallel(
            TrainableTensors(params),
            device_ids=device_ids,
            find_unused_parameters=False,
        )
        self.ddp.register_comm_hook(self._weight, weighted_allreduce)

    def _check_same_training_set(self, trainer: Any) -> None:
        loader = getattr(trainer, "train_loader_x", None)
        if loader is None:
            return
        fingerprints = [None] * self.world_size
        dist.all_gather_object(fingerprints, dataset_fingerprint(loader.dataset))
        if len(set(fingerprints)) > 1:
            raise ConfigError(
                "The training set differs between processes (few-shot subsets must be "
                "identical): pass the same --seed, config and data folder to every process"
            )

    # -- training -------------------------------------------------------------------
    def before_epoch(self, epoch: int) -> None:
        """Epoch `epoch`'s shuffle, and this rank's random stream for it."""
        if self._train_error is not None:
            raise self._train_error
        if self.train_batches is not None:
            self.train_batches.set_epoch(epoch)
        seed = derived_seed(self.seed, self.rank, epoch)
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
        if torch.cuda.is_available():
            torch.cuda.manual_seed_all(seed)
        self._step = 0

    def before_step(self, batch: Any) -> None:
        """Set this step's gradient weight and let DDP reduce the coming backward."""
        if self.ddp is None:
            return
        sizes = self.train_batches.global_sizes() if self.train_batches else []
        global_size = sizes[min(self._step, len(sizes) - 1)] if sizes else 1
        self._weight.value = _batch_size(batch) / global_size
        self._step += 1
        try:
            self.ddp()
        except RuntimeError as exc:
            if "finished reduction" not in str(exc):
                raise
            raise ConfigError(
                "DDP: some trainable tensors got no gradient in the previous step; every "
                "trainable tensor must take part in each training step to run under torchrun"
            ) from exc

    # -- evaluation -----------------------------------------------------------------
    def evaluate(self, evaluator: Any) -> dict[str, float]:
        """Gather every rank's predictions (when sharded), compute the metrics on rank 0
        (which prints them and writes cmat.pt) and hand them to every rank."""
        if self.shard_eval:
            shards = [None] * self.world_size
            dist.all_gather_object(shards, evaluator.shard_state())
            evaluator.load_shards(shards)
        results = [evaluator.evaluate() if self.is_main else None]
        dist.broadcast_object_list(results, src=0)
        return results[0]


def _batch_size(batch: Any) -> int:
    if isinstance(batch, Mapping) and "label" in batch:
        return len(batch["label"])
    if isinstance(batch, (list, tuple)) and batch and hasattr(batch[0], "shape"):
        return int(batch[0].shape[0])
    raise ConfigError(f"DDP cannot tell the size of a training batch of type {type(batch)}")


# --------------------------------------------------------------------------------- process state
_RUN: DistributedRun | None = None


def setup(use_cuda: bool, seed: int) -> DistributedRun | None:
    """Join the torchrun job this process belongs to (None when not under torchrun).

    Backend nccl on CUDA, gloo on CPU. `seed` < 0 (unseeded) is replaced by one drawn on
    rank 0 and shared, so that every rank samples the same few-shot subset."""
    global _RUN
    info = rank_info_from_env()
    if info is None:
        return None
    cuda = use_cuda and torch.cuda.is_available()
    if cuda:
        if info.local_rank >= torch.cuda.device_count():
            raise ConfigError(
                f"LOCAL_RANK {info.local_rank} but only {torch.cuda.device_count()} GPU(s) "
                "are visible: start at most that many processes per node"
            )
        torch.cuda.set_device(info.local_rank)
        device = torch.device("cuda", info.local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if cuda else "gloo",
            rank=info.rank,
            world_size=info.world_size,
            timeout=INIT_TIMEOUT,  # the others wait while rank 0 samples a large few-shot split
        )
    if seed < 0:
        shared = [random.SystemRandom().randrange(2**31) if info.rank == 0 else None]
        dist.broadcast_object_list(shared, src=0)
        seed = int(shared[0])
    _RUN = DistributedRun(info, device, seed)
    return _RUN


def shutdown() -> None:
    """Leave the process group (end of the run)."""
    global _RUN
    _RUN = None
    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except (RuntimeError, ValueError):  # a peer (or the store on rank 0) is already gone
            pass


def current() -> DistributedRun | None:
    return _RUN


def is_main_process() -> bool:
    """True outside torchrun and on rank 0: the process that writes files."""
    return _RUN is None or _RUN.is_main


def barrier() -> None:
    if _RUN is not None:
        _RUN.barrier()


@contextlib.contextmanager
def main_process_first() -> Iterator[None]:
    """Rank 0 runs the block first (it may write caches, e.g. few-shot splits); the others
    run it after, and read what rank 0 wrote."""
    if _RUN is not None and not _RUN.is_main:
        _RUN.barrier()
    yield
    if _RUN is not None and _RUN.is_main:
        _RUN.barrier()


def evaluate(evaluator: Any) -> dict[str, float]:
    """`evaluator.evaluate()`, over all ranks' predictions under torchrun."""
    return evaluator.evaluate() if _RUN is None else _RUN.evaluate(evaluator)


def silence_stdout() -> None:
    """Ranks other than 0 print nothing (errors still reach stderr)."""
    sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (lives as long as the run)
