"""Figures the reliability suites measure, printed as Markdown tables at the end of the test run."""

from __future__ import annotations

from bench.common import markdown_table

__all__ = ["markdown_table"]

FIGURES: list[str] = []


def report(title: str, header: list[str], rows: list[list[str]]) -> str:
    """Keep a table for the end-of-run summary (pytest captures what tests print) and return it."""
    table = markdown_table(title, header, rows)
    FIGURES.append(table)
    return table
