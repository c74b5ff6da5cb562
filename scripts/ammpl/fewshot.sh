#!/usr/bin/env bash
# AMMPL: the fewshot protocol (scripts/protocols/fewshot.sh has the details).
# usage: DATA=/path/to/datasets scripts/ammpl/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
TRAINER=AMMPL CFG="${CFG:-vit_b16_c4_ep5_batch4_ctxv1_csc}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/fewshot.sh" "$@"
