#!/usr/bin/env bash
# MaPLe: the xd_train protocol (scripts/protocols/xd_train.sh has the details).
# usage: DATA=/path/to/datasets scripts/maple/xd_train.sh SEED [SHOTS] [KEY VALUE ...]
TRAINER=MaPLe CFG="${CFG:-vit_b16_c2_ep5_batch4_2ctx_cross_datasets}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_train.sh" "$@"
