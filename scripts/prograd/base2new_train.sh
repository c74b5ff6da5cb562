#!/usr/bin/env bash
# ProGrad: the base2new_train protocol (scripts/protocols/base2new_train.sh has the details).
# usage: DATA=/path/to/datasets scripts/prograd/base2new_train.sh DATASET SEED [KEY VALUE ...]
# CFG: vit_b16_ep100, vit_b16_ep50 for ImageNet (the reference's README: its 50-epoch
# config there); a CFG you set is used for every dataset.
HERE="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE/../common.sh"
parse_script_flags "$@" # --dry-run anywhere: DATASET is the first of the others
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
DEFAULT_CFG=vit_b16_ep100
[[ "${1:-}" == "imagenet" ]] && DEFAULT_CFG=vit_b16_ep50
[[ "$DRY_RUN" == "1" ]] && set -- "$@" --dry-run
TRAINER=ProGrad CFG="${CFG:-$DEFAULT_CFG}" exec bash "$HERE/../protocols/base2new_train.sh" "$@"
