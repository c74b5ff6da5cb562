#!/usr/bin/env bash
# ProGrad: the base2new_test protocol (scripts/protocols/base2new_test.sh has the details).
# usage: DATA=/path/to/datasets scripts/prograd/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
# CFG as scripts/prograd/base2new_train.sh chooses it.
HERE="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE/../common.sh"
parse_script_flags "$@" # --dry-run anywhere: DATASET is the first of the others
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
DEFAULT_CFG=vit_b16_ep100
[[ "${1:-}" == "imagenet" ]] && DEFAULT_CFG=vit_b16_ep50
[[ "$DRY_RUN" == "1" ]] && set -- "$@" --dry-run
TRAINER=ProGrad CFG="${CFG:-$DEFAULT_CFG}" exec bash "$HERE/../protocols/base2new_test.sh" "$@"
