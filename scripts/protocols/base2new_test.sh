#!/usr/bin/env bash
# Base-to-new, step 2: evaluate the base-trained TRAINER model on the new (or base) classes.
# usage: DATA=/path/to/datasets scripts/<method>/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
# Loads output/base2new/train_base/DATASET/shots_16/TRAINER/CFG/seedSEED at the config's
# MAX_EPOCH (trailing overrides included) and writes output/base2new/test_SUB/.../seedSEED.
# One implementation per protocol; scripts/<method>/<protocol>.sh set TRAINER, CFG (and
# DEFAULT_SOURCE) and exec this file. Trailing KEY VALUE pairs are config overrides.
# Env: TRAINER, CFG, PYTHON, OUTPUT_ROOT, SOURCE; --dry-run prints the command.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
: "${TRAINER:?set TRAINER (the scripts/<method>/ wrappers do)}" "${CFG:?set CFG}"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 2 "DATASET SEED [new|base] [KEY VALUE ...]" "$@"
DATASET=$1
SEED=$2
shift 2
SUB=new
if [[ "${1:-}" == "new" || "${1:-}" == "base" ]]; then
    SUB=$1
    shift
fi
SHOTS=16
require_data
CONFIG="$(method_config "$TRAINER" "$CFG")"
DATASET_CONFIG="$(dataset_config "$DATASET")"
LOADEP="$(config_max_epoch "$CONFIG" "$@")"
MODEL_DIR="$OUTPUT_ROOT/base2new/train_base/$DATASET/shots_$SHOTS/$TRAINER/$CFG/seed$SEED"
DIR="$OUTPUT_ROOT/base2new/test_$SUB/$DATASET/shots_$SHOTS/$TRAINER/$CFG/seed$SEED"
run_train "$DIR" --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "$DATASET_CONFIG" \
    --config-file "$CONFIG" \
    --output-dir "$DIR" \
    --model-dir "$MODEL_DIR" --load-epoch "$LOADEP" --eval-only \
    DATASET.NUM_SHOTS "$SHOTS" DATASET.SUBSAMPLE_CLASSES "$SUB" "$@"
