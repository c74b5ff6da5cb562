#!/usr/bin/env bash
# Cross-dataset / domain generalisation, step 2: evaluate the source-trained DLP (deep language prompting: the IVLP trainer, language-only config) model
# on every class of DATASET (another dataset, or imagenetv2/_sketch/_a/_r).
# usage: DATA=/path/to/datasets scripts/dlp/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
# Loads output/SOURCE/IVLP/CFG_SHOTSshots/seedSEED (SOURCE from the environment, default
# imagenet) at the config's MAX_EPOCH and writes
# output/evaluation/IVLP/CFG_SHOTSshots/DATASET/seedSEED (…shots_from_SOURCE/… for another source).
# Env: CFG, PYTHON, OUTPUT_ROOT; --dry-run prints the command.
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
TRAINER=IVLP
CFG=${CFG:-vit_b16_c2_ep5_batch4_4ctx_language_only}
SOURCE=${SOURCE:-imagenet}
TAG=""
[[ "$SOURCE" == "imagenet" ]] || TAG="_from_$SOURCE"
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
