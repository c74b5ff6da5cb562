"""ImageNetV2 (matched-frequency): 10 images for each of the 1000 ImageNet classes."""

from __future__ import annotations

import os

from ammpl.data.datasets.benchmark import Entry
from ammpl.data.datasets.imagenet import CLASSNAMES_HOW, ImageNetVariant
from ammpl.data.registry import DATASET_REGISTRY
from ammpl.data.splits import listdir_nohidden
from ammpl.utils.errors import DataError


@DATASET_REGISTRY.register()
class ImageNetV2(ImageNetVariant):
    """Folder `<k>` holds class k, named by line k of classnames.txt (file order, not wnid).

    Unlike the reference, which hard-codes 1000 folders, this reader iterates over the
    number of lines in classnames.txt, so a shorter class list (e.g. a test fixture) works;
    with the standard 1000-line file the result is the same.
    """

    dataset_dir = "imagenetv2"
    image_subdir = "imagenetv2-matched-frequency-format-val"
    download = (
        "imagenetv2-matched-frequency.tar.gz (ImageNetV2 release) extracted into imagenetv2/ "
        f"(imagenetv2/{image_subdir}/0..999/), and a copy of {CLASSNAMES_HOW} into imagenetv2/"
    )

    @classmethod
    def variant_entries(cls, dataset_dir: str) -> list[Entry]:
        names = list(cls.read_variant_classnames(dataset_dir).values())
        image_dir = os.path.join(dataset_dir, cls.image_subdir)
        folders = [os.path.join(image_dir, str(label)) for label in range(len(names))]
        missing = [folder for folder in folders if not os.path.isdir(folder)]
        if missing:
            raise DataError(
                f"ImageNetV2: {len(missing)} class folders are missing, e.g. {missing[0]} "
                f"(download {cls.download})"
            )
        return [
            Entry(os.path.join(folder, file), label, names[label], folder)
            for label, folder in enumerate(folders)
            for file in listdir_nohidden(folder)
        ]
