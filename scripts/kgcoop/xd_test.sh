#!/usr/bin/env bash
# KgCoOp: the xd_test protocol (scripts/protocols/xd_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/kgcoop/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
TRAINER=KgCoOp CFG="${CFG:-vit_b16_ep100_ctxv1}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_test.sh" "$@"
