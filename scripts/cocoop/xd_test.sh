#!/usr/bin/env bash
# CoCoOp: the xd_test protocol (scripts/protocols/xd_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/cocoop/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
TRAINER=CoCoOp CFG="${CFG:-vit_b16_c4_ep10_batch1_ctxv1}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_test.sh" "$@"
