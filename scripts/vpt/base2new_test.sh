#!/usr/bin/env bash
# Base-to-new, step 2: evaluate the base-trained VPT (deep vision prompting) model on the new (or base) classes.
# usage: DATA=/path/to/datasets scripts/vpt/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
# Loads output/base2new/train_base/DATASET/shots_16/VPT/CFG/seedSEED at the config's
# MAX_EPOCH (trailing overrides included) and writes output/base2new/test_SUB/.../seedSEED.
# Env: CFG, PYTHON, OUTPUT_ROOT; --dry-run prints the command.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
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
TRAINER=VPT
CFG=${CFG:-vit_b16_c2_ep5_batch4_4}
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
