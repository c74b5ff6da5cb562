#!/usr/bin/env bash
# TCP's epoch rule, sourced by scripts/tcp/*.sh: the reference's train.py sets
# OPTIM.MAX_EPOCH 25 for ImageNet and SUN397 whatever the config says (50 elsewhere).
# tcp_args N DATASET ARGS...  prints ARGS (one per line) with "OPTIM.MAX_EPOCH 25" inserted
#                             after the first N when DATASET is imagenet or sun397, so that
#                             KEY VALUE pairs of the caller's come later and win.
tcp_args() {
    local n=$1 dataset=$2
    shift 2
    local extra=()
    [[ "$dataset" == "imagenet" || "$dataset" == "sun397" ]] && extra=(OPTIM.MAX_EPOCH 25)
    if (($# < n)); then n=$#; fi
    printf '%s\n' "${@:1:n}" "${extra[@]+"${extra[@]}"}" "${@:n+1}"
}
