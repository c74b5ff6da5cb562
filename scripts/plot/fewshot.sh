#!/usr/bin/env bash
# PLOT (plot-coop, RN50): one few-shot run through the fewshot protocol
# (scripts/protocols/fewshot.sh), with PLOT's epochs-by-shots and batch rules
# (scripts/plot/schedule.sh) passed as explicit overrides.
# usage: DATA=/path/to/datasets [N=4] scripts/plot/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
#   N  prompt sets per class (TRAINER.PLOT.N; the paper's 4)
# Output: output/DATASET/PLOT/rn50_SHOTSshots/N<N>/seedSEED
set -euo pipefail
HERE="$(dirname "${BASH_SOURCE[0]}")"
source "$HERE/../common.sh"
source "$HERE/schedule.sh"
N="${N:-4}"
is_int "$N" || die "N must be a number of prompt sets, got '$N'"
parse_point_args "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
FLAGS=()
[[ "$DRY_RUN" == "1" ]] && FLAGS=(--dry-run)
# shellcheck disable=SC2046  # the schedule words are KEY VALUE pairs
TRAINER=PLOT CFG="${CFG:-rn50}" VARIANT="N$N" \
    exec bash "$HERE/../protocols/fewshot.sh" "$DATASET" "$SHOTS" "$SEED" TRAINER.PLOT.N "$N" \
    $(plot_schedule_opts "$DATASET" "$SHOTS") "$@" "${FLAGS[@]+"${FLAGS[@]}"}"
