#!/usr/bin/env bash
# deep vision prompting (VPT): the base2new_train protocol (scripts/protocols/base2new_train.sh has the details).
# usage: DATA=/path/to/datasets scripts/vpt/base2new_train.sh DATASET SEED [KEY VALUE ...]
TRAINER=VPT CFG="${CFG:-vit_b16_c2_ep5_batch4_4}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_train.sh" "$@"
