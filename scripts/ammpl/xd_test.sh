#!/usr/bin/env bash
# Cross-dataset, step 2: evaluate the source-trained model on every class of DATASET.
# usage: DATA=/path/to/datasets scripts/ammpl/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
# Loads output/SOURCE/AMMPL/CFG_SHOTSshots/seedSEED (SOURCE from the environment, default
# food101) at the config's MAX_EPOCH and writes
# output/evaluation/AMMPL/CFG_SHOTSshots/DATASET/seedSEED (…shots_from_SOURCE/… for another source).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
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
TRAINER=AMMPL
CFG=${CFG:-vit_b16_c4_ep5_batch4_ctxv1}
SOURCE=${SOURCE:-food101}
TAG=""
[[ "$SOURCE" == "food101" ]] || TAG="_from_$SOURCE"
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
