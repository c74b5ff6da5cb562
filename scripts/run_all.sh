#!/usr/bin/env bash
# Driver: one protocol for one method over datasets × seeds (× shots). A thin wrapper over
# `ammpl-sweep` (python -m ammpl.sweep.cli), which runs each run exactly as the per-method
# script would (same command line, same output folder) and skips runs already finished
# with the same settings, so an interrupted driver resumes where it stopped when started
# again. It prints "run i/N" before each run, a summary at the end, and the protocol's table.
# usage: DATA=/path/to/datasets scripts/run_all.sh PROTOCOL METHOD [--dry-run] [KEY VALUE ...]
#   PROTOCOL  fewshot | base2new | xd | ablation | zeroshot
#   METHOD    ammpl | cocoop | maple | ivlp | dlp | vpt | promptsrc | kgcoop: fewshot,
#             base2new, xd (ablation: ammpl only)
#             prograd | tcp: fewshot, base2new, xd (their epoch and λ rules in their scripts)
#             vp | dpt | plot | plotpp: fewshot only (plot, plotpp: PLOT's epochs-by-shots
#             rule; N or M from the environment)
#             coop: fewshot (CoOp's epoch-by-shots configs), base2new and xd (the CoCoOp
#             paper's CoOp baseline: vit_b16_ctxv1 / vit_b16_ep50_ctxv1); zsclip (or coop):
#             zeroshot
#             mma | coprompt: base2new, xd (their papers have no few-shot protocol)
#             (the list comes from scripts/*/fewshot.sh and */base2new_train.sh:
#             ammpl-sweep --help)
# Env (defaults in brackets):
#   DATASETS    [the AMMPL paper's 9: caltech101 dtd eurosat fgvc_aircraft oxford_flowers
#                food101 oxford_pets sun397 ucf101]
#   SEEDS       [1 2 3]
#   SHOTS_LIST  [fewshot: 1 2 4 8 16; xd: 1 8 16 for ammpl, 16 otherwise; ablation: 1]
#   SOURCE      [xd: food101 for ammpl, imagenet otherwise]; the targets are DATASETS minus it
#   COMBOS      [ablation: C1 C3 C1+C2 C1+C2+C3]
#   COOP_CFG    [coop: vit_b16; 1 shot uses COOP_CFG_ep50, 2-4 shots COOP_CFG_ep100]
#   ZS_CFG      [zeroshot: vit_b16]
#   SWEEP_ARGS  [one run at a time on the default device] more ammpl-sweep options, e.g.
#               "--gpus 0,1,2,3 --per-gpu 2 --retries 1" (see ammpl-sweep --help)
# Trailing KEY VALUE pairs go to every run as config overrides. --dry-run prints the
# train.py command lines (stdout) and each run's folder and state (stderr).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
parse_script_flags "$@"
set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
require_args 2 "PROTOCOL METHOD [--dry-run] [KEY VALUE ...]" "$@"
PROTOCOL=$1
METHOD=$2
shift 2
ARGS=(--methods "$METHOD" --output-root "$OUTPUT_ROOT" --python "$PYTHON" --gpus none --slots 1)
[[ -n "${DATASETS:-}" ]] && read -r -a LIST <<<"$DATASETS" && ARGS+=(--datasets "${LIST[@]}")
[[ -n "${SEEDS:-}" ]] && read -r -a LIST <<<"$SEEDS" && ARGS+=(--seeds "${LIST[@]}")
[[ -n "${SHOTS_LIST:-}" ]] && read -r -a LIST <<<"$SHOTS_LIST" && ARGS+=(--shots "${LIST[@]}")
[[ -n "${COMBOS:-}" ]] && read -r -a LIST <<<"$COMBOS" && ARGS+=(--combos "${LIST[@]}")
[[ -n "${SOURCE:-}" ]] && ARGS+=(--source "$SOURCE")
[[ -n "${COOP_CFG:-}" ]] && ARGS+=(--coop-cfg "$COOP_CFG")
[[ -n "${ZS_CFG:-}" ]] && ARGS+=(--zs-cfg "$ZS_CFG")
[[ "$DRY_RUN" == "1" ]] && ARGS+=(--dry-run)
read -r -a EXTRA <<<"${SWEEP_ARGS:-}"
PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "$PYTHON" -m ammpl.sweep.cli \
    "$PROTOCOL" "${ARGS[@]}" "${EXTRA[@]+"${EXTRA[@]}"}" -- "$@"
