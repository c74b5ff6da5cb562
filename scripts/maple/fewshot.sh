#!/usr/bin/env bash
# MaPLe: the fewshot protocol (scripts/protocols/fewshot.sh has the details).
# usage: DATA=/path/to/datasets scripts/maple/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
TRAINER=MaPLe CFG="${CFG:-vit_b16_c2_ep5_batch4_2ctx}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/fewshot.sh" "$@"
