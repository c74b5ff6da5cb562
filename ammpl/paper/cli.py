"""`python -m ammpl.paper`: the AMMPL paper in miniature, one command on a CPU.

Builds the mini data (existing datasets are kept), runs every experiment of the paper's
tables and figures through `ammpl-sweep` (local executor, one run per core; finished runs
are skipped, so an interrupted paper resumes) and writes one folder: `report.md` (Tables
1–3, the domain-generalisation table, Figures 2–3, each with the command that regenerates
it, the seeds and the wall time), `figure2/*.png`, `figure3/*.png` and the runs (`runs/`).
The plan of runs is `ammpl.paper.plan`; the tables come from `ammpl.results`
(`ammpl.paper.report`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from typing import NoReturn

from ammpl.paper.plan import (
    FIGURE3_IMAGES,
    MINI_NAME,
    PaperSettings,
    Section,
    SweepCall,
    data_names,
    plan,
)
from ammpl.paper.report import figure3_jobs, write_report
from ammpl.utils.errors import AmmplError
from ammpl.utils.io import write_json

TIMINGS_FILE = "timings.json"
# Estimated from the recorded times of its runs on the 2-core development machine (Table 1
# of --quick measured 4.4 min with other jobs running); the sum, 2 runs at once, about 17 min.
QUICK_ESTIMATE = "about 13 minutes"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="paper.sh",
        description="The AMMPL paper in miniature: every table and figure on the mini world.",
        epilog="--quick: 1 seed, 2 datasets (+2 DG targets), AMMPL CoCoOp MaPLe CoOp, fewer "
        f"shots; {QUICK_ESTIMATE} on 2 idle cores (measured, data included). The full "
        "paper runs every method on every mini dataset with 3 seeds: many hours on 2 cores "
        "(report.md states the time taken).",
    )
    parser.add_argument("--out", default="output/mini_paper", help="report folder (runs inside)")
    parser.add_argument(
        "--data", default=os.environ.get("DATA") or "", help="mini data ($DATA; default OUT/data)"
    )
    parser.add_argument("--quick", action="store_true", help="the short version (see below)")
    parser.add_argument("--dry-run", action="store_true", help="list every run; run nothing")
    parser.add_argument("--seeds", nargs="+", type=int, help="default 1 2 3 (--quick: 1)")
    parser.add_argument("--datasets", nargs="+", help="dataset folders, e.g. mini_objects")
    parser.add_argument("--methods", nargs="+", help="methods as the scripts name them")
    parser.add_argument("--epochs", type=int, help="OPTIM.MAX_EPOCH of every run (tests)")
    parser.add_argument(
        "--shots",
        nargs="+",
        type=int,
        help="shot counts of every section (tests; Table 3: "
        "the fewest, the DG table and Figure 3: the most)",
    )
    parser.add_argument("--combos", nargs="+", help="Table 3's combinations (default: the paper's)")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="runs at once (default: cores)"
    )
    return parser


def settings_from(args: argparse.Namespace) -> PaperSettings:
    seeds = tuple(args.seeds or ((1,) if args.quick else (1, 2, 3)))
    return PaperSettings(
        out=os.path.abspath(args.out),
        data=os.path.abspath(args.data or os.path.join(args.out, "data")),
        seeds=seeds,
        datasets=tuple(args.datasets) if args.datasets else None,
        methods=tuple(m.lower() for m in args.methods) if args.methods else None,
        epochs=args.epochs,
        shots=tuple(args.shots) if args.shots else None,
        combos=tuple(args.combos) if args.combos else None,
        quick=args.quick,
        workers=max(1, args.workers),
    )


@contextlib.contextmanager
def script_env(cfg: str) -> Iterator[None]:
    """CFG for the per-method scripts (TRAINER unset: the wrappers name their own), one
    thread per run; restored afterwards."""
    saved = dict(os.environ)
    os.environ["CFG"] = cfg
    os.environ.pop("TRAINER", None)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def sweep(call: SweepCall, dry_run: bool = False) -> int:
    """`ammpl-sweep` in this process (its own messages on stdout/stderr)."""
    from ammpl.sweep import cli

    with script_env(call.cfg):
        return cli.main(call.argv(dry_run))


def _finished_since(root: str, start: float) -> int:
    """Run folders under `root` whose results.json was written after `start`."""
    count = 0
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [d for d in subfolders if not d.startswith(".")]
        if (
            "results.json" in files
            and os.path.getmtime(os.path.join(folder, "results.json")) >= start
        ):
            count += 1
    return count


def load_timings(out: str) -> dict:
    try:
        with open(os.path.join(out, TIMINGS_FILE), encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return {}


def run_section(section: Section, settings: PaperSettings, timings: dict) -> int:
    """Its sweeps; the wall time is added to the section's record when runs were made."""
    start = time.time()
    worst = 0
    for call in section.calls:
        print(f"=== {section.title}: {call.command()}", file=sys.stderr, flush=True)
        code = sweep(call)
        if code == 130:
            raise KeyboardInterrupt
        worst = max(worst, code)
    if section.key == "figure3" and section.calls:
        worst = max(worst, draw_figure3(section, settings))
    wall = time.time() - start
    made = sum(_finished_since(root, start) for root in {c.output_root for c in section.calls})
    record = timings.setdefault(section.key, {"wall_s": 0.0, "runs_made": 0})
    if made:
        record["wall_s"] += wall
        record["runs_made"] += made
    record["last_call_s"] = wall
    record["last_call_runs_made"] = made
    write_json(timings, os.path.join(settings.out, TIMINGS_FILE))
    return worst


def dry_run(sections: Sequence[Section], settings: PaperSettings) -> int:
    print(f"# mini data: ammpl-data mini --root {shlex.quote(settings.data)}")
    for section in sections:
        print(f"## {section.title}", flush=True)
        if not section.calls:
            print("# (nothing to run with the chosen methods and datasets)")
        for call in section.calls:
            print(f"# {call.command()}", flush=True)
            code = sweep(call, dry_run=True)
            if code:
                return code
        if section.key == "figure3" and section.calls:
            print(f"# then: ammpl-viz masks on {FIGURE3_IMAGES} test images of "
                  f"{MINI_NAME[section.datasets[0]]}, one per class, every epoch")  # fmt: skip
    print("## Masks on background")
    print("# measured on the AMMPL runs of the object datasets (ammpl-viz mask-share)")
    return 0


def draw_figure3(section: Section, settings: PaperSettings) -> int:
    """`ammpl-viz masks` for each chosen image (in this process)."""
    from ammpl.cli import viz

    worst = 0
    for argv, _ in figure3_jobs(section, settings):
        worst = max(worst, viz.main(argv))
    return worst


def build_data(settings: PaperSettings) -> None:
    from ammpl.mini.benchmark import build_benchmark

    os.makedirs(settings.data, exist_ok=True)
    build_benchmark(
        settings.data, data_names(settings), log=lambda line: print(line, file=sys.stderr)
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from(args)
        sections = plan(settings)
        if args.dry_run:
            return dry_run(sections, settings)
        os.makedirs(settings.out, exist_ok=True)
        build_data(settings)
        timings = load_timings(settings.out)
        worst = 0
        for section in sections:
            worst = max(worst, run_section(section, settings, timings))
        path = write_report(sections, settings, timings, argv_text(argv))
        print(f"Report written to {path}")
        return 1 if worst else 0
    except AmmplError as error:
        print(f"error: {error}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        print(
            "Interrupted: finished runs are kept; run the same command to resume", file=sys.stderr
        )
        return 130


def argv_text(argv: Sequence[str] | None) -> str:
    words = list(sys.argv[1:] if argv is None else argv)
    return shlex.join(["scripts/mini/paper.sh", *words])


if __name__ == "__main__":
    sys.exit(main())
