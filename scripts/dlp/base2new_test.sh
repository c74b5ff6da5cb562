#!/usr/bin/env bash
# deep language prompting (IVLP, language only): the base2new_test protocol (scripts/protocols/base2new_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/dlp/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
TRAINER=IVLP CFG="${CFG:-vit_b16_c2_ep5_batch4_4ctx_language_only}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/base2new_test.sh" "$@"
