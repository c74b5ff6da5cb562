# PLOT's training budget, which the reference sets in train.py after every config merge
# (plot-coop and plot-pp alike; BASELINES_EXTRA §3.5, quirk P-Q5), as explicit rules.
# Source it; the PLOT and PLOT++ scripts pass the result as ordinary overrides, so it shows
# on the command line and in the logged config, and trailing KEY VALUE pairs still win.
#
#   plot_max_epoch DATASET SHOTS    50 for 1 shot, 100 for 2 or 4, 200 otherwise (8, 16,
#                                   also -1 = all); 50 on imagenet whatever the shots
#   plot_train_batch DATASET        32 on oxford_flowers, fgvc_aircraft, stanford_cars;
#                                   empty otherwise (the config's batch size stays)
#   plot_schedule_opts DATASET SHOTS   the overrides: OPTIM.MAX_EPOCH E [DATALOADER.TRAIN_X.BATCH_SIZE 32]
# DATASET is the dataset-config stem (configs/datasets/DATASET.yaml).

plot_max_epoch() {
    local dataset=$1 shots=$2
    if [[ "$dataset" == "imagenet" || "$shots" == "1" ]]; then
        echo 50
    elif [[ "$shots" == "2" || "$shots" == "4" ]]; then
        echo 100
    else
        echo 200
    fi
}

plot_train_batch() {
    case "$1" in
        oxford_flowers | fgvc_aircraft | stanford_cars) echo 32 ;;
        *) echo "" ;;
    esac
}

plot_schedule_opts() {
    local batch
    batch="$(plot_train_batch "$1")"
    echo "OPTIM.MAX_EPOCH $(plot_max_epoch "$1" "$2")${batch:+ DATALOADER.TRAIN_X.BATCH_SIZE $batch}"
}
