"""The cost counts of bench/cost.py (ammpl.trainers.step_cost) against real computation on
the tiny backbone, the bilinear model in B and k, and `ammpl-sweep --estimate`."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from ammpl.sweep.cost_model import load_cost_model, run_cost
from ammpl.trainers.fake_device import TrainerCase, build_trainer
from ammpl.trainers.step_cost import count_flops, measure_steps
from ammpl.utils.bilinear import bilinear, fit_bilinear

TINY = ("MODEL.BACKBONE.NAME", "tiny")
COOP = TrainerCase("CoOp", "CoOp/vit_b16_ctxv1.yaml", TINY)
AMMPL = TrainerCase("AMMPL", "AMMPL/vit_b16_c4_ep5_batch4_ctxv1.yaml", TINY)


def _real_trainer(case: TrainerCase, classes: int):
    from ammpl.clip import load_backbone

    with contextlib.redirect_stdout(io.StringIO()):
        return build_trainer(
            case, "fp32", torch.device("cpu"), backbone=load_backbone("tiny"), n_classes=classes
        )


@pytest.mark.parametrize("case", [COOP, AMMPL], ids=lambda c: c.trainer)
def test_fake_flops_equal_the_flops_of_the_real_computation(case):
    torch.manual_seed(0)
    (point,) = measure_steps(case, "fp32", [2], 3)
    trainer = _real_trainer(case, 3)
    images = torch.randn(2, 3, 224, 224)
    labels = torch.tensor([0, 2])
    trainer.set_model_mode("eval")
    assert count_flops(lambda: trainer.model_inference(images)) == point.eval_flops

    def step() -> None:
        trainer.set_model_mode("train")
        loss, _, _ = trainer.compute_loss(images, labels)
        trainer.backward_and_update(loss)

    assert count_flops(step) == point.train_flops


def test_costs_are_bilinear_in_batch_and_classes():
    points = measure_steps(AMMPL, "fp32", [1, 2, 3], 2) + measure_steps(AMMPL, "fp32", [1, 2, 3], 4)
    grid = {(p.batch, p.classes): p for p in points}
    order = [(1, 2), (2, 2), (1, 4), (2, 4)]
    fit = fit_bilinear([(b, k, grid[b, k].train_flops) for b, k in order])
    assert bilinear(fit, 3, 2) == pytest.approx(grid[3, 2].train_flops, rel=1e-9)
    assert bilinear(fit, 3, 4) == pytest.approx(grid[3, 4].train_flops, rel=1e-9)
    assert fit[3] > 0  # AMMPL's (image, class) pairs: work ∝ B·k
    memory = fit_bilinear([(b, k, grid[b, k].train_peak) for b, k in order])
    assert bilinear(memory, 3, 4) == pytest.approx(grid[3, 4].train_peak, rel=0.1)


def test_memory_estimate_follows_the_measured_peak_of_a_real_step():
    from bench.cost import check_tiny_memory

    _, estimated, measured = check_tiny_memory(batch=2, classes=3)
    assert 0.5 <= estimated / measured <= 2.0, (estimated, measured)


def test_bilinear_fit_recovers_its_coefficients():
    coefficients = [5.0, 3.0, 2.0, 7.0]
    points = [(b, k, bilinear(coefficients, b, k)) for k in (2, 5) for b in (1, 4)]
    assert fit_bilinear(points) == pytest.approx(coefficients)


ENTRY = {
    "trainer": "X",
    "config": "X/a.yaml",
    "fits": {
        "train_flops": [0.0, 10.0, 1.0, 0.0],
        "train_peak": [100.0, 1.0, 0.0, 0.0],
        "eval_flops": [1.0, 2.0, 0.0, 0.0],
        "eval_peak": [50.0, 0.0, 0.0, 0.0],
    },
}


def test_run_cost_counts_steps_epochs_and_evaluation_batches():
    cost = run_cost(
        ENTRY,
        train_images=10,
        train_batch=4,
        train_classes=5,
        epochs=3,
        eval_images=7,
        eval_batch=3,
        eval_classes=5,
    )
    assert cost.train_images == 2 * 4 * 3  # the last incomplete batch is dropped
    # 6 steps of (10·4 + 5) FLOPs; eval batches 3, 3, 1: (1 + 6) · 2 + (1 + 2)
    assert cost.flops == 6 * 45 + 2 * 7 + 3
    assert cost.peak_bytes == 104
    assert cost.gpu_hours(1e-12, 1.0) == pytest.approx(cost.flops / 3600)


def test_the_shipped_cost_model_covers_every_sweep_method():
    from ammpl.engine import TRAINER_REGISTRY
    from ammpl.sweep.plan import trainable_methods

    model = load_cost_model()
    trainers = {entry["trainer"] for entry in model}
    for entry in model:
        assert set(entry["fits"]) >= {"eval_flops", "eval_peak"}
        assert entry["fits"]["eval_flops"][1] > 0
    scripts = {m for m in trainable_methods()}
    known = {
        "ammpl": "AMMPL",
        "maple": "MaPLe",
        "cocoop": "CoCoOp",
        "ivlp": "IVLP",
        "vpt": "VPT",
        "promptsrc": "PromptSRC",
        "kgcoop": "KgCoOp",
        "vp": "VP",
        "dpt": "DPT",
        "plot": "PLOT",
        "plotpp": "PLOTPP",
        "dlp": "IVLP",
    }
    for method in scripts & set(known):
        assert known[method] in trainers, method
        assert known[method] in TRAINER_REGISTRY.registered_names()


def test_sweep_estimate_prints_per_run_and_total_gpu_hours(tmp_path, capsys, monkeypatch):
    from ammpl.sweep.cli import main

    monkeypatch.chdir(tmp_path)
    code = main(
        [
            "base2new",
            "--methods",
            "ammpl",
            "maple",
            "--datasets",
            "caltech101",
            "--seeds",
            "1",
            "--estimate",
            "--device-memory",
            "0.001",
        ]
    )
    assert code == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].startswith("Estimate: 4 run(s) at 989 TFLOP/s × 0.3 utilisation")
    header = [c.strip() for c in lines[1].strip("|").split("|")]
    assert header[:6] == ["run", "trainer", "train images", "eval images", "PFLOP", "GPU-hours"]
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[3:]]
    by_folder = {row[0]: row for row in rows}
    train = next(r for f, r in by_folder.items() if "ammpl" in f.lower() and "train_base" in f)
    # Caltech101: 100 classes, 50 base; 16 shots → 800 images, batch 4, 5 epochs
    assert int(train[2]) == 800 * 5
    assert int(train[3]) == int(2465 * 0.5)
    test_new = next(r for f, r in by_folder.items() if "ammpl" in f.lower() and "test_new" in f)
    assert int(test_new[2]) == 0 and int(test_new[3]) == int(2465 * 0.5)
    total = rows[-1]
    assert total[0] == "total" and float(total[5]) > 0
    assert "exceeds --device-memory 0.001 GB" in err
    assert not any(tmp_path.iterdir())  # nothing run, nothing written


def test_cost_model_file_is_valid_json():
    from ammpl.sweep.cost_model import MODEL_FILE

    record = json.loads(MODEL_FILE.read_text())
    assert record["methods"]


def test_compare_puts_predictions_next_to_gpu_check_records(tmp_path):
    from bench.cost import compare
    from bench.records import write_records

    cpu = torch.device("cpu")
    step = {
        "method": "X",
        "trainable": 1,
        "train_batch": 4,
        "step_ms": 2.0,
        "train_images_per_s": 2000.0,
        "eval_batch": 100,
        "eval_images_per_s": 1.0,
        "peak_mib": 300.0,
    }
    write_records(
        str(tmp_path / "methods_step_fp16.json"),
        "methods_step",
        cpu,
        {"precision": "fp16", "classes": 10},
        [step],
    )
    image = {
        "tower": "image",
        "precision": "fp32",
        "variant": "fused=on",
        "items_per_s": 1000.0,
        "peak_mib": 50.0,
        "gflop": 35.0,
        "tflops": 35.0,
    }
    write_records(
        str(tmp_path / "clip_encoders.json"),
        "clip_encoders",
        cpu,
        {"backbone": "vit_b16", "batch": 10, "iters": 1},
        [image],
    )
    model = [dict(ENTRY, method="X", prec="fp16")]
    lines = compare(str(tmp_path), model, tflops=100.0, utilisation=0.5).splitlines()
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    # train FLOPs 10·4 + 10 = 50 at 50 TFLOP/s → 1e-9 ms; measured 2 ms → 2.5e-11 TFLOP/s
    assert cells[0][:2] == ["X", "fp16"]
    assert [float(c) for c in cells[0][2:5]] == [0.0, 2.0, 50.0] and float(cells[0][7]) == 300
    # image: 35 GFLOP × 10 at 50 TFLOP/s = 7 ms predicted, 10 ms measured
    assert cells[1][:2] == ["image forward, fused=on (batch 10)", "fp32"]
    assert [float(c) for c in cells[1][2:4]] == [7.0, 10.0]


def test_ammpl_blocks_of_pairs_bound_memory_and_add_a_forward():
    from ammpl.sweep import cost_model
    from ammpl.trainers.ammpl import chunking

    assert cost_model.AUTO_FREE_FRACTION == chunking.FREE_MEMORY_FRACTION
    assert cost_model.AUTO_MAX_PAIRS == chunking.MAX_AUTO_BUDGET
    entry = dict(ENTRY, pair_bytes=10**9)
    entry["fits"] = dict(ENTRY["fits"], train_flops=[0, 0, 0, 8.0], train_peak=[0, 0, 0, 2.0])
    assert cost_model.pair_budget(entry, 0, 80) == 40  # 0.5 · 80 GB / 1 GB
    assert cost_model.pair_budget(entry, 7, 80) == 7  # CLASS_CHUNK wins
    assert cost_model.pair_budget(ENTRY, 0, 80) is None  # no pairs: no blocks
    common = dict(train_images=4, train_batch=4, train_classes=20, epochs=1, eval_images=0,
                  eval_batch=1, eval_classes=20)  # fmt: skip
    one_block = run_cost(entry, budget=100, **common)
    blocks = run_cost(entry, budget=40, **common)
    assert one_block.peak_bytes == 2.0 * 80 and blocks.peak_bytes == 2.0 * 40
    assert one_block.flops == 8.0 * 80 and blocks.flops == 8.0 * 80 * 1.5


def test_paper_costs_prints_each_part_and_the_total(monkeypatch, capsys):
    from ammpl.sweep import paper_costs

    monkeypatch.setattr(paper_costs, "PAPER_PARTS", (("Table 1", "base2new", ("ammpl",)),))
    assert paper_costs.paper_costs(["--utilisation", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "989 TFLOP/s × 0.5 utilisation" in out
    table = [line for line in out.splitlines() if line.startswith("| Table 1")]
    total = [line for line in out.splitlines() if line.startswith("| all of the above")]
    assert len(table) == 1 and len(total) == 1
    runs = int(table[0].split("|")[3])
    assert runs == 9 * 3 * 2  # 9 datasets × 3 seeds × (train base, test new)
    assert float(total[0].split("|")[5]) > 0


def test_every_trainer_with_a_config_folder_has_a_cost_model_entry():
    from ammpl.trainers.fake_device import config_folders, registered_trainers

    modelled = {entry["trainer"] for entry in load_cost_model()}
    missing = sorted((set(config_folders()) & set(registered_trainers())) - modelled)
    assert not missing, f"bench/cost.py --write-model --methods ... lacks: {missing}"


def test_sweep_estimate_covers_the_newer_methods(tmp_path, capsys, monkeypatch):
    from ammpl.sweep.cli import main

    monkeypatch.chdir(tmp_path)
    methods = ["tcp", "mma", "coprompt", "prograd"]
    argv = ["base2new", "--methods", *methods, "--datasets", "caltech101", "--seeds", "1"]
    assert main([*argv, "--estimate"]) == 0
    out, err = capsys.readouterr()
    assert "no trainer" not in out + err
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in out.splitlines()[3:]]
    assert {row[1] for row in rows[:-1]} == {"TCP", "MMA", "CoPrompt", "ProGrad"}
    assert all(float(row[5]) > 0 for row in rows if row[2] != "0")
    assert rows[-1][0] == "total" and float(rows[-1][5]) > 0
