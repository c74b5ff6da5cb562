#!/usr/bin/env bash
# TCP: the xd_test protocol (scripts/protocols/xd_test.sh has the details), with the reference's
# 25 epochs for ImageNet and SUN397 (scripts/tcp/epochs.sh), before any KEY VALUE of yours.
# usage: DATA=/path/to/datasets scripts/tcp/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
HERE="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE/../common.sh"
source "$HERE/epochs.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
N=2
is_int "${3:-}" && N=3
mapfile -t ARGS < <(tcp_args "$N" "${SOURCE:-imagenet}" "$@")
[[ "$DRY_RUN" == "1" ]] && ARGS+=(--dry-run)
TRAINER=TCP CFG="${CFG:-vit_b16_ep100_ctxv1}" DEFAULT_SOURCE=imagenet \
    exec bash "$HERE/../protocols/xd_test.sh" "${ARGS[@]+"${ARGS[@]}"}"
