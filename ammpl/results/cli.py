"""`ammpl-results`: log parsing, the tidy runs CSV, paper tables and few-shot curves.

    ammpl-results parse DIR [--ci95] [--test-log] [--multi-exp] [--keyword K]
    ammpl-results collect ROOT --out runs.csv
    ammpl-results table {b2n,xd,ablation,fewshot} RUNS [--format md|csv|latex]
                  [--methods M ...] [--datasets D ...] [--configs C ...] [--seeds 1 2 3]
                  [--shots K ...] [--source DATASET] [--out FILE]
    ammpl-results plot-fewshot RUNS --out DIR [--methods …] [--datasets …] [--error-bars]

RUNS is a CSV written by `collect`, or a folder of runs, which is then collected on the fly
(with a one-line notice). User errors, and files that cannot be read or written, print one
line (`error: …`) and exit with code 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from ammpl.results.errors import ResultsError
from ammpl.utils import AmmplError

if TYPE_CHECKING:
    from ammpl.results.collect import Run


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line on stderr (exit code 2)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def add_parse_options(parser: argparse.ArgumentParser) -> None:
    """The options of CoOp's parse_test_res.py, same names and meaning."""
    parser.add_argument("directory", help="folder holding the seed folders (each with log.txt)")
    parser.add_argument("--ci95", action="store_true", help="print the 95%% CI, not the std")
    parser.add_argument("--test-log", action="store_true", help="parse evaluation-only logs")
    parser.add_argument("--multi-exp", action="store_true", help="one more folder level")
    parser.add_argument("--keyword", default="accuracy", help="metric name (default accuracy)")


RUNS_HELP = "CSV written by `ammpl-results collect`, or a folder of runs (collected on the fly)"
TABLE_SUFFIXES = {"md": ".md", "csv": ".csv", "latex": ".tex"}


def load_runs(path: str) -> list[Run]:
    """The runs of a CSV written by `collect`, or of a folder of runs, collected on the fly
    (a folder is the natural first try: `ammpl-results table b2n output`)."""
    from ammpl.results.collect import collect_runs, read_runs_csv

    if not os.path.isdir(path):
        return read_runs_csv(path)
    runs = collect_runs(path)
    saved = os.path.join(path, "runs.csv")
    print(
        f"note: {path} is a folder: collected its {len(runs)} run(s) on the fly "
        f"(`ammpl-results collect {path} --out {saved}` saves them once)",
        file=sys.stderr,
    )
    return runs


def file_to_write(path: str, example: str) -> str:
    """`path` unless it is an existing folder (`--out output` where a file is meant)."""
    if os.path.isdir(path):
        raise ResultsError(
            f"--out {path} is a folder: name the file to write (e.g. --out "
            f"{os.path.join(path, example)})"
        )
    return path


def folder_to_write(path: str) -> str:
    """`path` unless it is an existing file (`--out runs.csv` where a folder is meant)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ResultsError(
            f"--out {path} is a file: name the folder for the figures (e.g. --out "
            f"{os.path.join(os.path.dirname(path), 'figures')})"
        )
    return path


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--methods", nargs="+", help="methods (or trainers, configs, M:CFG) to show, in this order"
    )
    parser.add_argument("--datasets", nargs="+", help="dataset stems or names, in this order")
    parser.add_argument("--configs", nargs="+", help="keep only runs of these configs")
    parser.add_argument(
        "--seeds",
        nargs="+",
        type=int,
        default=[1, 2, 3],
        help="the seeds every cell should have (default 1 2 3)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="ammpl-results", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    commands = parser.add_subparsers(dest="command", required=True)

    add_parse_options(commands.add_parser("parse", help="CoOp's parse_test_res.py"))

    collect = commands.add_parser("collect", help="all results.json under ROOT → one CSV")
    collect.add_argument("root", help="output folder of the runs (e.g. output)")
    collect.add_argument("--out", required=True, help="CSV file to write")

    table = commands.add_parser("table", help="a paper table from the runs CSV")
    table.add_argument("kind", choices=("b2n", "xd", "ablation", "fewshot"))
    table.add_argument("csv", help=RUNS_HELP)
    table.add_argument("--format", choices=("md", "csv", "latex"), default="md")
    _add_filters(table)
    table.add_argument("--shots", nargs="+", type=int, help="shots to show (xd, ablation, fewshot)")
    table.add_argument("--source", help="source dataset (xd; needed when runs have several)")
    table.add_argument("--out", help="write the table here instead of stdout")

    plot = commands.add_parser("plot-fewshot", help="few-shot curves (PDF and PNG)")
    plot.add_argument("csv", help=RUNS_HELP)
    plot.add_argument("--out", required=True, help="folder for the figures")
    _add_filters(plot)
    plot.add_argument("--error-bars", action="store_true", help="seed std as error bars")
    plot.add_argument("--formats", nargs="+", choices=("pdf", "png", "svg"), default=["pdf", "png"])
    return parser


def run_parse(args: argparse.Namespace) -> int:
    from ammpl.results.parse import parse_directory, parse_experiments

    parse = parse_experiments if args.multi_exp else parse_directory
    parse(args.directory, args.keyword, args.test_log, args.ci95)
    return 0


def run_collect(args: argparse.Namespace) -> int:
    from ammpl.results.collect import collect_runs, write_runs_csv

    out = file_to_write(args.out, "runs.csv")
    count = write_runs_csv(collect_runs(args.root), out)
    print(f"{count} run(s) written to {args.out}")
    return 0


def run_table(args: argparse.Namespace) -> int:
    from ammpl.results.render import render
    from ammpl.results.tables import BUILDERS

    options = dict(
        methods=args.methods, datasets=args.datasets, configs=args.configs, seeds=tuple(args.seeds)
    )
    if args.kind != "b2n":
        options["shots"] = args.shots
    elif args.shots:
        raise ResultsError("--shots does not apply to b2n (base-to-new runs use 16 shots)")
    if args.kind == "xd":
        options["source"] = args.source
    elif args.source:
        raise ResultsError("--source applies to the xd table only")
    if args.out:
        file_to_write(args.out, f"{args.kind}{TABLE_SUFFIXES[args.format]}")
    table = BUILDERS[args.kind](load_runs(args.csv), **options)
    text = render(table, args.format)
    if args.out:
        from ammpl.utils.io import atomic_write_text

        atomic_write_text(args.out, text)
        print(f"Table written to {args.out}")
    else:
        sys.stdout.write(text)
    if args.format == "csv" or args.out:
        for note in table.notes:
            print(f"note: {note}", file=sys.stderr)
    return 0


def run_plot(args: argparse.Namespace) -> int:
    from ammpl.results.plots import plot_fewshot

    folder_to_write(args.out)
    written, notes = plot_fewshot(
        load_runs(args.csv),
        args.out,
        args.methods,
        args.datasets,
        args.configs,
        tuple(args.seeds),
        args.error_bars,
        args.formats,
    )
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    print(f"{len(written)} figure file(s) written to {args.out}")
    return 0


COMMANDS = {
    "parse": run_parse,
    "collect": run_collect,
    "table": run_table,
    "plot-fewshot": run_plot,
}


def _say_error(message: str) -> None:
    try:
        sys.stdout.flush()  # the error comes after what was printed
    except OSError:  # stdout itself failed (a closed pipe)
        pass
    print(f"error: {message}", file=sys.stderr)


def _guarded(function, args: argparse.Namespace) -> int:
    try:
        return function(args)
    except AmmplError as error:
        if getattr(args, "debug", False):
            raise
        _say_error(str(error))
        return error.exit_code
    except OSError as error:  # a path that cannot be read or written: the OS says why
        if getattr(args, "debug", False):
            raise
        where = f"{error.filename}: " if error.filename else ""
        _say_error(f"{where}{error.strerror or error}")
        return 2
    except KeyboardInterrupt:
        print("Interrupted", file=sys.stderr)
        return 130


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return _guarded(COMMANDS[args.command], args)


def parse_test_res_main(argv: Sequence[str] | None = None) -> int:
    """The top-level `parse_test_res.py`: CoOp's command line, nothing else."""
    description = "Seed-averaged test results from the log.txt files of a folder of runs"
    parser = OneLineParser(prog="parse_test_res.py", description=description)
    add_parse_options(parser)
    return _guarded(run_parse, parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
