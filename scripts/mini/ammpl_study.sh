#!/usr/bin/env bash
# docs/MINI.md's AMMPL study: the keep-probability learning rate (TRAINER.AMMPL.P_LR_MULT),
# the initial keep probability (P_INIT_MEAN) and the four test-mask modes, base-to-new.
# usage: DATA=/path/to/data scripts/mini/ammpl_study.sh [KEY VALUE ...]
# Env: DATASET [mini_colors], SEEDS [1], VARIANTS ["1:0.9 10:0.9 100:0.9 1:0.6 10:0.6"],
#      MODES [threshold expected sample none], OUTPUT_ROOT [output],
#      FEWSHOT [empty]: shot counts (e.g. "4 16") at which each variant also trains on all
#      classes and each mode evaluates on all classes (.../seed<S>/fewshot<K>/...).
# Each variant P_LR_MULT:P_INIT_MEAN trains on the base classes (every epoch's checkpoint is
# kept for `ammpl-viz masks`), then each mode evaluates it on the base and the new classes.
# Output: OUTPUT_ROOT/ammpl_study/DATASET/plr<M>_init<P>/seed<S>/{train,<mode>_<base|new>}.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
DATASET=${DATASET:-mini_colors}
require_data
CONFIG="$(method_config AMMPL mini)"
DATASET_CONFIG="$(dataset_config "$DATASET")"
LOADEP="$(config_max_epoch "$CONFIG" "$@")"
for variant in ${VARIANTS:-1:0.9 10:0.9 100:0.9 1:0.6 10:0.6}; do
    mult=${variant%%:*}
    init=${variant##*:}
    for seed in ${SEEDS:-1}; do
        base="$OUTPUT_ROOT/ammpl_study/$DATASET/plr${mult}_init${init}/seed$seed"
        common=(--root "$DATA" --seed "$seed" --trainer AMMPL
            --dataset-config-file "$DATASET_CONFIG" --config-file "$CONFIG")
        opts=(DATASET.NUM_SHOTS 16 TRAINER.AMMPL.P_LR_MULT "$mult"
            TRAINER.AMMPL.P_INIT_MEAN "$init")
        echo "=== AMMPL P_LR_MULT $mult P_INIT_MEAN $init seed $seed" >&2
        run_train "$base/train" "${common[@]}" --output-dir "$base/train" \
            "${opts[@]}" DATASET.SUBSAMPLE_CLASSES base TRAIN.CHECKPOINT_FREQ 1 "$@"
        for mode in ${MODES:-threshold expected sample none}; do
            for sub in base new; do
                run_train "$base/${mode}_$sub" "${common[@]}" --output-dir "$base/${mode}_$sub" \
                    --model-dir "$base/train" --load-epoch "$LOADEP" --eval-only \
                    "${opts[@]}" DATASET.SUBSAMPLE_CLASSES "$sub" TRAINER.AMMPL.TEST_MASK "$mode" "$@"
            done
        done
        for shots in ${FEWSHOT:-}; do
            fs="$base/fewshot$shots"
            fs_opts=(TRAINER.AMMPL.P_LR_MULT "$mult" TRAINER.AMMPL.P_INIT_MEAN "$init"
                DATASET.NUM_SHOTS "$shots")
            echo "=== AMMPL P_LR_MULT $mult P_INIT_MEAN $init seed $seed, $shots shots, all classes" >&2
            run_train "$fs/train" "${common[@]}" --output-dir "$fs/train" "${fs_opts[@]}" "$@"
            for mode in ${MODES:-threshold expected sample none}; do
                run_train "$fs/${mode}_all" "${common[@]}" --output-dir "$fs/${mode}_all" \
                    --model-dir "$fs/train" --load-epoch "$LOADEP" --eval-only \
                    "${fs_opts[@]}" TRAINER.AMMPL.TEST_MASK "$mode" "$@"
            done
        done
    done
done
