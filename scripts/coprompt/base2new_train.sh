#!/usr/bin/env bash
# CoPrompt: the base2new_train protocol (scripts/protocols/base2new_train.sh has the
# details), with the reference's per-dataset values (dataset_opts.bash).
# usage: DATA=/path/to/datasets scripts/coprompt/base2new_train.sh DATASET SEED [KEY VALUE ...]
source "$(dirname "${BASH_SOURCE[0]}")/dataset_opts.bash"
args=()
for arg in "$@"; do [[ "$arg" == --* ]] || args+=("$arg"); done
coprompt_protocol base2new_train 2 "${args[0]:-}" "$@"
