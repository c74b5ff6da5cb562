"""StanfordCars: 196 car models, class names with the model year moved to the front."""

from __future__ import annotations

import os

from ammpl.data.datasets.benchmark import Entry
from ammpl.data.datasets.oxford_pets import TrainvalSplitDataset
from ammpl.data.registry import DATASET_REGISTRY
from ammpl.utils.errors import DataError


def load_mat_variable(path: str, key: str):
    """`loadmat(path)[key]`, with a DataError naming the file when it is unusable."""
    from scipy.io import loadmat

    try:
        return loadmat(path)[key]
    except KeyError:
        raise DataError(f"MAT file '{path}' has no variable '{key}'") from None
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"Cannot read MAT file '{path}': {exc}") from None


def year_first(devkit_name: str) -> str:
    """`AM General Hummer SUV 2000` → `2000 AM General Hummer SUV`."""
    words = devkit_name.split(" ")
    return " ".join([words[-1]] + words[:-1])


def car_entries(annos_path: str, image_dir: str, classnames: list[str]) -> list[Entry]:
    """Records of a devkit annotation struct array (`fname`, 1-based `class`)."""
    entries = []
    for index, record in enumerate(load_mat_variable(annos_path, "annotations")[0]):
        try:
            fname, label = str(record["fname"][0]), int(record["class"][0, 0]) - 1
            if not 0 <= label < len(classnames):  # class 0 would wrap to the last name
                raise IndexError(label)
            classname = classnames[label]
        except (ValueError, IndexError, TypeError):
            raise DataError(
                f"{annos_path}: record {index + 1} lacks a file name or a class id in 1.."
                f"{len(classnames)}"
            ) from None
        entries.append(
            Entry(os.path.join(image_dir, fname), label, classname, annos_path, index + 1)
        )
    return entries


@DATASET_REGISTRY.register()
class StanfordCars(TrainvalSplitDataset):
    """The split file's paths are relative to the dataset folder (`cars_train/00001.jpg`);
    CoOp's val split is carved out of cars_train."""

    dataset_dir = "stanford_cars"
    image_subdir = ""
    split_file = "split_zhou_StanfordCars.json"
    fallback_files = (
        "cars_train",
        "cars_test",
        "devkit/cars_train_annos.mat",
        "devkit/cars_meta.mat",
        "cars_test_annos_withlabels.mat",
    )
    download = (
        "cars_train.tgz, cars_test.tgz, car_devkit.tgz and cars_test_annos_withlabels.mat "
        "(Stanford Cars) into stanford_cars/, and split_zhou_StanfordCars.json into "
        "stanford_cars/"
    )

    @classmethod
    def annotation_lists(cls, dataset_dir: str) -> tuple[list[Entry], list[Entry]]:
        meta = load_mat_variable(
            os.path.join(dataset_dir, "devkit", "cars_meta.mat"), "class_names"
        )
        classnames = [year_first(str(name[0])) for name in meta[0]]
        trainval = car_entries(
            os.path.join(dataset_dir, "devkit", "cars_train_annos.mat"),
            os.path.join(dataset_dir, "cars_train"),
            classnames,
        )
        test = car_entries(
            os.path.join(dataset_dir, "cars_test_annos_withlabels.mat"),
            os.path.join(dataset_dir, "cars_test"),
            classnames,
        )
        return trainval, test
