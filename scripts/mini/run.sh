#!/usr/bin/env bash
# The experiments of docs/MINI.md: every method on the mini benchmark through the toolkit's
# own protocol scripts, with the `mini` configs (CFG=mini: MODEL.BACKBONE.NAME mini, 64 px).
# usage: DATA=/path/to/data scripts/mini/run.sh PART [KEY VALUE ...]
#   PART  zeroshot | base2new | fewshot
# Build the data first: ammpl-data mini --root "$DATA". Finished runs are skipped, so an
# interrupted PART resumes. Env (defaults in brackets):
#   DATASETS    [mini_colors mini_colorpatterns mini_scenes]
#   METHODS     [coop cocoop ivlp vpt maple ammpl]
#   SEEDS       [1 2 3]
#   SHOTS_LIST  [fewshot: 1 2 4 8 16]
# Then: ammpl-results collect output && ammpl-results table ... (docs/MINI.md).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 1 "PART [KEY VALUE ...]" "$@"
PART=$1
shift
SCRIPTS="$REPO_ROOT/scripts"
FLAGS=()
[[ "$DRY_RUN" == "1" ]] && FLAGS=(--dry-run)
DATASETS=${DATASETS:-mini_colors mini_colorpatterns mini_scenes}
METHODS=${METHODS:-coop cocoop ivlp vpt maple ammpl}
SEEDS=${SEEDS:-1 2 3}
export CFG=mini

step() {
    echo "=== $*" >&2
    bash "$@" "${FLAGS[@]+"${FLAGS[@]}"}"
}

source "$SCRIPTS/mini/values.sh"  # mini_values METHOD DATASET SHOTS

script_of() {  # CoOp's few-shot script is main.sh, not a fewshot.sh: use the protocol directly
    local method=$1 protocol=$2
    if [[ -f "$SCRIPTS/$method/$protocol.sh" ]]; then
        echo "$SCRIPTS/$method/$protocol.sh"
    else
        echo "$SCRIPTS/protocols/$protocol.sh"
    fi
}

case "$PART" in
    zeroshot)
        for dataset in $DATASETS; do
            for sub in all base new; do
                for trainer in ZeroshotCLIP ZeroshotCLIP2; do
                    TRAINER=$trainer step "$SCRIPTS/zsclip/zeroshot.sh" "$dataset" mini \
                        DATASET.SUBSAMPLE_CLASSES "$sub" "$@"
                done
            done
        done
        ;;
    base2new)
        for method in $METHODS; do
            for dataset in $DATASETS; do
                for seed in $SEEDS; do
                    [[ "$method" == "coop" ]] && export TRAINER=CoOp
                    step "$(script_of "$method" base2new_train)" "$dataset" "$seed" "$@"
                    step "$(script_of "$method" base2new_test)" "$dataset" "$seed" new "$@"
                    unset TRAINER
                done
            done
        done
        ;;
    fewshot)
        for method in $METHODS; do
            for dataset in $DATASETS; do
                for shots in ${SHOTS_LIST:-1 2 4 8 16}; do
                    for seed in $SEEDS; do
                        [[ "$method" == "coop" ]] && export TRAINER=CoOp
                        # shellcheck disable=SC2046  # KEY VALUE words
                        step "$(script_of "$method" fewshot)" "$dataset" "$shots" "$seed" \
                            $(mini_values "$method" "$dataset" "$shots") "$@"
                        unset TRAINER
                    done
                done
            done
        done
        ;;
    *)
        die "unknown PART '$PART' (zeroshot | base2new | fewshot)"
        ;;
esac
