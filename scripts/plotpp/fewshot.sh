#!/usr/bin/env bash
# PLOT++ (plot-pp, ViT-B/16): one few-shot point, both stages, through the fewshot protocol
# (scripts/protocols/fewshot.sh) with PLOT's epochs-by-shots and batch rules
# (scripts/plot/schedule.sh) passed as explicit overrides.
#   stage 1 "vision": only the visual prompts train, OT + global logits (TRADE_OFF True),
#           seed 1 only (the reference's main_visiononly.sh)     → .../vision_M<M>/seed1
#   stage 2 "joint":  text and visual prompts train from the stage-1 checkpoint
#           (PRETRAIN_DIR), OT logits only, seed SEED (main_joint.sh) → .../joint_M<M>/seedSEED
# usage: DATA=/path/to/datasets [M=4] [STAGE=both] scripts/plotpp/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
#   M      visual prompt sets (TRAINER.PLOTPP.M; the scripts' argument)
#   STAGE  both (default: stage 1 unless done, then stage 2) | vision | joint
# Output root: output/DATASET/PLOTPP/vit_SHOTSshots/. Fixed as the reference scripts:
# N 4 text prompt sets, N_CTX 4, N_CTX_V 2, CTX_INIT True.
set -euo pipefail
HERE="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE/../common.sh"
source "$HERE/../plot/schedule.sh"
M="${M:-4}"
STAGE="${STAGE:-both}"
is_int "$M" || die "M must be a number of visual prompt sets, got '$M'"
[[ "$STAGE" =~ ^(both|vision|joint)$ ]] || die "STAGE must be both, vision or joint, got '$STAGE'"
parse_point_args "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
export TRAINER=PLOTPP CFG="${CFG:-vit}"
FLAGS=()
[[ "$DRY_RUN" == "1" ]] && FLAGS=(--dry-run)
# shellcheck disable=SC2206  # the schedule words are KEY VALUE pairs
COMMON=(TRAINER.PLOTPP.N 4 TRAINER.PLOTPP.N_CTX 4 TRAINER.PLOTPP.N_CTX_V 2
    TRAINER.PLOTPP.CTX_INIT True TRAINER.PLOTPP.M "$M" $(plot_schedule_opts "$DATASET" "$SHOTS"))
STAGE1_DIR="$OUTPUT_ROOT/$DATASET/$TRAINER/${CFG}_${SHOTS}shots/vision_M$M/seed1"

if [[ "$STAGE" != "joint" ]]; then
    VARIANT="vision_M$M" bash "$HERE/../protocols/fewshot.sh" "$DATASET" "$SHOTS" 1 \
        "${COMMON[@]}" TRAINER.PLOTPP.MODEL_UPD vision TRAINER.PLOTPP.TRADE_OFF True \
        "$@" "${FLAGS[@]+"${FLAGS[@]}"}"
fi
if [[ "$STAGE" != "vision" ]]; then
    CONFIG="$(method_config "$TRAINER" "$CFG")"
    EPOCH="$(config_max_epoch "$CONFIG" "${COMMON[@]}" "$@")"
    PRETRAINED="$STAGE1_DIR/prompt_learner/model.pth.tar-$EPOCH"
    if [[ "$DRY_RUN" != "1" && ! -f "$PRETRAINED" ]]; then
        die "no stage-1 checkpoint $PRETRAINED; run stage 1 first (STAGE=vision or scripts/plotpp/main_visiononly.sh)"
    fi
    VARIANT="joint_M$M" bash "$HERE/../protocols/fewshot.sh" "$DATASET" "$SHOTS" "$SEED" \
        "${COMMON[@]}" TRAINER.PLOTPP.MODEL_UPD joint TRAINER.PLOTPP.TRADE_OFF False \
        TRAINER.PLOTPP.PRETRAIN_DIR "$PRETRAINED" "$@" "${FLAGS[@]+"${FLAGS[@]}"}"
fi
