#!/usr/bin/env bash
# CoOp: the xd_test protocol (scripts/protocols/xd_test.sh has the details); it loads the
# config's MAX_EPOCH (50).
# usage: DATA=/path/to/datasets scripts/coop/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
TRAINER=CoOp CFG="${CFG:-vit_b16_ep50_ctxv1}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_test.sh" "$@"
