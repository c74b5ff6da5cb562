#!/usr/bin/env bash
# PromptSRC: the base2new_test protocol (scripts/protocols/base2new_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/promptsrc/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
TRAINER=PromptSRC CFG="${CFG:-vit_b16_c2_ep20_batch4_4+4ctx}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_test.sh" "$@"
