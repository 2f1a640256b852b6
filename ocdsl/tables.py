"""Plain-text tables: the one printer behind the aligned tables ocdsl prints (the
evaluation summary of a run, ``ocdsl run --seeds``, ``ocdsl check``). Imports nothing from
ocdsl, so every stage can use it."""

from __future__ import annotations

from typing import Sequence

__all__ = ["text_table"]


def text_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "l") -> str:
    """The header, a rule of dashes, then one line per row; columns as wide as their widest
    cell, separated by two spaces, trailing spaces stripped. ``align`` gives one letter per
    column, ``"l"`` (left) or ``"r"`` (right); the last letter repeats for the columns after
    it. Cells are strings. Raises ValueError for a row of another length than the header or
    an alignment letter other than l / r."""
    if set(align) - {"l", "r"} or not align:
        raise ValueError(f"align: expected letters 'l' or 'r', got {align!r}")
    header = [str(c) for c in header]
    for r in rows:
        if len(r) != len(header):
            raise ValueError(f"a row has {len(r)} cells, the header {len(header)}: {list(r)!r}")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    right = [(align[i] if i < len(align) else align[-1]) == "r" for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(str(c).rjust(w) if r else str(c).ljust(w)
                         for c, w, r in zip(cells, widths, right)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])
