#!/usr/bin/env bash
# KgCoOp: the base2new_train protocol (scripts/protocols/base2new_train.sh has the details).
# usage: DATA=/path/to/datasets scripts/kgcoop/base2new_train.sh DATASET SEED [KEY VALUE ...]
TRAINER=KgCoOp CFG="${CFG:-vit_b16_ep100_ctxv1}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_train.sh" "$@"
