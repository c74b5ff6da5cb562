#!/usr/bin/env bash
# CoOp domain generalisation / cross-dataset evaluation: the ImageNet-trained CoOp models
# (16 shots, 16 context tokens, shared context, class token at the end) evaluated on every
# class of DATASET (imagenetv2, imagenet_sketch, imagenet_a, imagenet_r, or another dataset),
# seeds 1-3.
# usage: DATA=/path/to/datasets scripts/coop/eval.sh DATASET CFG [KEY VALUE ...]
#   CFG  the config the model was TRAINED with (e.g. rn50_ep50 for ImageNet; PROTOCOLS §14.5)
# Loads output/SOURCE/CoOp/CFG_SHOTSshots/nctxNCTX_cscCSC_ctpCTP/seedSEED at the config's
# MAX_EPOCH (trailing overrides included; the reference hard-codes 50) and writes
# output/evaluation/CoOp/CFG_SHOTSshots/nctxNCTX_cscCSC_ctpCTP/DATASET/seedSEED
# (…shots_from_SOURCE/… when SOURCE is not imagenet). A finished evaluation is skipped.
# Env: SEEDS ("1 2 3"), SOURCE (imagenet), SHOTS (16), NCTX (16), CSC (False), CTP (end),
# PYTHON, OUTPUT_ROOT; --dry-run prints the commands. Trailing KEY VALUE pairs are overrides.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 2 "DATASET CFG [KEY VALUE ...]" "$@"
DATASET=$1
CFG=$2
shift 2
TRAINER=CoOp
SOURCE=${SOURCE:-imagenet}
SHOTS=${SHOTS:-16}
NCTX=${NCTX:-16}
CSC=${CSC:-False}
CTP=${CTP:-end}
TAG=""
[[ "$SOURCE" == "imagenet" ]] || TAG="_from_$SOURCE"
require_data
CONFIG="$(method_config "$TRAINER" "$CFG")"
DATASET_CONFIG="$(dataset_config "$DATASET")"
LOADEP="$(config_max_epoch "$CONFIG" "$@")"
VARIANT="nctx${NCTX}_csc${CSC}_ctp${CTP}"
for SEED in ${SEEDS:-1 2 3}; do
    MODEL_DIR="$OUTPUT_ROOT/$SOURCE/$TRAINER/${CFG}_${SHOTS}shots/$VARIANT/seed$SEED"
    DIR="$OUTPUT_ROOT/evaluation/$TRAINER/${CFG}_${SHOTS}shots$TAG/$VARIANT/$DATASET/seed$SEED"
    run_train "$DIR" --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
        --dataset-config-file "$DATASET_CONFIG" \
        --config-file "$CONFIG" \
        --output-dir "$DIR" \
        --model-dir "$MODEL_DIR" --load-epoch "$LOADEP" --eval-only \
        TRAINER.COOP.N_CTX "$NCTX" \
        TRAINER.COOP.CSC "$CSC" \
        TRAINER.COOP.CLASS_TOKEN_POSITION "$CTP" "$@"
done
