#!/usr/bin/env bash
# AMMPL: the base2new_train protocol (scripts/protocols/base2new_train.sh has the details).
# usage: DATA=/path/to/datasets scripts/ammpl/base2new_train.sh DATASET SEED [KEY VALUE ...]
TRAINER=AMMPL CFG="${CFG:-vit_b16_c4_ep5_batch4_ctxv1}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_train.sh" "$@"
