"""The AMMPL paper in miniature: which `ammpl-sweep` calls make each table and figure.

Nothing is run here. Every section of the report is a list of sweep calls (protocol,
methods, datasets, seeds, shots, config overrides, the `CFG` the scripts read); each call
is exactly an `ammpl-sweep` command line, so the report can print the command that
regenerates a table and `paper.py` runs the same thing in-process.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field

from ammpl.mini.benchmark import DG_SOURCE, DG_TARGETS, MINI_DATASETS
from ammpl.sweep.plan import REPO_ROOT, SCRIPTS, protocol_methods
from ammpl.utils.errors import ConfigError

FOLDER_OF = {name: spec.folder for name, spec in MINI_DATASETS.items()}
SOURCE = FOLDER_OF[DG_SOURCE]
DG = tuple(FOLDER_OF[name] for name in DG_TARGETS)
# The benchmark proper: every mini dataset but the DG targets (test sets only, as ImageNet's
# variants are in the CoOp-family papers).
BENCHMARK = tuple(spec.folder for spec in MINI_DATASETS.values() if spec.folder not in DG)
OBJECT_DATASETS = tuple(s.folder for s in MINI_DATASETS.values() if s.photo is not None)

# Methods of the sweep that cannot run on the mini world, and why (said in the report).
LEFT_OUT = {
    "coprompt": "needs LLM-written class descriptions (TRAINER.CoPrompt.DESCRIPTIONS); "
    "none exist for the mini datasets",
    "plot": "PLOT is a ResNet-50 method without a mini config (PLOT++ is in)",
}
# The mini config a method's scripts read through CFG (default: mini).
METHOD_CFG = {"dlp": "mini_language_only"}
ZS_LABEL = "ZS-CLIP"
FEWSHOT_SHOTS = (1, 2, 4, 8, 16)
XD_SHOTS = (1, 8, 16)
DG_SHOTS = (16,)
ABLATION_SHOTS = (1,)
FIGURE3_IMAGES = 4
# The paper's own order for the cross-data tables: AMMPL, CoCoOp, MaPLe first.
XD_FIRST = ("ammpl", "cocoop", "maple")

# --quick: 13 min 8 s on 2 cores, data included (measured; QUICK_ESTIMATE in cli.py).
QUICK_DATASETS = ("mini_objects", "mini_colors")
QUICK_DG = ("mini_objects_v2", "mini_objects_sketch")
QUICK_METHODS = ("ammpl", "cocoop", "maple", "coop")
QUICK_FEWSHOT_SHOTS = (1, 4, 16)
QUICK_XD_SHOTS = (1, 16)


@dataclass
class PaperSettings:
    """What `paper.py` was asked for; None: the full paper's choice."""

    out: str
    data: str
    seeds: tuple[int, ...] = (1, 2, 3)
    datasets: tuple[str, ...] | None = None
    methods: tuple[str, ...] | None = None
    epochs: int | None = None
    shots: tuple[int, ...] | None = None  # every section's shot counts (tests)
    combos: tuple[str, ...] | None = None  # Table 3's component combinations (tests)
    quick: bool = False
    workers: int = 1

    @property
    def runs_root(self) -> str:
        return os.path.join(self.out, "runs")

    @property
    def figure3_root(self) -> str:
        return os.path.join(self.out, "figure3", "runs")

    def chosen_datasets(self) -> tuple[str, ...]:
        if self.datasets:
            return self.datasets
        return QUICK_DATASETS if self.quick else BENCHMARK

    def dg_targets(self) -> tuple[str, ...]:
        if self.datasets:
            return tuple(d for d in self.datasets if d in DG)
        return QUICK_DG if self.quick else DG

    def keeps(self, method: str) -> bool:
        chosen = self.methods or (QUICK_METHODS if self.quick else None)
        return chosen is None or method in chosen

    def shot_counts(self, full: tuple[int, ...], quick: tuple[int, ...]) -> tuple[int, ...]:
        return self.shots or (quick if self.quick else full)

    def epoch_overrides(self) -> tuple[str, ...]:
        return ("OPTIM.MAX_EPOCH", str(self.epochs)) if self.epochs else ()


@dataclass
class SweepCall:
    """One `ammpl-sweep` command (with the CFG its scripts read)."""

    protocol: str
    methods: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...]
    output_root: str
    data: str
    workers: int
    cfg: str = "mini"
    shots: tuple[int, ...] = ()
    source: str = ""
    overrides: tuple[str, ...] = ()
    options: tuple[str, ...] = ()  # e.g. --zs-cfg mini

    def argv(self, dry_run: bool = False) -> list[str]:
        args = [self.protocol, "--methods", *self.methods, "--datasets", *self.datasets]
        args += ["--seeds", *map(str, self.seeds)]
        if self.shots:
            args += ["--shots", *map(str, self.shots)]
        if self.source:
            args += ["--source", self.source]
        args += [*self.options, "--data", self.data, "--output-root", self.output_root]
        args += ["--gpus", "none", "--slots", str(self.workers), "--no-table"]
        if dry_run:
            args.append("--dry-run")
        if self.overrides:
            args += ["--", *self.overrides]
        return args

    def command(self) -> str:
        return f"CFG={self.cfg} ammpl-sweep {shlex.join(self.argv())}"


@dataclass
class Section:
    """A table or figure: the sweeps that make its runs, and what its table shows."""

    key: str
    title: str
    calls: list[SweepCall] = field(default_factory=list)
    datasets: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()  # methods as the scripts name them, in display order
    shots: tuple[int, ...] = ()
    notes: list[str] = field(default_factory=list)


def mini_values(method: str, dataset: str, shots: int) -> tuple[str, ...]:
    """The mini config's values for the keys a method's few-shot script pins to ViT-B/16
    values (scripts/mini/values.sh, shared with scripts/mini/run.sh)."""
    script = 'source "$1/common.sh"; source "$1/mini/values.sh"; mini_values "$2" "$3" "$4"'
    result = subprocess.run(
        ["bash", "-c", script, "bash", str(SCRIPTS), method, dataset, str(shots)],
        capture_output=True, text=True, check=False,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    if result.returncode != 0:
        raise ConfigError(f"scripts/mini/values.sh {method}: {result.stderr.strip()}")
    return tuple(result.stdout.split())


def methods_for(protocol: str, settings: PaperSettings) -> tuple[str, ...]:
    """The sweep's methods for a protocol that run on the mini world (and were chosen)."""
    return tuple(m for m in protocol_methods(protocol) if m not in LEFT_OUT and settings.keeps(m))


def _calls(
    protocol: str, methods: Sequence[str], settings: PaperSettings, **fields
) -> list[SweepCall]:
    """One call per CFG the methods need (DLP reads its own mini config)."""
    common = dict(
        datasets=tuple(fields.pop("datasets")),
        seeds=settings.seeds,
        output_root=os.path.abspath(fields.pop("output_root", settings.runs_root)),
        data=os.path.abspath(settings.data),
        workers=settings.workers,
    )
    overrides = tuple(fields.pop("overrides", ())) + settings.epoch_overrides()
    calls = []
    for cfg in dict.fromkeys(METHOD_CFG.get(m, "mini") for m in methods):
        group = tuple(m for m in methods if METHOD_CFG.get(m, "mini") == cfg)
        calls.append(SweepCall(protocol, group, cfg=cfg, overrides=overrides, **common, **fields))
    return calls


def _zeroshot(datasets: Sequence[str], subsample: str, settings: PaperSettings) -> SweepCall:
    overrides = ("DATASET.SUBSAMPLE_CLASSES", subsample) if subsample != "all" else ()
    return SweepCall(
        "zeroshot", ("zsclip",), tuple(datasets), settings.seeds,
        os.path.abspath(settings.runs_root), os.path.abspath(settings.data), settings.workers,
        overrides=overrides, options=("--zs-cfg", "mini"),
    )  # fmt: skip


def table1(settings: PaperSettings) -> Section:
    datasets = settings.chosen_datasets()
    methods = methods_for("base2new", settings)
    section = Section("table1", "Table 1: base-to-new generalisation", datasets=datasets,
                      methods=methods)  # fmt: skip
    section.calls = [_zeroshot(datasets, side, settings) for side in ("base", "new")]
    section.calls += _calls("base2new", methods, settings, datasets=datasets)
    return section


def _xd_methods(settings: PaperSettings) -> tuple[str, ...]:
    methods = methods_for("xd", settings)
    return tuple(sorted(methods, key=lambda m: XD_FIRST.index(m) if m in XD_FIRST else 3))


def table2(settings: PaperSettings) -> Section:
    targets = tuple(d for d in settings.chosen_datasets() if d != SOURCE)
    shots = settings.shot_counts(XD_SHOTS, QUICK_XD_SHOTS)
    methods = _xd_methods(settings)
    section = Section("table2", f"Table 2: cross-data, trained on {MINI_NAME[SOURCE]}",
                      datasets=targets, methods=methods, shots=shots)  # fmt: skip
    if targets and methods:
        section.calls = _calls("xd", methods, settings, datasets=targets, shots=shots,
                               source=SOURCE)  # fmt: skip
    return section


def dg_table(settings: PaperSettings) -> Section:
    targets = settings.dg_targets()
    methods = _xd_methods(settings)
    shots = (max(settings.shots),) if settings.shots else DG_SHOTS
    title = f"Domain generalisation: {MINI_NAME[SOURCE]} → its four variants"
    section = Section("dg", title, datasets=targets, methods=methods, shots=shots)
    if targets and methods:
        section.calls = [_zeroshot((SOURCE, *targets), "all", settings)]
        section.calls += _calls("xd", methods, settings, datasets=targets, shots=shots,
                                source=SOURCE)  # fmt: skip
    return section


# The paper's ablation is of class-specific AMMPL (scripts/ammpl/ablation.sh's default config).
ABLATION_OVERRIDES = ("TRAINER.AMMPL.CLASS_SPECIFIC", "True")


def table3(settings: PaperSettings) -> Section:
    datasets = settings.chosen_datasets()
    shots = (min(settings.shots),) if settings.shots else ABLATION_SHOTS
    title = f"Table 3: AMMPL ablation at {shots[0]} shot{'s' if shots[0] > 1 else ''}"
    section = Section("table3", title, datasets=datasets, methods=("ammpl",), shots=shots)
    combos = ("--combos", *settings.combos) if settings.combos else ()
    if settings.keeps("ammpl"):
        section.calls = _calls("ablation", ("ammpl",), settings, datasets=datasets,
                               shots=shots, overrides=ABLATION_OVERRIDES,
                               options=combos)  # fmt: skip
    return section


def figure2(settings: PaperSettings) -> Section:
    datasets = settings.chosen_datasets()
    shots = settings.shot_counts(FEWSHOT_SHOTS, QUICK_FEWSHOT_SHOTS)
    methods = methods_for("fewshot", settings)
    section = Section("figure2", "Figure 2: few-shot curves", datasets=datasets,
                      methods=methods, shots=shots)  # fmt: skip
    section.calls = [_zeroshot(datasets, "all", settings)]
    plain = [m for m in methods if m not in ("coop", "dpt", "plotpp")]
    section.calls += _calls("fewshot", plain, settings, datasets=datasets, shots=shots)
    if "coop" in methods:  # CoOp's own few-shot setting: 16 context vectors, random init
        section.calls += _calls("fewshot", ("coop",), settings, datasets=datasets, shots=shots,
                                overrides=("TRAINER.COOP.CTX_INIT", ""),
                                options=("--coop-cfg", "mini"))  # fmt: skip
    for method in ("dpt", "plotpp"):  # their scripts pin ViT-B/16 values: give mini's back
        if method not in methods:
            continue
        groups: dict[tuple[str, ...], list[tuple[str, int]]] = {}
        for dataset in datasets:
            for k in shots:
                groups.setdefault(mini_values(method, dataset, k), []).append((dataset, k))
        for values, points in groups.items():
            if len(groups) == 1:
                section.calls += _calls("fewshot", (method,), settings, datasets=datasets,
                                        shots=shots, overrides=values)  # fmt: skip
                break
            for dataset, k in points:
                section.calls += _calls("fewshot", (method,), settings, datasets=(dataset,),
                                        shots=(k,), overrides=values)  # fmt: skip
    return section


def figure3_dataset(settings: PaperSettings) -> str | None:
    """The object dataset whose images show the masks: the DG source when chosen."""
    objects = [d for d in settings.chosen_datasets() if d in OBJECT_DATASETS]
    if SOURCE in objects:
        return SOURCE
    return objects[0] if objects else None


# Keep every epoch's checkpoint (the mask over iterations); class-specific, as in the paper.
FIGURE3_OVERRIDES = ("TRAIN.CHECKPOINT_FREQ", "1", *ABLATION_OVERRIDES)


def figure3(settings: PaperSettings) -> Section:
    dataset = figure3_dataset(settings)
    shots = (max(settings.shot_counts(FEWSHOT_SHOTS, QUICK_FEWSHOT_SHOTS)),)
    section = Section(
        "figure3",
        "Figure 3: AMMPL's masks over training",
        datasets=(dataset,) if dataset else (),
        methods=("ammpl",),
        shots=shots,
    )
    if dataset and settings.keeps("ammpl"):
        figure_settings = PaperSettings(**{**settings.__dict__, "seeds": settings.seeds[:1]})
        section.calls = _calls("fewshot", ("ammpl",), figure_settings, datasets=(dataset,),
                               shots=shots, overrides=FIGURE3_OVERRIDES,
                               output_root=settings.figure3_root)  # fmt: skip
    return section


MINI_NAME = {spec.folder: name for name, spec in MINI_DATASETS.items()}
BUILDERS = (table1, table2, dg_table, table3, figure2, figure3)


def plan(settings: PaperSettings) -> list[Section]:
    """Every section, in the report's order."""
    unknown = [d for d in settings.datasets or () if d not in MINI_NAME]
    if unknown:
        raise ConfigError(f"unknown mini dataset '{unknown[0]}'; choose from {' '.join(MINI_NAME)}")
    every = {*protocol_methods("fewshot"), *protocol_methods("base2new"), "zsclip"}
    for method in settings.methods or ():
        if method not in every:
            raise ConfigError(f"unknown method '{method}'; choose from {' '.join(sorted(every))}")
        if method in LEFT_OUT:
            raise ConfigError(f"method '{method}' cannot run on the mini world: {LEFT_OUT[method]}")
    return [build(settings) for build in BUILDERS]


def data_names(settings: PaperSettings) -> list[str]:
    """The mini datasets (builder names) the paper reads."""
    folders = {SOURCE, *settings.chosen_datasets(), *settings.dg_targets()}
    return [name for name, folder in FOLDER_OF.items() if folder in folders]
