"""`ammpl-data`: check a data root, or write tiny fake copies of the benchmarks.

    ammpl-data check --root $DATA [names…] [--decode] [--cache-dir DIR]
    ammpl-data fake  --root DIR [names…] [--no-split-files] [--classes N] [--per-class N]
    ammpl-data mini  --root DIR [names…]   (the mini benchmark, docs/MINI.md)

`check` exits 0 when every requested dataset is present and intact, 1 otherwise; a usage
problem (unknown name, missing root, ...) prints one line and exits 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ammpl.utils.errors import AmmplError, DataError


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ammpl-data", description="Check dataset folders or write fake ones for testing."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)

    check = commands.add_parser(
        "check", help="report which datasets are present, missing or broken"
    )
    check.add_argument("--root", required=True, help="the data root ($DATA)")
    check.add_argument(
        "names",
        nargs="*",
        help="reader names or config stems of any registered dataset (default: the 15 benchmarks)",
    )
    check.add_argument("--decode", action="store_true", help="decode every image (slow)")
    check.add_argument("--cache-dir", default="", help="DATASET.CACHE_DIR, if you use one")

    fake = commands.add_parser("fake", help="write tiny fake datasets (for tests and demos)")
    fake.add_argument("--root", required=True, help="folder to write into")
    fake.add_argument("names", nargs="*", help="reader names or config stems (default: all 15)")
    fake.add_argument("--classes", type=int, default=5, help="classes per dataset (default 5)")
    fake.add_argument("--per-class", type=int, default=10, help="images per class (default 10)")
    fake.add_argument(
        "--no-split-files", action="store_true", help="omit split files (readers regenerate them)"
    )
    fake.add_argument(
        "--force", action="store_true", help="write even into existing dataset folders"
    )
    mini = commands.add_parser("mini", help="build the mini benchmark (docs/MINI.md)")
    mini.add_argument("--root", required=True, help="folder to write into ($DATA)")
    mini.add_argument("names", nargs="*", help="mini dataset names (default: all)")
    return parser


def run_mini(args: argparse.Namespace) -> int:
    from ammpl.mini.benchmark import build_benchmark

    build_benchmark(os.path.abspath(os.path.expanduser(args.root)), args.names or None)
    return 0


def run_check(args: argparse.Namespace) -> int:
    from ammpl.data.check import PRESENT, check_datasets, format_report

    if not args.root.strip():
        raise DataError("--root is empty: pass the folder holding the datasets ($DATA)")
    root = os.path.abspath(os.path.expanduser(args.root))
    if not os.path.isdir(root):
        raise DataError(f"Data root '{root}' does not exist (pass the folder holding the datasets)")
    reports = check_datasets(root, args.names, decode=args.decode, cache_dir=args.cache_dir)
    for report in reports:
        print(format_report(report))
    statuses = [report.status for report in reports]
    summary = ", ".join(f"{statuses.count(s)} {s}" for s in ("present", "missing", "broken"))
    differing = sum(bool(report.differences) for report in reports)
    if differing:
        summary += f"; {differing} differ from the published counts"
    print(summary)
    return 0 if all(report.status == PRESENT for report in reports) else 1


def run_fake(args: argparse.Namespace) -> int:
    from ammpl.data.check import DATASET_STEMS, reader_class, resolve_names
    from ammpl.data.fixtures import make_fixture

    root = os.path.abspath(os.path.expanduser(args.root))
    names = resolve_names(args.names) if args.names else list(DATASET_STEMS)
    folders = [os.path.join(root, reader_class(name).dataset_dir) for name in names]
    occupied = [folder for folder in folders if os.path.isdir(folder) and os.listdir(folder)]
    if occupied and not args.force:
        raise DataError(
            f"Refusing to write fake data into {len(occupied)} existing dataset folder(s) "
            f"({', '.join(occupied[:3])}{', …' if len(occupied) > 3 else ''}); "
            "choose an empty --root or pass --force"
        )
    try:
        infos = make_fixture(
            root, names, args.classes, args.per_class, with_split_files=not args.no_split_files
        )
    except ValueError as exc:
        raise DataError(str(exc)) from None
    for name, info in infos.items():
        sizes = "/".join(str(info.sizes[part]) for part in ("train", "val", "test"))
        print(f"{name:<20} {os.path.join(root, info.folder)} ({info.num_classes} classes, {sizes})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        commands = {"check": run_check, "fake": run_fake, "mini": run_mini}
        return commands[args.command](args)
    except AmmplError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
