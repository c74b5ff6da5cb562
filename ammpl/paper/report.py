"""The paper in miniature's tables and figures, from the runs (through `ammpl.results`).

Each table is the `ammpl.results` table of its section's runs, with one column added: the
training budget of each method (epochs × batch size, as its runs recorded them), so that
schedule differences stay visible beside the numbers.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Sequence

from ammpl.paper.plan import LEFT_OUT, MINI_NAME, SOURCE, ZS_LABEL, PaperSettings, Section
from ammpl.results import Cell, Run, Table, render
from ammpl.results.errors import ResultsError
from ammpl.results.names import dataset_sort_key
from ammpl.results.tables import (
    ablation_table,
    base_to_new_table,
    cross_dataset_table,
    fewshot_table,
)
from ammpl.sweep.done import read_record

BUDGET_HEADER = "Budget (ep×bs)"
REPORT_FILE = "report.md"
TABLE_KIND = {
    "table1": "b2n",
    "table2": "xd",
    "dg": "xd",
    "table3": "ablation",
    "figure2": "fewshot",
}


def _matches(entry: str, run: Run) -> bool:
    return entry.lower() in (run.method.lower(), run.trainer.lower())


def present(entries: Sequence[str], runs: Sequence[Run]) -> list[str]:
    """The method entries that some run answers (a filter naming none is an error there)."""
    return [e for e in entries if any(_matches(e, r) for r in runs)]


def run_budget(run: Run) -> str:
    """`epochs×batch` of a training run, from the settings its results.json recorded."""
    record = read_record(run.path) or {}
    config = (record.get("settings") or {}).get("config") or {}
    batch = config.get("DATALOADER.TRAIN_X.BATCH_SIZE")
    epochs = config.get("OPTIM.MAX_EPOCH", run.max_epoch)
    return f"{epochs}×{batch}" if batch is not None and epochs is not None else "?"


def budgets(runs: Sequence[Run]) -> dict[str, str]:
    """Method → its training budgets (several joined by "/", e.g. PLOT++'s two stages)."""
    found: dict[str, list[str]] = {}
    for run in runs:
        if run.eval_only or run.accuracy is None:
            continue
        budget = run_budget(run)
        if budget not in found.setdefault(run.method, []):
            found[run.method].append(budget)
    return {method: "/".join(sorted(values)) for method, values in found.items()}


def add_budget_column(table: Table, by_method: dict[str, str], column: str = "Method") -> None:
    """Insert the budget column after `column` (zero-shot rows: –)."""
    index = table.header.index(column) + 1
    table.header.insert(index, BUDGET_HEADER)
    for row in table.rows:
        label = str(row[index - 1])
        names = [m for m in by_method if label == m or label.startswith(m + " ")]
        budget = by_method[max(names, key=len)] if names else "–"
        row.insert(index, "0" if label.startswith(ZS_LABEL) else budget)
    table.notes.append(
        f"{BUDGET_HEADER}: training epochs × batch size, as the runs recorded them "
        "(0: zero-shot, no training)"
    )


def _entries(section: Section) -> list[str]:
    return list(section.methods)


def figure2_runs(runs: Sequence[Run]) -> list[Run]:
    """Figure 2's runs. Its CoOp is CoOp's own few-shot setting (a variant folder such as
    nctx16_cscFalse_ctpend); a CoOp run in the plain few-shot layout is a source run of the
    cross-data tables, which CoOp trains in its base-to-new setting."""
    return [
        r for r in runs
        if not (r.trainer == "CoOp" and r.protocol == "fewshot" and not r.variant)
    ]  # fmt: skip


def _zero_shot_row(runs: Sequence[Run], section: Section, seeds, width: int) -> list | None:
    """ZS-CLIP on the source and every DG target (the first row of CoOp's DG table)."""
    try:
        zs = fewshot_table(runs, [ZS_LABEL], [SOURCE, *section.datasets], seeds=seeds)
    except ResultsError:
        return None
    cells = zs.rows[0][2 : 2 + 1 + len(section.datasets)]
    targets = [c.mean for c in cells[1:] if isinstance(c, Cell) and c.mean is not None]
    average = Cell(sum(targets) / len(targets) if targets else None)
    row = [ZS_LABEL, "0", *cells, average]
    return row if len(row) == width else None


def build_table(section: Section, runs: Sequence[Run], settings: PaperSettings) -> Table:
    """The section's table from every collected run (ResultsError when none fits)."""
    seeds = settings.seeds
    datasets = list(section.datasets)
    if section.key == "table1":
        pool = [r for r in runs if r.protocol in ("base2new", "zeroshot")]
        methods = present([ZS_LABEL, *_entries(section)], pool)
        table = base_to_new_table(runs, methods, datasets, seeds=seeds)
    elif section.key in ("table2", "dg"):
        pool = [r for r in runs if r.protocol == "xd_eval"]
        methods = present(_entries(section), pool)
        table = cross_dataset_table(runs, methods, datasets, seeds=seeds, source=SOURCE,
                                    shots=section.shots)  # fmt: skip
        if section.key == "dg":
            row = _zero_shot_row(runs, section, seeds, len(table.header))
            if row is not None:
                table.rows.insert(0, row)
    elif section.key == "table3":
        table = ablation_table(runs, ["AMMPL"], datasets, seeds=seeds, shots=section.shots)
        ammpl = budgets([r for r in runs if r.protocol == "ablation"]).get("AMMPL", "?")
        table.notes.append(f"{BUDGET_HEADER} of every row: {ammpl} (class-specific AMMPL)")
        return table
    else:  # figure2
        runs = figure2_runs(runs)
        pool = [r for r in runs if r.protocol in ("fewshot", "zeroshot")]
        methods = present([ZS_LABEL, *_entries(section)], pool)
        table = fewshot_table(runs, methods, datasets, seeds=seeds, shots=section.shots)
    protocols = {"table1": ("base2new",), "figure2": ("fewshot",)}.get(section.key, ("fewshot",))
    training = [r for r in runs if r.protocol in protocols]
    if section.key in ("table2", "dg"):  # the source runs (few-shot folder layout)
        training = [r for r in training if r.dataset == SOURCE]
    add_budget_column(table, budgets(training))
    return table


def table_command(section: Section, settings: PaperSettings) -> str:
    """The `ammpl-results table` command that prints the section's table (no budget column)."""
    kind = TABLE_KIND[section.key]
    args = ["ammpl-results", "table", kind, os.path.abspath(settings.runs_root)]
    args += ["--seeds", *map(str, settings.seeds), "--datasets", *section.datasets]
    if section.key == "table3":
        args += ["--methods", "AMMPL"]
    else:
        zero = [ZS_LABEL] if section.key in ("table1", "figure2") else []
        args += ["--methods", *zero, *section.methods]
    if kind != "b2n":
        args += ["--shots", *map(str, section.shots)]
    if kind == "xd":
        args += ["--source", SOURCE]
    return shlex.join(args)


def markdown_table(table: Table) -> str:
    return render(table, "md")


def figure2_plots(runs: Sequence[Run], section: Section, settings: PaperSettings) -> list[str]:
    """One PNG per dataset (and the average panel) under `<out>/figure2`."""
    from ammpl.results.plots import plot_fewshot

    runs = figure2_runs(runs)
    pool = [r for r in runs if r.protocol in ("fewshot", "zeroshot")]
    methods = present([ZS_LABEL, *_entries(section)], pool)
    written, _ = plot_fewshot(
        runs,
        os.path.join(settings.out, "figure2"),
        methods,
        list(section.datasets),
        seeds=settings.seeds,
        error_bars=len(settings.seeds) > 1,
        formats=("png",),
    )
    return [path for path in written if not path.endswith("fewshot_curves.png")]


def figure3_images(data: str, dataset: str, count: int) -> list[tuple[str, str]]:
    """(image path, class index) of the first test image of each of the first `count`
    classes of a mini dataset (its split file)."""
    name = MINI_NAME[dataset]
    with open(os.path.join(data, dataset, f"split_zhou_{name}.json"), encoding="utf-8") as f:
        test = json.load(f)["test"]
    chosen: dict[int, str] = {}
    for path, label, _ in test:
        if label not in chosen and len(chosen) < count:
            chosen[label] = os.path.join(data, dataset, "images", path)
    return [(path, str(label)) for label, path in sorted(chosen.items())]


def viz_argv(model_dir: str, image: str, label: str, images_root: str, out: str) -> list[str]:
    """`ammpl-viz masks` arguments for one image and its own class, every saved epoch."""
    return ["masks", "--model-dir", model_dir, "--images", image, "--classes", label,
            "--root", images_root, "--out", out]  # fmt: skip


def figure3_run(settings: PaperSettings) -> Run | None:
    """The AMMPL training run of Figure 3 (every epoch's checkpoint kept)."""
    from ammpl.results import collect_runs

    if not os.path.isdir(settings.figure3_root):
        return None
    try:
        runs = collect_runs(settings.figure3_root, warn=lambda _: None)
    except ResultsError:
        return None
    done = [r for r in runs if r.trainer == "AMMPL" and r.accuracy is not None]
    return done[0] if done else None


def figure3_jobs(section: Section, settings: PaperSettings) -> list[tuple[list[str], str]]:
    """(`ammpl-viz` arguments, PNG) for each image of Figure 3; none before its run exists."""
    run = figure3_run(settings)
    if run is None or not section.datasets:
        return []
    model_dir = run.path
    from ammpl.paper.plan import FIGURE3_IMAGES

    dataset = section.datasets[0]
    images_root = os.path.join(settings.data, dataset, "images")
    jobs = []
    for image, label in figure3_images(settings.data, dataset, FIGURE3_IMAGES):
        name = os.path.basename(os.path.dirname(image))
        out = os.path.join(settings.out, "figure3", f"masks_{name}.png")
        jobs.append((viz_argv(model_dir, image, label, images_root, out), out))
    return jobs


# Columns of the mask-on-background table: (header, key of share_statistics, format).
SHARE_COLUMNS = (
    ("test masked/img", "masked_per_image", "{:.2f}"),
    ("outside (any)", "masked_outside", "{:.1%}"),
    ("chance (any)", "chance_outside", "{:.1%}"),
    ("ratio (any)", "ratio", "{:.2f}"),
    ("outside (≥50%)", "masked_outside_half", "{:.1%}"),
    ("chance (≥50%)", "chance_outside_half", "{:.1%}"),
    ("ratio (≥50%)", "ratio_half", "{:.2f}"),
)
SHARE_NOTE = (
    "Test masks (P < 0.5) of AMMPL's training runs on the object datasets, measured on each "
    "dataset's test images against the generator's object masks "
    "(`ammpl.trainers.ammpl.mask_share`, `ammpl-viz mask-share`). A patch is object if any "
    "object pixel lies in it (any) or if it is at least half object (≥50%); outside: the share "
    "of masked patches that are background; chance: the share of all patches that are; "
    "ratio = outside / chance (above 1: the mask prefers the background). Mean over seeds; "
    "– where no patch is masked."
)


def _share_runs(runs: Sequence[Run]) -> dict[tuple[str, str, int | None], list[Run]]:
    """AMMPL training runs with a mask on the object datasets, by (what, dataset, shots)."""
    from ammpl.paper.plan import OBJECT_DATASETS
    from ammpl.results.names import ablation_combo

    groups: dict[tuple[str, str, int | None], list[Run]] = {}
    for run in runs:
        if run.trainer != "AMMPL" or run.eval_only or run.accuracy is None:
            continue
        if run.dataset not in OBJECT_DATASETS:
            continue
        if run.protocol == "ablation":
            if not run.variant.startswith("maskTrue"):
                continue
            what = f"ablation {ablation_combo(run.variant)} (class-specific)"
        elif run.protocol == "base2new":
            what = "base-to-new (base classes)"
        elif run.protocol == "fewshot":
            what = "few-shot"
        else:
            continue
        groups.setdefault((what, run.dataset, run.shots), []).append(run)
    return groups


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def mask_share_lines(runs: Sequence[Run], settings: PaperSettings) -> list[str]:
    """The masks-on-background section: a table over the AMMPL runs, then Figure 3's run
    epoch by epoch."""
    from ammpl.trainers.ammpl.mask_share import (
        masked_background_share,
        masked_background_shares,
        share_table,
    )
    from ammpl.utils.errors import AmmplError

    lines = [SHARE_NOTE, ""]
    header = ["Run", "Dataset", "Shots", "Seeds", *(h for h, _, _ in SHARE_COLUMNS)]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    groups = _share_runs(runs)
    for (what, dataset, shots), members in sorted(
        groups.items(), key=lambda g: (g[0][0], dataset_sort_key(g[0][1]), g[0][2] or 0)
    ):
        stats = []
        for run in members:
            try:
                stats.append(masked_background_share(run.path, settings.data, MINI_NAME[dataset]))
            except AmmplError as error:
                lines.append(f"| {what} | {dataset} | {shots} | seed {run.seed}: {error} |")
        if not stats:
            continue
        cells = []
        for _, key, fmt in SHARE_COLUMNS:
            value = _mean([s[key] for s in stats])
            cells.append("–" if value is None else fmt.format(value))
        seeds = " ".join(str(r.seed) for r in members)
        row = [what, MINI_NAME[dataset], str(shots), seeds, *cells]
        lines.append("| " + " | ".join(row) + " |")
    if not groups:
        lines.append("| (no AMMPL run on an object dataset) |")
    figure = figure3_run(settings)
    if figure is not None:
        try:
            per_epoch = masked_background_shares(figure.path, settings.data, figure.dataset_name)
        except AmmplError as error:
            lines += ["", f"Figure 3's run, epoch by epoch: not measured ({error})."]
        else:
            lines += ["", "Figure 3's run, epoch by epoch:", "", share_table(per_epoch)]
    return lines


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


def _timing_line(record: dict | None) -> str:
    if not record:
        return "wall time: not measured (nothing run yet)"
    text = f"wall time: {_duration(record['wall_s'])} ({record['runs_made']} run(s) made"
    if record.get("last_call_runs_made", 0) == 0:
        text += "; the latest call found every run finished"
    return text + ")"


def _section_head(section: Section, settings: PaperSettings, timings: dict) -> list[str]:
    names = ", ".join(MINI_NAME.get(d, d) for d in section.datasets) or "none"
    lines = [f"## {section.title}", ""]
    lines.append(
        f"Seeds {' '.join(map(str, settings.seeds))} · datasets: {names} · "
        f"{_timing_line(timings.get(section.key))}."
    )
    return lines


def _commands(lines: list[str], commands: Sequence[str]) -> None:
    if commands:
        lines += ["", "Regenerate:", "", "```bash", *commands, "```"]


def _table_lines(section: Section, runs: Sequence[Run], settings: PaperSettings) -> list[str]:
    try:
        table = build_table(section, runs, settings)
    except ResultsError as error:
        return ["", f"No table yet: {error}."]
    return ["", markdown_table(table).rstrip()]


def write_report(
    sections: Sequence[Section], settings: PaperSettings, timings: dict, command: str
) -> str:
    """`<out>/report.md` from the runs collected now; returns its path."""
    import platform
    import time

    from ammpl.results import collect_runs
    from ammpl.utils.io import atomic_write_text

    try:
        runs = collect_runs(settings.runs_root, warn=lambda _: None)
    except ResultsError:
        runs = []
    total = sum(record.get("wall_s", 0.0) for record in timings.values())
    lines = ["# The AMMPL paper in miniature", ""]
    lines.append(
        f"Made by `{command}` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{settings.workers} run(s) at once, Python {platform.python_version()}). "
        f"Total wall time of the sections: {_duration(total)}."
    )
    lines += [
        "",
        f"- Data: `ammpl-data mini --root {shlex.quote(settings.data)}`; runs under "
        f"`{settings.runs_root}`; finished runs are skipped, so the same command resumes.",
        "- Every number: test accuracy (%), mean over the seeds (population std in brackets); "
        "† marks a cell with missing runs (notes under each table). Method configs: "
        "`configs/trainers/<Method>/mini.yaml` (DLP: `IVLP/mini_language_only.yaml`), "
        "not paper settings.",
    ]
    if settings.epochs:
        lines.append(f"- Every run trained for {settings.epochs} epoch(s) (`--epochs`).")
    for method, why in LEFT_OUT.items():
        lines.append(f"- Left out: {method} ({why}).")
    lines.append(
        "- CoOp: Tables 1-2 and the DG table in its base-to-new setting (4 context tokens from "
        '"a photo of a"); Figure 2 in its own few-shot setting (16 random context vectors).'
    )
    for section in sections:
        lines += ["", *_section_head(section, settings, timings)]
        if not section.calls:
            lines += ["", "Nothing to run with the chosen methods and datasets."]
            continue
        commands = [call.command() for call in section.calls]
        if section.key == "figure3":
            jobs = figure3_jobs(section, settings)
            _commands(lines, [*commands, *(shlex.join(["ammpl-viz", *a]) for a, _ in jobs)])
            lines.append("")
            lines.append(
                "Each picture: one test image with its own class's mask (class-specific AMMPL), "
                "one column per epoch; shaded patches are hidden."
            )
            for _, png in jobs:
                if os.path.isfile(png):
                    lines += [
                        "",
                        f"![{os.path.basename(png)}]({os.path.relpath(png, settings.out)})",
                    ]
            continue
        _commands(lines, [*commands, table_command(section, settings)])
        if section.key == "figure2" and runs:
            try:
                pngs = figure2_plots(runs, section, settings)
            except ResultsError as error:
                pngs = []
                lines += ["", f"No curves yet: {error}."]
            for png in pngs:
                name = os.path.splitext(os.path.basename(png))[0]
                lines += ["", f"![{name}]({os.path.relpath(png, settings.out)})"]
        lines += _table_lines(section, runs, settings)
    lines += ["", "## Masks on background", "", *mask_share_lines(runs, settings), ""]
    path = os.path.join(settings.out, REPORT_FILE)
    atomic_write_text(path, "\n".join(lines))
    return path
