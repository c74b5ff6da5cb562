#!/usr/bin/env bash
# Zero-shot CLIP on DATASET with the backbone and input settings of a CoOp config.
# usage: DATA=/path/to/datasets scripts/coop/zeroshot.sh DATASET CFG [KEY VALUE ...]
#   CFG  config stem in configs/trainers/CoOp/ (e.g. vit_b16, rn50)
# Output: output/ZeroshotCLIP/CFG/DATASET (no seed level: nothing is random). With
# `DATASET.SUBSAMPLE_CLASSES base|new` among the overrides (zero-shot rows of a base-to-new
# table) the output is output/ZeroshotCLIP/CFG_base|new/DATASET, so the three evaluations
# never share a folder. A finished evaluation is skipped (the reference always reruns).
# Env: TRAINER (ZeroshotCLIP; ZeroshotCLIP2 for the template ensemble), PYTHON,
# OUTPUT_ROOT; --dry-run prints the command. Trailing KEY VALUE pairs are overrides.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 2 "DATASET CFG [KEY VALUE ...]" "$@"
DATASET=$1
CFG=$2
shift 2
TRAINER=${TRAINER:-ZeroshotCLIP}
SUFFIX=""
OPTS=("$@")
for ((i = 0; i + 1 < ${#OPTS[@]}; i += 2)); do
    if [[ "${OPTS[i]}" == "DATASET.SUBSAMPLE_CLASSES" && "${OPTS[i + 1]}" != "all" ]]; then
        SUFFIX="_${OPTS[i + 1]}"
    fi
done
require_data
CONFIG="$(method_config CoOp "$CFG")"
DATASET_CONFIG="$(dataset_config "$DATASET")"
DIR="$OUTPUT_ROOT/$TRAINER/$CFG$SUFFIX/$DATASET"
run_train "$DIR" --root "$DATA" --trainer "$TRAINER" \
    --dataset-config-file "$DATASET_CONFIG" \
    --config-file "$CONFIG" \
    --output-dir "$DIR" \
    --eval-only "$@"
