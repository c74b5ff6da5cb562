#!/usr/bin/env bash
# CoOp: the base2new_test protocol (scripts/protocols/base2new_test.sh has the details); it
# loads the config's MAX_EPOCH (200; ImageNet 50), not the 10 of CoCoOp's test script.
# usage: DATA=/path/to/datasets scripts/coop/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
DEFAULT_CFG=vit_b16_ctxv1
for arg in "$@"; do  # the first argument that is not a --flag is DATASET
    [[ "$arg" == --* ]] && continue
    [[ "$arg" == imagenet ]] && DEFAULT_CFG=vit_b16_ep50_ctxv1
    break
done
TRAINER=CoOp CFG="${CFG:-$DEFAULT_CFG}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_test.sh" "$@"
