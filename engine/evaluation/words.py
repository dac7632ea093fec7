"""Counts in words, as every view of ddft prints them (the CLI, the report, the workbench)."""

from __future__ import annotations


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 rating`, `2 ratings`: a count with its noun in the right number (`nouns` when the
    plural is not the noun plus s)."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"
