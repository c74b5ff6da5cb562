"""Many runs: the "already finished" rule, protocol expansion and the `ammpl-sweep` runner.

- `done.py`: whether a folder holds a train.py command's run finished (the one rule,
  `ammpl.utils.run_settings`, applied for `scripts/common.sh` and for `ammpl-sweep`);
- `preflight.py`: what every run needs (configs, weights, data), checked once before the
  first run;
- `plan.py`: a protocol × methods × datasets × seeds (× shots) → the runs, each with the
  command and output folder the per-method scripts give it;
- `runner.py`: runs them on an executor (retries, progress, Ctrl-C, runs held elsewhere
  skipped, a stop when the first runs fail alike); `executors.py` (local
  processes), `slurm.py` (submitit) and `ray_executor.py` (Ray) run one command each;
- `cli.py`: the `ammpl-sweep` command line.

Nothing here imports torch at import time: `done.py` loads train.py's parser (torch-free)
only when a folder holds a results.json to compare with, and the config defaults (torch)
only when a setting is given on one side only; the local executor asks torch for the GPUs
only when `--gpus` is left to `auto`.
"""
