#!/usr/bin/env bash
# PromptSRC: the fewshot protocol (scripts/protocols/fewshot.sh has the details).
# usage: DATA=/path/to/datasets scripts/promptsrc/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
# GPA as the original few-shot config says: N(30, 30) for ImageNet, Caltech101, OxfordPets,
# Food101, UCF101, SUN397 (the file's values); N(45, 5) for StanfordCars, Flowers102,
# FGVCAircraft, DTD, EuroSAT, passed here before any KEY VALUE of yours (which win).
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
parse_script_flags "$@" # --dry-run anywhere: DATASET is the first of the others
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
GPA=()
case "${1:-}" in
    stanford_cars | oxford_flowers | fgvc_aircraft | dtd | eurosat)
        GPA=(TRAINER.PROMPTSRC.GPA_MEAN 45 TRAINER.PROMPTSRC.GPA_STD 5)
        ;;
esac
if (($# >= 3)); then
    set -- "${@:1:3}" "${GPA[@]+"${GPA[@]}"}" "${@:4}"
fi
[[ "$DRY_RUN" == "1" ]] && set -- "$@" --dry-run
TRAINER=PromptSRC CFG="${CFG:-vit_b16_c2_ep50_batch4_4+4ctx_few_shot}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/fewshot.sh" "$@"
