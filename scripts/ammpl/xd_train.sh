#!/usr/bin/env bash
# Cross-dataset, step 1: train generalisable AMMPL on all classes of the source (Food101 in the
# paper; env SOURCE to change it) with SHOTS shots (default 16; the paper uses 1, 8, 16).
# usage: DATA=/path/to/datasets scripts/ammpl/xd_train.sh SEED [SHOTS] [KEY VALUE ...]
# Output: output/SOURCE/AMMPL/CFG_SHOTSshots/seedSEED (its final test is the source accuracy).
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
TRAINER=AMMPL
CFG=${CFG:-vit_b16_c4_ep5_batch4_ctxv1}
SOURCE=${SOURCE:-food101}
require_data
CONFIG="$(method_config "$TRAINER" "$CFG")"
DATASET_CONFIG="$(dataset_config "$SOURCE")"
DIR="$OUTPUT_ROOT/$SOURCE/$TRAINER/${CFG}_${SHOTS}shots/seed$SEED"
run_train "$DIR" --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "$DATASET_CONFIG" \
    --config-file "$CONFIG" \
    --output-dir "$DIR" \
    DATASET.NUM_SHOTS "$SHOTS" "$@"
