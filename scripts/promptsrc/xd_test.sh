#!/usr/bin/env bash
# PromptSRC: the xd_test protocol (scripts/protocols/xd_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/promptsrc/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
TRAINER=PromptSRC CFG="${CFG:-vit_b16_c2_ep20_batch4_4+4ctx_cross_datasets}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_test.sh" "$@"
