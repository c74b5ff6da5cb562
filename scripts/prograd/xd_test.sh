#!/usr/bin/env bash
# ProGrad: the xd_test protocol (scripts/protocols/xd_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/prograd/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
TRAINER=ProGrad CFG="${CFG:-vit_b16_ep50}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_test.sh" "$@"
