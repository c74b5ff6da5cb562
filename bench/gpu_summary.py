"""One Markdown table from the output folder of bench/gpu_check.sh, for README's Speed section.

Reads what is there (missing parts are left out, a failed step is shown as failed):
`steps.tsv` (step, exit code, seconds), `cuda_tests.xml` (pytest's JUnit report) and the
`--json` records of the benches (`clip_encoders.json`, `methods_step*.json`,
`ammpl_step.json`, `ddp*.json`).

    python bench/gpu_summary.py output/gpu_check
"""

from __future__ import annotations

import argparse
import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

HEADERS = ["check", "case", "precision", "time", "images/s", "peak memory", "TFLOP/s"]


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "–" if value is None else f"{value:{fmt}}{unit}"


def _load(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def step_rows(folder: Path) -> list[list[str]]:
    path = folder / "steps.tsv"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        parts = line.split("\t")
        if len(parts) != 3:
            continue
        name, code, seconds = parts
        status = "ok" if code == "0" else ("skipped" if code == "skip" else f"FAILED (exit {code})")
        rows.append(["step", f"{name}: {status}", "", f"{float(seconds):.0f} s", "", "", ""])
    return rows


def test_rows(folder: Path) -> list[list[str]]:
    path = folder / "cuda_tests.xml"
    if not path.is_file():
        return []
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return [["CUDA tests", "report unreadable", "", "", "", "", ""]]
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return []
    total = int(suite.get("tests", 0))
    failed = int(suite.get("failures", 0)) + int(suite.get("errors", 0))
    skipped = int(suite.get("skipped", 0))
    passed = total - failed - skipped
    case = f"{passed} passed, {failed} failed, {skipped} skipped"
    time = f"{float(suite.get('time', 0)):.0f} s"
    return [["CUDA tests", case, "fp16 / amp / bf16", time, "", "", ""]]


def encoder_rows(record: dict) -> list[list[str]]:
    backbone = record["settings"].get("backbone", "")
    name = "ViT-B/16" if backbone == "vit_b16" else backbone
    rows = []
    for row in record["rows"]:
        tower = f"{name} {row['tower']} forward"
        unit = "seq/s" if row["tower"] == "text" else ""
        rate = _num(row["items_per_s"], ",.0f", f" {unit}".rstrip())
        rows.append(
            [
                tower,
                f"{row['variant']} (batch {record['settings'].get('batch')})",
                row["precision"],
                "",
                rate,
                _num(row.get("peak_mib"), ",.0f", " MiB"),
                _num(row.get("tflops"), ".3g"),
            ]
        )
    return rows


def method_rows(record: dict) -> list[list[str]]:
    prec = record["settings"].get("precision", "")
    rows = []
    for row in record["rows"]:
        step = row.get("step_ms")
        train = row.get("train_images_per_s")
        rates = f"eval {row['eval_images_per_s']:,.0f}"
        if train is not None:
            rates = f"train {train:,.0f} / " + rates
        rows.append(
            [
                "method step",
                f"{row['method']} (train batch {row['train_batch']}, eval {row['eval_batch']})",
                prec,
                _num(step, ".1f", " ms"),
                rates,
                _num(row.get("peak_mib"), ",.0f", " MiB"),
                "",
            ]
        )
    return rows


def ammpl_rows(record: dict) -> list[list[str]]:
    settings = record["settings"]
    prec = settings.get("autocast") or "fp32"
    rows = []
    for row in record["rows"]:
        memory = f"{row['train_mib']:,.0f} / {row['eval_mib']:,.0f} MiB"
        rows.append(
            [
                "AMMPL step",
                f"k = {row['k']}, {row['path']} path (batch {settings.get('batch')})",
                prec,
                f"{row['step'] * 1000:.0f} ms",
                f"eval {row['images_per_s']:,.1f}",
                memory,
                "",
            ]
        )
    return rows


def ddp_rows(record: dict) -> list[list[str]]:
    backend = record["settings"].get("backend", "")
    rows = []
    for row in record["rows"]:
        times = " / ".join(f"{s:.0f} s" for s in row["seconds"])
        if len(row["processes"]) == 1:  # one GPU: the NCCL path ran, nothing to compare
            case = f"1 process ({backend}) ran; 2 GPUs needed for the 1 vs 2 comparison"
        else:
            verdict = "same weights and metrics" if row["ok"] else "DIFFERENT results"
            case = f"{' vs '.join(map(str, row['processes']))} processes ({backend}): {verdict}"
            case += f", max rel diff {row['max_rel_diff']:.1e}"
        rows.append(["DDP (torchrun)", case, "fp32", times, "", "", ""])
    return rows


READERS = {
    "clip_encoders": encoder_rows,
    "methods_step": method_rows,
    "ammpl_step": ammpl_rows,
    "ddp_check": ddp_rows,
}


def build_summary(folder: str | Path) -> str:
    """The Markdown summary of a gpu_check output folder."""
    folder = Path(folder)
    rows = test_rows(folder)
    devices = []
    for path in sorted(folder.glob("*.json")):
        record = _load(path)
        if not isinstance(record, dict) or record.get("bench") not in READERS:
            continue
        devices.append(f"{record.get('device')}, torch {record.get('torch')}")
        rows += READERS[record["bench"]](record)
    rows += step_rows(folder)
    lines = [f"Device: {devices[0]}" if devices else "Device: (no bench record found)", ""]
    lines.append("| " + " | ".join(HEADERS) + " |")
    lines.append("|" + "---|" * len(HEADERS))
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", help="the output folder of bench/gpu_check.sh")
    args = parser.parse_args(argv)
    if not Path(args.folder).is_dir():
        print(f"error: no folder {args.folder}", file=sys.stderr)
        return 2
    print(build_summary(args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
