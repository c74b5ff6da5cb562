#!/usr/bin/env bash
# CoPrompt: the xd_test protocol (scripts/protocols/xd_test.sh has the details). The model
# was trained on the source, so the source dataset's values apply (dataset_opts.bash), not
# the target's (the reference ships no cross-dataset script).
# usage: DATA=/path/to/datasets scripts/coprompt/xd_test.sh DATASET SEED [SHOTS] [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/dataset_opts.bash"
args=()
for arg in "$@"; do [[ "$arg" == --* ]] || args+=("$arg"); done
positional=2
[[ "${args[2]:-}" =~ ^[0-9]+$ ]] && positional=3
DEFAULT_SOURCE=imagenet coprompt_protocol xd_test "$positional" "${SOURCE:-imagenet}" "$@"
