#!/usr/bin/env bash
# The AMMPL paper in miniature, one command (docs/MINI.md, "The paper in miniature"): builds
# the mini data, runs every experiment of Tables 1-3, the domain-generalisation table and
# Figures 2-3 through ammpl-sweep (one run per core; finished runs are skipped, so an
# interrupted paper resumes) and writes OUT/report.md with the figures beside it.
# usage: scripts/mini/paper.sh [--quick] [--dry-run] [--out DIR] [--data DIR] [--seeds S ...]
#                              [--datasets D ...] [--methods M ...] [--epochs N] [--workers N]
#   --quick    1 seed, 2 datasets (+2 DG targets), AMMPL CoCoOp MaPLe CoOp, fewer shots: about 13 minutes
#              on 2 idle cores (measured: 13 min 8 s, data included); the full paper takes many hours (report.md says how long)
#   --dry-run  list every run, section by section; needs no data and no weights
# Env: DATA (the mini data; default OUT/data), PYTHON (default python), OMP_NUM_THREADS
# (default 1 per run). `scripts/mini/paper.sh --help` lists every option.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m ammpl.paper "$@"
