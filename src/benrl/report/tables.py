"""Markdown table and number formatting shared by the report's sections."""

from __future__ import annotations


def table(header: list[str], rows: list[list]) -> list[str]:
    """A Markdown table: the header, its rule, one line per row."""
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return lines


def fmt(value: float | None) -> str:
    """Three significant digits, or n/a."""
    return "n/a" if value is None else f"{value:.3g}"
