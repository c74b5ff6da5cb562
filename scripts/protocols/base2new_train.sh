#!/usr/bin/env bash
# Base-to-new, step 1: train TRAINER on the base classes of DATASET (16 shots).
# usage: DATA=/path/to/datasets scripts/<method>/base2new_train.sh DATASET SEED [KEY VALUE ...]
# Output: output/base2new/train_base/DATASET/shots_16/TRAINER/CFG/seedSEED; its final test is
# the Base accuracy.
# One implementation per protocol; scripts/<method>/<protocol>.sh set TRAINER, CFG (and
# DEFAULT_SOURCE) and exec this file. Trailing KEY VALUE pairs are config overrides.
# Env: TRAINER, CFG, PYTHON, OUTPUT_ROOT, SOURCE; --dry-run prints the command.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
: "${TRAINER:?set TRAINER (the scripts/<method>/ wrappers do)}" "${CFG:?set CFG}"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 2 "DATASET SEED [KEY VALUE ...]" "$@"
DATASET=$1
SEED=$2
shift 2
SHOTS=16
require_data
CONFIG="$(method_config "$TRAINER" "$CFG")"
DATASET_CONFIG="$(dataset_config "$DATASET")"
DIR="$OUTPUT_ROOT/base2new/train_base/$DATASET/shots_$SHOTS/$TRAINER/$CFG/seed$SEED"
run_train "$DIR" --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "$DATASET_CONFIG" \
    --config-file "$CONFIG" \
    --output-dir "$DIR" \
    DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES base "$@"
