"""CoOp's `parse_test_res.py`, reimplemented: seed-averaged metrics from Dassl `log.txt` files.

Behaviour kept from the reference (PROTOCOLS.md §10): a log counts only after its start
signal (a line equal to `Finish training`, or `=> result` for evaluation-only logs), the
last matching metric line wins, seeds are summarised by the mean and the population std
(or a 95 % CI), and the printed lines are the same. Two deliberate differences: both
`Finish training` (CoOp, current Dassl) and `Finished training` (MaPLe, old Dassl) arm a
training log (§14.1), and an entry of the folder that holds no `log.txt` (a stray file, a
notes folder) is skipped with a notice instead of stopping the run with an AssertionError.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ammpl.results.errors import ResultsError

LOG_FILE = "log.txt"
TRAIN_START_SIGNALS = ("Finish training", "Finished training")
TEST_START_SIGNAL = "=> result"

Echo = Callable[[str], None]


def metric_regex(keyword: str = "accuracy") -> re.Pattern[str]:
    """`* <keyword>: <number>%`, searched anywhere in a stripped line."""
    return re.compile(rf"\* {re.escape(keyword)}: ([\.\deE+-]+)%")


def start_signals(test_log: bool) -> tuple[str, ...]:
    return (TEST_START_SIGNAL,) if test_log else TRAIN_START_SIGNALS


def parse_log_lines(lines: Sequence[str], keyword: str = "accuracy", test_log: bool = False):
    """The metric of one log: the last match after the first start signal (None if none)."""
    pattern = metric_regex(keyword)
    signals = start_signals(test_log)
    armed = False
    value: float | None = None
    for raw in lines:
        line = raw.strip()
        if line in signals:
            armed = True
        if not armed:
            continue
        match = pattern.search(line)
        if match:
            try:
                value = float(match.group(1))
            except ValueError:  # e.g. "* accuracy: -%" — not a number, keep the last one
                continue
    return value


def parse_log(path: str | os.PathLike, keyword: str = "accuracy", test_log: bool = False):
    """`parse_log_lines` on a file."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        return parse_log_lines(handle.readlines(), keyword, test_log)


def population_std(values: Sequence[float]) -> float:
    """NumPy's default std (ddof 0), as the reference prints."""
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))


def ci95(values: Sequence[float]) -> float:
    """1.96 · std / √n with the same ddof-0 std."""
    return 1.96 * population_std(values) / math.sqrt(len(values))


@dataclass
class DirectorySummary:
    """What one experiment folder (the parent of its seed folders) yields."""

    directory: str
    keyword: str
    files: list[str] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    use_ci95: bool = False

    @property
    def mean(self) -> float:
        return sum(self.values) / len(self.values)

    @property
    def spread(self) -> float:
        """The number printed after `+-`: the population std, or the 95 % CI half-width."""
        return ci95(self.values) if self.use_ci95 else population_std(self.values)


def _visible_entries(directory: str) -> list[str]:
    """Non-hidden entries, sorted by name (the reference's `listdir_nohidden(sort=True)`)."""
    if not os.path.isdir(directory):
        what = f"{directory} is a file" if os.path.isfile(directory) else f"no folder {directory}"
        raise ResultsError(
            f"{what}: pass the folder that holds the seed folders "
            "(e.g. output/<dataset>/<trainer>/<cfg>_16shots)"
        )
    return sorted(name for name in os.listdir(directory) if not name.startswith("."))


def parse_directory(
    directory: str,
    keyword: str = "accuracy",
    test_log: bool = False,
    use_ci95: bool = False,
    echo: Echo = print,
) -> DirectorySummary:
    """Parse `<directory>/<entry>/log.txt` for every entry and print the reference's lines."""
    echo(f"Parsing files in {directory}")
    summary = DirectorySummary(directory, keyword, use_ci95=use_ci95)
    for entry in _visible_entries(directory):
        path = os.path.join(directory, entry, LOG_FILE)
        if not os.path.isfile(path):
            kind = "folder without log.txt" if os.path.isdir(os.path.dirname(path)) else "file"
            echo(f"Skipping {os.path.join(directory, entry)}: not a run folder ({kind})")
            continue
        value = parse_log(path, keyword, test_log)
        if value is not None:
            summary.files.append(path)
            summary.values.append(value)
    if not summary.values:
        signal = " or ".join(f"'{s}'" for s in start_signals(test_log))
        hint = "" if test_log else " (evaluation-only logs need --test-log)"
        if os.path.isfile(os.path.join(directory, LOG_FILE)):  # a seed folder itself
            parent = os.path.dirname(os.path.normpath(directory)) or "."
            hint = f"; {directory} is one run's folder: pass its parent {parent}"
        raise ResultsError(
            f"Nothing found in {directory}: no log.txt with a '* {keyword}: …%' line after "
            f"{signal}{hint}"
        )
    for path, value in zip(summary.files, summary.values):
        echo(f"file: {path}. {keyword}: {value:.2f}%. ")
    echo("===")
    echo(f"Summary of directory: {directory}")
    echo(f"* {keyword}: {summary.mean:.2f}% +- {summary.spread:.2f}%")
    echo("===")
    return summary


def parse_experiments(
    directory: str,
    keyword: str = "accuracy",
    test_log: bool = False,
    use_ci95: bool = False,
    echo: Echo = print,
) -> list[DirectorySummary]:
    """`--multi-exp`: every sub-folder is one experiment; then the mean of their means."""
    summaries = []
    for entry in _visible_entries(directory):
        path = os.path.join(directory, entry)
        if not os.path.isdir(path):
            echo(f"Skipping {path}: not an experiment folder (file)")
            continue
        summaries.append(parse_directory(path, keyword, test_log, use_ci95, echo))
    if not summaries:
        raise ResultsError(f"Nothing found in {directory}: it holds no experiment folders")
    average = sum(s.mean for s in summaries) / len(summaries)
    echo("Average performance")
    echo(f"* {keyword}: {average:.2f}%")
    return summaries
