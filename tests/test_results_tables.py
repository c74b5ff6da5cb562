"""ammpl.results.tables / render on synthetic runs: the §9 formulas, flags and formats."""

from __future__ import annotations

import csv
import io

import pytest

from ammpl.results.cli import main as results_main
from ammpl.results.collect import COLUMNS, Run, write_runs_csv
from ammpl.results.errors import ResultsError
from ammpl.results.render import Cell, render
from ammpl.results.tables import (
    ablation_table,
    base_to_new_table,
    cross_dataset_table,
    fewshot_table,
)

CONFIGS = {
    "CoOp": "vit_b16_ctxv1",
    "CoCoOp": "vit_b16_c4_ep10_batch1_ctxv1",
    "MaPLe": "vit_b16_c2_ep5_batch4_2ctx",
    "AMMPL": "vit_b16_c4_ep5_batch4_ctxv1",
    "ZeroshotCLIP": "vit_b16",
}


def run(
    trainer="CoCoOp", dataset="caltech101", seed=1, accuracy=50.0, protocol="fewshot", **fields
) -> Run:
    """A Run row with the fields the tables read (the others empty)."""
    values = dict.fromkeys(COLUMNS, "")
    values.update(
        method=trainer,
        trainer=trainer,
        config=CONFIGS.get(trainer, "cfg"),
        protocol=protocol,
        dataset=dataset,
        shots=16,
        seed=seed,
        subsample="all",
        accuracy=accuracy,
    )
    values.update(fields)
    if trainer == "ZeroshotCLIP":
        values.update(method="ZS-CLIP", seed=None, protocol="zeroshot", shots=0)
    values["path"] = "/".join(
        str(values[k])
        for k in ("protocol", "trainer", "config", "phase", "variant", "dataset", "shots", "seed")
    )
    return Run(**values)


def b2n(trainer, dataset, base, new, seeds=(1, 2, 3), base_phase="train_base") -> list[Run]:
    """Base and novel runs; `base` / `new` are one value per seed or a single value."""
    base = base if isinstance(base, (list, tuple)) else [base] * len(seeds)
    new = new if isinstance(new, (list, tuple)) else [new] * len(seeds)
    runs = [
        run(trainer, dataset, s, b, "base2new", phase=base_phase, subsample="base")
        for s, b in zip(seeds, base)
        if b is not None
    ]
    runs += [
        run(trainer, dataset, s, n, "base2new", phase="test_new", subsample="new")
        for s, n in zip(seeds, new)
        if n is not None
    ]
    return runs


def row(table, *labels):
    for cells in table.rows:
        if tuple(c for c in cells if isinstance(c, str))[: len(labels)] == labels:
            return cells
    raise AssertionError(f"no row {labels} in {table.rows}")


def text(cell) -> str:
    return render_cell(cell)


def render_cell(cell: Cell) -> str:
    return cell.plain() + ("†" if cell.flagged else "")


def test_harmonic_mean_of_the_seed_means():
    # CoCoOp ImageNet (CoCoOp Table 1): 75.98 / 70.43 → 73.10; MaPLe EuroSAT (AMMPL paper)
    runs = b2n("CoCoOp", "imagenet", [75.88, 75.98, 76.08], 70.43)
    runs += b2n("MaPLe", "eurosat", 93.60, [55.47, 65.47, 75.47])
    table = base_to_new_table(runs)
    assert table.header == ["Dataset", "Method", "Base", "Novel", "HM"]
    assert [text(c) for c in row(table, "ImageNet", "CoCoOp")[2:]] == [
        "75.98(0.1)",
        "70.43(0.0)",
        "73.10(0.0)",
    ]
    hm = row(table, "EuroSAT", "MaPLe")[4]
    assert f"{hm.mean:.2f}" == "77.05"
    # HM std: population std of the per-seed HM (a labelled choice), not of anything else
    per_seed = [2 * 93.6 * n / (93.6 + n) for n in (55.47, 65.47, 75.47)]
    mean = sum(per_seed) / 3
    assert hm.std == pytest.approx((sum((h - mean) ** 2 for h in per_seed) / 3) ** 0.5)
    assert any("per-seed HM" in note and "choice" in note for note in table.notes)


PUBLISHED_AVERAGES = {  # §9: 11-dataset averages B / N → H of the averages
    "ZeroshotCLIP": (69.34, 74.22, "71.70"),
    "CoOp": (82.69, 63.22, "71.66"),
    "CoCoOp": (80.47, 71.69, "75.83"),
    "MaPLe": (82.28, 75.14, "78.55"),
}


def test_average_block_is_h_of_the_averaged_base_and_novel():
    runs = []
    for trainer, (base, new, _) in PUBLISHED_AVERAGES.items():
        seeds = (None,) if trainer == "ZeroshotCLIP" else (1, 2, 3)
        for dataset, shift in (("dtd", 9.0), ("eurosat", -9.0)):  # far apart on purpose
            for phase, sub, value in (
                ("train_base", "base", base + shift),
                ("test_new", "new", new - shift),
            ):
                runs += [
                    run(trainer, dataset, s, value, "base2new", phase=phase, subsample=sub)
                    for s in seeds
                ]
    table = base_to_new_table(runs)
    for trainer, (base, new, hm) in PUBLISHED_AVERAGES.items():
        label = "ZS-CLIP" if trainer == "ZeroshotCLIP" else trainer
        cells = row(table, "Average", label)[2:]
        assert [c.plain() for c in cells] == [f"{base:.2f}", f"{new:.2f}", hm]
        assert not any(c.flagged for c in cells)
    zero_shot = row(table, "DTD", "ZS-CLIP")
    assert zero_shot[2].plain() == "78.34"  # one seedless run: no (std), not flagged
    assert min(table.rules) == len(table.rows) - len(PUBLISHED_AVERAGES)


def test_missing_seeds_are_flagged_not_averaged_silently():
    runs = b2n("CoCoOp", "dtd", 80.0, [60.0, 62.0, None])  # novel seed 3 never ran
    runs += b2n("CoCoOp", "eurosat", 90.0, 70.0)
    runs += b2n("MaPLe", "dtd", 81.0, 61.0)  # MaPLe has no EuroSAT at all
    table = base_to_new_table(runs)
    dtd = row(table, "DTD", "CoCoOp")
    assert [text(c) for c in dtd[2:4]] == ["80.00(0.0)", "61.00(1.0)†"]
    assert dtd[4].flagged and not dtd[2].flagged
    assert row(table, "Average", "CoCoOp")[4].flagged
    assert row(table, "Average", "MaPLe")[2].flagged
    notes = "\n".join(table.notes)
    assert "CoCoOp on DTD, Novel: missing seed(s) 3" in notes
    assert "MaPLe, Average: over 1 of 2 datasets" in notes
    assert "†" in render(table, "md") and r"$^\dagger$" in render(table, "latex")


def test_base_comes_from_test_base_when_there_is_no_train_base():
    runs = b2n("MaPLe", "ucf101", 83.0, 76.0, base_phase="test_base")
    assert row(base_to_new_table(runs), "UCF101", "MaPLe")[2].plain() == "83.00(0.0)"


def test_cross_dataset_table_excludes_the_source_from_the_average():
    runs = []
    for shots, offset in ((1, 0.0), (16, 2.0)):
        for seed in (1, 2, 3):
            runs.append(run("AMMPL", "food101", seed, 85.0 + offset, shots=shots))  # source
            for target, acc in (("caltech101", 87.0), ("dtd", 35.0), ("food101", 99.0)):
                runs.append(
                    run(
                        "AMMPL",
                        target,
                        seed,
                        acc + offset + seed,
                        "xd_eval",
                        shots=shots,
                        source="food101",
                    )
                )
    table = cross_dataset_table(runs)
    assert table.header == ["Method", "Shots", "Source (Food101)", "Caltech101", "DTD", "Average"]
    one = row(table, "AMMPL", "1")
    assert [text(c) for c in one[2:]] == ["85.00(0.0)", "89.00(0.8)", "37.00(0.8)", "63.00"]
    assert row(table, "AMMPL", "16")[-1].plain() == "65.00"
    assert [r[1] for r in cross_dataset_table(runs, shots=[16]).rows] == ["16"]
    only = cross_dataset_table(runs, datasets=["DTD"])
    assert only.header[3:] == ["DTD", "Average"]

    other = [run("AMMPL", "dtd", 1, 40.0, "xd_eval", source="imagenet")]
    with pytest.raises(ResultsError, match="several sources .*--source"):
        cross_dataset_table(runs + other)
    picked = cross_dataset_table(runs + other, source="imagenet")
    assert picked.header[2] == "Source (ImageNet)" and picked.rows[0][2].mean is None


ABLATION = {
    "maskTrue_padFalse_interactFalse": (92.33, 49.47),
    "maskTrue_padTrue_interactTrue": (93.71, 52.42),
    "maskFalse_padFalse_interactTrue": (94.13, 51.41),
    "maskTrue_padTrue_interactFalse": (93.20, 49.20),
}


def test_ablation_rows_are_combos_and_the_best_of_each_column_is_marked():
    runs = [
        run("AMMPL", dataset, seed, accs[i], "ablation", variant=variant, shots=1)
        for variant, accs in ABLATION.items()
        for i, dataset in enumerate(("caltech101", "dtd"))
        for seed in (1, 2, 3)
    ]
    table = ablation_table(runs)
    assert table.header == ["Combo", "Caltech101", "DTD", "Average"]
    assert [r[0] for r in table.rows] == ["C1", "C3", "C1+C2", "C1+C2+C3"]
    best = {r[0]: [c.best for c in r[1:]] for r in table.rows}
    assert best == {
        "C1": [False] * 3,
        "C3": [True, False, False],
        "C1+C2": [False] * 3,
        "C1+C2+C3": [False, True, True],
    }
    assert "**94.13(0.0)**" in render(table, "md")
    assert r"\textbf{52.42(0.0)}" in render(table, "latex")
    assert "94.13(0.0)*" in render(table, "csv")


def test_fewshot_table_rows_method_by_shots_with_zero_shot_and_average():
    runs = [run("ZeroshotCLIP", d, accuracy=a) for d, a in (("dtd", 44.0), ("eurosat", 48.0))]
    coop = dict(variant="nctx16_cscFalse_ctpend")
    for shots, config in ((1, "rn50_ep50"), (16, "rn50")):  # one curve across epoch budgets
        for dataset, acc in (("dtd", 50.0), ("eurosat", 70.0)):
            runs += [
                run("CoOp", dataset, s, acc + shots, shots=shots, config=config, **coop)
                for s in (1, 2, 3)
            ]
    table = fewshot_table(runs)
    assert table.header == ["Method", "Shots", "DTD", "EuroSAT", "Average"]
    assert [r[:2] for r in table.rows] == [
        ["ZS-CLIP", "0"],
        ["CoOp (M=16, end)", "1"],
        ["CoOp (M=16, end)", "16"],
    ]
    assert [c.plain() for c in table.rows[0][2:]] == ["44.00", "48.00", "46.00"]
    assert table.rows[2][-1].plain() == "76.00"

    duplicate = runs + [run("CoOp", "dtd", 1, 1.0, shots=1, config="rn50_ep100", **coop)]
    with pytest.raises(ResultsError, match="two runs for the same table cell.*--configs"):
        fewshot_table(duplicate)
    assert len(fewshot_table(duplicate, configs=["rn50_ep50", "rn50"]).rows) == 2
    with pytest.raises(ResultsError, match="no few-shot runs for method 'VPT'; the runs have"):
        fewshot_table(runs, methods=["VPT"])


def test_renderers_and_cli(tmp_path, capsys):
    runs = b2n("CoCoOp", "fgvc_aircraft", [34.0, 35.0, 36.0], 32.7)
    runs += b2n("AMMPL", "fgvc_aircraft", 35.69, 35.91)
    csv_path = tmp_path / "runs.csv"
    write_runs_csv(runs, str(csv_path))
    assert (
        results_main(
            ["table", "b2n", str(csv_path), "--format", "csv", "--methods", "AMMPL", "CoCoOp"]
        )
        == 0
    )
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["Dataset", "Method", "Base", "Novel", "HM"]
    assert [r[1] for r in rows[1:]] == ["AMMPL", "CoCoOp", "AMMPL", "CoCoOp"]  # --methods order
    assert rows[2][2:] == ["35.00(0.8)", "32.70(0.0)", "33.81(0.4)"]

    out = tmp_path / "t.tex"
    assert (
        results_main(["table", "b2n", str(csv_path), "--format", "latex", "--out", str(out)]) == 0
    )
    latex = out.read_text()
    assert r"\begin{tabular}{llccc}" in latex and "FGVCAircraft & AMMPL" in latex
    assert latex.count(r"\midrule") == 2  # header rule + before the Average block

    capsys.readouterr()
    md = render(base_to_new_table(runs), "md")
    assert md.splitlines()[2].startswith("| Dataset ") and "| Average " in md

    assert results_main(["table", "b2n", str(csv_path), "--shots", "4"]) == 2
    assert results_main(["table", "xd", str(csv_path)]) == 2
    assert results_main(["table", "b2n", str(csv_path), "--datasets", "imagenet"]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3 and all(e.startswith("error: ") for e in errors)
    assert "for dataset 'imagenet'; the runs have: fgvc_aircraft" in errors[2]
