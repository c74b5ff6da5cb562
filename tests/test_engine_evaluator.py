"""The Classification evaluator's printed block, its metrics, and compute_accuracy."""

from __future__ import annotations

import re

import pytest
import torch

from ammpl.engine import Classification, compute_accuracy, get_cfg_default
from ammpl.engine.evaluator import confusion_matrix, macro_f1_score
from ammpl.utils.errors import DataError

COOP_REGEX = re.compile(r"\* accuracy: ([\.\deE+-]+)%")  # parse_test_res.py


def one_hot_scores(pred, num_classes):
    return torch.nn.functional.one_hot(torch.as_tensor(pred), num_classes).float()


def evaluate(y_true, y_pred, num_classes=4, batch=3, **test_opts):
    cfg = get_cfg_default()
    for key, value in test_opts.items():
        cfg.TEST[key] = value
    lab2cname = {i: f"class{i}" for i in range(num_classes)}
    evaluator = Classification(cfg, lab2cname=lab2cname)
    y_true, y_pred = torch.tensor(y_true), torch.tensor(y_pred)
    for start in range(0, len(y_true), batch):
        scores = one_hot_scores(y_pred[start : start + batch], num_classes)
        evaluator.process(scores, y_true[start : start + batch])
    return evaluator, evaluator.evaluate()


def test_result_block_exact_lines(capsys):
    y_true = [0, 0, 1, 1, 2, 2, 3, 3]
    y_pred = [0, 0, 1, 2, 2, 2, 3, 1]
    _, results = evaluate(y_true, y_pred)
    # F1 = 2TP / (#pred + #true) per class: 1, 1/2, 4/5, 2/3 -> mean 0.74167
    assert capsys.readouterr().out.splitlines() == [
        "=> result",
        "* total: 8",
        "* correct: 6",
        "* accuracy: 75.00%",
        "* error: 25.00%",
        "* macro_f1: 74.17%",
    ]
    assert list(results) == ["accuracy", "error_rate", "macro_f1"]
    assert results["accuracy"] == 75.0 and results["error_rate"] == 25.0
    assert results["macro_f1"] == pytest.approx(100 * (1 + 0.5 + 0.8 + 2 / 3) / 4)


def test_coop_parser_regex_reads_the_accuracy_line(capsys):
    y_true = list(range(3)) * 401 + [0]  # 1,204 samples: thousands separators
    y_pred = [0] * len(y_true)
    evaluator, results = evaluate(y_true, y_pred, num_classes=3, batch=100)
    out = capsys.readouterr().out
    assert "* total: 1,204" in out and "* correct: 402" in out
    matches = [float(m.group(1)) for m in map(COOP_REGEX.search, out.splitlines()) if m]
    assert matches == [round(results["accuracy"], 2)] == [33.39]
    assert (evaluator.total, evaluator.correct) == (1204, 402)


def test_macro_f1_uses_labels_of_y_true_only():
    # label 3 is predicted but never true: excluded (Dassl passes labels=unique(y_true))
    y_true = torch.tensor([0, 0, 1, 2])
    y_pred = torch.tensor([0, 3, 1, 1])
    # F1: class0 2/3, class1 2/3, class2 0
    assert macro_f1_score(y_true, y_pred) == pytest.approx((2 / 3 + 2 / 3 + 0) / 3)


def test_per_class_result(capsys):
    evaluate([0, 0, 1, 1, 1, 3], [0, 1, 1, 1, 0, 3], PER_CLASS_RESULT=True)
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("=> per-class result")
    assert lines[start + 1 :] == [
        "* class: 0 (class0)\ttotal: 2\tcorrect: 1\tacc: 50.00%",
        "* class: 1 (class1)\ttotal: 3\tcorrect: 2\tacc: 66.67%",
        "* class: 3 (class3)\ttotal: 1\tcorrect: 1\tacc: 100.00%",
        "* average: 72.22%",
    ]


def test_confusion_matrix_saved(tmp_path, capsys):
    cfg_dir = str(tmp_path)
    cfg = get_cfg_default()
    cfg.OUTPUT_DIR = cfg_dir
    cfg.TEST.COMPUTE_CMAT = True
    evaluator = Classification(cfg, lab2cname={0: "a", 1: "b", 2: "c"})
    evaluator.process(one_hot_scores([0, 1, 1, 0], 3), torch.tensor([0, 0, 1, 1]))
    evaluator.evaluate()
    assert f"Confusion matrix is saved to {tmp_path / 'cmat.pt'}" in capsys.readouterr().out
    cmat = torch.load(tmp_path / "cmat.pt", weights_only=True)
    expected = torch.tensor(
        [[0.5, 0.5, 0.0], [0.5, 0.5, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64
    )
    assert torch.equal(cmat, expected)
    assert torch.equal(
        confusion_matrix(torch.tensor([2, 2]), torch.tensor([2, 0]), 3)[2],
        torch.tensor([0.5, 0.0, 0.5], dtype=torch.float64),
    )


def test_reset_and_empty_evaluation():
    evaluator, _ = evaluate([0, 1], [0, 1])
    evaluator.reset()
    assert evaluator.total == 0
    with pytest.raises(DataError, match="no samples"):
        evaluator.evaluate()


def test_compute_accuracy_topk():
    output = torch.tensor([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    target = torch.tensor([1, 1, 0, 2])
    top1, top2 = compute_accuracy(output, target, topk=(1, 2))
    assert top1.shape == (1,) and top1.item() == 25.0
    assert top2.item() == 50.0
    assert compute_accuracy((output, None), target)[0].item() == 25.0
