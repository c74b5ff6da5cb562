#!/usr/bin/env bash
# IVLP: the base2new_train protocol (scripts/protocols/base2new_train.sh has the details).
# usage: DATA=/path/to/datasets scripts/ivlp/base2new_train.sh DATASET SEED [KEY VALUE ...]
TRAINER=IVLP CFG="${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_train.sh" "$@"
