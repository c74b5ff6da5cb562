#!/usr/bin/env bash
# PLOT++ stage 1 (plot-pp scripts/main_visiononly.sh): visual prompts only, seed 1, shots
# 1 2 4 8 16, through scripts/plotpp/fewshot.sh (STAGE=vision); the loop is main_joint.sh's.
# usage: DATA=/path/to/datasets scripts/plotpp/main_visiononly.sh DATASET M [KEY VALUE ...]
# Env: SHOTS_LIST (default "1 2 4 8 16"), PYTHON, OUTPUT_ROOT; --dry-run prints the commands.
set -euo pipefail
HERE="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE/../common.sh"
parse_script_flags "$@"
require_args 2 "DATASET M [KEY VALUE ...]" "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
PLOTPP_LOOP_STAGE=vision SEEDS=1 exec bash "$HERE/main_joint.sh" "$@"
