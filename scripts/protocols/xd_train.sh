#!/usr/bin/env bash
# Cross-dataset / domain generalisation, step 1: train TRAINER on all classes of the source
# (SOURCE, default DEFAULT_SOURCE: imagenet as published, food101 for AMMPL as in its paper)
# with SHOTS shots per class (default 16).
# usage: DATA=/path/to/datasets scripts/<method>/xd_train.sh SEED [SHOTS] [KEY VALUE ...]
# Output: output/SOURCE/TRAINER/CFG_SHOTSshots/seedSEED (its final test is the source accuracy).
# One implementation per protocol; scripts/<method>/<protocol>.sh set TRAINER, CFG (and
# DEFAULT_SOURCE) and exec this file. Trailing KEY VALUE pairs are config overrides.
# Env: TRAINER, CFG, PYTHON, OUTPUT_ROOT, SOURCE; --dry-run prints the command.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
: "${TRAINER:?set TRAINER (the scripts/<method>/ wrappers do)}" "${CFG:?set CFG}"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 1 "SEED [SHOTS] [KEY VALUE ...]" "$@"
SEED=$1
shift
SHOTS=16
if is_int "${1:-}"; then
    SHOTS=$1
    shift
fi
DEFAULT_SOURCE=${DEFAULT_SOURCE:-imagenet}
SOURCE=${SOURCE:-$DEFAULT_SOURCE}
require_data
CONFIG="$(method_config "$TRAINER" "$CFG")"
DATASET_CONFIG="$(dataset_config "$SOURCE")"
DIR="$OUTPUT_ROOT/$SOURCE/$TRAINER/${CFG}_${SHOTS}shots/seed$SEED"
run_train "$DIR" --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "$DATASET_CONFIG" \
    --config-file "$CONFIG" \
    --output-dir "$DIR" \
    DATASET.NUM_SHOTS "$SHOTS" "$@"
