"""Tables name the backbone where cells differ in it, and never average seeds across backbones."""

from __future__ import annotations

import pytest

from ammpl.results.errors import ResultsError
from ammpl.results.render import render
from ammpl.results.tables import ablation_table, fewshot_table
from tests.test_results_tables import run


def fewshot(dataset: str, backbone: str, trainer: str = "CoCoOp", seeds=(1, 2, 3)) -> list:
    return [run(trainer, dataset, s, 50.0 + s, backbone=backbone) for s in seeds]


def test_one_backbone_everywhere_is_not_shown():
    table = fewshot_table(fewshot("dtd", "ViT-B/16") + fewshot("eurosat", "ViT-B/16"))
    assert "ViT-B/16" not in render(table, "md")


def test_rows_name_their_backbone_when_the_table_mixes_them():
    runs = fewshot("dtd", "ViT-B/16") + fewshot("dtd", "tiny", trainer="MaPLe")
    text = render(fewshot_table(runs), "md")
    assert "CoCoOp [ViT-B/16]" in text and "MaPLe [tiny]" in text


def test_a_row_mixing_backbones_says_which_cell_ran_on_which():
    runs = fewshot("dtd", "ViT-B/16") + fewshot("eurosat", "tiny")
    table = fewshot_table(runs)
    text = render(table, "md")
    assert "CoCoOp [several backbones]" in text
    assert "CoCoOp [several backbones]: ViT-B/16 on DTD; tiny on EuroSAT" in table.notes


def test_seeds_on_different_backbones_are_not_averaged():
    runs = fewshot("dtd", "ViT-B/16", seeds=(2, 3)) + fewshot("dtd", "tiny", seeds=(1,))
    with pytest.raises(ResultsError, match="ran on different backbones: .*ViT-B/16.*tiny"):
        fewshot_table(runs)


def test_ablation_rows_keep_their_combo_and_add_the_backbone():
    runs = [
        run("AMMPL", "dtd", s, 40.0, "ablation", variant=v, shots=1, backbone=b)
        for v, b in (("maskTrue_padFalse_interactFalse", "tiny"),
                     ("maskFalse_padFalse_interactTrue", "ViT-B/16"))
        for s in (1, 2, 3)
    ]  # fmt: skip
    text = render(ablation_table(runs), "md")
    assert "C1 [tiny]" in text and "C3 [ViT-B/16]" in text
