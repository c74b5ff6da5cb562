#!/usr/bin/env bash
# deep vision prompting (VPT): the xd_test protocol (scripts/protocols/xd_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/vpt/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
TRAINER=VPT CFG="${CFG:-vit_b16_c2_ep5_batch4_4}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_test.sh" "$@"
