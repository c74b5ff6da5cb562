"""`ammpl-data check`: is each dataset where the readers expect it, complete and readable?

The check asks each reader for its inventory (every image it would load, with the split or
list file and line that names it) and tests those paths, optionally decoding every image.
It never builds a dataset and writes nothing, so it is safe on read-only data.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ammpl.data.datasets.benchmark import (
    MISSING_SHOWN,
    Entry,
    ReaderInfo,
    describe_missing,
    missing_entries,
)
from ammpl.data.image_io import read_image
from ammpl.data.published import PUBLISHED
from ammpl.data.registry import DATASET_REGISTRY
from ammpl.utils.errors import ConfigError, DataError
from ammpl.utils.registry import closest_name

# Registered reader name → dataset config stem (configs/datasets/<stem>.yaml), table order.
DATASET_STEMS: dict[str, str] = {
    "ImageNet": "imagenet",
    "Caltech101": "caltech101",
    "OxfordPets": "oxford_pets",
    "StanfordCars": "stanford_cars",
    "OxfordFlowers": "oxford_flowers",
    "Food101": "food101",
    "FGVCAircraft": "fgvc_aircraft",
    "SUN397": "sun397",
    "DescribableTextures": "dtd",
    "EuroSAT": "eurosat",
    "UCF101": "ucf101",
    "ImageNetV2": "imagenetv2",
    "ImageNetSketch": "imagenet_sketch",
    "ImageNetA": "imagenet_a",
    "ImageNetR": "imagenet_r",
}

PRESENT, MISSING, BROKEN = "present", "missing", "broken"
DECODE_FIX = (
    "replace the damaged files from the original archive, or set DATASET.SKIP_BAD_IMAGES True "
    "to skip them during training"
)


@dataclass
class CheckReport:
    name: str
    dataset_dir: str
    status: str = PRESENT
    num_images: int = 0
    problems: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)

    def fail(self, status: str, problem: str, fix: str = "") -> None:
        self.status = status
        self.problems.append(problem)
        if fix:
            self.fixes.append(fix)


def checkable_names() -> list[str]:
    """Every registered reader `check` can inventory: the 15 benchmarks (table order), then
    the others (the mini benchmark, Shapes) by name."""
    import ammpl.data.datasets  # noqa: F401  (readers register on import)

    others = sorted(
        name
        for name in DATASET_REGISTRY.registered_names()
        if name not in DATASET_STEMS and issubclass(DATASET_REGISTRY.get(name), ReaderInfo)
    )
    return [*DATASET_STEMS, *others]


def resolve_names(names: Iterable[str], every_reader: bool = False) -> list[str]:
    """Registered names for `names` given as reader names or config stems (any case).

    `every_reader`: any reader `check` can inventory (`checkable_names`), not only the 15
    benchmarks; the config stem of those is their folder (configs/datasets/mini_colors.yaml).
    """
    candidates = checkable_names() if every_reader else list(DATASET_STEMS)
    stems = {n: DATASET_STEMS.get(n) or reader_class(n).dataset_dir for n in candidates}
    lookup = {alias.lower(): n for n, stem in stems.items() for alias in (n, stem)}
    resolved = []
    for name in names:
        registered = lookup.get(name.lower())
        if registered is None:
            hint = closest_name(name, [*stems, *stems.values()])
            hint_text = f' Did you mean "{hint}"?' if hint else ""
            raise ConfigError(
                f'Unknown dataset "{name}".{hint_text} Choose from {", ".join(candidates)} '
                "(or their config stems)"
            )
        if registered not in resolved:
            resolved.append(registered)
    return resolved


def reader_class(name: str) -> type[ReaderInfo]:
    import ammpl.data.datasets  # noqa: F401  (readers register on import)

    return DATASET_REGISTRY.get(name)


def undecodable(entries: Sequence[Entry], workers: int | None = None) -> list[tuple[Entry, str]]:
    """(entry, reason) for every image that fails to decode; decoded on a thread pool."""

    def reason(entry: Entry) -> str | None:
        try:
            read_image(entry.impath)
        except DataError as exc:
            return str(exc)
        return None

    workers = workers or min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        reasons = list(pool.map(reason, entries, chunksize=64))
    return [(entry, text) for entry, text in zip(entries, reasons) if text is not None]


def counted(name: str, entries: Sequence[Entry]) -> tuple[dict[str, int], int]:
    """(images per known split, number of classes) of an inventory.

    The split is known for split files, official lists and ImageNet's folders; the
    test-only variants count everything as test. Other entries count only as classes.
    """
    published = PUBLISHED.get(name)
    test_only = published is not None and list(published.sizes) == ["test"]
    splits = Counter("test" if test_only else entry.split for entry in entries)
    splits.pop("", None)
    return dict(splits), len({entry.label for entry in entries})


def compare_with_published(name: str, sizes: dict[str, int], classes: int) -> list[str]:
    """'<what> <found> (published <n>)' for every count that differs from the papers';
    splits only when `sizes` knows any (a regenerated split is compared by classes)."""
    published = PUBLISHED.get(name)
    if published is None:
        return []
    differences = []
    if sizes:
        for split, expected in published.sizes.items():
            if sizes.get(split, 0) != expected:
                differences.append(f"{split} {sizes.get(split, 0):,} (published {expected:,})")
    if classes != published.classes:
        differences.append(f"classes {classes:,} (published {published.classes:,})")
    return differences


def check_dataset(root: str, name: str, decode: bool = False, cache_dir: str = "") -> CheckReport:
    """Status of one dataset under `root`; every problem comes with how to fix it."""
    cls = reader_class(name)
    dataset_dir = os.path.join(os.path.abspath(os.path.expanduser(root)), cls.dataset_dir)
    report = CheckReport(name, dataset_dir)
    if not os.path.isdir(dataset_dir):
        report.fail(MISSING, f"expected the folder {dataset_dir}", f"download {cls.download}")
        return report
    try:
        inventory = cls.inventory(dataset_dir, cache_dir)
    except DataError as exc:
        report.fail(BROKEN, str(exc))
        return report
    entries = inventory.entries
    report.notes += inventory.notes
    report.num_images = len(entries)
    if not entries:
        report.fail(BROKEN, "no images found", f"download {cls.download}")
        return report
    report.differences = compare_with_published(name, *counted(name, entries))
    missing = missing_entries(entries)
    if missing:
        fix = f"restore the missing files from the original archives (download {cls.download})"
        report.fail(BROKEN, describe_missing(missing, len(entries)), fix)
    if decode:
        absent = {entry.impath for entry in missing}
        bad = undecodable([entry for entry in entries if entry.impath not in absent])
        if bad:
            shown = "; ".join(
                f"{reason} (listed at {e.where()})" for e, reason in bad[:MISSING_SHOWN]
            )
            count = f"{len(bad)} of {len(entries)} images cannot be decoded"
            report.fail(BROKEN, f"{count}: {shown}", DECODE_FIX)
    return report


def check_datasets(
    root: str, names: Sequence[str] = (), decode: bool = False, cache_dir: str = ""
) -> list[CheckReport]:
    """Reports for `names` (any checkable reader's name or config stem; empty = the 15)."""
    resolved = resolve_names(names, every_reader=True) if names else list(DATASET_STEMS)
    return [check_dataset(root, name, decode, cache_dir) for name in resolved]


def format_report(report: CheckReport) -> str:
    head = f"{report.name:<20} {report.status:<8} {report.dataset_dir}"
    if report.status == PRESENT:
        head += f" ({report.num_images} images)"
    lines = [head]
    lines += [f"    problem: {problem}" for problem in report.problems]
    lines += [f"    fix: {fix}" for fix in report.fixes]
    if report.differences:
        lines.append(
            "    differs from the published counts: "
            + ", ".join(report.differences)
            + " (fake, partial or other data: results will not be comparable with papers)"
        )
    lines += [f"    note: {note}" for note in report.notes]
    return "\n".join(lines)
