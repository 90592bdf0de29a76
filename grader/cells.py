"""nbgrader cell metadata helpers, and the split of a test cell into visible and hidden parts.

Kinds of cell (nbgrader schema 3):
- autograded test: code cell, grade=true, solution=false  -> points if it raises no error
- solution:        solution=true, grade=false             -> the student's answer (code)
- hand-graded:     grade=true, solution=true              -> a written (or code) answer graded by a person
- locked:          locked=true                            -> read-only instructor cell (set-up, tests)
"""

from __future__ import annotations

import re

HIDDEN_BEGIN = "### BEGIN HIDDEN TESTS"
HIDDEN_END = "### END HIDDEN TESTS"
SOLUTION_BEGIN = "### BEGIN SOLUTION"
SOLUTION_END = "### END SOLUTION"

_HIDDEN_RE = re.compile(r"^[ \t]*#+[ \t]*BEGIN HIDDEN TESTS.*?^[ \t]*#+[ \t]*END HIDDEN TESTS[^\n]*\n?",
                        re.MULTILINE | re.DOTALL)


def nbg(cell) -> dict:
    """The cell's nbgrader metadata; {} when missing or not a dict (a student's copy can hold anything)."""
    meta = cell.get("metadata") if isinstance(cell, dict) else None
    out = meta.get("nbgrader") if isinstance(meta, dict) else None
    return out if isinstance(out, dict) else {}


def grade_id(cell) -> str | None:
    gid = nbg(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def is_graded(cell) -> bool:
    return bool(nbg(cell).get("grade"))


def is_solution(cell) -> bool:
    return bool(nbg(cell).get("solution"))


def is_locked(cell) -> bool:
    return bool(nbg(cell).get("locked"))


def is_autograded(cell) -> bool:
    """A test cell: graded, code, not an answer. Scored by running it."""
    return is_graded(cell) and not is_solution(cell) and cell.get("cell_type") == "code"


def is_handgraded(cell) -> bool:
    return is_graded(cell) and not is_autograded(cell)


def is_instructor(cell) -> bool:
    """Cells whose content the instructor owns: graded tests and locked cells (not answers)."""
    return (is_autograded(cell) or is_locked(cell)) and not is_solution(cell)


def points(cell) -> float:
    try:
        p = float(nbg(cell).get("points", 0) or 0)
    except (TypeError, ValueError):
        return 0.0
    return p if 0 <= p < float("inf") else 0.0


def source(cell) -> str:
    src = cell.get("source", "") if isinstance(cell, dict) else ""
    if isinstance(src, list):
        return "".join(s for s in src if isinstance(s, str))
    return src if isinstance(src, str) else ""


def has_hidden(cell) -> bool:
    return "BEGIN HIDDEN TESTS" in source(cell)


def strip_hidden(src: str, replacement: str = "") -> str:
    """Remove every BEGIN/END HIDDEN TESTS block (markers included) from a cell's source."""
    out = _HIDDEN_RE.sub(replacement, src)
    if "BEGIN HIDDEN TESTS" in out:  # unterminated block: drop everything after the marker
        out = out[: out.index("BEGIN HIDDEN TESTS")].rsplit("\n", 1)[0] + "\n" + replacement
    return out.rstrip("\n") if not replacement else out


def hidden_start_line(src: str) -> int | None:
    """1-based line number of the first BEGIN HIDDEN TESTS marker, or None."""
    for i, line in enumerate(src.splitlines(), 1):
        if "BEGIN HIDDEN TESTS" in line:
            return i
    return None


def solution_lines(src: str) -> list[str]:
    """The stripped lines inside BEGIN/END SOLUTION regions (the whole cell for a solution
    cell without markers, which nbgrader replaces entirely)."""
    lines = src.splitlines()
    if SOLUTION_BEGIN not in src and "BEGIN SOLUTION" not in src:
        return [ln.strip() for ln in lines]
    return _between(lines, "BEGIN SOLUTION", "END SOLUTION")


def hidden_lines(src: str) -> list[str]:
    return _between(src.splitlines(), "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


def _between(lines: list[str], begin: str, end: str) -> list[str]:
    """The stripped lines between lines holding the `begin` and `end` markers."""
    out, inside = [], False
    for ln in lines:
        if begin in ln:
            inside = True
        elif end in ln:
            inside = False
        elif inside:
            out.append(ln.strip())
    return out
