#!/usr/bin/env bash
# CoOp few-shot protocol (CoOp IJCV'22): train CoOp on all classes of DATASET with SHOTS
# shots per class, seeds 1-3, one folder per seed; a finished seed (results.json holds a
# test result) is skipped.
# usage: DATA=/path/to/datasets scripts/coop/main.sh DATASET CFG CTP NCTX SHOTS CSC [KEY VALUE ...]
#   CFG  config stem in configs/trainers/CoOp/ (rn50_ep50 for 1 shot, rn50_ep100 for 2-4,
#        rn50 for 8-16; ImageNet: rn50_ep50 for every SHOTS)
#   CTP  class token position: end | middle | front;  NCTX  context tokens;  CSC  True | False
# Output: output/DATASET/CoOp/CFG_SHOTSshots/nctxNCTX_cscCSC_ctpCTP/seedSEED
# Env: SEEDS (default "1 2 3"), PYTHON, OUTPUT_ROOT; --dry-run prints the commands.
# Trailing KEY VALUE pairs are config overrides.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 6 "DATASET CFG CTP NCTX SHOTS CSC [KEY VALUE ...]" "$@"
DATASET=$1
CFG=$2
CTP=$3
NCTX=$4
SHOTS=$5
CSC=$6
shift 6
is_int "$NCTX" || die "NCTX must be a number of context tokens, got '$NCTX'"
is_int "$SHOTS" || die "SHOTS must be a number of shots per class, got '$SHOTS'"
[[ "$CSC" == "True" || "$CSC" == "False" ]] || die "CSC must be True or False, got '$CSC'"
TRAINER=CoOp
require_data
CONFIG="$(method_config "$TRAINER" "$CFG")"
DATASET_CONFIG="$(dataset_config "$DATASET")"
for SEED in ${SEEDS:-1 2 3}; do
    DIR="$OUTPUT_ROOT/$DATASET/$TRAINER/${CFG}_${SHOTS}shots/nctx${NCTX}_csc${CSC}_ctp${CTP}/seed$SEED"
    run_train "$DIR" --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
        --dataset-config-file "$DATASET_CONFIG" \
        --config-file "$CONFIG" \
        --output-dir "$DIR" \
        TRAINER.COOP.N_CTX "$NCTX" \
        TRAINER.COOP.CSC "$CSC" \
        TRAINER.COOP.CLASS_TOKEN_POSITION "$CTP" \
        DATASET.NUM_SHOTS "$SHOTS" "$@"
done
