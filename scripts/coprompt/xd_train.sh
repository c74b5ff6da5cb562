#!/usr/bin/env bash
# CoPrompt: the xd_train protocol (scripts/protocols/xd_train.sh has the details), with the
# source dataset's values from dataset_opts.bash (ImageNet: depth 12, 4 tokens, W 8).
# usage: DATA=/path/to/datasets scripts/coprompt/xd_train.sh SEED [SHOTS] [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/dataset_opts.bash"
args=()
for arg in "$@"; do [[ "$arg" == --* ]] || args+=("$arg"); done
positional=1
[[ "${args[1]:-}" =~ ^[0-9]+$ ]] && positional=2
DEFAULT_SOURCE=imagenet coprompt_protocol xd_train "$positional" "${SOURCE:-imagenet}" "$@"
