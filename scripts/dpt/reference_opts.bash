# DPT's values from the reference's run script (train_single.sh): scripts/dpt/fewshot.sh
# passes them as explicit overrides, and scripts/mini/run.sh reads their keys to give the
# mini config's values back after them. Sourced, not run (hence .bash, not .sh: the method
# folder's .sh files are its protocol scripts).
# shellcheck disable=SC2034  # used by the scripts that source this file
DPT_SCRIPT_OPTS=(
    TRAINER.COOP.N_CTX 16 TRAINER.COOP.CSC False TRAINER.COOP.CLASS_TOKEN_POSITION end
    TRAINER.DPT.N_CTX_VISION 10 TRAINER.DPT.BOTTOMLIMIT 12 TRAINER.DPT.CPN 10
    OPTIM.LR 0.01 OPTIM.MAX_EPOCH 60 TRAINER.DPT.C 30 TRAINER.DPT.ALPHA 0.3
)
