#!/usr/bin/env bash
# MMA: the base2new_test protocol (scripts/protocols/base2new_test.sh has the details).
# CFG defaults to vit_b16_ep5, and to vit_b16_ep5_imnet (batch 128) for imagenet, as the
# reference's run_examples.sh does.
# usage: DATA=/path/to/datasets scripts/mma/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"  # cfg_for_dataset
TRAINER=MMA CFG="${CFG:-$(cfg_for_dataset vit_b16_ep5 vit_b16_ep5_imnet "$@")}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_test.sh" "$@"
