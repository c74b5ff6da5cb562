#!/usr/bin/env bash
# Ablation (paper Table 3): class-specific AMMPL with a subset of its image-side components,
# few-shot on DATASET (SHOTS from the environment, default 1 as in the paper).
# COMBO names the components joined by "+": C1 patch mask, C2 patch padding (needs C1),
# C3 adaptive interaction; e.g. C1, C3, C1+C2, C1+C2+C3. Text prompts are always learned.
# usage: DATA=/path/to/datasets scripts/ammpl/ablation.sh DATASET COMBO SEED [KEY VALUE ...]
# Output: output/ablation/DATASET/AMMPL/CFG_SHOTSshots/maskM_padP_interactI/seedSEED
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 3 "DATASET COMBO SEED [KEY VALUE ...]" "$@"
DATASET=$1
COMBO=$2
SEED=$3
shift 3
MASK=False
PAD=False
INTERACT=False
IFS='+' read -r -a PARTS <<<"$COMBO"
for part in "${PARTS[@]}"; do
    case "$part" in
        C1) MASK=True ;;
        C2) PAD=True ;;
        C3) INTERACT=True ;;
        *) die "unknown component '$part' in COMBO '$COMBO'; use C1, C2, C3 joined by + (e.g. C1+C2)" ;;
    esac
done
if [[ "$PAD" == "True" && "$MASK" == "False" ]]; then
    die "COMBO '$COMBO': padding (C2) only fills masked patches, so it needs the mask (C1)"
fi
TRAINER=AMMPL
CFG=${CFG:-vit_b16_c4_ep5_batch4_ctxv1_csc}
SHOTS=${SHOTS:-1}
require_data
CONFIG="$(method_config "$TRAINER" "$CFG")"
DATASET_CONFIG="$(dataset_config "$DATASET")"
VARIANT="mask${MASK}_pad${PAD}_interact${INTERACT}"
DIR="$OUTPUT_ROOT/ablation/$DATASET/$TRAINER/${CFG}_${SHOTS}shots/$VARIANT/seed$SEED"
run_train "$DIR" --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "$DATASET_CONFIG" \
    --config-file "$CONFIG" \
    --output-dir "$DIR" \
    DATASET.NUM_SHOTS "$SHOTS" \
    TRAINER.AMMPL.MASK "$MASK" TRAINER.AMMPL.PAD "$PAD" TRAINER.AMMPL.INTERACT "$INTERACT" "$@"
