"""ImageNet-R: renditions (art, cartoons, ...) of 200 ImageNet classes."""

from __future__ import annotations

from ammpl.data.datasets.imagenet import CLASSNAMES_HOW, ImageNetVariant
from ammpl.data.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNetR(ImageNetVariant):
    """Like ImageNet-A: present wnid folders labelled 0..199 by sorted wnid, 200-way."""

    dataset_dir = "imagenet-rendition"
    image_subdir = "imagenet-r"
    download = (
        "imagenet-r.tar extracted into imagenet-rendition/ (imagenet-rendition/imagenet-r/"
        f"<wnid>/), and a copy of {CLASSNAMES_HOW} into imagenet-rendition/"
    )
