#!/usr/bin/env bash
# CoPrompt: the base2new_test protocol (scripts/protocols/base2new_test.sh has the details),
# with the reference's per-dataset values (dataset_opts.bash; they also set the epoch loaded).
# usage: DATA=/path/to/datasets scripts/coprompt/base2new_test.sh DATASET SEED [new|base] [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/dataset_opts.bash"
args=()
for arg in "$@"; do [[ "$arg" == --* ]] || args+=("$arg"); done
positional=2
[[ "${args[2]:-}" == new || "${args[2]:-}" == base ]] && positional=3
coprompt_protocol base2new_test "$positional" "${args[0]:-}" "$@"
