#!/usr/bin/env bash
# Cross-dataset / domain generalisation, step 2: evaluate the source-trained TRAINER model
# on every class of DATASET (another dataset, or imagenetv2/_sketch/_a/_r).
# usage: DATA=/path/to/datasets scripts/<method>/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
# Loads output/SOURCE/TRAINER/CFG_SHOTSshots/seedSEED at the config's MAX_EPOCH and writes
# output/evaluation/TRAINER/CFG_SHOTSshots/DATASET/seedSEED (…shots_from_SOURCE/… when SOURCE
# is not the method's DEFAULT_SOURCE).
# One implementation per protocol; scripts/<method>/<protocol>.sh set TRAINER, CFG (and
# DEFAULT_SOURCE) and exec this file. Trailing KEY VALUE pairs are config overrides.
# Env: TRAINER, CFG, PYTHON, OUTPUT_ROOT, SOURCE; --dry-run prints the command.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
: "${TRAINER:?set TRAINER (the scripts/<method>/ wrappers do)}" "${CFG:?set CFG}"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 2 "DATASET SEED [SHOTS] [KEY VALUE ...]" "$@"
DATASET=$1
SEED=$2
shift 2
SHOTS=16
if is_int "${1:-}"; then
    SHOTS=$1
    shift
fi
DEFAULT_SOURCE=${DEFAULT_SOURCE:-imagenet}
SOURCE=${SOURCE:-$DEFAULT_SOURCE}
TAG=""
[[ "$SOURCE" == "$DEFAULT_SOURCE" ]] || TAG="_from_$SOURCE"
require_data
CONFIG="$(method_config "$TRAINER" "$CFG")"
DATASET_CONFIG="$(dataset_config "$DATASET")"
LOADEP="$(config_max_epoch "$CONFIG" "$@")"
MODEL_DIR="$OUTPUT_ROOT/$SOURCE/$TRAINER/${CFG}_${SHOTS}shots/seed$SEED"
DIR="$OUTPUT_ROOT/evaluation/$TRAINER/${CFG}_${SHOTS}shots$TAG/$DATASET/seed$SEED"
run_train "$DIR" --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "$DATASET_CONFIG" \
    --config-file "$CONFIG" \
    --output-dir "$DIR" \
    --model-dir "$MODEL_DIR" --load-epoch "$LOADEP" --eval-only "$@"
