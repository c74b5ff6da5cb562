"""Shared by tables and plots: select runs, group them by method, summarise over seeds.

A "method key" is (method, config family, variant): CoOp's epoch-by-shots configs fall
into one family (`names.config_family`), CoOp's context variants and AMMPL's ablation
combinations stay apart. Seeds are checked against the expected set (1, 2, 3 by default):
a missing seed is reported on the statistic, never averaged away silently; two runs for the
same cell and seed are an error (select one with `configs`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ammpl.results.collect import Run
from ammpl.results.errors import ResultsError
from ammpl.results.names import (
    ZEROSHOT_METHOD,
    config_family,
    dataset_display,
    dataset_sort_key,
    method_sort_key,
    variant_display,
)
from ammpl.results.parse import population_std

DEFAULT_SEEDS = (1, 2, 3)


@dataclass(frozen=True, order=True)
class MethodKey:
    method: str
    family: str
    variant: str = ""


def method_key(run: Run) -> MethodKey:
    return MethodKey(run.method, config_family(run.config), run.variant)


def harmonic_mean(base: float, new: float) -> float:
    """H = 2BN / (B + N) (0 when both are 0)."""
    return 2 * base * new / (base + new) if base + new > 0 else 0.0


@dataclass
class SeedStat:
    """Accuracies of one cell by seed. `expected` is empty for seedless runs (zero-shot)."""

    values: dict[int | None, float] = field(default_factory=dict)
    expected: tuple[int, ...] = DEFAULT_SEEDS

    @property
    def present(self) -> list[float]:
        return list(self.values.values())

    @property
    def mean(self) -> float | None:
        values = self.present
        return sum(values) / len(values) if values else None

    @property
    def std(self) -> float | None:
        values = self.present
        return population_std(values) if values else None

    @property
    def missing(self) -> list[int]:
        return [s for s in self.expected if s not in self.values]


def _matches(entry: str, run: Run) -> bool:
    wanted = entry.casefold()
    family = config_family(run.config)
    names = (
        run.method,
        run.trainer,
        run.config,
        family,
        f"{run.method}:{run.config}",
        f"{run.method}:{family}",
    )
    return any(wanted == name.casefold() for name in names)


def _config_matches(entry: str, run: Run) -> bool:
    return entry.casefold() == run.config.casefold()


def _dataset_matches(entry: str, stem: str) -> bool:
    return entry.casefold() in (stem.casefold(), dataset_display(stem).casefold())


def _run_dataset_matches(entry: str, run: Run) -> bool:
    return _dataset_matches(entry, run.dataset)


@dataclass
class Selection:
    """Runs of some protocols after the caller's filters, and the order to show them in."""

    runs: list[Run]
    methods: Sequence[str] | None = None
    datasets: Sequence[str] | None = None

    def keys(self) -> list[MethodKey]:
        """Method keys in display order: `--methods` order first, then the papers' order."""
        keys = {method_key(r) for r in self.runs}

        def order(key: MethodKey) -> tuple:
            rank = len(self.methods or ())
            for index, entry in enumerate(self.methods or ()):
                if any(_matches(entry, r) for r in self.runs if method_key(r) == key):
                    rank = index
                    break
            return (rank, method_sort_key(key.method), key.family, key.variant)

        return sorted(keys, key=order)

    def dataset_order(self, stems: Iterable[str]) -> list[str]:
        stems = set(stems)
        if self.datasets:
            chosen = []
            for entry in self.datasets:
                chosen += [s for s in stems if _dataset_matches(entry, s) and s not in chosen]
            return chosen
        return sorted(stems, key=dataset_sort_key)


def is_fewshot_point(run: Run) -> bool:
    """A run that belongs on the few-shot curves: a few-shot run, or zero-shot CLIP on all
    classes (drawn at 0 shots)."""
    return run.protocol == "fewshot" or (
        run.protocol == "zeroshot" and run.subsample in ("all", "")
    )


def select(
    runs: Iterable[Run],
    accept: Callable[[Run], bool],
    what: str,
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    configs: Sequence[str] | None = None,
) -> Selection:
    """Runs that `accept` keeps and that have an accuracy, filtered by method / dataset /
    config names (case-insensitive; a method entry may name the method, trainer, config or
    `method:config`). A filter entry that matches nothing is an error listing what exists."""
    pool = [r for r in runs if accept(r) and r.accuracy is not None]
    if not pool:
        raise ResultsError(f"no {what} runs with a test accuracy among the runs given")
    for entries, label, test, names in (
        (methods, "method", _matches, sorted({r.method for r in pool})),
        (configs, "config", _config_matches, sorted({r.config for r in pool})),
        (datasets, "dataset", _run_dataset_matches, sorted({r.dataset for r in pool})),
    ):
        for entry in entries or ():
            if not any(test(entry, r) for r in pool):
                raise ResultsError(
                    f"no {what} runs for {label} '{entry}'; the runs have: {', '.join(names)}"
                )
        if entries:
            pool = [r for r in pool if any(test(e, r) for e in entries)]
    return Selection(pool, methods, datasets)


def _key_backbones(key: MethodKey, runs: Iterable[Run]) -> list[str]:
    return sorted({r.backbone for r in runs if r.backbone and method_key(r) == key})


def backbone_suffix(key: MethodKey, runs: Sequence[Run]) -> str:
    """The row label's backbone, e.g. ` [tiny]`, when the table's runs do not all share one
    backbone (` [several backbones]` for a row whose cells differ; `backbone_notes` says
    which); empty otherwise."""
    if len({r.backbone for r in runs if r.backbone}) < 2:
        return ""
    found = _key_backbones(key, runs)
    if not found:
        return ""
    return f" [{found[0]}]" if len(found) == 1 else " [several backbones]"


def backbone_notes(
    keys: Sequence[MethodKey], runs: Sequence[Run], labels: Mapping[MethodKey, str]
) -> list[str]:
    """For each row whose cells ran on different backbones: which datasets ran on which."""
    notes = []
    for key in keys:
        by_backbone: dict[str, set[str]] = defaultdict(set)
        for run in runs:
            if run.backbone and method_key(run) == key:
                by_backbone[run.backbone].add(run.dataset)
        if len(by_backbone) < 2:
            continue
        parts = [
            f"{backbone} on {', '.join(dataset_display(d) for d in sorted(datasets))}"
            for backbone, datasets in sorted(by_backbone.items())
        ]
        notes.append(f"{labels[key]}: {'; '.join(parts)}")
    return notes


def key_labels(keys: Sequence[MethodKey], runs: Sequence[Run] = ()) -> dict[MethodKey, str]:
    """Row labels: the method, its variant, its config family only where one method
    shows several families, and its backbone where the `runs` shown differ in backbone."""
    families = defaultdict(set)
    for key in keys:
        families[(key.method, key.variant)].add(key.family)
    labels = {}
    for key in keys:
        label = key.method
        if key.variant:
            label += f" ({variant_display(key.variant)})"
        if len(families[(key.method, key.variant)]) > 1:
            label += f" [{key.family}]"
        labels[key] = label + backbone_suffix(key, runs)
    return labels


def seed_stats(
    runs: Iterable[Run],
    cell_of: Callable[[Run], Hashable],
    seeds: Sequence[int] = DEFAULT_SEEDS,
) -> tuple[dict[Hashable, SeedStat], list[str]]:
    """Group accuracies by `cell_of(run)` and seed. Returns the stats and notes about runs
    left out (seeds outside `seeds`). Zero-shot runs carry no seed and expect none. Seeds
    run on different backbones are never averaged: that is an error naming two of them."""
    stats: dict[Hashable, SeedStat] = {}
    paths: dict[tuple, str] = {}
    backbones: dict[Hashable, Run] = {}
    ignored = []
    for run in runs:
        seedless = run.method == ZEROSHOT_METHOD or run.seed is None
        if not seedless and run.seed not in seeds:
            ignored.append(run.path)
            continue
        cell = cell_of(run)
        stat = stats.setdefault(cell, SeedStat(expected=() if seedless else tuple(seeds)))
        seed = None if seedless else run.seed
        if (cell, seed) in paths:
            raise ResultsError(
                f"two runs for the same table cell and seed {seed}: {paths[(cell, seed)]} and "
                f"{run.path}; keep one with --configs (or --methods METHOD:CONFIG)"
            )
        paths[(cell, seed)] = run.path
        first = backbones.setdefault(cell, run)
        if run.backbone and first.backbone and run.backbone != first.backbone:
            raise ResultsError(
                f"seeds of one table cell ran on different backbones: {first.path} "
                f"({first.backbone}) and {run.path} ({run.backbone}); rerun one on the "
                "other's backbone, or delete it"
            )
        if not first.backbone:
            backbones[cell] = run
        stat.values[seed] = float(run.accuracy)
    notes = []
    if ignored:
        notes.append(
            f"{len(ignored)} run(s) with seeds outside {', '.join(map(str, seeds))} left out "
            f"(e.g. {ignored[0]}); pass --seeds to include them"
        )
    return stats, notes
