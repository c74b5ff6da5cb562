#!/usr/bin/env bash
# IVLP: the xd_test protocol (scripts/protocols/xd_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/ivlp/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
TRAINER=IVLP CFG="${CFG:-vit_b16_c2_ep5_batch4_2+2ctx}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_test.sh" "$@"
