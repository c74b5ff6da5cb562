"""Dassl's DataManager: dataset → transforms → train / val / test loaders, plus bad-image handling.

Batches are dicts with `img`, `label`, `domain`, `impath`, `index` (Dassl's keys). An image that
cannot be decoded either stops the run with a DataError naming it, or, with
DATASET.SKIP_BAD_IMAGES, is dropped from its batch and counted (`DataManager.skipped_images`).
Worker processes never raise for a bad image: they hand a marker back with the batch and the
main process decides, so the error stays one line and the count is right with any NUM_WORKERS.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torchvision.transforms as T
from tabulate import tabulate
from torch.utils.data import DataLoader, Dataset, RandomSampler, SequentialSampler
from torch.utils.data.dataloader import default_collate

from ammpl.data.base import Datum
from ammpl.data.fewshot import shortfall_notice, shots_per_class
from ammpl.data.image_io import read_image
from ammpl.data.registry import build_dataset
from ammpl.data.transforms import build_transform, interpolation_mode
from ammpl.utils.errors import ConfigError, DataError

SAMPLERS = {"RandomSampler": RandomSampler, "SequentialSampler": SequentialSampler}
BAD_IMAGE_KEY = "_bad_images"  # batch key carrying (impath, message) pairs to the main process
BAD_KEY_MARKER = "_is_bad_image"  # set in the dict a worker returns for an undecodable image


def _option(node: Any, key: str, default: Any) -> Any:
    return node.get(key, default) if hasattr(node, "get") else getattr(node, key, default)


class SkippedImages:
    """Undecodable images seen by the loaders of one DataManager (main-process bookkeeping)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def add(self, impath: str, message: str) -> None:
        self.paths.append(impath)
        print(f"Warning: skipped ({len(self.paths)} so far): {message}")

    def __len__(self) -> int:
        return len(self.paths)


class DatasetWrapper(Dataset):
    """Reads and transforms one Datum into Dassl's batch dict.

    With `mark_bad_images` a decode failure returns a marker dict instead of raising, so the
    loader can skip or report it from the main process.
    """

    def __init__(
        self,
        cfg: Any,
        data_source: Sequence[Datum],
        transform: Callable | Sequence[Callable] | None = None,
        is_train: bool = False,
    ) -> None:
        self.cfg = cfg
        self.data_source = data_source
        self.transform = transform
        self.is_train = is_train
        self.k_tfm = _option(cfg.DATALOADER, "K_TRANSFORMS", 1) if is_train else 1
        self.return_img0 = _option(cfg.DATALOADER, "RETURN_IMG0", False)
        self.mark_bad_images = False
        if self.k_tfm > 1 and transform is None:
            raise ConfigError("DATALOADER.K_TRANSFORMS > 1 needs a transform (INPUT.NO_TRANSFORM)")
        # Fallback when no transform is given: batches must still be tensors of one size.
        to_tensor = [T.Resize(list(cfg.INPUT.SIZE), interpolation=interpolation_mode(cfg))]
        to_tensor.append(T.ToTensor())
        if "normalize" in cfg.INPUT.TRANSFORMS:
            to_tensor.append(T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD))
        self.to_tensor = T.Compose(to_tensor)

    def __len__(self) -> int:
        return len(self.data_source)

    def __getitem__(self, idx: int) -> dict:
        item = self.data_source[idx]
        try:
            img0 = read_image(item.impath)
        except DataError as exc:
            if not self.mark_bad_images:
                raise
            return {BAD_KEY_MARKER: True, "impath": item.impath, "message": str(exc)}
        output = {"label": item.label, "domain": item.domain, "impath": item.impath, "index": idx}
        if self.transform is None:
            output["img"] = self.to_tensor(img0)
        elif isinstance(self.transform, (list, tuple)):
            for position, tfm in enumerate(self.transform):
                key = "img" if position == 0 else f"img{position + 1}"
                output[key] = self._transform_image(tfm, img0)
        else:
            output["img"] = self._transform_image(self.transform, img0)
        if self.return_img0:
            output["img0"] = self.to_tensor(img0)
        return output

    def _transform_image(self, tfm: Callable, img0: Any) -> Any:
        views = [tfm(img0) for _ in range(self.k_tfm)]
        return views[0] if len(views) == 1 else views


def collate_skipping_bad(samples: list[dict]) -> dict:
    """Default collation of the good samples; bad-image markers ride along under one key."""
    good = [s for s in samples if BAD_KEY_MARKER not in s]
    bad = [(s["impath"], s["message"]) for s in samples if BAD_KEY_MARKER in s]
    batch = default_collate(good) if good else {}
    batch[BAD_IMAGE_KEY] = bad
    return batch


GENERIC_CHECK_COMMAND = "ammpl-data check --root <root> <dataset> --decode"


def check_command(cfg: Any) -> str:
    """The `ammpl-data check` line that lists every damaged image of the configured dataset
    (`check` knows every bundled reader by its DATASET.NAME); the generic form for a reader
    it cannot inventory (one registered by other code)."""
    from ammpl.data.check import checkable_names

    dataset = _option(cfg, "DATASET", None)
    name = str(_option(dataset, "NAME", "") or "") if dataset is not None else ""
    root = str(_option(dataset, "ROOT", "") or "").strip() if dataset is not None else ""
    if name not in checkable_names():
        return GENERIC_CHECK_COMMAND
    root = shlex.quote(os.path.abspath(os.path.expanduser(root))) if root else "<root>"
    return f"ammpl-data check --root {root} {name} --decode"


def describe_bad_images(
    messages: Sequence[str], shown: int = 3, command: str = GENERIC_CHECK_COMMAND
) -> str:
    """One line for the undecodable images of a batch: how many, the first few, the fixes."""
    head = "; ".join(messages[:shown]) + ("; …" if len(messages) > shown else "")
    if len(messages) > 1:
        head = f"{len(messages)} images of one batch cannot be decoded: {head}"
    return (
        f"{head} (set DATASET.SKIP_BAD_IMAGES True to skip them; `{command}` lists every "
        "damaged image)"
    )


class CheckedDataLoader(DataLoader):
    """A DataLoader that raises or skips (and records) the bad images its workers report."""

    def __init__(
        self,
        *args: Any,
        skip_bad_images: bool,
        skipped: SkippedImages,
        check_command: str = GENERIC_CHECK_COMMAND,
        **kwargs: Any,
    ):
        super().__init__(*args, **kwargs)
        self.skip_bad_images = skip_bad_images
        self.skipped = skipped
        self.check_command = check_command

    def __iter__(self) -> Iterator[dict]:
        for batch in super().__iter__():
            bad = batch.pop(BAD_IMAGE_KEY)
            if bad and not self.skip_bad_images:
                messages = [message for _, message in bad]
                raise DataError(describe_bad_images(messages, command=self.check_command))
            for impath, message in bad:
                self.skipped.add(impath, message)
            if batch:
                yield batch


def build_data_loader(
    cfg: Any,
    sampler_type: str = "SequentialSampler",
    data_source: Sequence[Datum] | None = None,
    batch_size: int = 64,
    n_domain: int = 0,
    n_ins: int = 2,
    tfm: Callable | None = None,
    is_train: bool = True,
    dataset_wrapper: type[Dataset] | None = None,
    skipped: SkippedImages | None = None,
) -> DataLoader:
    """Dassl's loader: training drops the last partial batch only if there is a full one."""
    if not data_source:
        raise DataError("Cannot build a data loader over an empty list of images")
    if sampler_type not in SAMPLERS:
        raise ConfigError(
            f"Unknown sampler {sampler_type!r} (DATALOADER.*.SAMPLER); valid: {', '.join(SAMPLERS)}"
        )
    wrapper = (dataset_wrapper or DatasetWrapper)(
        cfg, data_source, transform=tfm, is_train=is_train
    )
    if isinstance(wrapper, DatasetWrapper):
        wrapper.mark_bad_images = True
    return CheckedDataLoader(
        wrapper,
        batch_size=batch_size,
        sampler=SAMPLERS[sampler_type](data_source),
        num_workers=min(int(cfg.DATALOADER.NUM_WORKERS), os.cpu_count() or 1),
        drop_last=is_train and len(data_source) >= batch_size,
        pin_memory=torch.cuda.is_available() and bool(_option(cfg, "USE_CUDA", True)),
        collate_fn=collate_skipping_bad,
        skip_bad_images=bool(_option(cfg.DATASET, "SKIP_BAD_IMAGES", False)),
        skipped=skipped if skipped is not None else SkippedImages(),
        check_command=check_command(cfg),
    )


class DataManager:
    """Builds the dataset named in the config and its loaders (Dassl's attributes)."""

    def __init__(
        self,
        cfg: Any,
        custom_tfm_train: Callable | None = None,
        custom_tfm_test: Callable | None = None,
        dataset_wrapper: type[Dataset] | None = None,
    ) -> None:
        dataset = build_dataset(cfg)
        if not dataset.train_x:
            raise DataError(f"Dataset {cfg.DATASET.NAME} has no training images (train_x)")
        if not dataset.test:
            raise DataError(f"Dataset {cfg.DATASET.NAME} has no test images")

        if custom_tfm_train is None:
            tfm_train = build_transform(cfg, is_train=True)
        else:
            print("* Using custom transform for training")
            tfm_train = custom_tfm_train
        if custom_tfm_test is None:
            tfm_test = build_transform(cfg, is_train=False)
        else:
            print("* Using custom transform for testing")
            tfm_test = custom_tfm_test

        self._skipped = SkippedImages()
        train_cfg, test_cfg = cfg.DATALOADER.TRAIN_X, cfg.DATALOADER.TEST

        def loader(data: Sequence[Datum], node: Any, tfm: Any, is_train: bool) -> DataLoader:
            return build_data_loader(
                cfg,
                sampler_type=node.SAMPLER,
                data_source=data,
                batch_size=node.BATCH_SIZE,
                n_domain=_option(node, "N_DOMAIN", 0),
                n_ins=_option(node, "N_INS", 2),
                tfm=tfm,
                is_train=is_train,
                dataset_wrapper=dataset_wrapper,
                skipped=self._skipped,
            )

        self.train_loader_x = loader(dataset.train_x, train_cfg, tfm_train, True)
        self.train_loader_u = None
        self.val_loader = loader(dataset.val, test_cfg, tfm_test, False) if dataset.val else None
        self.test_loader = loader(dataset.test, test_cfg, tfm_test, False)

        num_shots = int(_option(cfg.DATASET, "NUM_SHOTS", -1))
        self.shots_per_class = shots_per_class(dataset.train_x, num_shots)
        test_only = dataset.train_x is dataset.test  # ImageNet variants: no training images
        notice = None if test_only else shortfall_notice(dataset.train_x, num_shots)
        if notice:
            print(notice)

        self._num_classes = dataset.num_classes
        self._num_source_domains = len(cfg.DATASET.SOURCE_DOMAINS)
        self._lab2cname = dataset.lab2cname
        self.dataset = dataset
        if _option(cfg, "VERBOSE", True):
            self.show_dataset_summary(cfg)

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def num_source_domains(self) -> int:
        return self._num_source_domains

    @property
    def lab2cname(self) -> dict[int, str]:
        return self._lab2cname

    @property
    def skipped_images(self) -> int:
        """How many undecodable images were skipped so far (DATASET.SKIP_BAD_IMAGES)."""
        return len(self._skipped)

    @property
    def skipped_image_paths(self) -> list[str]:
        return list(self._skipped.paths)

    def show_dataset_summary(self, cfg: Any) -> None:
        table = [["Dataset", cfg.DATASET.NAME]]
        if cfg.DATASET.SOURCE_DOMAINS:
            table.append(["Source", cfg.DATASET.SOURCE_DOMAINS])
        if cfg.DATASET.TARGET_DOMAINS:
            table.append(["Target", cfg.DATASET.TARGET_DOMAINS])
        table.append(["# classes", f"{self.num_classes:,}"])
        table.append(["# train_x", f"{len(self.dataset.train_x):,}"])
        if self.dataset.train_u:
            table.append(["# train_u", f"{len(self.dataset.train_u):,}"])
        if self.dataset.val:
            table.append(["# val", f"{len(self.dataset.val):,}"])
        table.append(["# test", f"{len(self.dataset.test):,}"])
        print(tabulate(table))
