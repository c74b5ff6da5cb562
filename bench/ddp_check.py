"""A real torchrun check: CoOp trained by 1 and by N processes must learn the same context.

Runs `torchrun --nproc_per_node P -m ammpl.cli.train` for P = 1 and P = N on fixture data
(tiny backbone, deterministic transforms, global batch 3 so that 2 processes split it
2 + 1), then compares the learned context (relative tolerance 1e-4: cuBLAS may sum in
another order) and the test metrics, which must be identical. On GPUs the ranks use NCCL,
one GPU each; with `--processes 1` only the one-process run is made (the NCCL code path on a
single GPU). Writes a JSON record for bench/gpu_summary.py.

    python bench/ddp_check.py --processes 2 --json output/gpu_check/ddp.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout

import torch  # noqa: E402

from bench.records import write_records  # noqa: E402

REL_TOL = 1e-4


def run(processes: int, root: Path, out: Path, use_cuda: bool) -> float:
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", "-m", "ammpl.cli.train",
        "--root", str(root), "--seed", "1", "--trainer", "CoOp",
        "--dataset-config-file", str(REPO / "configs/datasets/caltech101.yaml"),
        "--config-file", str(REPO / "configs/trainers/CoOp/vit_b16_ep50.yaml"),
        "--output-dir", str(out),
        "USE_CUDA", str(use_cuda), "MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", "0",
        "OPTIM.MAX_EPOCH", "2", "DATASET.NUM_SHOTS", "4", "TRAINER.COOP.N_CTX", "4",
        "TRAINER.COOP.PREC", "fp32", "DATALOADER.TRAIN_X.BATCH_SIZE", "3",
        "DATALOADER.TEST.BATCH_SIZE", "4", "INPUT.TRANSFORMS", "['normalize']", "OPTIM.LR", "0.2",
    ]  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise SystemExit(f"error: torchrun with {processes} process(es) failed:\n{tail}")
    return time.perf_counter() - start


def learned(out: Path) -> torch.Tensor:
    state = torch.load(out / "prompt_learner" / "model.pth.tar-2", weights_only=True)
    return state["state_dict"]["ctx"].float()


def test_metrics(out: Path) -> dict:
    test = json.loads((out / "results.json").read_text())["results"]["test"]
    return {k: test[k] for k in ("accuracy", "macro_f1", "total", "correct")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="processes of the DDP run")
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--json", help="also write the result to this JSON file")
    args = parser.parse_args(argv)
    use_cuda = args.device == "cuda"
    if use_cuda and torch.cuda.device_count() < args.processes:
        print(f"error: {args.processes} processes need as many GPUs", file=sys.stderr)
        return 2
    from ammpl.data.fixtures import make_fixture

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        make_fixture(root, ["Caltech101"])
        counts = sorted({1, args.processes})
        seconds = {p: run(p, root, Path(tmp) / f"p{p}", use_cuda) for p in counts}
        metrics = {p: test_metrics(Path(tmp) / f"p{p}") for p in counts}
        one, many = learned(Path(tmp) / "p1"), learned(Path(tmp) / f"p{counts[-1]}")
    error = ((many - one).abs().max() / one.abs().max()).item()
    same = error <= REL_TOL and metrics[counts[-1]] == metrics[1]
    print(
        f"DDP check ({args.device}): processes {counts}, seconds "
        f"{[round(seconds[p], 1) for p in counts]}, max relative ctx difference {error:.2e}, "
        f"test metrics {'identical' if metrics[counts[-1]] == metrics[1] else 'DIFFER'}: "
        f"{'ok' if same else 'FAILED'}"
    )
    if args.json:
        row = {
            "processes": counts,
            "seconds": [seconds[p] for p in counts],
            "max_rel_diff": error,
            "metrics": [metrics[p] for p in counts],
            "ok": same,
        }
        device = torch.device("cuda" if use_cuda else "cpu")
        write_records(
            args.json, "ddp_check", device, {"backend": "nccl" if use_cuda else "gloo"}, [row]
        )
    return 0 if same else 1


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.exit(main())
