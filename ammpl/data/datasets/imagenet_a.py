"""ImageNet-A: natural adversarial examples of 200 ImageNet classes."""

from __future__ import annotations

from ammpl.data.datasets.imagenet import CLASSNAMES_HOW, ImageNetVariant
from ammpl.data.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNetA(ImageNetVariant):
    """The classes are whatever wnid folders exist, labelled 0..199 by sorted wnid (a 200-way
    classifier, names from the 1000-line classnames.txt); README.txt is not a class."""

    dataset_dir = "imagenet-adversarial"
    image_subdir = "imagenet-a"
    download = (
        "imagenet-a.tar extracted into imagenet-adversarial/ (imagenet-adversarial/imagenet-a/"
        f"<wnid>/), and a copy of {CLASSNAMES_HOW} into imagenet-adversarial/"
    )
