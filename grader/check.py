"""check NOTEBOOK: a student's self-check, run the way the autograder runs it, offline.

The notebook is repaired against the released copy when the course's notebooks/ has one (deleted
or moved test cells come back), any hidden-test block is removed, and it runs in a fresh kernel.
Hidden tests are neither run nor shown. Exit status 0 iff every visible test passes.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import nbformat

from .course import Course, read_notebook
from .execute import DEFAULT_TIMEOUT, run_notebook
from .integrity import review, withhold
from .repair import repair, without_hidden
from .scoring import score_notebook, totals


def _committed_release(course: Course, path: Path):
    """Students usually edit notebooks/NN/topic.ipynb in place: the pristine release is then the
    committed one (`git show HEAD:...`, read-only). None when there is no git or no such file."""
    try:
        rel = path.resolve().relative_to(course.root.resolve())
    except ValueError:
        return None
    if not rel.parts or rel.parts[0] != course.release_dirname:
        return None
    try:
        r = subprocess.run(["git", "-C", str(course.root), "show", f"HEAD:{rel.as_posix()}"],
                           capture_output=True, text=True, timeout=30)
        return nbformat.reads(r.stdout, as_version=4) if r.returncode == 0 else None
    except Exception:
        return None


def find_template(course: Course, path: Path):
    """The instructor's version of this notebook: its source in solutions/ when the course has one
    (the test cells there are the truth, even after a student committed an edited copy; answer
    cells are never taken from it), else the released notebook it is a copy of, if any."""
    source = course.source_dir / path.resolve().parent.name / path.name
    if source.is_file():
        return read_notebook(source)
    if path.resolve().parent.parent == course.release_dir.resolve():
        return _committed_release(course, path)
    cand = course.release_dir / path.parent.name / path.name
    if cand.is_file() and cand.resolve() != path.resolve():
        return read_notebook(cand)
    for a in course.assignments() if course.release_dir.is_dir() else []:
        cand = course.release_dir / a / path.name
        if cand.is_file() and cand.resolve() != path.resolve():
            return read_notebook(cand)
    return None


def format_table(scores, width: int = 72) -> str:
    rows = [("exercise", "points", "result")]
    for s in scores:
        if s.kind == "manual":
            rows.append((s.grade_id, f"{s.max_points:g}", "graded by hand"))
        elif s.passed:
            rows.append((s.grade_id, f"{s.max_points:g}", "passed"))
        else:
            msg = s.message if len(s.message) <= width else s.message[: width - 3] + "..."
            rows.append((s.grade_id, f"{s.max_points:g}", f"FAILED  {msg}"))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
    lines.insert(1, "-" * max(len(ln) for ln in lines[:1] + lines[1:]))
    got, maxp = totals(scores)
    manual = sum(s.max_points for s in scores if s.kind == "manual")
    lines.append("")
    lines.append(f"visible tests: {got:g}/{maxp:g} points"
                 + (f" (+ {manual:g} points graded by hand)" if manual else "")
                 + ". Hidden tests run at grading time and may still fail.")
    return "\n".join(lines)


def check(path: str | Path, course: Course | None = None, timeout: float = DEFAULT_TIMEOUT, out=print) -> int:
    path = Path(path)
    try:
        nb = read_notebook(path)
    except (ValueError, OSError) as e:
        out(f"error: {e}")
        return 2
    course = course or Course.at()
    template = find_template(course, path) or nb
    nb, notes = repair(nb, template)
    nb = without_hidden(nb)
    for n in notes:
        out(f"note: {n} (the autograder does the same; better fix your notebook)")
    with tempfile.TemporaryDirectory(prefix="grader-check-") as tmp:
        for f in path.parent.iterdir():  # data files next to the notebook
            if f.is_file() and f.suffix != ".ipynb":
                shutil.copy2(f, tmp)
        result = run_notebook(nb, cwd=tmp, timeout=timeout)
    scores = score_notebook(nb, result.executed)
    tainted, _, _ = review(nb, template)
    for n in withhold(scores, nb, tainted):
        out(f"note: {n}")
    if not [s for s in scores if s.kind == "auto"]:
        out(f"{path}: no graded test cells found (is this a course notebook?)")
        return 1
    out(format_table(scores))
    details = [s for s in scores if s.kind == "auto" and not s.passed and s.detail]
    for s in details:  # the whole message: the "known mistake" and "hint" lines, the fix
        lines = [ln for para in s.detail.splitlines()[:20] for ln in textwrap.wrap(para, 100) or [""]]
        out(f"\n{s.grade_id}:\n" + "\n".join("    " + ln for ln in lines))
    if result.problems:
        out("problems: " + result.outcome)
    ok = all(s.passed for s in scores if s.kind == "auto") and not result.problems
    return 0 if ok else 1
