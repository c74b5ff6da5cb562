"""Dassl's `build_transform`: the train / test image pipelines chosen by INPUT.TRANSFORMS.

The supported names are the ones the prompt-learning configs use plus a few plain ones
(random_crop, center_crop, resize); each prints the line Dassl prints so logs read the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torchvision.transforms as T
from torchvision.transforms import InterpolationMode

from ammpl.utils.errors import ConfigError

INTERPOLATION_MODES = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST,
}

AVAILABLE_TRANSFORMS = (
    "random_resized_crop",
    "random_crop",
    "random_flip",
    "resize",
    "center_crop",
    "randaugment",
    "normalize",
)


def interpolation_mode(cfg: Any) -> InterpolationMode:
    name = cfg.INPUT.INTERPOLATION
    if name not in INTERPOLATION_MODES:
        raise ConfigError(
            f"INPUT.INTERPOLATION must be one of {', '.join(INTERPOLATION_MODES)}; got {name!r}"
        )
    return INTERPOLATION_MODES[name]


def _check_choices(choices: Sequence[str]) -> None:
    for choice in choices:
        if choice not in AVAILABLE_TRANSFORMS:
            raise ConfigError(
                f"Unknown transform {choice!r} in INPUT.TRANSFORMS; "
                f"valid: {', '.join(AVAILABLE_TRANSFORMS)}"
            )


def _normalize(cfg: Any) -> T.Normalize:
    print(f"+ normalization (mean={cfg.INPUT.PIXEL_MEAN}, std={cfg.INPUT.PIXEL_STD})")
    return T.Normalize(mean=cfg.INPUT.PIXEL_MEAN, std=cfg.INPUT.PIXEL_STD)


def _build_train(cfg: Any, choices: Sequence[str], target_size: str) -> T.Compose:
    print("Building transform_train")
    interp = interpolation_mode(cfg)
    input_size = list(cfg.INPUT.SIZE)
    steps: list = []
    crops = "random_crop" in choices or "random_resized_crop" in choices
    if not crops or "resize" in choices:
        print(f"+ resize to {target_size}")
        steps.append(T.Resize(input_size, interpolation=interp))
    if "random_crop" in choices:
        padding = cfg.INPUT.CROP_PADDING
        print(f"+ random crop (padding = {padding})")
        steps.append(T.RandomCrop(input_size, padding=padding))
    if "random_resized_crop" in choices:
        scale = tuple(cfg.INPUT.RRCROP_SCALE)
        print(f"+ random resized crop (size={tuple(input_size)}, scale={scale})")
        steps.append(T.RandomResizedCrop(input_size, scale=scale, interpolation=interp))
    if "center_crop" in choices:
        print(f"+ {target_size} center crop")
        steps.append(T.CenterCrop(input_size))
    if "random_flip" in choices:
        print("+ random flip")
        steps.append(T.RandomHorizontalFlip())
    if "randaugment" in choices:  # CoPrompt's views; torchvision's ops (Dassl has its own)
        n, m = cfg.INPUT.RANDAUGMENT_N, cfg.INPUT.RANDAUGMENT_M
        print(f"+ randaugment (n={n}, m={m})")
        steps.append(T.RandAugment(num_ops=n, magnitude=m))
    print("+ to torch tensor of range [0, 1]")
    steps.append(T.ToTensor())
    if "normalize" in choices:
        steps.append(_normalize(cfg))
    return T.Compose(steps)


def _build_test(cfg: Any, choices: Sequence[str], target_size: str) -> T.Compose:
    print("Building transform_test")
    interp = interpolation_mode(cfg)
    input_size = list(cfg.INPUT.SIZE)
    print(f"+ resize the smaller edge to {max(input_size)}")
    steps: list = [T.Resize(max(input_size), interpolation=interp)]
    print(f"+ {target_size} center crop")
    steps.append(T.CenterCrop(input_size))
    print("+ to torch tensor of range [0, 1]")
    steps.append(T.ToTensor())
    if "normalize" in choices:
        steps.append(_normalize(cfg))
    return T.Compose(steps)


def build_transform(
    cfg: Any, is_train: bool = True, choices: Sequence[str] | None = None
) -> T.Compose | None:
    """The train or test pipeline; None when INPUT.NO_TRANSFORM is set.

    Train: Resize(SIZE) unless a random crop is chosen ('resize' forces it first), then the
    chosen crops / flip, ToTensor, Normalize. Test: Resize(max(SIZE)) of the shorter edge,
    CenterCrop(SIZE), ToTensor, Normalize if chosen.
    """
    if cfg.INPUT.NO_TRANSFORM:
        print("Note: no transform is applied!")
        return None
    choices = list(cfg.INPUT.TRANSFORMS if choices is None else choices)
    _check_choices(choices)
    target_size = f"{cfg.INPUT.SIZE[0]}x{cfg.INPUT.SIZE[1]}"
    build = _build_train if is_train else _build_test
    return build(cfg, choices, target_size)
