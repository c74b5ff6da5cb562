#!/usr/bin/env bash
# KgCoOp: the base2new_test protocol (scripts/protocols/base2new_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/kgcoop/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
TRAINER=KgCoOp CFG="${CFG:-vit_b16_ep100_ctxv1}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_test.sh" "$@"
