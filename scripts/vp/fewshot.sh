#!/usr/bin/env bash
# VP (padding prompter): the fewshot protocol (scripts/protocols/fewshot.sh has the details);
# the Figure 2 recipe of docs/METHODS.md (LR 40, per-step warm-up + cosine, 1000 epochs).
# usage: DATA=/path/to/datasets scripts/vp/fewshot.sh DATASET SHOTS SEED [KEY VALUE ...]
TRAINER=VP CFG="${CFG:-vit_b16}" \
    exec bash "$(dirname "${BASH_SOURCE[0]}")/../protocols/fewshot.sh" "$@"
