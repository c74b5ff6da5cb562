#!/usr/bin/env bash
# CoCoOp: the base2new_train protocol (scripts/protocols/base2new_train.sh has the details).
# usage: DATA=/path/to/datasets scripts/cocoop/base2new_train.sh DATASET SEED [KEY VALUE ...]
TRAINER=CoCoOp CFG="${CFG:-vit_b16_c4_ep10_batch1_ctxv1}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_train.sh" "$@"
