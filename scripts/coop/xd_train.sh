#!/usr/bin/env bash
# CoOp: the xd_train protocol (scripts/protocols/xd_train.sh has the details), with the
# config CoCoOp's cross-dataset script names for CoOp (vit_b16_ep50_ctxv1, 50 epochs).
# usage: DATA=/path/to/datasets scripts/coop/xd_train.sh SEED [SHOTS] [KEY VALUE ...]
TRAINER=CoOp CFG="${CFG:-vit_b16_ep50_ctxv1}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_train.sh" "$@"
