"""Results tooling: CoOp-compatible log parsing, the tidy runs CSV, paper tables, curves.

    from ammpl.results import collect_runs, write_runs_csv, read_runs_csv
    from ammpl.results import base_to_new_table, render
    print(render(base_to_new_table(read_runs_csv("runs.csv")), "md"))

Plotting lives in `ammpl.results.plots` (imported on demand: it needs matplotlib).
"""

from ammpl.results.collect import Run, collect_runs, read_runs_csv, write_runs_csv
from ammpl.results.errors import ResultsError
from ammpl.results.parse import parse_directory, parse_experiments, parse_log
from ammpl.results.render import Cell, Table, render
from ammpl.results.tables import (
    ablation_table,
    base_to_new_table,
    cross_dataset_table,
    fewshot_table,
)

__all__ = [
    "Cell",
    "ResultsError",
    "Run",
    "Table",
    "ablation_table",
    "base_to_new_table",
    "collect_runs",
    "cross_dataset_table",
    "fewshot_table",
    "parse_directory",
    "parse_experiments",
    "parse_log",
    "read_runs_csv",
    "render",
    "write_runs_csv",
]
