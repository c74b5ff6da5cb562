#!/usr/bin/env bash
# AMMPL: the xd_train protocol (scripts/protocols/xd_train.sh has the details).
# usage: DATA=/path/to/datasets scripts/ammpl/xd_train.sh SEED [SHOTS] [KEY VALUE ...]
TRAINER=AMMPL CFG="${CFG:-vit_b16_c4_ep5_batch4_ctxv1}" DEFAULT_SOURCE=food101 \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_train.sh" "$@"
