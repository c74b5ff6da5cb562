"""A protocol × methods × datasets × seeds (× shots) → the runs to do, in order.

Which scripts a protocol calls, and with what, is decided here (the loops `run_all.sh`
had). Each run's train.py command and output folder come from the per-method script itself
(`scripts/<method>/<protocol>.sh --dry-run`), so the scripts stay the one definition of both
and a sweep runs exactly what the scripts would. An evaluation whose `--model-dir` is the
output folder of another run of the sweep (or a run that loads a checkpoint from one)
depends on that run.
"""

from __future__ import annotations

import difflib
import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ammpl.utils.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = REPO_ROOT / "scripts"
PROTOCOLS = ("fewshot", "base2new", "xd", "ablation", "zeroshot")
# the per-method script folders, in the order run_all.sh documents them
TRAINABLE_ORDER = (
    "ammpl", "coop", "cocoop", "maple", "ivlp", "dlp", "vpt", "promptsrc", "kgcoop", "vp", "dpt",
    "plot", "plotpp",
)  # fmt: skip


def trainable_methods() -> tuple[str, ...]:
    """Every scripts/<method>/ with a few-shot script or a base2new_train.sh (MMA and
    CoPrompt have no few-shot protocol): the documented order, then the others."""
    scripts = [*SCRIPTS.glob("*/fewshot.sh"), *SCRIPTS.glob("*/base2new_train.sh")]
    found = sorted({p.parent.name for p in scripts if p.parent.name != "protocols"})
    return tuple(m for m in TRAINABLE_ORDER if m in found) + tuple(
        m for m in found if m not in TRAINABLE_ORDER
    )


def fewshot_only_methods() -> tuple[str, ...]:
    """The trainable methods without base-to-new (and cross-dataset) scripts."""
    methods = trainable_methods()
    return tuple(m for m in methods if not (SCRIPTS / m / "base2new_train.sh").is_file())


def no_fewshot_methods() -> tuple[str, ...]:
    """The trainable methods without a few-shot script (their papers have no such protocol)."""
    return tuple(m for m in trainable_methods() if not has_fewshot_script(m))


def has_fewshot_script(method: str) -> bool:
    """CoOp's few-shot script is its repository's scripts/coop/main.sh; the others' fewshot.sh."""
    return (SCRIPTS / method / ("main.sh" if method == "coop" else "fewshot.sh")).is_file()


PAPER_DATASETS = (
    "caltech101 dtd eurosat fgvc_aircraft oxford_flowers food101 oxford_pets sun397 ucf101"
).split()
DEFAULT_SEEDS = (1, 2, 3)
ABLATION_COMBOS = ("C1", "C3", "C1+C2", "C1+C2+C3")
# the table `ammpl-results` builds for each protocol
TABLE_KIND = {
    "fewshot": "fewshot",
    "base2new": "b2n",
    "xd": "xd",
    "ablation": "ablation",
    "zeroshot": "fewshot",
}


@dataclass
class SweepSpec:
    """What the user asked for (the vocabulary of `scripts/run_all.sh`)."""

    protocol: str
    methods: Sequence[str]
    data: str
    output_root: str = "output"
    datasets: Sequence[str] = tuple(PAPER_DATASETS)
    seeds: Sequence[int] = DEFAULT_SEEDS
    shots: Sequence[int] | None = None
    source: str | None = None
    combos: Sequence[str] = ABLATION_COMBOS
    coop_cfg: str = "vit_b16"
    zs_cfg: str = "vit_b16"
    overrides: Sequence[str] = ()
    python: str = sys.executable


@dataclass
class Step:
    """One call of a per-method script (it may stand for several runs: coop/main.sh)."""

    script: str  # relative to scripts/
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    """One train.py run: its command (cwd = the sweep's folder) and output folder."""

    index: int
    command: list[str]
    output_dir: str
    depends_on: list[int] = field(default_factory=list)

    @property
    def train_args(self) -> list[str]:
        """The arguments after train.py."""
        for i, part in enumerate(self.command):
            if part.endswith("train.py"):
                return self.command[i + 1 :]
        return self.command[1:]

    def option(self, name: str) -> str:
        args = self.command
        return args[args.index(name) + 1] if name in args else ""


def _coop_config(base: str, dataset: str, shots: int) -> str:
    """CoOp's epoch budget by shots (ImageNet: the 50-epoch config throughout). A config
    family without the `_ep50`/`_ep100` files (`mini`: one budget at every shot count)
    keeps its one config."""
    if dataset == "imagenet" or shots == 1:
        name = f"{base}_ep50"
    elif shots <= 4:
        name = f"{base}_ep100"
    else:
        return base
    return (
        name if (REPO_ROOT / "configs" / "trainers" / "CoOp" / f"{name}.yaml").is_file() else base
    )


def protocol_methods(protocol: str) -> tuple[str, ...]:
    """The METHODs a protocol accepts: those with its scripts (scripts/<method>/...)."""
    if protocol == "zeroshot":
        return ("zsclip", "coop")
    if protocol == "ablation":
        return ("ammpl",)
    if protocol in ("base2new", "xd"):
        return tuple(
            m for m in trainable_methods() if (SCRIPTS / m / f"{protocol}_train.sh").is_file()
        )
    return tuple(m for m in trainable_methods() if has_fewshot_script(m))


def known_method(protocol: str, method: str) -> str:
    """`method` as the scripts name it (case-insensitive: AMMPL, MaPLe), or a ConfigError
    saying which methods the protocol has, with the closest name."""
    if protocol not in PROTOCOLS:
        raise ConfigError(f"unknown PROTOCOL '{protocol}'; use one of: {' '.join(PROTOCOLS)}")
    methods = protocol_methods(protocol)
    name = method.lower()
    if name in methods:
        return name
    every = {*trainable_methods(), "coop", "zsclip"}
    hint = ""
    if name in every:
        problem = f"no {protocol} runs for METHOD '{method}'"
    else:
        problem = f"unknown METHOD '{method}' for {protocol}"
        close = difflib.get_close_matches(name, sorted(every), 1, 0.6)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
    raise ConfigError(f"{problem}{hint}; {protocol} methods: {' '.join(methods)}")


def method_steps(spec: SweepSpec, method: str) -> list[Step]:
    """The script calls of one method, in the order run_all.sh made them."""
    method = known_method(spec.protocol, method)
    extra = list(spec.overrides)
    seeds = [str(s) for s in spec.seeds]
    steps: list[Step] = []
    protocol = spec.protocol
    if protocol == "fewshot" and method == "coop":
        for dataset in spec.datasets:
            for k in spec.shots or (1, 2, 4, 8, 16):
                config = _coop_config(spec.coop_cfg, dataset, int(k))
                args = [dataset, config, "end", "16", str(k), "False", *extra]
                steps.append(Step("coop/main.sh", args, {"SEEDS": " ".join(seeds)}))
    elif protocol == "zeroshot":
        steps = [Step("zsclip/zeroshot.sh", [d, spec.zs_cfg, *extra]) for d in spec.datasets]
    elif protocol == "fewshot":
        for dataset in spec.datasets:
            for k in spec.shots or (1, 2, 4, 8, 16):
                for seed in seeds:
                    steps.append(Step(f"{method}/fewshot.sh", [dataset, str(k), seed, *extra]))
    elif protocol == "base2new":
        for dataset in spec.datasets:
            for seed in seeds:
                steps.append(Step(f"{method}/base2new_train.sh", [dataset, seed, *extra]))
                steps.append(Step(f"{method}/base2new_test.sh", [dataset, seed, "new", *extra]))
    elif protocol == "xd":
        ammpl = method == "ammpl"
        source = spec.source or ("food101" if ammpl else "imagenet")
        env = {"SOURCE": source}
        for k in spec.shots or ((1, 8, 16) if ammpl else (16,)):
            for seed in seeds:
                steps.append(Step(f"{method}/xd_train.sh", [seed, str(k), *extra], env))
                for target in spec.datasets:
                    if target != source:
                        args = [target, seed, str(k), *extra]
                        steps.append(Step(f"{method}/xd_test.sh", args, env))
    elif protocol == "ablation":
        for k in spec.shots or (1,):
            for dataset in spec.datasets:
                for combo in spec.combos:
                    for seed in seeds:
                        args = [dataset, combo, seed, *extra]
                        steps.append(Step("ammpl/ablation.sh", args, {"SHOTS": str(k)}))
    return steps


def _script_env(spec: SweepSpec, step: Step) -> dict[str, str]:
    """The caller's environment (CFG, TRAINER, NCTX, … reach the scripts as with run_all.sh)
    with the sweep's data, interpreter and output root, and the step's own variables."""
    env = {k: v for k, v in os.environ.items() if k != "DRY_RUN"}
    env.update(DATA=spec.data, PYTHON=spec.python, OUTPUT_ROOT=spec.output_root)
    env.update(step.env)
    return env


def step_commands(spec: SweepSpec, step: Step) -> list[list[str]]:
    """The train.py command lines of one script call (its --dry-run output)."""
    result = subprocess.run(
        ["bash", str(SCRIPTS / step.script), *step.args, "--dry-run"],
        env=_script_env(spec, step),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["(no output)"]
        message = lines[-1].removeprefix("error: ")
        raise ConfigError(f"scripts/{step.script} {' '.join(step.args)}: {message}")
    return [shlex.split(line) for line in result.stdout.splitlines() if line.strip()]


def _reads_from(run: Run, by_folder: dict[str, int]) -> list[int]:
    """The earlier runs whose output folder holds a path this run's arguments name: the
    training an evaluation loads (`--model-dir`), the stage-1 checkpoint PLOT++'s stage 2
    starts from (`TRAINER.PLOTPP.PRETRAIN_DIR`)."""
    found: list[int] = []
    args = run.train_args
    for i, value in enumerate(args):
        if "/" not in value or (i and args[i - 1] == "--output-dir"):
            continue
        path = Path(os.path.abspath(value))
        for folder in (path, *path.parents):
            index = by_folder.get(str(folder))
            if index is not None:
                if index not in found:
                    found.append(index)
                break
    return found


def expand(spec: SweepSpec, workers: int = 8) -> list[Run]:
    """Every run of the sweep, numbered in order, with dependencies resolved."""
    if not spec.methods:
        raise ConfigError("no method given: pass --methods (e.g. ammpl maple)")
    steps = [step for method in spec.methods for step in method_steps(spec, method)]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        commands = [c for cs in pool.map(lambda s: step_commands(spec, s), steps) for c in cs]
    runs: list[Run] = []
    by_folder: dict[str, int] = {}
    for command in commands:
        run = Run(len(runs), command, "")
        run.output_dir = run.option("--output-dir")
        folder = os.path.normpath(os.path.abspath(run.output_dir))
        if folder in by_folder:  # the same run asked twice (e.g. a method listed twice)
            continue
        run.depends_on = _reads_from(run, by_folder)
        by_folder[folder] = run.index
        runs.append(run)
    return runs
