#!/usr/bin/env bash
# Cross-dataset / domain generalisation, step 1: train IVLP (independent V-L prompting) on all classes of the
# source, ImageNet as published (env SOURCE to change it, e.g. SOURCE=food101 for the AMMPL
# paper's setting), with SHOTS shots per class (default 16).
# usage: DATA=/path/to/datasets scripts/ivlp/xd_train.sh SEED [SHOTS] [KEY VALUE ...]
# Output: output/SOURCE/IVLP/CFG_SHOTSshots/seedSEED (its final test is the source accuracy).
# Env: CFG, PYTHON, OUTPUT_ROOT; --dry-run prints the command.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
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
TRAINER=IVLP
CFG=${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}
SOURCE=${SOURCE:-imagenet}
require_data
CONFIG="$(method_config "$TRAINER" "$CFG")"
DATASET_CONFIG="$(dataset_config "$SOURCE")"
DIR="$OUTPUT_ROOT/$SOURCE/$TRAINER/${CFG}_${SHOTS}shots/seed$SEED"
run_train "$DIR" --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "$DATASET_CONFIG" \
    --config-file "$CONFIG" \
    --output-dir "$DIR" \
    DATASET.NUM_SHOTS "$SHOTS" "$@"
