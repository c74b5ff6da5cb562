#!/usr/bin/env bash
# ProGrad: the xd_train protocol (scripts/protocols/xd_train.sh has the details).
# usage: DATA=/path/to/datasets scripts/prograd/xd_train.sh SEED [SHOTS] [KEY VALUE ...]
TRAINER=ProGrad CFG="${CFG:-vit_b16_ep50}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_train.sh" "$@"
