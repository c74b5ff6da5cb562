#!/usr/bin/env bash
# PromptSRC: the base2new_train protocol (scripts/protocols/base2new_train.sh has the details).
# usage: DATA=/path/to/datasets scripts/promptsrc/base2new_train.sh DATASET SEED [KEY VALUE ...]
TRAINER=PromptSRC CFG="${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_train.sh" "$@"
