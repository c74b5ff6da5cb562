#!/usr/bin/env bash
# PLOT's own few-shot protocol (plot-coop scripts/main.sh): RN50, shots 1 2 4 8 16 × seeds
# 1 2 3 on DATASET with N prompt sets, each run through scripts/plot/fewshot.sh (finished
# runs are skipped).
# usage: DATA=/path/to/datasets scripts/plot/main.sh DATASET N [KEY VALUE ...]
# Env: SHOTS_LIST (default "1 2 4 8 16"), SEEDS (default "1 2 3"), PYTHON, OUTPUT_ROOT;
# --dry-run prints the commands. Output: output/DATASET/PLOT/rn50_SHOTSshots/N<N>/seedSEED
set -euo pipefail
HERE="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE/../common.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 2 "DATASET N [KEY VALUE ...]" "$@"
DATASET=$1
is_int "$2" || die "N must be a number of prompt sets, got '$2'"
export N=$2
shift 2
FLAGS=()
[[ "$DRY_RUN" == "1" ]] && FLAGS=(--dry-run)
for SHOTS in ${SHOTS_LIST:-1 2 4 8 16}; do
    for SEED in ${SEEDS:-1 2 3}; do
        bash "$HERE/fewshot.sh" "$DATASET" "$SHOTS" "$SEED" "$@" "${FLAGS[@]+"${FLAGS[@]}"}"
    done
done
