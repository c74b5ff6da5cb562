# CoPrompt's per-dataset values (the reference's trainers/constants.py, which its train.py
# merges last): `coprompt_dataset_opts DATASET` prints them as KEY VALUE words; other datasets
# (the mini benchmark's) get none. The scripts of this folder pass them right after the
# positional arguments, so overrides given on the command line come later and win.
# Sourced, not run (hence .bash: the folder's .sh files are its protocol scripts).
coprompt_dataset_opts() {
    local depth n_ctx w epochs=""
    case "$1" in
        imagenet) depth=12 n_ctx=4 w=8.0 ;;
        caltech101) depth=12 n_ctx=4 w=4.0 ;;
        oxford_pets) depth=12 n_ctx=2 w=0.1 ;;
        stanford_cars) depth=12 n_ctx=4 w=4.0 ;;
        oxford_flowers) depth=9 n_ctx=4 w=8.0 ;;
        food101) depth=9 n_ctx=4 w=0.5 epochs=5 ;;
        fgvc_aircraft) depth=9 n_ctx=4 w=2.0 ;;
        sun397) depth=12 n_ctx=4 w=8.0 ;;
        dtd) depth=12 n_ctx=2 w=8.0 ;;
        eurosat) depth=12 n_ctx=2 w=0.1 ;;
        ucf101) depth=12 n_ctx=4 w=2.0 ;;
        *) return 0 ;;
    esac
    echo "TRAINER.CoPrompt.PROMPT_DEPTH $depth TRAINER.CoPrompt.N_CTX $n_ctx TRAINER.CoPrompt.W $w${epochs:+ OPTIM.MAX_EPOCH $epochs}"
}

# Runs scripts/protocols/$1.sh with the dataset's values after the first $2 positional
# arguments (flags anywhere); $3 is the dataset the values come from.
coprompt_protocol() {
    local protocol=$1 positional=$2 dataset=$3
    shift 3
    local args=() flags=() arg
    for arg in "$@"; do
        if [[ "$arg" == --* ]]; then flags+=("$arg"); else args+=("$arg"); fi
    done
    # shellcheck disable=SC2207  # KEY VALUE words
    local opts=($(coprompt_dataset_opts "$dataset"))
    set -- "${args[@]:0:positional}" "${opts[@]+"${opts[@]}"}" "${args[@]:positional}"
    TRAINER=CoPrompt CFG="${CFG:-coprompt}" exec bash \
        "$(dirname "${BASH_SOURCE[0]}")/../protocols/$protocol.sh" "$@" "${flags[@]+"${flags[@]}"}"
}
