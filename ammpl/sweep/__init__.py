"""Many runs: the "already finished" rule, protocol expansion and the `ammpl-sweep` runner.

- `done.py`: what a run's settings are and when a folder holds that run finished (the one
  rule used by `scripts/common.sh` and by `ammpl-sweep`);
- `plan.py`: a protocol × methods × datasets × seeds (× shots) → the runs, each with the
  command and output folder the per-method scripts give it;
- `runner.py`: runs them on an executor (retries, progress, Ctrl-C); `executors.py` (local
  processes), `slurm.py` (submitit) and `ray_executor.py` (Ray) run one command each;
- `cli.py`: the `ammpl-sweep` command line.

Nothing here imports torch at import time: `done.py` loads train.py's parser (torch-free)
only when a folder holds a results.json to compare with, and the config defaults (torch)
only when a setting is given on one side only; the local executor asks torch for the GPUs
only when `--gpus` is left to `auto`.
"""
