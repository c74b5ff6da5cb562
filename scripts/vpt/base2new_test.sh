#!/usr/bin/env bash
# deep vision prompting (VPT): the base2new_test protocol (scripts/protocols/base2new_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/vpt/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
TRAINER=VPT CFG="${CFG:-vit_b16_c2_ep5_batch4_4}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_test.sh" "$@"
