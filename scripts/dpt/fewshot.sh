#!/usr/bin/env bash
# DPT: the fewshot protocol (scripts/protocols/fewshot.sh has the details), with the values
# of the reference's run script (train_single.sh) as explicit overrides, and its one
# dataset rule made visible: on ImageNet the visual optimisers warm up for 1 epoch (the
# reference forces this inside its trainer). Overrides given after SEED come later and win.
# usage: DATA=/path/to/datasets scripts/dpt/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
DPT_SCRIPT_OPTS=(
    TRAINER.COOP.N_CTX 16 TRAINER.COOP.CSC False TRAINER.COOP.CLASS_TOKEN_POSITION end
    TRAINER.DPT.N_CTX_VISION 10 TRAINER.DPT.BOTTOMLIMIT 12 TRAINER.DPT.CPN 10
    OPTIM.LR 0.01 OPTIM.MAX_EPOCH 60 TRAINER.DPT.C 30 TRAINER.DPT.ALPHA 0.3
)
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
parse_script_flags "$@" # --dry-run anywhere: DATASET is the first of the others
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
if (($# >= 3)); then
    [[ "$1" == "imagenet" ]] && DPT_SCRIPT_OPTS+=(OPTIM.WARMUP_EPOCH 1)
    set -- "${@:1:3}" "${DPT_SCRIPT_OPTS[@]}" "${@:4}"
fi
[[ "$DRY_RUN" == "1" ]] && set -- "$@" --dry-run
TRAINER=DPT CFG="${CFG:-vit_b16}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/fewshot.sh" "$@"
