#!/usr/bin/env bash
# TCP: the xd_train protocol (scripts/protocols/xd_train.sh has the details), with the reference's
# 25 epochs for ImageNet and SUN397 (scripts/tcp/epochs.sh), before any KEY VALUE of yours.
# usage: DATA=/path/to/datasets scripts/tcp/xd_train.sh SEED [SHOTS] [KEY VALUE ...]
HERE="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE/../common.sh"
source "$HERE/epochs.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
N=1
is_int "${2:-}" && N=2
mapfile -t ARGS < <(tcp_args "$N" "${SOURCE:-imagenet}" "$@")
[[ "$DRY_RUN" == "1" ]] && ARGS+=(--dry-run)
TRAINER=TCP CFG="${CFG:-vit_b16_ep100_ctxv1}" DEFAULT_SOURCE=imagenet \
    exec bash "$HERE/../protocols/xd_train.sh" "${ARGS[@]+"${ARGS[@]}"}"
