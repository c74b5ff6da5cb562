#!/usr/bin/env bash
# KgCoOp: the xd_train protocol (scripts/protocols/xd_train.sh has the details).
# usage: DATA=/path/to/datasets scripts/kgcoop/xd_train.sh SEED [SHOTS] [KEY VALUE ...]
TRAINER=KgCoOp CFG="${CFG:-vit_b16_ep100_ctxv1}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_train.sh" "$@"
