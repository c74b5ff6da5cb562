#!/usr/bin/env bash
# ProGrad: the fewshot protocol (scripts/protocols/fewshot.sh has the details), with the
# reference's rules: the config by shots as CoOp's (CFG_ep50 for 1 shot and for ImageNet,
# CFG_ep100 for 2-4 shots, CFG for 8-16, where those files exist) and λ 0.8 for 8 and 16
# shots on Flowers102, DTD and EuroSAT (its README), passed before any KEY VALUE of yours
# (which win).
# usage: DATA=/path/to/datasets [CFG=rn50] scripts/prograd/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
# Output: output/DATASET/ProGrad/<config>_SHOTSshots/seedSEED
HERE="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE/../common.sh"
parse_script_flags "$@" # --dry-run anywhere: DATASET and SHOTS are the first of the others
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
BASE="${CFG:-rn50}"
CHOSEN="$BASE"
if is_int "${2:-}"; then
    SUFFIX=""
    if [[ "${1:-}" == "imagenet" || "$2" == "1" ]]; then
        SUFFIX=_ep50
    elif (($2 <= 4)); then
        SUFFIX=_ep100
    fi
    [[ -n "$SUFFIX" && -f "$REPO_ROOT/configs/trainers/ProGrad/$BASE$SUFFIX.yaml" ]] &&
        CHOSEN="$BASE$SUFFIX"
fi
LAMBDA=()
case "${1:-}" in
    oxford_flowers | dtd | eurosat)
        [[ "${2:-}" == "8" || "${2:-}" == "16" ]] && LAMBDA=(TRAINER.PROGRAD.LAMBDA 0.8)
        ;;
esac
if (($# >= 3)); then
    set -- "${@:1:3}" "${LAMBDA[@]+"${LAMBDA[@]}"}" "${@:4}"
fi
[[ "$DRY_RUN" == "1" ]] && set -- "$@" --dry-run
TRAINER=ProGrad CFG="$CHOSEN" exec bash "$HERE/../protocols/fewshot.sh" "$@"
