"""The paper tables from the tidy runs CSV: base-to-new, cross-dataset, ablation, few-shot.

Every builder takes the `Run` rows and optional filters (`methods`, `datasets`, `configs`,
`seeds`, and `shots` where shots vary) and returns a `render.Table`. Aggregation follows
PROTOCOLS.md §9: mean and population std over seeds; base-to-new H from the seed-averaged
Base and Novel; averages over datasets are means of per-dataset means (the base-to-new
Average row: mean B, mean N, then H of those). Cells with missing seeds, and averages over
fewer datasets than the table shows, carry a dagger and a note naming what is missing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ammpl.results.aggregate import (
    DEFAULT_SEEDS,
    MethodKey,
    SeedStat,
    backbone_notes,
    backbone_suffix,
    harmonic_mean,
    is_fewshot_point,
    key_labels,
    method_key,
    seed_stats,
    select,
)
from ammpl.results.collect import Run
from ammpl.results.errors import ResultsError
from ammpl.results.names import ZEROSHOT_METHOD, ablation_combo, dataset_display
from ammpl.results.parse import population_std
from ammpl.results.render import FLAG, Cell, Table

TABLE_KINDS = ("b2n", "xd", "ablation", "fewshot")
HM_STD_NOTE = (
    "HM = 2·B·N/(B+N) of the seed-averaged Base and Novel; its (std) is the population std "
    "of the per-seed HM, pairing base and novel runs of the same seed (our choice: no source "
    "defines it)"
)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _stat_cell(stat: SeedStat | None, what: str, notes: list[str]) -> Cell:
    """mean(std) of a seed statistic; flagged (with a note) when seeds are missing."""
    if stat is None or not stat.values:
        notes.append(f"{what}: no run")
        return Cell(None, flagged=True)
    missing = stat.missing
    if missing:
        notes.append(f"{what}: missing seed(s) {', '.join(map(str, missing))}")
    return Cell(stat.mean, stat.std if stat.expected else None, flagged=bool(missing))


def _average_cell(cells: Sequence[Cell], what: str, wanted: int, notes: list[str]) -> Cell:
    """Mean of the cells' means (no std); flagged when a cell is missing or flagged."""
    present = [c.mean for c in cells if c.mean is not None]
    flagged = len(present) < wanted or any(c.flagged for c in cells)
    if len(present) < wanted:
        notes.append(f"{what}: average over {len(present)} of {wanted} columns")
    return Cell(_mean(present), flagged=flagged)


def _shots_text(shots: Sequence[int] | None) -> str:
    return "/".join(map(str, shots or ()))


def _finish_notes(notes: list[str], extra: Iterable[str] = ()) -> list[str]:
    """Flag notes first (prefixed with the dagger), then the table's fixed notes."""
    flagged = [f"{FLAG} {note}" for note in dict.fromkeys(notes)]
    return [*flagged, *extra]


# --- base-to-new --------------------------------------------------------------------------


def _b2n_side(run: Run) -> str:
    if run.protocol == "zeroshot":
        return run.subsample
    return {"train_base": "base", "test_base": "base_eval", "test_new": "new"}[run.phase]


def _merge_base(train: SeedStat | None, evaluated: SeedStat | None) -> SeedStat | None:
    """Base per seed: the train_base final test, or a test_base run for seeds without one."""
    if train is None:
        return evaluated
    if evaluated is None:
        return train
    return SeedStat({**evaluated.values, **train.values}, train.expected)


def base_to_new_table(
    runs: Sequence[Run],
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    configs: Sequence[str] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
) -> Table:
    """Rows dataset × method with Base, Novel, HM; then the Average block (AMMPL Table 1)."""
    selection = select(
        runs,
        lambda r: (
            r.protocol == "base2new"
            or (r.protocol == "zeroshot" and r.subsample in ("base", "new"))
        ),
        "base-to-new",
        methods,
        datasets,
        configs,
    )
    stats, notes = seed_stats(
        selection.runs, lambda r: (method_key(r), r.dataset, _b2n_side(r)), seeds
    )
    keys = selection.keys()
    labels = key_labels(keys, selection.runs)
    backbones = backbone_notes(keys, selection.runs, labels)
    stems = selection.dataset_order({r.dataset for r in selection.runs})
    table = Table("Base-to-novel generalisation", ["Dataset", "Method", "Base", "Novel", "HM"])
    flags: list[str] = []
    per_key: dict[MethodKey, list[tuple[Cell, Cell]]] = {k: [] for k in keys}
    for stem in stems:
        for key in keys:
            if not any(cell[0] == key and cell[1] == stem for cell in stats):
                continue
            where = f"{labels[key]} on {dataset_display(stem)}"
            base = _merge_base(stats.get((key, stem, "base")), stats.get((key, stem, "base_eval")))
            new = stats.get((key, stem, "new"))
            base_cell = _stat_cell(base, f"{where}, Base", flags)
            new_cell = _stat_cell(new, f"{where}, Novel", flags)
            table.rows.append(
                [
                    dataset_display(stem),
                    labels[key],
                    base_cell,
                    new_cell,
                    _hm_cell(base, new, base_cell, new_cell),
                ]
            )
            per_key[key].append((base_cell, new_cell))
    table.rules.add(len(table.rows))
    for key in keys:
        pairs = [(b, n) for b, n in per_key[key] if b.mean is not None and n.mean is not None]
        if len(pairs) < len(stems):
            flags.append(f"{labels[key]}, Average: over {len(pairs)} of {len(stems)} datasets")
        flagged = len(pairs) < len(stems) or any(b.flagged or n.flagged for b, n in pairs)
        base_avg = _mean([b.mean for b, _ in pairs])
        new_avg = _mean([n.mean for _, n in pairs])
        hm = harmonic_mean(base_avg, new_avg) if pairs else None
        table.rows.append(
            [
                "Average",
                labels[key],
                Cell(base_avg, flagged=flagged),
                Cell(new_avg, flagged=flagged),
                Cell(hm, flagged=flagged),
            ]
        )
    table.notes = _finish_notes(
        flags + notes,
        [
            *backbones,
            HM_STD_NOTE,
            "Base: the final test of the train_base run (a test_base run where it is missing); "
            "Novel: the test_new run",
            "Average: mean Base and mean Novel over the datasets, HM of those two means",
        ],
    )
    return table


def _hm_cell(base: SeedStat | None, new: SeedStat | None, base_cell: Cell, new_cell: Cell):
    if base_cell.mean is None or new_cell.mean is None:
        return Cell(None, flagged=True)
    paired = [harmonic_mean(base.values[s], new.values[s]) for s in base.values if s in new.values]
    std = population_std(paired) if paired and base.expected else None
    flagged = base_cell.flagged or new_cell.flagged or len(paired) < len(base.expected)
    return Cell(harmonic_mean(base_cell.mean, new_cell.mean), std, flagged)


# --- cross-dataset ------------------------------------------------------------------------


def cross_dataset_table(
    runs: Sequence[Run],
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    configs: Sequence[str] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    source: str | None = None,
    shots: Sequence[int] | None = None,
) -> Table:
    """Rows method × shots; the source accuracy, one column per target, and the average over
    the targets with the source excluded (AMMPL Table 2, CoCoOp Table 2)."""
    evals = select(
        runs,
        lambda r: r.protocol == "xd_eval",
        "cross-dataset evaluation",
        methods,
        datasets,
        configs,
    )
    evals.runs = [r for r in evals.runs if not shots or r.shots in shots]
    if not evals.runs:
        raise ResultsError(f"no cross-dataset evaluation runs with {_shots_text(shots)} shots")
    sources = sorted({r.source for r in evals.runs})
    if source is not None:
        if source not in sources:
            raise ResultsError(
                f"no evaluation runs from source '{source}'; sources found: "
                f"{', '.join(s or '(unknown)' for s in sources)}"
            )
        sources = [source]
    if len(sources) != 1:
        found = ", ".join(s or "(unknown)" for s in sources)
        raise ResultsError(
            f"evaluation runs from several sources ({found}): pick one with --source"
        )
    src = sources[0]
    evals.runs = [r for r in evals.runs if r.source == src]
    target_stats, notes = seed_stats(
        (r for r in evals.runs if r.dataset != src),
        lambda r: (method_key(r), r.shots, r.dataset),
        seeds,
    )
    keys = evals.keys()
    source_stats = _source_stats(runs, src, keys, seeds)
    targets = evals.dataset_order({r.dataset for r in evals.runs if r.dataset != src})
    labels = key_labels(keys, evals.runs)
    backbones = backbone_notes(keys, evals.runs, labels)
    header = ["Method", "Shots", f"Source ({dataset_display(src) if src else 'unknown'})"]
    table = Table("Cross-dataset evaluation", [*header, *map(dataset_display, targets), "Average"])
    flags: list[str] = []
    for key in keys:
        for k in sorted({r.shots for r in evals.runs if method_key(r) == key}):
            where = f"{labels[key]}, {k} shots"
            row: list[str | Cell] = [labels[key], str(k)]
            row.append(_stat_cell(source_stats.get((key, k)), f"{where}, source", flags))
            cells = [
                _stat_cell(target_stats.get((key, k, t)), f"{where}, {dataset_display(t)}", flags)
                for t in targets
            ]
            row += cells
            row.append(_average_cell(cells, f"{where}, Average", len(targets), flags))
            table.rows.append(row)
    table.notes = _finish_notes(
        flags + notes,
        [
            *backbones,
            "Source: the final test of the training run on the source; Average: mean over the "
            "targets, source excluded",
        ],
    )
    return table


def _source_stats(runs: Sequence[Run], src: str, keys: Sequence[MethodKey], seeds) -> dict:
    """Source accuracy per (key, shots): the training run on the source (few-shot folder
    layout), else an evaluation run whose target is the source."""
    wanted = set(keys)
    usable = [r for r in runs if r.dataset == src and r.accuracy is not None]
    usable = [r for r in usable if method_key(r) in wanted]
    trained = [r for r in usable if r.protocol == "fewshot"]
    evaluated = [r for r in usable if r.protocol == "xd_eval" and r.source == src]
    stats, _ = seed_stats(evaluated, lambda r: (method_key(r), r.shots), seeds)
    train_stats, _ = seed_stats(trained, lambda r: (method_key(r), r.shots), seeds)
    stats.update(train_stats)
    return stats


# --- ablation -----------------------------------------------------------------------------


def _combo_order(variant: str) -> tuple[int, str]:
    combo = ablation_combo(variant)
    return (combo.count("+") + 1 if combo.startswith("C") else 0, combo)


def ablation_table(
    runs: Sequence[Run],
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    configs: Sequence[str] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    shots: Sequence[int] | None = None,
) -> Table:
    """Rows = component combination, columns = datasets (+ average); best per column bold
    (AMMPL Table 3)."""
    selection = select(
        runs, lambda r: r.protocol == "ablation", "ablation", methods, datasets, configs
    )
    selection.runs = [r for r in selection.runs if not shots or r.shots in shots]
    if not selection.runs:
        raise ResultsError(f"no ablation runs with {_shots_text(shots)} shots")
    stats, notes = seed_stats(selection.runs, lambda r: (method_key(r), r.shots, r.dataset), seeds)
    keys = selection.keys()
    if not selection.methods:
        keys.sort(key=lambda k: (k.method, k.family, _combo_order(k.variant)))
    stems = selection.dataset_order({r.dataset for r in selection.runs})
    all_shots = sorted({r.shots for r in selection.runs})
    one_method = len({(k.method, k.family) for k in keys}) == 1
    labels = {
        k: ablation_combo(k.variant) + backbone_suffix(k, selection.runs) if one_method else label
        for k, label in key_labels(keys, selection.runs).items()
    }
    backbones = backbone_notes(keys, selection.runs, labels)
    table = Table("Ablation", ["Combo", *map(dataset_display, stems), "Average"])
    flags: list[str] = []
    for key in keys:
        for k in all_shots:
            if not any(s[0] == key and s[1] == k for s in stats):
                continue
            label = labels[key] + (f" ({k} shots)" if len(all_shots) > 1 else "")
            cells = [
                _stat_cell(stats.get((key, k, d)), f"{label} on {dataset_display(d)}", flags)
                for d in stems
            ]
            table.rows.append(
                [label, *cells, _average_cell(cells, f"{label}, Average", len(stems), flags)]
            )
    mark_best(table)
    table.notes = _finish_notes(
        flags + notes,
        [
            *backbones,
            "bold: the best mean of the column (CSV: starred); C1 patch mask, C2 patch padding, "
            "C3 adaptive interaction",
        ],
    )
    return table


def mark_best(table: Table) -> None:
    """Mark the highest mean of every numeric column (ties all marked)."""
    for index in range(len(table.header)):
        cells = [c for c in table.column(index) if isinstance(c, Cell) and c.mean is not None]
        if not cells:
            continue
        best = max(round(c.mean, 2) for c in cells)
        for cell in cells:
            cell.best = round(cell.mean, 2) == best


# --- few-shot -----------------------------------------------------------------------------


def fewshot_table(
    runs: Sequence[Run],
    methods: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    configs: Sequence[str] | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    shots: Sequence[int] | None = None,
) -> Table:
    """Rows method × shots (zero-shot CLIP as 0 shots), columns datasets + their average."""
    selection = select(
        runs,
        is_fewshot_point,
        "few-shot",
        methods,
        datasets,
        configs,
    )
    selection.runs = [
        r for r in selection.runs if not shots or r.shots in shots or r.method == ZEROSHOT_METHOD
    ]
    if not selection.runs:
        raise ResultsError(f"no few-shot runs with {_shots_text(shots)} shots")
    stats, notes = seed_stats(selection.runs, lambda r: (method_key(r), r.shots, r.dataset), seeds)
    keys = selection.keys()
    labels = key_labels(keys, selection.runs)
    backbones = backbone_notes(keys, selection.runs, labels)
    stems = selection.dataset_order({r.dataset for r in selection.runs})
    table = Table("Few-shot accuracy", ["Method", "Shots", *map(dataset_display, stems), "Average"])
    flags: list[str] = []
    for key in keys:
        for k in sorted({s[1] for s in stats if s[0] == key}):
            where = f"{labels[key]}, {k} shots"
            cells = [
                _stat_cell(stats.get((key, k, d)), f"{where}, {dataset_display(d)}", flags)
                for d in stems
            ]
            average = _average_cell(cells, f"{where}, Average", len(stems), flags)
            table.rows.append([labels[key], str(k), *cells, average])
    table.notes = _finish_notes(
        flags + notes, [*backbones, "Average: mean over the datasets of the per-dataset means"]
    )
    return table


BUILDERS = {
    "b2n": base_to_new_table,
    "xd": cross_dataset_table,
    "ablation": ablation_table,
    "fewshot": fewshot_table,
}
