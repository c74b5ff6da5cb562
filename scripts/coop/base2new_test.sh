#!/usr/bin/env bash
# CoOp: the base2new_test protocol (scripts/protocols/base2new_test.sh has the details); it
# loads the config's MAX_EPOCH (200; ImageNet 50), not the 10 of CoCoOp's test script.
# usage: DATA=/path/to/datasets scripts/coop/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"  # cfg_for_dataset
TRAINER=CoOp CFG="${CFG:-$(cfg_for_dataset vit_b16_ctxv1 vit_b16_ep50_ctxv1 "$@")}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_test.sh" "$@"
