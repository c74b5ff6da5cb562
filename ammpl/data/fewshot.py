"""Dassl's few-shot sampler, with exactly its calls into Python's `random`.

The picks depend only on the list order and the global `random` state, so the same seed and
split file select the same images as Dassl + CoOp (DASSL_API §4, DATASETS §5). Items are
anything with a `label` (Dassl's `Datum`), so this module does not import `ammpl.data.base`,
whose `DatasetBase` offers these functions as Dassl's methods.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable
from typing import Protocol, TypeVar


class Labelled(Protocol):
    @property
    def label(self) -> int: ...


Item = TypeVar("Item", bound=Labelled)  # a `Datum`, or anything else with a label


def split_dataset_by_label(data_source: Iterable[Item]) -> dict[int, list[Item]]:
    """Label → items, keys in order of first appearance (the order the sampler visits)."""
    groups: dict[int, list[Item]] = defaultdict(list)
    for item in data_source:
        groups[item.label].append(item)
    return groups


def generate_fewshot_dataset(
    *data_sources: list[Item], num_shots: int = -1, repeat: bool = False
) -> list[Item] | tuple[list[Item], ...] | list[list[Item]]:
    """K items per label of each source; one list back when given one source.

    A label with fewer than K items is kept whole (no random call) unless `repeat`, which
    draws K with replacement. `num_shots < 1` returns the sources unchanged.
    """
    if num_shots < 1:
        return data_sources[0] if len(data_sources) == 1 else data_sources

    print(f"Creating a {num_shots}-shot dataset")
    output = []
    for data_source in data_sources:
        picked: list[Item] = []
        for items in split_dataset_by_label(data_source).values():
            if len(items) >= num_shots:
                picked.extend(random.sample(items, num_shots))
            elif repeat:
                picked.extend(random.choices(items, k=num_shots))
            else:
                picked.extend(items)
        output.append(picked)
    return output[0] if len(output) == 1 else output


def shots_per_class(train: Iterable[Item], num_shots: int) -> dict[str, int]:
    """Requested K and the fewest / most training images any class ended up with."""
    counts = [len(items) for items in split_dataset_by_label(train).values()]
    return {
        "requested": int(num_shots),
        "min": min(counts) if counts else 0,
        "max": max(counts) if counts else 0,
    }


def shortfall_notice(train: Iterable[Item], num_shots: int) -> str | None:
    """One line when some class has fewer than the K images asked for (Dassl keeps it whole)."""
    if num_shots < 1:
        return None
    counts = [len(items) for items in split_dataset_by_label(train).values()]
    short = [n for n in counts if n < num_shots]
    if not short:
        return None
    return (
        f"Notice: DATASET.NUM_SHOTS is {num_shots}, but {len(short)} of {len(counts)} classes "
        f"have fewer training images (as few as {min(short)}); they train on all they have "
        f"(shots per class: {min(counts)}–{max(counts)}, recorded in results.json)"
    )
