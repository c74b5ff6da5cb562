#!/usr/bin/env bash
# Few-shot (in-sample) protocol: TRAINER on all classes of DATASET, SHOTS per class. For the
# baselines this uses their base-to-new config (neither reference repository ships few-shot
# scripts for them; our choice, see docs/METHODS.md).
# usage: DATA=/path/to/datasets scripts/<method>/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
# Output: output/DATASET/TRAINER/CFG_SHOTSshots[/VARIANT]/seedSEED (last-epoch test accuracy;
# VARIANT from the environment, for methods with settings beyond CFG, e.g. PLOT's N).
# One implementation per protocol; scripts/<method>/<protocol>.sh set TRAINER, CFG (and
# DEFAULT_SOURCE) and exec this file. Trailing KEY VALUE pairs are config overrides.
# Env: TRAINER, CFG, PYTHON, OUTPUT_ROOT, SOURCE; --dry-run prints the command.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
: "${TRAINER:?set TRAINER (the scripts/<method>/ wrappers do)}" "${CFG:?set CFG}"
parse_point_args "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_data
CONFIG="$(method_config "$TRAINER" "$CFG")"
DATASET_CONFIG="$(dataset_config "$DATASET")"
DIR="$OUTPUT_ROOT/$DATASET/$TRAINER/${CFG}_${SHOTS}shots${VARIANT:+/$VARIANT}/seed$SEED"
run_train "$DIR" --root "$DATA" --seed "$SEED" --trainer "$TRAINER" \
    --dataset-config-file "$DATASET_CONFIG" \
    --config-file "$CONFIG" \
    --output-dir "$DIR" \
    DATASET.NUM_SHOTS "$SHOTS" "$@"
