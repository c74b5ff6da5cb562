"""What each table and figure of the AMMPL paper costs (docs/REPRODUCING.md).

Above both `cli.py` (its parser plans the runs) and `estimate.py` (the cost of a run).
"""

from __future__ import annotations

import argparse
import os
import sys

from ammpl.sweep.cli import build_parser, spec_from_args
from ammpl.sweep.estimate import add_estimate_arguments, estimate_run, load_cost_model
from ammpl.sweep.plan import expand

# The paper's tables and figures: (name, protocol, methods), as docs/REPRODUCING.md runs them.
PAPER_PARTS = (
    ("Table 1 (base-to-novel)", "base2new", ("cocoop", "maple", "ammpl")),
    ("Table 2 (cross-dataset)", "xd", ("cocoop", "maple", "ammpl")),
    ("Table 3 (ablation, 1 shot)", "ablation", ("ammpl",)),
    (
        "Figure 2 (few-shot)",
        "fewshot",
        ("ammpl", "dlp", "vpt", "vp", "ivlp", "cocoop", "dpt", "maple"),
    ),
    ("Figure 2 (zero-shot CLIP)", "zeroshot", ("zsclip",)),
)


def paper_costs(argv: list[str] | None = None) -> int:
    """`python -m ammpl.sweep.paper_costs [--device-tflops T] [--utilisation U]`: the GPU-hours
    of every table and figure of the paper, per method (docs/REPRODUCING.md)."""
    from tabulate import tabulate

    options = argparse.ArgumentParser(description=paper_costs.__doc__)
    add_estimate_arguments(options)
    settings = options.parse_args(argv)
    model = load_cost_model()
    cwd = os.getcwd()
    rows = []
    total = 0.0
    for part, protocol, methods in PAPER_PARTS:
        for method in methods:
            args = build_parser().parse_args([protocol, "--methods", method, "--data", cwd])
            runs = expand(spec_from_args(args))
            estimates = [estimate_run(run, model, cwd, settings.device_memory) for run in runs]
            flops = sum(e.cost.flops for e in estimates)
            hours = sum(
                e.cost.gpu_hours(settings.device_tflops, settings.utilisation) for e in estimates
            )
            peak = max(e.cost.peak_bytes for e in estimates)
            rows.append(
                [
                    part,
                    method,
                    len(estimates),
                    f"{flops / 1e15:,.1f}",
                    f"{hours:,.2f}",
                    f"{peak / 1e9:.1f}",
                ]
            )
            total += hours
    rows.append(["all of the above", "", sum(row[2] for row in rows), "", f"{total:,.2f}", ""])
    headers = ["paper part", "method", "runs", "PFLOP", "GPU-hours", "peak GB (largest run)"]
    print(f"{settings.device_tflops:g} TFLOP/s × {settings.utilisation:g} utilisation")
    print(tabulate(rows, headers=headers, tablefmt="github"))
    return 0


if __name__ == "__main__":
    sys.exit(paper_costs())
