"""Tiny, complete on-disk copies of the 15 benchmark layouts (DATASETS.md §11).

The generator is the ground truth the reader tests compare against: it writes every file a
reader (or its split-regeneration fallback) needs, with real decodable 32×32 JPEGs, and
returns the class names and split sizes the readers must produce. Split JSONs are written
from the generator's own lists (never by calling a reader), with the per-class counts of the
split rules, so the expected sizes hold whether or not the split file is present.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ammpl.data.datasets.eurosat import EuroSAT
from ammpl.utils import write_json

ALL_DATASETS: tuple[str, ...] = (
    "ImageNet",
    "Caltech101",
    "OxfordPets",
    "StanfordCars",
    "OxfordFlowers",
    "Food101",
    "FGVCAircraft",
    "SUN397",
    "DescribableTextures",
    "EuroSAT",
    "UCF101",
    "ImageNetV2",
    "ImageNetSketch",
    "ImageNetA",
    "ImageNetR",
)

IMAGE_SIZE = 32


@dataclass
class FixtureInfo:
    """What a reader must produce from the fixture of one dataset (full splits, all classes)."""

    name: str
    folder: str
    classnames: list[str]
    sizes: dict[str, int]
    split_file: str | None = None
    per_class: dict[str, int] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)


class _JpegPainter:
    """Writes flat-colour-plus-noise JPEGs; one colour per class so images are distinct."""

    def __init__(self, seed: int = 0) -> None:
        self._rng = np.random.default_rng(seed)

    def encode(self, class_index: int) -> bytes:
        hue = np.array([(37 * class_index) % 256, (91 * class_index + 60) % 256, 128], np.int16)
        noise = self._rng.integers(-12, 13, size=(IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.int16)
        pixels = np.clip(hue + noise, 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=90)
        return buffer.getvalue()

    def write(self, path: Path, class_index: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.encode(class_index))


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{line}\n" for line in lines))


def _folder_split_counts(n: int) -> tuple[int, int, int]:
    """Rule 4.2 / 4.3 counts (Python's half-to-even round)."""
    n_train, n_val = round(0.5 * n), round(0.2 * n)
    return n_train, n_val, n - n_train - n_val


def _trainval_counts(n: int) -> tuple[int, int, int]:
    """(train, val, test) for the rule-4.1 datasets: a test list, the rest split 80/20."""
    n_test = max(1, n // 5)
    n_trainval = n - n_test
    n_val = round(0.2 * n_trainval)
    return n_trainval - n_val, n_val, n_test


def _pick(pool: Sequence[str], n: int, synth: Callable[[int], str]) -> list[str]:
    """The first n names of a pool of real names, continued with synthetic ones."""
    return list(pool[:n]) + [synth(i) for i in range(len(pool), n)]


SplitEntries = dict[str, list[list]]


def _write_split(path: Path, entries: SplitEntries) -> None:
    write_json({key: entries[key] for key in ("train", "val", "test")}, path)


def _sizes(entries: SplitEntries) -> dict[str, int]:
    return {key: len(entries[key]) for key in ("train", "val", "test")}


def _info(name, folder, classnames, entries, split_file, counts) -> FixtureInfo:
    per_class = dict(zip(("train", "val", "test"), counts))
    return FixtureInfo(name, folder, classnames, _sizes(entries), split_file, per_class)


# --------------------------------------------------------------------------- ImageNet family

_IMAGENET_SYNSETS = (
    ("n01440764", "tench"),
    ("n01443537", "goldfish"),
    ("n01484850", "great white shark"),
    ("n01491361", "tiger shark"),
    ("n01494475", "hammerhead shark"),
    ("n01496331", "electric ray"),
    ("n01498041", "stingray"),
    ("n01514668", "rooster"),
    ("n01514859", "hen"),
    ("n01518878", "ostrich"),
)


def _synsets(n: int) -> list[tuple[str, str]]:
    extra = [(f"n{99000000 + i:08d}", f"synthetic class {i}") for i in range(10, n)]
    return list(_IMAGENET_SYNSETS[:n]) + extra


def _write_classnames(ds_dir: Path, synsets: Sequence[tuple[str, str]]) -> None:
    _write_lines(ds_dir / "classnames.txt", (f"{wnid} {name}" for wnid, name in synsets))


def _make_imagenet(ds_dir: Path, n_classes: int, n_per_class: int, paint, split) -> FixtureInfo:
    synsets = _synsets(n_classes)
    _write_classnames(ds_dir, synsets)
    n_val = max(1, n_per_class // 2)
    for label, (wnid, _) in enumerate(synsets):
        for i in range(n_per_class):
            paint.write(ds_dir / "images" / "train" / wnid / f"{wnid}_{i + 1}.JPEG", label)
        for i in range(n_val):
            name = f"ILSVRC2012_val_{label * n_val + i + 1:08d}.JPEG"
            paint.write(ds_dir / "images" / "val" / wnid / name, label)
    sizes = {"train": n_classes * n_per_class, "val": n_classes * n_val}
    sizes["test"] = sizes["val"]
    per_class = {"train": n_per_class, "val": n_val, "test": n_val}
    return FixtureInfo("ImageNet", "imagenet", [n for _, n in synsets], sizes, None, per_class)


def _test_only(name, folder, classnames, n_per_class) -> FixtureInfo:
    n = len(classnames) * n_per_class
    sizes = {"train": n, "val": 0, "test": n}
    per_class = {"train": n_per_class, "val": 0, "test": n_per_class}
    return FixtureInfo(name, folder, classnames, sizes, None, per_class)


IMAGENET_CLASSES = 1000  # ImageNetV2's folders 0 … 999 and the lines of classnames.txt


def _make_imagenetv2(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    """The original reader lists the folders 0 … 999 and names them by the 1000 lines of
    classnames.txt, so both are always complete; only the first `n_classes` folders hold
    images (an empty folder gives no image and no class, to the original reader as to ours),
    which keeps the fixture small and its classes those of the ImageNet fixture."""
    _write_classnames(ds_dir, _synsets(IMAGENET_CLASSES))
    image_dir = ds_dir / "imagenetv2-matched-frequency-format-val"
    for label in range(IMAGENET_CLASSES):
        (image_dir / str(label)).mkdir(parents=True, exist_ok=True)
    for label in range(n_classes):
        for i in range(n_per_class):
            paint.write(image_dir / str(label) / f"{label:04d}{i:04d}abcdef.jpeg", label)
    names = [n for _, n in _synsets(n_classes)]
    return _test_only("ImageNetV2", "imagenetv2", names, n_per_class)


def _make_imagenet_sketch(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    synsets = _synsets(n_classes)
    _write_classnames(ds_dir, synsets)
    for label, (wnid, _) in enumerate(synsets):
        for i in range(n_per_class):
            paint.write(ds_dir / "images" / wnid / f"sketch_{i + 1}.JPEG", label)
    return _test_only("ImageNetSketch", "imagenet-sketch", [n for _, n in synsets], n_per_class)


def _make_imagenet_subset(name, folder, sub, ds_dir, n_classes, n_per_class, paint):
    """A/R: classnames.txt lists 2·n synsets; only every other one has a folder."""
    synsets = _synsets(2 * n_classes)
    _write_classnames(ds_dir, synsets)
    present = sorted(synsets[1::2][:n_classes])
    image_dir = ds_dir / sub
    for label, (wnid, _) in enumerate(present):
        for i in range(n_per_class):
            paint.write(image_dir / wnid / f"{sub}_{wnid}_{i + 1}.jpg", label)
    _write_lines(image_dir / "README.txt", [f"{name} fixture: {n_classes} synsets."])
    return _test_only(name, folder, [n for _, n in present], n_per_class)


def _make_imagenet_a(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    return _make_imagenet_subset(
        "ImageNetA", "imagenet-adversarial", "imagenet-a", ds_dir, n_classes, n_per_class, paint
    )


def _make_imagenet_r(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    return _make_imagenet_subset(
        "ImageNetR", "imagenet-rendition", "imagenet-r", ds_dir, n_classes, n_per_class, paint
    )


# --------------------------------------------------------------------------- folder-split sets


def _make_folder_split(
    name: str,
    folder: str,
    image_sub: str,
    folders: list[str],
    renames: dict[str, str],
    file_name: Callable[[str, int], str],
    ds_dir: Path,
    n_per_class: int,
    paint: _JpegPainter,
    split: bool,
    ignored: Sequence[str] = (),
) -> FixtureInfo:
    """Rule-4.2 datasets: images/<category>/<file>, labels by case-sensitive folder sort."""
    image_dir = ds_dir / image_sub
    counts = _folder_split_counts(n_per_class)
    entries: SplitEntries = {"train": [], "val": [], "test": []}
    ordered = sorted(folders)
    for label, category in enumerate(ordered):
        classname = renames.get(category, category)
        files = [file_name(category, i + 1) for i in range(n_per_class)]
        for file in files:
            paint.write(image_dir / category / file, label)
        bounds = np.cumsum((0,) + counts)
        for key, start, stop in zip(("train", "val", "test"), bounds[:-1], bounds[1:]):
            entries[key] += [[f"{category}/{f}", label, classname] for f in files[start:stop]]
    for category in ignored:
        paint.write(image_dir / category / file_name(category, 1), 0)
    split_file = f"split_zhou_{name}.json"
    if split:
        _write_split(ds_dir / split_file, entries)
    classnames = [renames.get(c, c) for c in ordered]
    return _info(name, folder, classnames, entries, split_file, counts)


_CALTECH_RENAMES = {
    "airplanes": "airplane",
    "Faces": "face",
    "Leopards": "leopard",
    "Motorbikes": "motorbike",
}


def _make_caltech101(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    pool = ["Faces", "Leopards", "airplanes", "accordion", "anchor", "Motorbikes", "ant"]
    folders = _pick(pool, n_classes, lambda i: f"category_{i:03d}")
    return _make_folder_split(
        "Caltech101",
        "caltech-101",
        "101_ObjectCategories",
        folders,
        _CALTECH_RENAMES,
        lambda _, i: f"image_{i:04d}.jpg",
        ds_dir,
        n_per_class,
        paint,
        split,
        ignored=("BACKGROUND_Google", "Faces_easy"),
    )


def _make_food101(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    pool = ["apple_pie", "baby_back_ribs", "baklava", "beef_carpaccio", "beef_tartare"]
    folders = _pick(pool, n_classes, lambda i: f"synthetic_dish_{i:03d}")
    return _make_folder_split(
        "Food101",
        "food-101",
        "images",
        folders,
        {},
        lambda category, i: f"{100000 * (len(category) % 9 + 1) + i}.jpg",
        ds_dir,
        n_per_class,
        paint,
        split,
    )


def _make_dtd(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    pool = ["banded", "polka-dotted", "blotchy", "zigzagged", "braided", "bubbly"]
    folders = _pick(pool, n_classes, lambda i: f"texture{i:03d}")
    return _make_folder_split(
        "DescribableTextures",
        "dtd",
        "images",
        folders,
        {},
        lambda category, i: f"{category}_{i:04d}.jpg",
        ds_dir,
        n_per_class,
        paint,
        split,
    )


def _make_eurosat(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    pool = ["AnnualCrop", "Forest", "Pasture", "SeaLake", "River", "Highway", "Industrial"]
    pool += ["HerbaceousVegetation", "PermanentCrop", "Residential"]
    folders = _pick(pool, n_classes, lambda i: f"Synthetic{i:03d}")
    return _make_folder_split(
        "EuroSAT",
        "eurosat",
        "2750",
        folders,
        EuroSAT.renames,
        lambda category, i: f"{category}_{i}.jpg",
        ds_dir,
        n_per_class,
        paint,
        split,
    )


# --------------------------------------------------------------------------- 80/20 sets


def _trainval_entries(per_class_items, counts) -> SplitEntries:
    """Split each class's items (label order) into train/val/test with the given counts."""
    n_train, n_val, _ = counts
    entries: SplitEntries = {"train": [], "val": [], "test": []}
    for items in per_class_items:
        entries["train"] += items[:n_train]
        entries["val"] += items[n_train : n_train + n_val]
        entries["test"] += items[n_train + n_val :]
    return entries


def _make_oxford_pets(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    pool = [
        ("Abyssinian", 1),
        ("american_bulldog", 2),
        ("Bengal", 1),
        ("British_Shorthair", 1),
        ("yorkshire_terrier", 2),
        ("beagle", 2),
        ("Birman", 1),
    ]
    breeds = _pick(pool, n_classes, lambda i: (f"synthetic_breed_{i:03d}", 2))
    breeds.sort(key=lambda breed: breed[0].lower())
    counts = _trainval_counts(n_per_class)
    n_trainval = counts[0] + counts[1]
    species_counter = {1: 0, 2: 0}
    trainval_lines, test_lines, per_class_items = [], [], []
    for label, (breed, species) in enumerate(breeds):
        species_counter[species] += 1
        classname = breed.lower()
        stems = [f"{breed}_{i + 1}" for i in range(n_per_class)]
        for stem in stems:
            paint.write(ds_dir / "images" / f"{stem}.jpg", label)
        lines = [f"{stem} {label + 1} {species} {species_counter[species]}" for stem in stems]
        trainval_lines += lines[:n_trainval]
        test_lines += lines[n_trainval:]
        per_class_items.append([[f"{stem}.jpg", label, classname] for stem in stems])
    _write_lines(ds_dir / "annotations" / "trainval.txt", trainval_lines)
    _write_lines(ds_dir / "annotations" / "test.txt", test_lines)
    entries = _trainval_entries(per_class_items, counts)
    split_file = "split_zhou_OxfordPets.json"
    if split:
        _write_split(ds_dir / split_file, entries)
    classnames = [breed.lower() for breed, _ in breeds]
    return _info("OxfordPets", "oxford_pets", classnames, entries, split_file, counts)


_CAR_NAMES = (
    "AM General Hummer SUV 2000",
    "Acura RL Sedan 2012",
    "Acura TL Sedan 2012",
    "Acura TL Type-S 2008",
    "Acura TSX Sedan 2012",
    "Acura Integra Type R 2001",
)


def _struct_annotations(records: list[tuple[str, int]]):
    """A 1×N MATLAB struct array with the devkit's fields (bbox values are dummies)."""
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    array = np.zeros((1, len(records)), dtype=[(name, "O") for name in fields])
    for i, (fname, class_id) in enumerate(records):
        for corner in fields[:4]:
            array[0, i][corner] = np.array([[1 if corner.endswith("1") else IMAGE_SIZE]])
        array[0, i]["class"] = np.array([[class_id]], dtype=np.uint8)
        array[0, i]["fname"] = fname
    return array


def _make_stanford_cars(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    from scipy.io import savemat

    names = _pick(_CAR_NAMES, n_classes, lambda i: f"Synthetic Model {i} 20{i % 100:02d}")
    counts = _trainval_counts(n_per_class)
    n_trainval = counts[0] + counts[1]
    train_records, test_records = [], []
    per_class_items: list[list] = [[] for _ in names]
    # Files are numbered round-robin over classes, as the real devkit mixes classes.
    for i in range(n_per_class):
        for label, name in enumerate(names):
            classname = f"{name.split(' ')[-1]} {' '.join(name.split(' ')[:-1])}"
            is_train = i < n_trainval
            records = train_records if is_train else test_records
            fname = f"{len(records) + 1:05d}.jpg"
            records.append((fname, label + 1))
            sub = "cars_train" if is_train else "cars_test"
            paint.write(ds_dir / sub / fname, label)
            per_class_items[label].append([f"{sub}/{fname}", label, classname])
    (ds_dir / "devkit").mkdir(parents=True, exist_ok=True)
    savemat(
        ds_dir / "devkit" / "cars_train_annos.mat",
        {"annotations": _struct_annotations(train_records)},
    )
    savemat(
        ds_dir / "cars_test_annos_withlabels.mat",
        {"annotations": _struct_annotations(test_records)},
    )
    cell = np.empty((1, len(names)), dtype=object)
    cell[0, :] = names
    savemat(ds_dir / "devkit" / "cars_meta.mat", {"class_names": cell})
    entries = _trainval_entries(per_class_items, counts)
    split_file = "split_zhou_StanfordCars.json"
    if split:
        _write_split(ds_dir / split_file, entries)
    classnames = [f"{n.split(' ')[-1]} {' '.join(n.split(' ')[:-1])}" for n in names]
    return _info("StanfordCars", "stanford_cars", classnames, entries, split_file, counts)


def _make_sun397(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    pool = [
        "a/abbey",
        "a/airplane_cabin",
        "a/apartment_building/outdoor",
        "b/balcony/interior",
        "b/bamboo_forest",
        "c/canyon",
    ]
    categories = _pick(pool, n_classes, lambda i: f"s/synthetic_scene_{i:03d}")
    counts = _trainval_counts(n_per_class)
    n_trainval = counts[0] + counts[1]
    train_lines, test_lines, per_class_items = [], [], []
    for label, category in enumerate(categories):
        classname = " ".join(reversed(category.split("/")[1:]))
        files = [f"sun_{label:03d}{chr(97 + i % 26)}{i:05d}.jpg" for i in range(n_per_class)]
        for file in files:
            paint.write(ds_dir / "SUN397" / category / file, label)
        train_lines += [f"/{category}/{file}" for file in files[:n_trainval]]
        test_lines += [f"/{category}/{file}" for file in files[n_trainval:]]
        per_class_items.append([[f"{category}/{file}", label, classname] for file in files])
    _write_lines(ds_dir / "ClassName.txt", (f"/{category}" for category in categories))
    _write_lines(ds_dir / "Training_01.txt", train_lines)
    _write_lines(ds_dir / "Testing_01.txt", test_lines)
    entries = _trainval_entries(per_class_items, counts)
    split_file = "split_zhou_SUN397.json"
    if split:
        _write_split(ds_dir / split_file, entries)
    classnames = [" ".join(reversed(c.split("/")[1:])) for c in categories]
    return _info("SUN397", "sun397", classnames, entries, split_file, counts)


def _make_ucf101(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    pool = ["ApplyEyeMakeup", "YoYo", "HandstandPushups", "BlowDryHair", "Haircut", "Hammering"]
    actions = _pick(pool, n_classes, lambda i: f"SyntheticAction{i:03d}")
    actions.sort(key=str.lower)
    counts = _trainval_counts(n_per_class)
    n_trainval = counts[0] + counts[1]
    video_stem = {"HandstandPushups": "HandStandPushups"}
    train_lines, test_lines, per_class_items = [], [], []
    for label, action in enumerate(actions):
        renamed = "_".join(re.findall("[A-Z][^A-Z]*", action))
        videos = [
            f"v_{video_stem.get(action, action)}_g{i // 2 + 1:02d}_c{i % 2 + 1:02d}"
            for i in range(n_per_class)
        ]
        for video in videos:
            paint.write(ds_dir / "UCF-101-midframes" / renamed / f"{video}.jpg", label)
        train_lines += [f"{action}/{video}.avi {label + 1}" for video in videos[:n_trainval]]
        test_lines += [f"{action}/{video}.avi" for video in videos[n_trainval:]]
        per_class_items.append([[f"{renamed}/{video}.jpg", label, renamed] for video in videos])
    lists = ds_dir / "ucfTrainTestlist"
    _write_lines(lists / "classInd.txt", (f"{i + 1} {a}" for i, a in enumerate(actions)))
    _write_lines(lists / "trainlist01.txt", train_lines)
    _write_lines(lists / "testlist01.txt", test_lines)
    entries = _trainval_entries(per_class_items, counts)
    split_file = "split_zhou_UCF101.json"
    if split:
        _write_split(ds_dir / split_file, entries)
    classnames = ["_".join(re.findall("[A-Z][^A-Z]*", a)) for a in actions]
    return _info("UCF101", "ucf101", classnames, entries, split_file, counts)


# --------------------------------------------------------------------------- Flowers, Aircraft

_FLOWER_NAMES = (
    "pink primrose",
    "hard-leaved pocket orchid",
    "canterbury bells",
    "sweet pea",
    "english marigold",
    "tiger lily",
    "moon orchid",
)


def _make_oxford_flowers(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    from scipy.io import savemat

    names = _pick(_FLOWER_NAMES, n_classes, lambda i: f"synthetic flower {i}")
    counts = _folder_split_counts(n_per_class)
    # Image i+1 gets label (i mod C)+1: classes interleave as in the real label vector.
    labels = np.tile(np.arange(1, n_classes + 1), n_per_class)
    per_class_items: list[list] = [[] for _ in names]
    for i, label in enumerate(labels):
        file = f"image_{i + 1:05d}.jpg"
        paint.write(ds_dir / "jpg" / file, int(label) - 1)
        per_class_items[label - 1].append([file, int(label) - 1, names[label - 1]])
    savemat(ds_dir / "imagelabels.mat", {"labels": labels.reshape(1, -1).astype(np.uint8)})
    write_json({str(i + 1): name for i, name in enumerate(names)}, ds_dir / "cat_to_name.json")
    entries = _trainval_entries(per_class_items, counts)
    split_file = "split_zhou_OxfordFlowers.json"
    if split:
        _write_split(ds_dir / split_file, entries)
    return _info("OxfordFlowers", "oxford_flowers", list(names), entries, split_file, counts)


def _make_fgvc_aircraft(ds_dir, n_classes, n_per_class, paint, split) -> FixtureInfo:
    pool = ["707-320", "A300B4", "BAE 146-200", "F/A-18", "Cessna 172", "DC-3", "727-200"]
    variants = _pick(pool, n_classes, lambda i: f"Synthetic {i:03d}")
    n_val = n_test = n_per_class // 3
    counts = (n_per_class - n_val - n_test, n_val, n_test)
    bounds = np.cumsum((0,) + counts)
    lines: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for label, variant in enumerate(variants):
        ids = [f"{1000000 + 1000 * label + i:07d}" for i in range(n_per_class)]
        for image_id in ids:
            paint.write(ds_dir / "images" / f"{image_id}.jpg", label)
        for key, start, stop in zip(("train", "val", "test"), bounds[:-1], bounds[1:]):
            lines[key] += [f"{image_id} {variant}" for image_id in ids[start:stop]]
    _write_lines(ds_dir / "variants.txt", variants)
    for key, key_lines in lines.items():
        _write_lines(ds_dir / f"images_variant_{key}.txt", key_lines)
    sizes = {key: len(key_lines) for key, key_lines in lines.items()}
    per_class = dict(zip(("train", "val", "test"), counts))
    return FixtureInfo("FGVCAircraft", "fgvc_aircraft", list(variants), sizes, None, per_class)


# --------------------------------------------------------------------------- entry point

_MAKERS: dict[str, tuple[str, Callable[..., FixtureInfo]]] = {
    "ImageNet": ("imagenet", _make_imagenet),
    "Caltech101": ("caltech-101", _make_caltech101),
    "OxfordPets": ("oxford_pets", _make_oxford_pets),
    "StanfordCars": ("stanford_cars", _make_stanford_cars),
    "OxfordFlowers": ("oxford_flowers", _make_oxford_flowers),
    "Food101": ("food-101", _make_food101),
    "FGVCAircraft": ("fgvc_aircraft", _make_fgvc_aircraft),
    "SUN397": ("sun397", _make_sun397),
    "DescribableTextures": ("dtd", _make_dtd),
    "EuroSAT": ("eurosat", _make_eurosat),
    "UCF101": ("ucf101", _make_ucf101),
    "ImageNetV2": ("imagenetv2", _make_imagenetv2),
    "ImageNetSketch": ("imagenet-sketch", _make_imagenet_sketch),
    "ImageNetA": ("imagenet-adversarial", _make_imagenet_a),
    "ImageNetR": ("imagenet-rendition", _make_imagenet_r),
}


def make_fixture(
    root: str | os.PathLike,
    names: Sequence[str] = ALL_DATASETS,
    n_classes: int = 5,
    n_per_class: int = 10,
    with_split_files: bool = True,
) -> dict[str, FixtureInfo]:
    """Write tiny copies of `names` under `root`; return what each reader must produce.

    Raises ValueError for an unknown name or sizes too small for the split rules
    (every class needs a non-empty train, val and test part).
    """
    unknown = [name for name in names if name not in _MAKERS]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {list(ALL_DATASETS)}")
    if n_classes < 2 or n_per_class < 4:
        raise ValueError("make_fixture needs n_classes >= 2 and n_per_class >= 4")
    paint = _JpegPainter()
    infos = {}
    for name in names:
        folder, maker = _MAKERS[name]
        ds_dir = Path(root).expanduser().absolute() / folder
        ds_dir.mkdir(parents=True, exist_ok=True)
        infos[name] = maker(ds_dir, n_classes, n_per_class, paint, with_split_files)
    return infos
