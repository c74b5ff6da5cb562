#!/usr/bin/env bash
# KgCoOp: the fewshot protocol (scripts/protocols/fewshot.sh has the details).
# usage: DATA=/path/to/datasets scripts/kgcoop/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
TRAINER=KgCoOp CFG="${CFG:-vit_b16_ep100_ctxv1}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/fewshot.sh" "$@"
