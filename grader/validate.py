"""validate: the course's notebooks are gradeable.

For every solution notebook:
- its nbgrader metadata is sound (unique grade_ids, points on graded cells, markers balanced);
- executed in a fresh kernel, every graded test passes, no other cell raises, and no test cell
  writes to stderr (plain nbgrader would score that cell 0);
- its release, as the autograder sees an untouched copy (hidden tests put back), fails every graded
  test cell: a test that passes on the stub cannot fail, so it gives points for nothing;
- the release contains no solution and no hidden test.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from pathlib import Path

from . import cells as C
from .course import Course, read_notebook
from .execute import DEFAULT_TIMEOUT, cell_label, run_notebook
from .repair import repair
from .scoring import error_of, failure_message, score_notebook


def metadata_problems(nb) -> list[str]:
    probs = []
    ids = [C.grade_id(c) for c in nb.cells if C.grade_id(c)]
    for gid, n in Counter(ids).items():
        if n > 1:
            probs.append(f"grade_id {gid} used {n} times")
    for i, cell in enumerate(nb.cells):
        if not C.nbg(cell):
            src = C.source(cell)
            if "BEGIN SOLUTION" in src or "BEGIN HIDDEN TESTS" in src:
                probs.append(f"cell #{i + 1} has solution/hidden markers but no nbgrader metadata")
            continue
        label = cell_label(cell, i)
        if not C.grade_id(cell):
            probs.append(f"cell #{i + 1} has nbgrader metadata but no grade_id")
        if C.is_graded(cell) and C.points(cell) <= 0:
            probs.append(f"{label}: graded cell without points")
        src = C.source(cell)
        if src.count("BEGIN HIDDEN TESTS") != src.count("END HIDDEN TESTS"):
            probs.append(f"{label}: unbalanced BEGIN/END HIDDEN TESTS")
        if src.count("BEGIN SOLUTION") != src.count("END SOLUTION"):
            probs.append(f"{label}: unbalanced BEGIN/END SOLUTION")
        if "BEGIN SOLUTION" in src and not C.is_solution(cell):
            probs.append(f"{label}: BEGIN SOLUTION in a cell that is not a solution cell")
        if C.is_autograded(cell) and not C.is_locked(cell):
            probs.append(f"{label}: test cell is not locked")
    return probs


def leaks(source_nb, release_nb) -> list[str]:
    """Solution or hidden-test text found in a released notebook."""
    text = "\n".join(C.source(c) for c in release_nb.cells)
    found = [m for m in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS") if m in text]
    public = "\n".join(C.source(c) for c in source_nb.cells if not C.is_solution(c) and not C.has_hidden(c))
    public += "\n" + "\n".join(C.strip_hidden(C.source(c)) for c in source_nb.cells if C.has_hidden(c))
    secret = set()
    for c in source_nb.cells:
        if C.is_solution(c):
            secret.update(C.solution_lines(C.source(c)))
        secret.update(C.hidden_lines(C.source(c)))
    rel_lines = {ln.strip() for ln in text.splitlines()}
    for line in sorted(secret):
        if len(line) >= 12 and not line.startswith("#") and line not in public and line in rel_lines:
            found.append(f"solution/hidden line: {line!r}")
    return found


def _run_copy(nb, folder: Path, timeout):
    with tempfile.TemporaryDirectory(prefix="grader-validate-") as tmp:
        for f in folder.iterdir():
            if f.is_file() and f.suffix != ".ipynb":
                shutil.copy2(f, tmp)
            elif f.is_dir() and f.name != ".ipynb_checkpoints":
                shutil.copytree(f, Path(tmp) / f.name)
        return run_notebook(nb, cwd=tmp, timeout=timeout)


def validate_notebook(source_path: Path, release_nb, timeout=DEFAULT_TIMEOUT) -> list[str]:
    """Problems with one solution notebook and its release (empty list: all good)."""
    source = read_notebook(source_path)
    probs = metadata_problems(source)
    probs += [f"release leaks {x}" for x in leaks(source, release_nb)]
    # 1. the solution passes everything
    nb = read_notebook(source_path)
    run = _run_copy(nb, source_path.parent, timeout)
    probs += [f"solution: {p}" for p in run.problems]
    for i, cell in enumerate(nb.cells):
        err = error_of(cell) if cell.cell_type == "code" else None
        label = cell_label(cell, i)
        if err is not None:
            what = "graded test fails" if C.is_autograded(cell) else "cell raises"
            probs.append(f"solution: {what} in {label}: {failure_message(err)}")
        if C.is_autograded(cell) and any(o.get("output_type") == "stream" and o.get("name") == "stderr"
                                         for o in cell.get("outputs", [])):
            probs.append(f"solution: test cell {label} writes to stderr (plain nbgrader would give it 0)")
    # 2. the untouched release fails every graded test, with hidden tests back in as when graded
    empty, _ = repair(release_nb, source)
    run = _run_copy(empty, source_path.parent, timeout)
    probs += [f"release: {p}" for p in run.problems]
    for s in score_notebook(empty, run.executed):
        if s.kind == "auto" and s.passed:
            probs.append(f"release: graded test {s.grade_id} passes on the untouched stub (it cannot fail)")
    return probs


def validate(course: Course, assignments=None, timeout=DEFAULT_TIMEOUT, log=print) -> int:
    """Validate the assignments (default all); returns the number of problems found."""
    from .release import generate

    assignments = course.select(assignments)
    if not assignments:
        log(f"no assignments in {course.source_dir}")
        return 0
    total = 0
    with tempfile.TemporaryDirectory(prefix="grader-vrel-") as tmp:
        generate(course, assignments, Path(tmp))
        for a in assignments:
            for src in course.source_notebooks(a):
                probs = validate_notebook(src, read_notebook(Path(tmp) / a / src.name), timeout)
                rel = src.relative_to(course.root)
                if probs:
                    log(f"FAIL {rel}")
                    for p in probs:
                        log(f"  - {p}")
                else:
                    log(f"ok   {rel}: solution passes every test, the release fails every graded test")
                total += len(probs)
    return total
