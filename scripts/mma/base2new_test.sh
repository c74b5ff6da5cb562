#!/usr/bin/env bash
# MMA: the base2new_test protocol (scripts/protocols/base2new_test.sh has the details).
# CFG defaults to vit_b16_ep5, and to vit_b16_ep5_imnet (batch 128) for imagenet, as the
# reference's run_examples.sh does.
# usage: DATA=/path/to/datasets scripts/mma/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
DEFAULT_CFG=vit_b16_ep5
for arg in "$@"; do # DATASET: the first argument that is not a flag
    [[ "$arg" == --* ]] && continue
    [[ "$arg" == imagenet ]] && DEFAULT_CFG=vit_b16_ep5_imnet
    break
done
TRAINER=MMA CFG="${CFG:-$DEFAULT_CFG}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_test.sh" "$@"
