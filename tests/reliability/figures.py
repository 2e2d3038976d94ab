"""Figures the reliability suites measure, printed as Markdown tables at the end of the test run."""

from __future__ import annotations

FIGURES: list[str] = []


def markdown_table(title: str, header: list[str], rows: list[list[str]]) -> str:
    """A titled Markdown table with padded columns, as the benchmarks print them."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]
    lines = [
        f"### {title}",
        "",
        "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |",
        "|" + "|".join("-" * (w + 2) for w in widths) + "|",
    ]
    lines += ["| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |" for row in rows]
    return "\n".join(lines)


def report(title: str, header: list[str], rows: list[list[str]]) -> str:
    """Keep a table for the end-of-run summary (pytest captures what tests print) and return it."""
    table = markdown_table(title, header, rows)
    FIGURES.append(table)
    return table
