"""Tables of docs/MINI.md's AMMPL study from the runs of scripts/mini/ammpl_study.sh.

usage: python scripts/mini/study_table.py OUTPUT_ROOT/ammpl_study/DATASET
Prints (markdown) accuracy per variant, seed and test-mask mode, the mean over seeds, and
the mask statistics of every epoch of every variant (results.json "mask" entries).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ammpl.results.aggregate import harmonic_mean

MODES = ("threshold", "expected", "sample", "none")


def accuracy(run: Path) -> float | None:
    try:
        return json.loads((run / "results.json").read_text())["results"]["test"]["accuracy"]
    except (OSError, KeyError, ValueError):
        return None


def cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def fewshot_table(variants: list[Path]) -> None:
    """All-class accuracy per variant, shots and mode (ammpl_study.sh FEWSHOT), seed-averaged."""
    runs = sorted({p.name for v in variants for p in v.glob("seed*/fewshot*")},
                  key=lambda name: int(name.removeprefix("fewshot")))  # fmt: skip
    if not runs:
        return
    print("\nAll classes (few-shot), mean over seeds:\n")
    print("| variant | shots | seeds | " + " | ".join(MODES) + " |")
    print("|---|---|---|" + "---|" * len(MODES))
    for variant in variants:
        for run in runs:
            seeds = [s / run for s in sorted(variant.glob("seed*")) if (s / run).is_dir()]
            cells = []
            for mode in MODES:
                values = [accuracy(seed / f"{mode}_all") for seed in seeds]
                known = [v for v in values if v is not None]
                cells.append(cell(sum(known) / len(known) if known else None))
            shots = run.removeprefix("fewshot")
            print(f"| {variant.name} | {shots} | {len(seeds)} | " + " | ".join(cells) + " |")


def main(folder: str) -> int:
    variants = sorted(p for p in Path(folder).iterdir() if p.is_dir())
    print("| variant | mode | Base | Novel | HM |\n|---|---|---|---|---|")
    for variant in variants:
        for seed_dir in sorted(variant.glob("seed*")):
            for mode in MODES:
                base = accuracy(seed_dir / f"{mode}_base")
                new = accuracy(seed_dir / f"{mode}_new")
                hm = harmonic_mean(base, new) if base and new else None
                name = f"{variant.name} {seed_dir.name}"
                print(f"| {name} | {mode} | {cell(base)} | {cell(new)} | {cell(hm)} |")
    print("\nMean over the seeds each variant has:\n")
    print("| variant | seeds | mode | Base | Novel | HM of means |\n|---|---|---|---|---|---|")
    for variant in variants:
        seeds = sorted(variant.glob("seed*"))
        for mode in MODES:
            bases = [accuracy(seed / f"{mode}_base") for seed in seeds]
            news = [accuracy(seed / f"{mode}_new") for seed in seeds]
            if None in bases or None in news or not seeds:
                continue
            base, new = sum(bases) / len(bases), sum(news) / len(news)
            hm = harmonic_mean(base, new)
            print(f"| {variant.name} | {len(seeds)} | {mode} | {base:.2f} | {new:.2f} | {hm:.2f} |")
    fewshot_table(variants)
    print("\n| variant | epoch | keep mean | keep std | share < 0.5 | masked in training |")
    print("|---|---|---|---|---|---|")
    for variant in variants:
        for seed_dir in sorted(variant.glob("seed*")):
            record = json.loads((seed_dir / "train" / "results.json").read_text())
            for entry in record.get("epochs", []):
                mask = entry.get("mask") or {}
                masked = mask.get("train_masked")
                print(
                    f"| {variant.name} {seed_dir.name} | {entry['epoch']} | "
                    f"{mask.get('keep_mean', 0):.3f} | {mask.get('keep_std', 0):.3f} | "
                    f"{mask.get('below_half', 0):.3f} | "
                    f"{'–' if masked is None else f'{masked:.3f}'} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
