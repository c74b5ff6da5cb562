#!/usr/bin/env bash
# Driver: one protocol for one method over datasets × seeds (× shots), through the
# per-method scripts. Finished runs are skipped by those scripts, so an interrupted driver
# resumes where it stopped when started again.
# usage: DATA=/path/to/datasets scripts/run_all.sh PROTOCOL METHOD [--dry-run] [KEY VALUE ...]
#   PROTOCOL  fewshot | base2new | xd | ablation | zeroshot
#   METHOD    ammpl | cocoop | maple | ivlp | dlp | vpt | promptsrc | kgcoop  (coop: fewshot
#             only, CoOp's epoch-by-shots configs; zsclip: zeroshot only; vp, dpt: fewshot only)
# Env (defaults in brackets):
#   DATASETS    [the AMMPL paper's 9: caltech101 dtd eurosat fgvc_aircraft oxford_flowers
#                food101 oxford_pets sun397 ucf101]
#   SEEDS       [1 2 3]
#   SHOTS_LIST  [fewshot: 1 2 4 8 16; xd: 1 8 16 for ammpl, 16 otherwise; ablation: 1]
#   SOURCE      [xd: food101 for ammpl, imagenet otherwise]; the targets are DATASETS minus it
#   COMBOS      [ablation: C1 C3 C1+C2 C1+C2+C3]
#   COOP_CFG    [coop: vit_b16; 1 shot uses COOP_CFG_ep50, 2-4 shots COOP_CFG_ep100]
#   ZS_CFG      [zeroshot: vit_b16]
# Trailing KEY VALUE pairs go to every run as config overrides.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 2 "PROTOCOL METHOD [--dry-run] [KEY VALUE ...]" "$@"
PROTOCOL=$1
METHOD=$2
shift 2
SCRIPTS="$REPO_ROOT/scripts"
FLAGS=()
[[ "$DRY_RUN" == "1" ]] && FLAGS=(--dry-run)
DATASETS=${DATASETS:-caltech101 dtd eurosat fgvc_aircraft oxford_flowers food101 oxford_pets sun397 ucf101}
SEEDS=${SEEDS:-1 2 3}

step() {
    echo "=== $*" >&2
    bash "$@" "${FLAGS[@]+"${FLAGS[@]}"}"
}

coop_config() {  # CoOp's epoch budget by shots (ImageNet: the 50-epoch config throughout)
    local dataset=$1 shots=$2 base=${COOP_CFG:-vit_b16}
    if [[ "$dataset" == "imagenet" || "$shots" == "1" ]]; then
        echo "${base}_ep50"
    elif ((shots <= 4)); then
        echo "${base}_ep100"
    else
        echo "$base"
    fi
}

case "$PROTOCOL/$METHOD" in
    fewshot/coop)
        for dataset in $DATASETS; do
            for shots in ${SHOTS_LIST:-1 2 4 8 16}; do
                SEEDS="$SEEDS" step "$SCRIPTS/coop/main.sh" "$dataset" \
                    "$(coop_config "$dataset" "$shots")" end 16 "$shots" False "$@"
            done
        done
        ;;
    zeroshot/zsclip | zeroshot/coop)
        for dataset in $DATASETS; do
            step "$SCRIPTS/zsclip/zeroshot.sh" "$dataset" "${ZS_CFG:-vit_b16}" "$@"
        done
        ;;
    fewshot/* | base2new/* | xd/* | ablation/*)
        [[ -f "$SCRIPTS/$METHOD/fewshot.sh" ]] ||
            die "unknown METHOD '$METHOD' for $PROTOCOL; use one of: ammpl cocoop maple ivlp dlp vpt promptsrc kgcoop vp dpt"
        [[ "$PROTOCOL" == "fewshot" || "$PROTOCOL" == "ablation" ||
            -f "$SCRIPTS/$METHOD/${PROTOCOL}_train.sh" ]] ||
            die "METHOD '$METHOD' has no $PROTOCOL scripts (scripts/$METHOD/ has: $(cd "$SCRIPTS/$METHOD" && ls -- *.sh | tr '\n' ' '))"
        ;;&
    fewshot/*)
        for dataset in $DATASETS; do
            for shots in ${SHOTS_LIST:-1 2 4 8 16}; do
                for seed in $SEEDS; do
                    step "$SCRIPTS/$METHOD/fewshot.sh" "$dataset" "$shots" "$seed" "$@"
                done
            done
        done
        ;;
    base2new/*)
        for dataset in $DATASETS; do
            for seed in $SEEDS; do
                step "$SCRIPTS/$METHOD/base2new_train.sh" "$dataset" "$seed" "$@"
                step "$SCRIPTS/$METHOD/base2new_test.sh" "$dataset" "$seed" new "$@"
            done
        done
        ;;
    xd/*)
        if [[ "$METHOD" == "ammpl" ]]; then
            SOURCE=${SOURCE:-food101}
            SHOTS_LIST=${SHOTS_LIST:-1 8 16}
        fi
        export SOURCE=${SOURCE:-imagenet}
        for shots in ${SHOTS_LIST:-16}; do
            for seed in $SEEDS; do
                step "$SCRIPTS/$METHOD/xd_train.sh" "$seed" "$shots" "$@"
                for target in $DATASETS; do
                    [[ "$target" == "$SOURCE" ]] && continue
                    step "$SCRIPTS/$METHOD/xd_test.sh" "$target" "$seed" "$shots" "$@"
                done
            done
        done
        ;;
    ablation/ammpl)
        export SHOTS=${SHOTS_LIST:-1}
        for dataset in $DATASETS; do
            for combo in ${COMBOS:-C1 C3 C1+C2 C1+C2+C3}; do
                for seed in $SEEDS; do
                    step "$SCRIPTS/ammpl/ablation.sh" "$dataset" "$combo" "$seed" "$@"
                done
            done
        done
        ;;
    *)
        die "no $PROTOCOL runs for METHOD '$METHOD' (PROTOCOL: fewshot base2new xd ablation zeroshot)"
        ;;
esac
