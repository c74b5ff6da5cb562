#!/usr/bin/env bash
# CoCoOp: the fewshot protocol (scripts/protocols/fewshot.sh has the details).
# usage: DATA=/path/to/datasets scripts/cocoop/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
TRAINER=CoCoOp CFG="${CFG:-vit_b16_c4_ep10_batch1_ctxv1}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/fewshot.sh" "$@"
