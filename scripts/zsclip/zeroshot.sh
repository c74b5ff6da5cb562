#!/usr/bin/env bash
# Zero-shot CLIP (MaPLe's script location): the same as scripts/coop/zeroshot.sh.
# usage: DATA=/path/to/datasets scripts/zsclip/zeroshot.sh DATASET CFG [KEY VALUE ...]
exec bash "$(dirname "${BASH_SOURCE[0]}")/../coop/zeroshot.sh" "$@"
