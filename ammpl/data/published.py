"""The published class and image counts of the 15 benchmarks (DATASETS.md, table 1).

`ammpl-data check` compares a data root against them, so fake, partial or re-split data is
reported as such before a long run produces numbers that cannot be compared with papers.
ImageNet has no separate val set (val = test), the four variants are test-only.
"""

from __future__ import annotations

from typing import NamedTuple


class Published(NamedTuple):
    classes: int
    sizes: dict[str, int]  # split name → images


PUBLISHED: dict[str, Published] = {
    "ImageNet": Published(1000, {"train": 1_281_167, "test": 50_000}),
    "Caltech101": Published(100, {"train": 4_128, "val": 1_649, "test": 2_465}),
    "OxfordPets": Published(37, {"train": 2_944, "val": 736, "test": 3_669}),
    "StanfordCars": Published(196, {"train": 6_509, "val": 1_635, "test": 8_041}),
    "OxfordFlowers": Published(102, {"train": 4_093, "val": 1_633, "test": 2_463}),
    "Food101": Published(101, {"train": 50_500, "val": 20_200, "test": 30_300}),
    "FGVCAircraft": Published(100, {"train": 3_334, "val": 3_333, "test": 3_333}),
    "SUN397": Published(397, {"train": 15_880, "val": 3_970, "test": 19_850}),
    "DescribableTextures": Published(47, {"train": 2_820, "val": 1_128, "test": 1_692}),
    "EuroSAT": Published(10, {"train": 13_500, "val": 5_400, "test": 8_100}),
    "UCF101": Published(101, {"train": 7_639, "val": 1_898, "test": 3_783}),
    "ImageNetV2": Published(1000, {"test": 10_000}),
    "ImageNetSketch": Published(1000, {"test": 50_889}),
    "ImageNetA": Published(200, {"test": 7_500}),
    "ImageNetR": Published(200, {"test": 30_000}),
}
