"""Score an executed notebook.

An autograded test cell earns its points iff running it raised no error. Output on stderr
(warnings, progress bars) does not count: plain nbgrader zeroes a cell that writes to stderr.
Cells that never ran (the kernel died before them) earn nothing. Hand-graded cells get no score.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from . import cells as C

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class CellScore:
    grade_id: str
    kind: str            # "auto" or "manual"
    points: float | None  # None for hand-graded cells (not graded yet)
    max_points: float
    passed: bool | None
    message: str = ""    # first useful line of the failure
    hidden_failed: bool = False  # the failure came from the hidden part of the cell
    detail: str = ""     # the whole failure message (for the student's own check, never for hidden tests)
    failure_kind: str = ""  # what kind of failure, in words that quote nothing of the test (see failure_kind)

    def as_dict(self):
        return asdict(self)


def error_of(cell):
    for out in cell.get("outputs", []):
        if out.get("output_type") == "error":
            return out
    return None


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def failure_message(err) -> str:
    """'AssertionError: square(3) should be 9, got 6': the exception line, which carries the
    test's message; the first line of a multi-line message."""
    ename, evalue = err.get("ename", "Error"), strip_ansi(str(err.get("evalue", ""))).strip()
    first = evalue.splitlines()[0] if evalue else ""
    if ename == "StdinNotImplementedError":
        return "input() is not available when grading: remove the call"
    if ename == "NotImplementedError" and not first:
        return "NotImplementedError: not done yet (the stub still raises)"
    if ename == "KeyboardInterrupt":
        return "interrupted (the cell took too long)"
    return f"{ename}: {first}" if first else ename


# What nnlab.checks says, read to name the kind of a failure without showing the message: the
# message of a hidden test quotes its inputs and names, the kind does not.
_KINDS = [
    (re.compile(r" calls \S+: this exercise asks for your own implementation, not nnlab's"),
     "your function called nnlab's own implementation"),
    (re.compile(r" changed its argument .* in place"), "your function changed one of its input arrays in place"),
    (re.compile(r" has dtype \S+, expected \S+"), "wrong dtype"),
    (re.compile(r" should be a numpy array, got "), "wrong type: not a numpy array"),
    (re.compile(r" has shape \(.*\), expected \(|but the numerical gradient has shape"), "wrong shape"),
    (re.compile(r" is None: did the function forget to return it\?"), "returned None (a missing return?)"),
    (re.compile(r" should be numeric, got "), "returned something that is not a number or an array"),
    (re.compile(r"^gradient check failed for "), "wrong gradient (the gradient check failed on a random input)"),
    (re.compile(r" is wrong at \d+ of \d+ entries|\(tolerance rtol="), "wrong values on a random input"),
]


def failure_kind(err) -> str:
    """The kind of a failure, safe to show for a hidden test: read from the exception's type and from
    the wording of nnlab.checks' messages (assert_close, assert_shape, assert_dtype, forbid_calls,
    assert_no_mutation, assert_grad_close), never quoting them. "" when nothing can be said."""
    ename = str(err.get("ename", "") or "")
    evalue = strip_ansi(str(err.get("evalue", "")))
    first = evalue.strip().splitlines()[0] if evalue.strip() else ""
    if ename == "AssertionError":
        for pattern, kind in _KINDS:
            if pattern.search(first):
                return kind
        return ""
    if ename == "NotImplementedError":
        return "not done yet (the stub still raises NotImplementedError)"
    if ename == "KeyboardInterrupt":
        return "took too long (interrupted)"
    if ename in ("StdinNotImplementedError",):
        return "called input(), which is not available when grading"
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,60}", ename or ""):
        from_student = any("raised in your code" in strip_ansi(str(t)) for t in err.get("traceback", []) or [])
        return (f"your code raised an exception ({ename})" if from_student
                else f"raised an exception ({ename}): check what your function returns")
    return ""


_LINE_RE = re.compile(r"(?:Cell In\s*\[\d*\]|<ipython-input-[^>]*>|input_\d+),?\s*line (\d+)")
_ARROW_RE = re.compile(r"^-+>\s*(\d+)")


def failing_line(err) -> int | None:
    """The line of the cell's own code where the error was raised (first traceback frame)."""
    tb = [strip_ansi(t) for t in err.get("traceback", [])]
    for frame in tb:
        if "Cell In" in frame or "ipython-input" in frame:
            m = _LINE_RE.search(frame)
            if m:
                return int(m.group(1))
            for ln in frame.splitlines():
                m = _ARROW_RE.match(ln.strip())
                if m:
                    return int(m.group(1))
    return None


def score_cell(cell, ran: bool, hidden_start: int | None = None) -> CellScore:
    gid, maxp = C.grade_id(cell) or "?", C.points(cell)
    if C.is_handgraded(cell):
        return CellScore(gid, "manual", None, maxp, None)
    if not ran:
        return CellScore(gid, "auto", 0.0, maxp, False, "not run (an earlier cell stopped the kernel)")
    err = error_of(cell)
    if err is None:
        return CellScore(gid, "auto", maxp, maxp, True)
    line = failing_line(err)
    hidden = hidden_start is not None and (line is None or line > hidden_start)
    detail = strip_ansi(str(err.get("evalue", ""))).strip()
    return CellScore(gid, "auto", 0.0, maxp, False, failure_message(err), hidden, detail, failure_kind(err))


def score_notebook(nb, executed: set, hidden_starts: dict | None = None) -> list[CellScore]:
    """One CellScore per graded cell, in notebook order. hidden_starts: grade_id -> line of the
    BEGIN HIDDEN TESTS marker in the executed source (to tell visible from hidden failures)."""
    hidden_starts = hidden_starts or {}
    out = []
    for i, cell in enumerate(nb.cells):
        if C.is_graded(cell):
            gid = C.grade_id(cell)
            out.append(score_cell(cell, i in executed, hidden_starts.get(gid)))
    return out


def totals(scores: list[CellScore]) -> tuple[float, float]:
    auto = [s for s in scores if s.kind == "auto"]
    return sum(s.points or 0 for s in auto), sum(s.max_points for s in auto)
