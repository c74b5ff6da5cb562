#!/usr/bin/env bash
# deep vision prompting (VPT): the fewshot protocol (scripts/protocols/fewshot.sh has the details).
# usage: DATA=/path/to/datasets scripts/vpt/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
TRAINER=VPT CFG="${CFG:-vit_b16_c2_ep5_batch4_4}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/fewshot.sh" "$@"
