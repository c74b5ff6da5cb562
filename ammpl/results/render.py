"""A results table and its three text forms: Markdown, CSV and LaTeX (booktabs).

Cells print as `mean(std)` with 2 decimals for the mean and 1 for the std, as the AMMPL
paper's tables do. A cell computed from fewer runs than expected carries a dagger (†);
the best value of a column (ablation tables) is bold (Markdown, LaTeX) or starred (CSV).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

FLAG = "†"
EMPTY = "-"
FORMATS = ("md", "csv", "latex")


@dataclass
class Cell:
    mean: float | None
    std: float | None = None
    flagged: bool = False
    best: bool = False

    def plain(self) -> str:
        if self.mean is None:
            return EMPTY
        if self.std is None:
            return f"{self.mean:.2f}"
        return f"{self.mean:.2f}({self.std:.1f})"


@dataclass
class Table:
    title: str
    header: list[str]
    rows: list[list[str | Cell]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rules: set[int] = field(default_factory=set)  # row indices preceded by a separator

    def column(self, index: int) -> list[str | Cell]:
        return [row[index] for row in self.rows]


def _text(cell: str | Cell, bold: str, flag: str) -> str:
    if isinstance(cell, str):
        return cell
    text = cell.plain()
    if cell.best and cell.mean is not None:
        text = bold.format(text)
    return text + (flag if cell.flagged else "")


def to_markdown(table: Table) -> str:
    header = table.header
    body = [[_text(c, "**{}**", FLAG) for c in row] for row in table.rows]
    widths = [max(len(x) for x in column) for column in zip(header, *body)]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [f"**{table.title}**", "", line(header)]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out += [line(row) for row in body]
    if table.notes:
        out += ["", *[f"- {note}" for note in table.notes]]
    return "\n".join(out) + "\n"


def to_csv(table: Table) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.header)
    for row in table.rows:
        writer.writerow([_text(c, "{}*", FLAG) for c in row])
    return buffer.getvalue()


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def to_latex(table: Table) -> str:
    def cell(value: str | Cell) -> str:
        if isinstance(value, str):
            return latex_escape(value)
        return _text(value, r"\textbf{{{}}}", r"$^\dagger$")

    align = "l" * sum(isinstance(c, str) for c in table.rows[0]) if table.rows else ""
    align += "c" * (len(table.header) - len(align))
    out = [f"% {table.title}", f"\\begin{{tabular}}{{{align}}}", r"\toprule"]
    out.append(" & ".join(latex_escape(h) for h in table.header) + r" \\")
    out.append(r"\midrule")
    for index, row in enumerate(table.rows):
        if index in table.rules:
            out.append(r"\midrule")
        out.append(" & ".join(cell(c) for c in row) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}"]
    out += [f"% {note}" for note in table.notes]
    return "\n".join(out) + "\n"


def render(table: Table, fmt: str = "md") -> str:
    """The table as text in `fmt` (md, csv or latex)."""
    renderers = {"md": to_markdown, "csv": to_csv, "latex": to_latex}
    if fmt not in renderers:
        from ammpl.results.errors import ResultsError

        raise ResultsError(f"unknown table format '{fmt}': use one of {', '.join(FORMATS)}")
    return renderers[fmt](table)
