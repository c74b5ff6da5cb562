#!/usr/bin/env bash
# Few-shot protocol for VPT (deep vision prompting): all classes of DATASET, SHOTS per class, with the
# base-to-new config (neither reference repository ships few-shot scripts for this method;
# this is our choice, see docs/METHODS.md).
# usage: DATA=/path/to/datasets scripts/vpt/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
# Output: output/DATASET/VPT/CFG_SHOTSshots/seedSEED (last-epoch test accuracy).
# Env: CFG, PYTHON, OUTPUT_ROOT; --dry-run prints the command.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 3 "DATASET SHOTS SEED [KEY VALUE ...]" "$@"
DATASET=$1
SHOTS=$2
SEED=$3
shift 3
is_int "$SHOTS" || die "SHOTS must be a number of shots per class, got '$SHOTS'"
TRAINER=VPT
CFG=${CFG:-vit_b16_c2_ep5_batch4_4}
require_data
CONFIG="$(method_config "$TRAINER" "$CFG")"
DATASET_CONFIG="$(dataset_config "$DATASET")"
DIR="$OUTPUT_ROOT/$DATASET/$TRAINER/${CFG}_${SHOTS}shots/seed$SEED"
run_train "$DIR" --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "$DATASET_CONFIG" \
    --config-file "$CONFIG" \
    --output-dir "$DIR" \
    DATASET.NUM_SHOTS "$SHOTS" "$@"
