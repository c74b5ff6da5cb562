#!/usr/bin/env bash
# PLOT++ stage 2 (plot-pp scripts/main_joint.sh): text and visual prompts from the stage-1
# checkpoint of the same DATASET, shots and M; shots 1 2 4 8 16 × seeds 1 2 3, through
# scripts/plotpp/fewshot.sh (STAGE=joint). Run main_visiononly.sh first.
# usage: DATA=/path/to/datasets scripts/plotpp/main_joint.sh DATASET M [KEY VALUE ...]
# Env: SHOTS_LIST (default "1 2 4 8 16"), SEEDS (default "1 2 3"), PYTHON, OUTPUT_ROOT;
# --dry-run prints the commands.
set -euo pipefail
HERE="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE/../common.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 2 "DATASET M [KEY VALUE ...]" "$@"
DATASET=$1
# PLOTPP_LOOP_STAGE=vision: main_visiononly.sh's stage 1 (seed 1 only), through this loop.
export M=$2 STAGE="${PLOTPP_LOOP_STAGE:-joint}"
shift 2
FLAGS=()
[[ "$DRY_RUN" == "1" ]] && FLAGS=(--dry-run)
for SHOTS in ${SHOTS_LIST:-1 2 4 8 16}; do
    for SEED in ${SEEDS:-1 2 3}; do
        bash "$HERE/fewshot.sh" "$DATASET" "$SHOTS" "$SEED" "$@" "${FLAGS[@]+"${FLAGS[@]}"}"
    done
done
