#!/usr/bin/env bash
# deep language prompting (IVLP, language only): the fewshot protocol (scripts/protocols/fewshot.sh has the details).
# usage: DATA=/path/to/datasets scripts/dlp/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
TRAINER=IVLP CFG="${CFG:-vit_b16_c2_ep5_batch4_4ctx_language_only}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/fewshot.sh" "$@"
