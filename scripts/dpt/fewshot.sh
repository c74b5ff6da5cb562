#!/usr/bin/env bash
# DPT: the fewshot protocol (scripts/protocols/fewshot.sh has the details), with the values
# of the reference's run script (train_single.sh) as explicit overrides, and its one
# dataset rule made visible: on ImageNet the visual optimisers warm up for 1 epoch (the
# reference forces this inside its trainer). Overrides given after SEED come later and win.
# usage: DATA=/path/to/datasets scripts/dpt/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/reference_opts.bash" # DPT_SCRIPT_OPTS
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
