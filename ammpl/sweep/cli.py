"""`ammpl-sweep`: a protocol's runs on local GPUs (or CPU slots), Slurm or Ray.

    ammpl-sweep PROTOCOL --methods M [M ...] [--datasets D ...] [--seeds 1 2 3]
                [--shots K ...] [--source DATASET] [--combos C1 ...] [--dry-run]
                [--executor local|slurm|ray] [--retries R] [-- KEY VALUE ...]

Runs are those of `scripts/run_all.sh PROTOCOL METHOD` (which wraps this command), each with
the command line and output folder its per-method script gives it; runs already finished
with the same settings are skipped, so an interrupted sweep resumes. At the end the
protocol's table (`ammpl-results table`) of the sweep's runs is printed on stdout.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from typing import NoReturn

from ammpl.sweep.plan import (
    ABLATION_COMBOS,
    DEFAULT_SEEDS,
    PAPER_DATASETS,
    PROTOCOLS,
    TABLE_KIND,
    SweepSpec,
    fewshot_only_methods,
    known_method,
    no_fewshot_methods,
    trainable_methods,
)
from ammpl.utils.errors import AmmplError, ConfigError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ammpl-sweep",
        description="Expand a protocol into its runs and execute them (local, Slurm or Ray).",
        epilog="Config overrides for every run go after `--`: ... -- OPTIM.MAX_EPOCH 1",
    )
    parser.add_argument("protocol", choices=PROTOCOLS)
    parser.add_argument("opts", nargs="*", help="KEY VALUE config overrides (after --)")
    what = parser.add_argument_group("runs (the vocabulary of scripts/run_all.sh)")
    what.add_argument(
        "--methods",
        nargs="+",
        required=True,
        help=f"{' '.join(trainable_methods())} zsclip (fewshot only: "
        f"{' '.join(fewshot_only_methods())}; no fewshot: {' '.join(no_fewshot_methods())}; "
        "zeroshot: zsclip coop; ablation: ammpl)",
    )
    what.add_argument("--datasets", nargs="+", default=PAPER_DATASETS, help="(the paper's 9)")
    what.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS))
    what.add_argument(
        "--shots",
        nargs="+",
        type=int,
        help="fewshot: 1 2 4 8 16; xd: 16 (AMMPL 1 8 16); ablation: 1",
    )
    what.add_argument("--source", help="xd: source dataset (imagenet; food101 for AMMPL)")
    what.add_argument("--combos", nargs="+", default=list(ABLATION_COMBOS), help="ablation")
    what.add_argument("--coop-cfg", default="vit_b16", help="fewshot coop: config family")
    what.add_argument("--zs-cfg", default="vit_b16", help="zeroshot: CoOp config")
    what.add_argument("--data", default=os.environ.get("DATA", ""), help="datasets ($DATA)")
    what.add_argument(
        "--output-root",
        default=os.environ.get("OUTPUT_ROOT", "output"),
        help="runs go below this folder ($OUTPUT_ROOT, default output)",
    )
    what.add_argument(
        "--python",
        default=os.environ.get("PYTHON", sys.executable),
        help="interpreter the runs use ($PYTHON, default this one)",
    )
    what.add_argument(
        "--dry-run",
        action="store_true",
        help="print every run's command (stdout) and its folder and state (stderr); run nothing",
    )
    run = parser.add_argument_group("execution")
    run.add_argument("--executor", choices=("local", "slurm", "ray"), default="local")
    run.add_argument("--retries", type=int, default=0, help="start a failed run again R times")
    run.add_argument("--log-dir", help="run logs (default OUTPUT_ROOT/.sweep)")
    run.add_argument("--no-table", action="store_true", help="do not print the table at the end")
    local = parser.add_argument_group("local executor")
    local.add_argument(
        "--gpus",
        default="auto",
        help="GPU ids, e.g. 0,1,2,3 (default: all visible; none: --slots runs, devices untouched)",
    )
    local.add_argument("--per-gpu", type=int, default=1, help="runs sharing one GPU")
    local.add_argument("--slots", type=int, default=1, help="runs at once without a GPU")
    cluster = parser.add_argument_group("slurm and ray executors (pip install -e '.[cluster]')")
    cluster.add_argument("--gpus-per-run", type=float, default=1, help="GPUs of one run")
    cluster.add_argument("--cpus-per-run", type=int, help="CPU cores of one run")
    cluster.add_argument("--partition", help="slurm partition")
    cluster.add_argument("--time", type=int, default=240, help="slurm: minutes per run")
    cluster.add_argument("--mem-gb", type=int, help="slurm: memory per run")
    cluster.add_argument("--array-parallelism", type=int, help="slurm: jobs of an array at once")
    cluster.add_argument(
        "--slurm-cluster", help="submitit cluster (default: slurm if present; local: this machine)"
    )
    cluster.add_argument("--address", help="ray: cluster address (default: a local Ray)")
    from ammpl.sweep.estimate import add_estimate_arguments

    add_estimate_arguments(parser)  # --estimate, --device-tflops, --utilisation, --device-memory
    return parser


# what a dry run shows as --root when DATA is not set
DATA_PLACEHOLDER = "/path/to/datasets"


def check_data(data: str, dry_run: bool = False) -> str:
    """DATA as an absolute folder; ConfigError when unset or missing, except in a dry run,
    which only lists commands (a warning, and a placeholder when unset)."""
    if not data:
        problem = "DATA is not set"
        fix = (
            "export DATA=/path/to/datasets (the folder holding the dataset folders) or pass --data"
        )
    elif not os.path.isdir(data):
        problem, fix = f"DATA={data} is not a folder", "export DATA=/path/to/datasets"
    else:
        return os.path.abspath(data)
    if not dry_run:
        raise ConfigError(f"{problem}: {fix}")
    shown = os.path.abspath(data) if data else DATA_PLACEHOLDER
    print(f"warning: {problem}; the commands show --root {shown} ({fix})", file=sys.stderr)
    return shown


def spec_from_args(args: argparse.Namespace) -> SweepSpec:
    data = check_data(args.data, dry_run=getattr(args, "dry_run", False))
    if len(args.opts) % 2:
        raise ConfigError(
            f"config overrides must be KEY VALUE pairs; '{args.opts[-1]}' has no value"
        )
    return SweepSpec(
        protocol=args.protocol,
        methods=[known_method(args.protocol, m) for m in args.methods],
        data=data,
        output_root=args.output_root,
        datasets=args.datasets,
        seeds=args.seeds,
        shots=args.shots,
        source=args.source,
        combos=args.combos,
        coop_cfg=args.coop_cfg,
        zs_cfg=args.zs_cfg,
        overrides=args.opts,
        python=args.python,
    )


def dry_run(runs, cwd: str) -> int:
    """Commands on stdout (a runnable script), each run's folder and state on stderr: done,
    pending, running elsewhere, or a folder holding a run with other settings (which a real
    sweep refuses before starting)."""
    from ammpl.sweep.done import RunConflictError
    from ammpl.sweep.runner import PENDING, SKIPPED, initial_state, running_elsewhere

    counts = {"pending": 0, "done": 0, "conflict": 0, "running elsewhere": 0}
    for run in runs:
        try:
            state = initial_state(run, cwd)
        except RunConflictError as error:
            label, detail = "conflict", f"  ({error})"
        else:
            label, detail = ("done" if state == SKIPPED else "pending"), ""
            holder = running_elsewhere(run, cwd) if state == PENDING else ""
            if holder:
                label, detail = "running elsewhere", f"  ({holder})"
        counts[label] += 1
        print(f"[{label}] {run.output_dir}{detail}", file=sys.stderr, flush=True)
        print(shlex.join(run.command), flush=True)
    shown = ", ".join(
        f"{n} {label}" for label, n in counts.items() if n or label in ("pending", "done")
    )
    print(f"{len(runs)} run(s): {shown}", file=sys.stderr)
    return 0


def print_table(protocol: str, runs, seeds: Sequence[int]) -> None:
    """The protocol's table of the sweep's own runs (as `ammpl-results table` builds it)."""
    from ammpl.results.collect import run_from_record
    from ammpl.results.render import render
    from ammpl.results.tables import BUILDERS
    from ammpl.sweep.done import has_test_result, read_record

    rows = []
    for run in runs:
        record = read_record(run.output_dir)
        if record is not None and has_test_result(record):
            rows.append(run_from_record(record, run.output_dir))
    if not rows:
        return
    try:
        table = BUILDERS[TABLE_KIND[protocol]](rows, seeds=tuple(seeds))
    except AmmplError as error:
        print(f"note: no table: {error}", file=sys.stderr)
        return
    sys.stdout.write(render(table, "md"))
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    from ammpl.sweep.plan import expand

    if args.estimate:  # what the runs cost; nothing is started
        from ammpl.sweep.estimate import estimate_main

        return estimate_main(args, spec_from_args)
    spec = spec_from_args(args)
    cwd = os.getcwd()
    runs = expand(spec)
    if args.dry_run:
        return dry_run(runs, cwd)
    if args.retries < 0:
        raise ConfigError("--retries must be 0 or more")
    from ammpl.sweep.choose_executor import make_executor
    from ammpl.sweep.preflight import preflight
    from ammpl.sweep.runner import PENDING, SweepRunner, initial_states

    args.log_dir = args.log_dir or os.path.join(args.output_root, ".sweep")
    executor = make_executor(args.executor, args)
    to_do = [r for r, state in zip(runs, initial_states(runs, cwd)) if state == PENDING]
    if to_do:  # what every run needs, once, before the first one starts
        print(preflight(to_do), file=sys.stderr, flush=True)
    runner = SweepRunner(runs, executor, args.log_dir,
                         args.output_root, args.retries, cwd,
                         poll_s=0.2 if args.executor == "local" else 2.0)  # fmt: skip
    summary = runner.run()
    for line in summary.lines:
        print(line, file=sys.stderr)
    if not args.no_table and not summary.interrupted:
        print_table(spec.protocol, runs, spec.seeds)
    if summary.interrupted:
        return 130
    return 0 if summary.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_intermixed_args(argv)
    try:
        return run(args)
    except AmmplError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code


if __name__ == "__main__":
    sys.exit(main())
