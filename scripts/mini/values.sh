# mini_values METHOD DATASET SHOTS: the mini config's own values for the keys a method's
# few-shot script pins to ViT-B/16 values (DPT's reference run script, PLOT's epoch/batch
# schedule), as "KEY VALUE ..." to pass after SEED; nothing for other methods. Source it
# after scripts/common.sh (scripts/mini/run.sh and ammpl/paper/plan.py use it).
SCRIPTS=${SCRIPTS:-"$REPO_ROOT/scripts"}

mini_values() {  # METHOD DATASET SHOTS
    local trainer pinned=() keys=() i
    case "$1" in
        dpt)
            source "$SCRIPTS/dpt/reference_opts.bash"
            trainer=DPT pinned=("${DPT_SCRIPT_OPTS[@]}") ;;
        plotpp)
            source "$SCRIPTS/plot/schedule.sh"
            # shellcheck disable=SC2207  # KEY VALUE words
            trainer=PLOTPP pinned=($(plot_schedule_opts "$2" "$3")) ;;
        *) return 0 ;;
    esac
    for ((i = 0; i < ${#pinned[@]}; i += 2)); do keys+=("${pinned[i]}"); done
    config_values "$(method_config "$trainer" mini)" "${keys[@]}"
}
