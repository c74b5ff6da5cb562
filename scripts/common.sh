# Shared logic of the protocol scripts (method-agnostic); source it, do not run it.
#
#   source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"
#   parse_script_flags "$@"; set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
#
# Functions:
#   parse_script_flags ARGS...   strips --dry-run (sets DRY_RUN=1); the rest in SCRIPT_ARGS
#   require_args N USAGE ARGS... exit 2 with USAGE unless at least N arguments are given
#   parse_point_args ARGS...     a few-shot point's arguments: --dry-run (DRY_RUN), then
#                                DATASET SHOTS SEED (SHOTS checked) into those variables,
#                                the trailing KEY VALUE pairs in SCRIPT_ARGS
#   require_data                 exit 2 unless $DATA names an existing folder (a dry run:
#                                a warning, /path/to/datasets when unset)
#   is_int VALUE                 true for a non-negative integer (optional positional args)
#   run_is_done DIR [TRAIN ARGS] true when DIR holds a finished run (a test accuracy) of the
#                                settings TRAIN ARGS ask for; exit 2 (one line) when DIR
#                                holds a run with other settings (ammpl/sweep/done.py)
#   config_max_epoch CFG [KEY VALUE ...]   OPTIM.MAX_EPOCH of a config file, trailing
#                                overrides applied (the epoch an evaluation must load)
#   config_values CFG KEY...     "KEY VALUE" for each dotted KEY the config file sets (to give
#                                a config's own values back after a script's pinned overrides)
#   run_train DIR ARGS...        run train.py ARGS unless DIR is done (run_is_done DIR ARGS);
#                                with DRY_RUN print it
#   dataset_config NAME          path of configs/datasets/NAME.yaml (exit 2 listing names if absent)
#   method_config TRAINER CFG    path of configs/trainers/TRAINER/CFG.yaml (exit 2 if absent)
#   cfg_for_dataset CFG IMAGENET_CFG ARGS...  IMAGENET_CFG when DATASET (the first of ARGS
#                                that is not a --flag) is imagenet, else CFG (wrappers' defaults)
#
# Variables: REPO_ROOT (checkout), PYTHON (${PYTHON:-python}), OUTPUT_ROOT (${OUTPUT_ROOT:-output},
# relative to the current directory), DATA (datasets folder, from the environment).

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python}"
OUTPUT_ROOT="${OUTPUT_ROOT:-output}"
DRY_RUN="${DRY_RUN:-0}"

die() {
    echo "error: $*" >&2
    exit 2
}

parse_script_flags() {
    SCRIPT_ARGS=()
    local arg
    for arg in "$@"; do
        if [[ "$arg" == "--dry-run" ]]; then
            DRY_RUN=1
        else
            SCRIPT_ARGS+=("$arg")
        fi
    done
}

require_args() {
    local needed="$1" usage="$2"
    shift 2
    if (($# < needed)); then
        echo "usage: $(basename "$0") $usage" >&2
        exit 2
    fi
}

parse_point_args() {
    parse_script_flags "$@"
    set -- "${SCRIPT_ARGS[@]+"${SCRIPT_ARGS[@]}"}"
    require_args 3 "DATASET SHOTS SEED [KEY VALUE ...]" "$@"
    DATASET=$1
    SHOTS=$2
    SEED=$3
    is_int "$SHOTS" || die "SHOTS must be a number of shots per class, got '$SHOTS'"
    SCRIPT_ARGS=("${@:4}")
}

require_data() {
    # a dry run only prints commands: a missing DATA is a warning there
    local problem=""
    if [[ -z "${DATA:-}" ]]; then
        problem="DATA is not set: export DATA=/path/to/datasets (the folder holding the dataset folders)"
    elif [[ ! -d "$DATA" ]]; then
        problem="DATA=$DATA is not a folder: export DATA=/path/to/datasets"
    fi
    [[ -z "$problem" ]] && return 0
    [[ "$DRY_RUN" == "1" ]] || die "$problem"
    echo "warning: $problem" >&2
    DATA="${DATA:-/path/to/datasets}"
}

is_int() {
    [[ "${1:-}" =~ ^[0-9]+$ ]]
}

run_is_done() {
    # exit 0: finished, 1: to run, 2: the folder holds a run with other settings (one line
    # on stderr). The rule is ammpl/sweep/done.py, shared with ammpl-sweep.
    PYTHONPATH="$REPO_ROOT${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" -m ammpl.sweep.done "$@"
}

config_values() {
    "$PYTHON" -c '
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1])) or {}
words = []
for key in sys.argv[2:]:
    node = cfg
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    if node is not None and not isinstance(node, dict):
        words += [key, str(node)]
print(" ".join(words))
' "$@"
}

config_max_epoch() {
    "$PYTHON" -c '
import sys, yaml
cfg = yaml.safe_load(open(sys.argv[1])) or {}
epoch = (cfg.get("OPTIM") or {}).get("MAX_EPOCH", 10)
opts = sys.argv[2:]
for key, value in zip(opts[::2], opts[1::2]):
    if key == "OPTIM.MAX_EPOCH":
        epoch = value
print(int(epoch))
' "$@"
}

run_train() {
    local dir="$1"
    shift
    if [[ "$DRY_RUN" == "1" ]]; then
        printf '%q ' "$PYTHON" "$REPO_ROOT/train.py" "$@"
        printf '\n'
        return 0
    fi
    local state=0
    run_is_done "$dir" "$@" || state=$?
    if ((state == 0)); then
        echo "Results are available in $dir (a finished run with these settings). Skip this job"
        return 0
    fi
    ((state == 1)) || exit "$state"
    "$PYTHON" "$REPO_ROOT/train.py" "$@"
}

dataset_config() {
    local path="$REPO_ROOT/configs/datasets/$1.yaml"
    if [[ ! -f "$path" ]]; then
        local names
        names="$(cd "$REPO_ROOT/configs/datasets" && ls -- *.yaml | sed 's/\.yaml$//' | tr '\n' ' ')"
        die "no dataset config configs/datasets/$1.yaml; use one of: $names"
    fi
    echo "$path"
}

method_config() {
    local path="$REPO_ROOT/configs/trainers/$1/$2.yaml"
    [[ -f "$path" ]] || die "no config configs/trainers/$1/$2.yaml (set CFG to a file in configs/trainers/$1/)"
    echo "$path"
}

cfg_for_dataset() {
    local default=$1 imagenet=$2 arg
    shift 2
    for arg in "$@"; do
        [[ "$arg" == --* ]] && continue
        [[ "$arg" == imagenet ]] && default=$imagenet
        break
    done
    echo "$default"
}
