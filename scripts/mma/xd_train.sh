#!/usr/bin/env bash
# MMA: the xd_train protocol (scripts/protocols/xd_train.sh has the details).
# CFG defaults to vit_b16_ep5_imnet (batch 128) for the ImageNet source, else vit_b16_ep5.
# usage: DATA=/path/to/datasets scripts/mma/xd_train.sh SEED [SHOTS] [KEY VALUE ...]
DEFAULT_CFG=vit_b16_ep5
[[ "${SOURCE:-imagenet}" == imagenet ]] && DEFAULT_CFG=vit_b16_ep5_imnet
TRAINER=MMA CFG="${CFG:-$DEFAULT_CFG}" DEFAULT_SOURCE=imagenet \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/xd_train.sh" "$@"
