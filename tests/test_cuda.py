"""Every method in every CUDA precision mode: reference fp16, amp, bf16 autocast.

Marked `cuda` and skipped without a GPU (this suite's machines have none):
`bench/gpu_check.sh` runs them (`pytest -m cuda`). Two kinds of check per method and mode:
the logits of one batch follow the fp32 logits (the same weights, within the mode's
resolution), and one epoch of `train.py` (tiny backbone, fixture data) trains, saves and
evaluates with the mode recorded in results.json and a finite loss.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch

from ammpl.cli.train import main as train_main
from ammpl.engine.precision import autocast_context
from ammpl.trainers.param_counts import (
    PAPER_CONFIGS,
    REPO_ROOT,
    build_method_model,
    build_random_clip,
    load_paper_cfg,
)

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs a CUDA GPU (bench/gpu_check.sh runs these)"
    ),
]

PRECISIONS = ("fp16", "amp", "bf16")
# relative error of the logits (against their largest magnitude) each mode may add
LOGIT_TOLERANCE = {"fp16": 2e-2, "amp": 2e-2, "bf16": 6e-2}
LEARNED = [row for row in PAPER_CONFIGS if row.trainer != "ZeroshotCLIP"]
DEVICE = torch.device("cuda")
# The tiny backbone's text tower has 2 blocks: TCP's class tokens enter block 1 there (8 of 12
# at its paper config).
TINY_OPTS = {"TCP": ("TRAINER.TCP.LAYER", "1")}


def _mode(row, prec: str) -> str:
    """The precision the row's trainer really runs with `PREC prec` (VPT: fp32 for fp16)."""
    from ammpl.engine import TRAINER_REGISTRY
    from ammpl.engine.precision import resolve_precision

    trainer_cls = TRAINER_REGISTRY.get(row.trainer)
    shell = trainer_cls.__new__(trainer_cls)
    shell.cfg = load_paper_cfg(row)
    shell.cfg.TRAINER[trainer_cls.CFG_NODE].PREC = prec
    return resolve_precision(shell.requested_precision(), DEVICE)


def _model(row, clip_model, classnames):
    cfg = load_paper_cfg(row)
    cfg.merge_from_list(list(TINY_OPTS.get(row.trainer, ())))
    model = build_method_model(row.trainer, cfg, classnames, clip_model)
    return model.to(DEVICE).eval()


@pytest.mark.parametrize("prec", PRECISIONS)
@pytest.mark.parametrize("row", LEARNED, ids=lambda row: row.method)
def test_logits_in_each_mode_follow_fp32(row, prec):
    from ammpl.clip.precision import to_reference_half

    classnames = [f"class {i}" for i in range(5)]
    clip_model = build_random_clip("tiny").to(DEVICE)
    images = torch.randn(4, 3, 224, 224, generator=torch.Generator().manual_seed(1)).to(DEVICE)
    with torch.no_grad():
        reference = _model(row, clip_model, classnames)
        expected = reference(images).float()
        mode = _mode(row, prec)
        mode_clip = to_reference_half(copy.deepcopy(clip_model)) if mode == "fp16" else clip_model
        model = _model(row, mode_clip, classnames)
        model.load_state_dict(reference.state_dict())  # the same values, cast to each dtype
        with autocast_context(mode, DEVICE):
            actual = model(images).float()
    assert torch.isfinite(actual).all()
    error = (actual - expected).abs().max().item() / expected.abs().max().item()
    assert error <= LOGIT_TOLERANCE[prec], f"relative logit error {error:.3g}"


def coprompt_descriptions(benchmark_root, folder) -> list[str]:
    """CoPrompt's class descriptions for the fixture Caltech101 (users supply them; the test
    writes a small file from the split's class names), as train.py overrides."""
    split = json.loads((benchmark_root / "caltech-101/split_zhou_Caltech101.json").read_text())
    names = {entry[2].replace("_", " ") for part in split.values() for entry in part}
    folder.mkdir()
    table = {name: [f"a photo of a {name}.", f"a {name}, described."] for name in names}
    (folder / "caltech_prompt.json").write_text(json.dumps(table))
    return ["TRAINER.CoPrompt.DESCRIPTIONS", str(folder)]


@pytest.mark.parametrize("prec", PRECISIONS)
@pytest.mark.parametrize("row", LEARNED, ids=lambda row: row.method)
def test_one_epoch_trains_and_evaluates_in_each_mode(row, prec, benchmark_root, tmp_path):
    from ammpl.engine import TRAINER_REGISTRY

    cfg_node = TRAINER_REGISTRY.get(row.trainer).CFG_NODE
    assert "PREC" in load_paper_cfg(row).TRAINER[cfg_node]
    out = tmp_path / "run"
    extra = []
    if row.trainer == "CoPrompt":
        extra = coprompt_descriptions(benchmark_root, tmp_path / "gpt_file")
    code = train_main(
        [
            str(a)
            for a in [
                "--root", benchmark_root, "--seed", 1, "--trainer", row.trainer,
                "--dataset-config-file", REPO_ROOT + "/configs/datasets/caltech101.yaml",
                "--config-file", REPO_ROOT + f"/configs/trainers/{row.config}",
                "--output-dir", out, *row.opts, *TINY_OPTS.get(row.trainer, ()),
                "MODEL.BACKBONE.NAME", "tiny", "DATALOADER.NUM_WORKERS", 0,
                "OPTIM.MAX_EPOCH", 1, "DATASET.NUM_SHOTS", 2,
                f"TRAINER.{cfg_node}.PREC", prec, *extra,
            ]
        ]
    )  # fmt: skip
    assert code == 0
    record = json.loads((out / "results.json").read_text())
    assert record["precision"] == _mode(row, prec)
    assert record["status"] == "finished"
    assert math.isfinite(record["epochs"][0]["loss"])
    assert 0.0 <= record["results"]["test"]["accuracy"] <= 100.0
