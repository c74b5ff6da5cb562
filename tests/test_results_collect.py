"""ammpl.results.layout / collect: folder patterns of PROTOCOLS §2 → one tidy CSV."""

from __future__ import annotations

import csv
from dataclasses import astuple

import pytest

from ammpl.results.collect import COLUMNS, collect_runs, read_runs_csv, write_runs_csv
from ammpl.results.errors import ResultsError
from ammpl.results.layout import infer_layout, source_from_model_dir
from tests._results_helpers import write_record

B2N = "output/base2new/{}/caltech101/shots_16/MaPLe/vit_b16_c2_ep5_batch4_2ctx/seed2"


B2N_FIELDS = ("caltech101", "MaPLe", "vit_b16_c2_ep5_batch4_2ctx", "", 16, 2, "")
CASES = {  # path → (protocol, phase, dataset, trainer, config, variant, shots, seed, source)
    B2N.format("train_base"): ("base2new", "train_base", *B2N_FIELDS),
    B2N.format("test_new"): ("base2new", "test_new", *B2N_FIELDS),
    "x/output/evaluation/CoCoOp/c4_ctxv1_16shots/dtd/seed3":
        ("xd_eval", "", "dtd", "CoCoOp", "c4_ctxv1", "", 16, 3, ""),
    "output/evaluation/AMMPL/cfg_8shots_from_food101/eurosat/seed1":
        ("xd_eval", "", "eurosat", "AMMPL", "cfg", "", 8, 1, "food101"),
    "output/evaluation/CoOp/rn50_ep50_16shots/nctx16_cscFalse_ctpend/imagenet_a/seed1":
        ("xd_eval", "", "imagenet_a", "CoOp", "rn50_ep50", "nctx16_cscFalse_ctpend", 16, 1, ""),
    "output/oxford_pets/CoOp/rn50_ep50_1shots/nctx16_cscTrue_ctpmiddle/seed1":
        ("fewshot", "", "oxford_pets", "CoOp", "rn50_ep50", "nctx16_cscTrue_ctpmiddle", 1, 1, ""),
    "output/food101/AMMPL/vit_b16_c4_ep5_batch4_ctxv1_4shots/seed2":
        ("fewshot", "", "food101", "AMMPL", "vit_b16_c4_ep5_batch4_ctxv1", "", 4, 2, ""),
    "output/ablation/dtd/AMMPL/cfg_csc_1shots/maskTrue_padFalse_interactFalse/seed1":
        ("ablation", "", "dtd", "AMMPL", "cfg_csc", "maskTrue_padFalse_interactFalse", 1, 1, ""),
    "output/ZeroshotCLIP/vit_b16/sun397":
        ("zeroshot", "", "sun397", "ZeroshotCLIP", "vit_b16", "", 0, None, ""),
    "somewhere/else/seed4": ("other", "", "", "", "", "", None, 4, ""),
    "somewhere/else": ("other", "", "", "", "", "", None, None, ""),
}  # fmt: skip


@pytest.mark.parametrize("path", sorted(CASES))
def test_folder_patterns(path):
    assert astuple(infer_layout(path)) == CASES[path]


def test_source_is_read_from_the_loaded_model_folder():
    assert source_from_model_dir("output/food101/MaPLe/cfg_16shots/seed1") == "food101"
    assert source_from_model_dir("out/imagenet/CoOp/rn50_16shots/nctx16_cscFalse_ctpend/seed2") == (
        "imagenet"
    )
    assert source_from_model_dir("") == source_from_model_dir("weights/seed1") == ""


@pytest.fixture
def run_tree(tmp_path):
    root = tmp_path / "output"
    b2n = "base2new/{}/eurosat/shots_16/IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only/seed1"
    dlp = dict(
        trainer="IVLP",
        dataset="EuroSAT",
        max_epoch=5,
        config_file="configs/trainers/IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only.yaml",
        dataset_config_file="configs/datasets/eurosat.yaml",
    )
    write_record(root / b2n.format("train_base"), 91.5, subsample_classes="base", **dlp)
    write_record(
        root / b2n.format("test_new"), 60.25, subsample_classes="new", eval_only=True, **dlp
    )
    write_record(
        root / "evaluation/MaPLe/x_cross_datasets_16shots/dtd/seed2",
        45.0,
        trainer="MaPLe",
        seed=2,
        num_shots=-1,
        eval_only=True,
        config_file="configs/trainers/MaPLe/x_cross_datasets.yaml",
        dataset_config_file="configs/datasets/dtd.yaml",
        dataset="DescribableTextures",
        model_dir=str(root / "food101/MaPLe/x_cross_datasets_16shots/seed2"),
    )
    write_record(
        root / "ZeroshotCLIP/vit_b16/dtd",
        44.0,
        trainer="ZeroshotCLIP",
        seed=-1,
        num_shots=-1,
        backbone="ViT-B/16",
        dataset_config_file="configs/datasets/dtd.yaml",
    )
    write_record(
        root / "dtd/CoOp/vit_b16_4shots/nctx16_cscFalse_ctpend/seed3",
        None,
        seed=3,
        status="training",
    )  # an unfinished run: a row without accuracy
    (root / "broken/seed1").mkdir(parents=True)
    (root / "broken/seed1/results.json").write_text("{not json")
    (root / ".trash/seed1").mkdir(parents=True)
    write_record(root / ".trash/seed1", 1.0)  # hidden folders are not collected
    return root


def test_collect_reads_every_run_into_one_row(run_tree):
    warnings: list[str] = []
    runs = {r.path.split("output/")[1]: r for r in collect_runs(str(run_tree), warnings.append)}
    assert len(runs) == 5 and len(warnings) == 1 and "broken/seed1" in warnings[0]

    base = runs[
        "base2new/train_base/eurosat/shots_16/IVLP/vit_b16_c2_ep5_batch4_4ctx_language_only/seed1"
    ]
    assert (base.method, base.trainer, base.protocol, base.phase) == (
        "DLP",
        "IVLP",
        "base2new",
        "train_base",
    )
    assert (base.dataset, base.shots, base.seed, base.subsample) == ("eurosat", 16, 1, "base")
    assert (base.accuracy, base.total, base.correct, base.backbone) == (91.5, 200, 183, "ViT-B/16")
    assert (base.wall_time_s, base.git_commit, base.split) == (12.5, "abc123", "test")

    xd = runs["evaluation/MaPLe/x_cross_datasets_16shots/dtd/seed2"]
    assert (xd.protocol, xd.source, xd.dataset, xd.shots, xd.seed) == (
        "xd_eval",
        "food101",
        "dtd",
        16,
        2,
    )
    assert xd.eval_only and xd.dataset_name == "DescribableTextures"

    zs = runs["ZeroshotCLIP/vit_b16/dtd"]
    assert (zs.method, zs.protocol, zs.config, zs.shots, zs.seed) == (
        "ZS-CLIP",
        "zeroshot",
        "vit_b16",
        0,
        None,
    )

    unfinished = runs["dtd/CoOp/vit_b16_4shots/nctx16_cscFalse_ctpend/seed3"]
    assert unfinished.accuracy is None and unfinished.status == "training"
    assert unfinished.variant == "nctx16_cscFalse_ctpend" and unfinished.shots == 4


def test_csv_round_trip(run_tree, tmp_path):
    runs = collect_runs(str(run_tree), lambda message: None)
    out = tmp_path / "runs.csv"
    assert write_runs_csv(runs, str(out)) == len(runs)
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == COLUMNS and len(rows) == len(runs)
    assert read_runs_csv(str(out)) == runs


def test_collect_and_csv_errors(tmp_path, capsys):
    from ammpl.results.cli import main

    (tmp_path / "empty").mkdir()
    with pytest.raises(ResultsError, match="no results.json under"):
        collect_runs(str(tmp_path / "empty"))
    assert main(["collect", str(tmp_path / "nope"), "--out", str(tmp_path / "r.csv")]) == 2
    assert capsys.readouterr().err.startswith("error: no folder")
    (tmp_path / "bad.csv").write_text("method,trainer\nCoOp,CoOp\n")
    with pytest.raises(ResultsError, match="lacks the column"):
        read_runs_csv(str(tmp_path / "bad.csv"))
    with pytest.raises(ResultsError, match="make it with"):
        read_runs_csv(str(tmp_path / "missing.csv"))
