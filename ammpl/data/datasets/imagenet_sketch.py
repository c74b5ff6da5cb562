"""ImageNet-Sketch: about 50 sketches for each of the 1000 ImageNet classes."""

from __future__ import annotations

from ammpl.data.datasets.imagenet import CLASSNAMES_HOW, ImageNetVariant
from ammpl.data.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ImageNetSketch(ImageNetVariant):
    """`images/<wnid>/`, labels by sorted wnid (= the ImageNet labels)."""

    dataset_dir = "imagenet-sketch"
    image_subdir = "images"
    download = (
        "ImageNet-Sketch.zip extracted into imagenet-sketch/ with its sketch/ folder renamed to "
        f"images/ (imagenet-sketch/images/<wnid>/), and a copy of {CLASSNAMES_HOW} into "
        "imagenet-sketch/"
    )
