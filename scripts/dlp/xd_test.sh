#!/usr/bin/env bash
# deep language prompting (IVLP, language only): the xd_test protocol (scripts/protocols/xd_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/dlp/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
TRAINER=IVLP CFG="${CFG:-vit_b16_c2_ep5_batch4_4ctx_language_only}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_test.sh" "$@"
