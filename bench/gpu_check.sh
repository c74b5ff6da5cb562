#!/usr/bin/env bash
# The GPU check, prepared for the day a CUDA machine is available (< 8 minutes on one GPU):
#   1. the CUDA-marked tests: every method in reference fp16, amp and bf16 autocast;
#   2. bench/clip_encoders.py, bench/methods_step.py (fp16 and bf16) and bench/ammpl_step.py
#      at ViT-B/16 size with random weights;
#   3. a torchrun DDP run (bench/ddp_check.py): 1 vs 2 processes when two GPUs are visible,
#      else the one-process NCCL path;
# then prints one Markdown table (times, images/s, peak memory, achieved TFLOP/s of the
# ViT-B/16 forward) to paste into README's Speed section, and the cost model's predictions
# next to the measured time, TFLOP/s and peak memory of each case (bench/cost.py --compare;
# README "Speed" says how to calibrate `ammpl-sweep --estimate` with it).
#
#   bash bench/gpu_check.sh             # results and logs in output/gpu_check/
#   bash bench/gpu_check.sh --dry-run   # print the steps, run nothing (works without a GPU)
# Environment: PYTHON (default .venv/bin/python, else python3), GPU_CHECK_OUT (output folder).
set -uo pipefail

cd "$(dirname "$0")/.."
DRY_RUN=0
for arg in "$@"; do
    case "$arg" in
        --dry-run) DRY_RUN=1 ;;
        -h|--help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "error: unknown argument '$arg' (use --dry-run or --help)" >&2; exit 2 ;;
    esac
done

if [[ -n "${PYTHON:-}" ]]; then :
elif [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python
else PYTHON=python3
fi
OUT="${GPU_CHECK_OUT:-output/gpu_check}"
STEPS="$OUT/steps.tsv"

GPUS=0
if (( ! DRY_RUN )); then
    GPUS=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
    if (( GPUS < 1 )); then
        echo "error: no CUDA GPU is visible to $PYTHON (torch.cuda.device_count() = 0)" >&2
        exit 2
    fi
    mkdir -p "$OUT"
    : > "$STEPS"
    rm -f "$OUT"/*.json "$OUT"/cuda_tests.xml
fi
DDP_PROCESSES=$(( GPUS >= 2 ? 2 : 1 ))

# step NAME TIMEOUT_S COMMAND...: run with a time limit, log to $OUT/NAME.log, record rc and
# time. The limits add up to 475 s, so the whole check ends within 8 minutes.
step() {
    local name="$1" limit="$2"; shift 2
    if (( DRY_RUN )); then
        printf '%-14s (≤ %4ss)  %s\n' "$name" "$limit" "$*"
        return 0
    fi
    echo "== $name: $*"
    local start=$SECONDS
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
    local code=$?
    printf '%s\t%s\t%s\n' "$name" "$code" "$(( SECONDS - start ))" >> "$STEPS"
    if (( code != 0 )); then
        echo "   exit $code (124 = time limit); last lines of $OUT/$name.log:"
        tail -n 5 "$OUT/$name.log" | sed 's/^/   /'
    fi
}

step cuda_tests 150 "$PYTHON" -m pytest -m cuda tests -q -p no:cacheprovider \
    --junitxml "$OUT/cuda_tests.xml"
step clip_encoders 45 "$PYTHON" bench/clip_encoders.py --backbone vit_b16 --device cuda \
    --batch 256 --iters 10 --json "$OUT/clip_encoders.json"
step methods_fp16 75 "$PYTHON" bench/methods_step.py --backbone vit_b16 --device cuda \
    --prec fp16 --iters 5 --json "$OUT/methods_step_fp16.json"
step methods_bf16 75 "$PYTHON" bench/methods_step.py --backbone vit_b16 --device cuda \
    --prec bf16 --iters 5 --json "$OUT/methods_step_bf16.json"
step ammpl_step 60 "$PYTHON" bench/ammpl_step.py --device cuda --classes 10 100 397 \
    --skip-plain-above 100 --repeats 5 --min-seconds 0.5 --json "$OUT/ammpl_step.json"
step ddp 70 "$PYTHON" bench/ddp_check.py --processes "$DDP_PROCESSES" --json "$OUT/ddp.json"

if (( DRY_RUN )); then
    echo "summary        $PYTHON bench/gpu_summary.py $OUT"
    echo "predicted      $PYTHON bench/cost.py --compare $OUT"
    exit 0
fi
echo
"$PYTHON" bench/gpu_summary.py "$OUT" | tee "$OUT/summary.md"
echo
echo "Predicted (bench/cost.py, ammpl/resources/cost_model.json) next to measured:"
"$PYTHON" bench/cost.py --compare "$OUT" | tee "$OUT/predicted.md"
echo
echo "Total: $SECONDS s (target < 480 s); logs in $OUT/"
! grep -qv $'\t0\t' "$STEPS"  # exit status: 0 only when every step passed
