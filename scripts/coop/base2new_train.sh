#!/usr/bin/env bash
# CoOp: the base2new_train protocol (scripts/protocols/base2new_train.sh has the details),
# as the CoCoOp paper ran its CoOp baseline: 4 context tokens from "a photo of a", 200
# epochs (vit_b16_ctxv1); ImageNet 50 (vit_b16_ep50_ctxv1). CFG=... picks another config.
# usage: DATA=/path/to/datasets scripts/coop/base2new_train.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"  # cfg_for_dataset
TRAINER=CoOp CFG="${CFG:-$(cfg_for_dataset vit_b16_ctxv1 vit_b16_ep50_ctxv1 "$@")}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_train.sh" "$@"
