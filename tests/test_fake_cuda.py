"""Every trainer at every config under configs/trainers/, at its own full-size backbone, on a
fake CUDA device in each PREC (ammpl.trainers.fake_device): the training forward and the
evaluation forward must meet no CPU tensor and no dtype an operator refuses. Fake tensors
compute nothing, so this runs on a machine without a GPU.

The towers keep their full width, resolution and token counts but only their first
BLOCKS blocks (every block runs the same code; a placement or dtype problem shows in the
first ones): `AMMPL_FAKE_CUDA_FULL_DEPTH=1 pytest tests/test_fake_cuda.py` runs all of them.
Cases are found, not listed: every configs/trainers/<Trainer>/*.yaml and every registered
trainer (new trainers are covered when they land). Configs that build the same model
(they differ only in schedule, data, loader or PREC settings, in sizes beyond the kept
blocks, or in the backbone within one tower kind: `model_key`) are checked once, a paper
config before a `mini` one. Each case runs fp32, fp16 and one of amp / bf16 in turn
(`case_precisions`; the full-depth run does every PREC for every case).
"""

from __future__ import annotations

import os

import pytest
import torch

from ammpl.engine.precision import PRECISIONS
from ammpl.trainers.fake_device import (
    SHALLOW_OPTS,
    TrainerCase,
    check_trainer,
    config_folders,
    load_case_cfg,
    model_key,
    registered_trainers,
    trainer_cases,
)


def _unique_cases() -> list[TrainerCase]:
    """One case per model_key; of equal ones, the first on PREFERRED_BACKBONES (then a
    paper backbone before `mini`)."""

    def cfg(case: TrainerCase):
        shallow = SHALLOW_OPTS.get(case.trainer, ()) if BLOCKS is not None else ()
        return load_case_cfg(case, shallow)  # the options the check applies

    cfgs = {case: cfg(case) for case in trainer_cases()}

    def preference(case: TrainerCase) -> tuple[bool, bool]:
        name = cfgs[case].MODEL.BACKBONE.NAME
        return name not in PREFERRED_BACKBONES, name == "mini"

    seen, unique = set(), []
    for case in sorted(cfgs, key=preference):
        key = model_key(cfgs[case], case.trainer, BLOCKS)
        if key not in seen:
            seen.add(key)
            unique.append(case)
    return sorted(unique, key=lambda case: case.label)


PREFERRED_BACKBONES = ("ViT-B/16", "RN50")  # the smallest paper backbone of each tower kind
BLOCKS = None if os.environ.get("AMMPL_FAKE_CUDA_FULL_DEPTH") else 2
CASES = _unique_cases()
PLANT_CASE = TrainerCase("CoOp", "CoOp/vit_b16.yaml")


def _assert_passes(results) -> None:
    gaps = [r.describe() for r in results if r.problem and r.unsupported]
    problems = [r.describe() for r in results if r.problem and not r.unsupported]
    assert not problems, "\n".join(problems)
    if gaps:
        pytest.skip("torch's fake tensors cannot run this: " + "; ".join(gaps))


def case_precisions(index: int) -> tuple[str, ...]:
    """fp32, fp16 and one autocast PREC: amp and bf16 run the same code (autocast on the
    float model, no trainer branches on which), so the cases take them in turn; with
    AMMPL_FAKE_CUDA_FULL_DEPTH every case runs both."""
    if BLOCKS is None:
        return PRECISIONS
    return ("fp32", "fp16", AUTOCAST_PRECS[index % 2])


AUTOCAST_PRECS = ("amp", "bf16")


@pytest.mark.parametrize("index", range(len(CASES)), ids=[case.label for case in CASES])
def test_trainer_runs_on_fake_cuda_in_every_precision(index):
    precs = case_precisions(index)
    results = check_trainer(CASES[index], precs, blocks=BLOCKS)
    assert [r.prec for r in results] == list(precs)
    _assert_passes(results)


def test_every_precision_is_checked():
    checked = {prec for index in range(len(CASES)) for prec in case_precisions(index)}
    assert checked == set(PRECISIONS)
    assert {"fp16", "fp32", *AUTOCAST_PRECS} == set(PRECISIONS)


def test_every_registered_trainer_and_config_folder_is_checked():
    trainers = set(registered_trainers())
    checked = {case.trainer for case in CASES}
    assert trainers <= checked, f"not checked: {sorted(trainers - checked)}"
    strays = [folder for folder in config_folders() if folder not in trainers]
    assert not strays, f"configs/trainers/ folders without a registered trainer: {strays}"
    backbones = {load_case_cfg(case).MODEL.BACKBONE.NAME for case in CASES}
    assert {"ViT-B/16", "RN50"} <= backbones  # both tower kinds, at paper size
    if BLOCKS is None:
        assert "ViT-B/32" in backbones


def test_a_cpu_tensor_planted_in_a_forward_is_caught(monkeypatch):
    from ammpl.trainers.coop import CoOpCLIP

    original = CoOpCLIP.forward

    def planted(self, image):
        logits = original(self, image)
        return logits + torch.zeros(logits.shape[-1])  # created on the CPU: a GPU bug

    monkeypatch.setattr(CoOpCLIP, "forward", planted)
    (result,) = check_trainer(PLANT_CASE, ("fp32",), blocks=BLOCKS)
    assert result.problem is not None and not result.unsupported
    assert "cuda" in result.problem and "cpu" in result.problem
    assert "tests/test_fake_cuda.py" in result.problem and "torch.zeros" in result.problem
    assert result.describe().startswith("CoOp:CoOp/vit_b16.yaml PREC fp32: ")


def test_a_dtype_mismatch_is_caught(monkeypatch):
    from ammpl.trainers.coop import CoOpCLIP

    original = CoOpCLIP.forward

    def planted(self, image):
        logits = original(self, image)
        mixing = torch.eye(logits.shape[-1], device=logits.device, dtype=torch.float64)
        return logits @ mixing  # float32 @ float64 (no autocast): refused by matmul

    monkeypatch.setattr(CoOpCLIP, "forward", planted)
    (result,) = check_trainer(PLANT_CASE, ("fp32",), blocks=BLOCKS)
    assert result.problem is not None and "dtype" in result.problem.lower()
    assert "tests/test_fake_cuda.py" in result.problem


def test_the_same_forward_unplanted_passes():
    (result,) = check_trainer(PLANT_CASE, ("fp32",), blocks=BLOCKS)
    assert result.problem is None, result.describe()


def test_cut_towers_keep_every_method_part_running():
    """On towers cut to BLOCKS blocks, MMA's adapters sit on every kept block and CoPrompt
    has (placeholder) class descriptions, so their training forwards run in full."""
    from ammpl.trainers.fake_device import FAKE_CUDA, build_trainer, fake_mode

    with fake_mode() as mode:
        mma = build_trainer(TrainerCase("MMA", "MMA/vit_b16_ep5.yaml"), "fp32", FAKE_CUDA, mode,
                            blocks=2)  # fmt: skip
        coprompt = build_trainer(
            TrainerCase("CoPrompt", "CoPrompt/coprompt.yaml"), "fp32", FAKE_CUDA, mode, blocks=2
        )
    assert list(mma.model.adapter_learner.layers) == [1, 2]
    assert tuple(coprompt.model.description_features.shape[:2]) == (2, 3)
