"""check NOTEBOOK: a student's self-check, run the way the autograder runs it, offline.

- The notebook must be the one it is named after: its grade ids are compared with the course's
  version of it (a notebook of another course, or notebook 02 saved as activations.ipynb, is refused:
  "this is not the activations notebook").
- The test cells that run are the instructor's: taken from solutions/ when the course has it, else
  from the committed release (`git show HEAD:...`). Every locked cell is verified against the checksum
  nbgrader stored in the release (metadata nbgrader.checksum, computed as nbgrader.utils.compute_checksum
  does): an edited test cell is put back when a verified original exists ("edited test cell: restored"),
  and otherwise earns nothing ("edited test cell: not counted"). An edited test cannot pass itself.
- Deleted or moved cells come back (grader/repair.py), any hidden-test block is removed, and the
  notebook runs in a fresh kernel. Hidden tests are neither run nor shown, except with --hidden for
  someone who has solutions/ (a self-learner): then they run too, as when grading.
- The output ends with what to do next. Exit status 0 iff every test that ran passed; 2 when the
  notebook was refused (not readable, not this notebook, --hidden without solutions/).
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
import tempfile
import textwrap
from pathlib import Path

import nbformat

from . import cells as C
from .course import Course, read_notebook
from .execute import DEFAULT_TIMEOUT, run_notebook
from .integrity import review, withhold
from .repair import hidden_starts, repair, without_hidden
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
    return template_and_origin(course, path)[0]


def template_and_origin(course: Course, path: Path):
    """(template, origin): origin is "solutions" (the instructor's source, trusted as it is),
    "release" (a released copy, trusted cell by cell when its checksum holds) or None (no template)."""
    source = course.source_dir / path.resolve().parent.name / path.name
    if source.is_file():
        return read_notebook(source), "solutions"
    if path.resolve().parent.parent == course.release_dir.resolve():
        nb = _committed_release(course, path)
        return (nb, "release") if nb is not None else (None, None)
    cand = course.release_dir / path.parent.name / path.name
    if cand.is_file() and cand.resolve() != path.resolve():
        return read_notebook(cand), "release"
    for a in _release_assignments(course):
        cand = course.release_dir / a / path.name
        if cand.is_file() and cand.resolve() != path.resolve():
            return read_notebook(cand), "release"
    return None, None


def _release_assignments(course: Course) -> list[str]:
    if not course.release_dir.is_dir():
        return []
    return sorted(p.name for p in course.release_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


# ---------------------------------------------------------------- is this the right notebook?

def _ids(nb) -> list[str]:
    return [g for g in (C.grade_id(c) for c in nb.cells) if g]


def _same_notebook(ids: set, ref: set) -> bool:
    """The grade ids of a copy of `ref`: most of them are ref's (a student may delete or add a few
    cells), and more than the generic "setup"."""
    known = ids & ref
    return bool(known - {"setup"}) and len(known) > len(ids - ref)


def _course_notebooks(course: Course):
    """(display path, path, notebook) for every notebook of the course: solutions/ when there, else notebooks/."""
    seen = set()
    for base in (course.source_dir, course.release_dir):
        if not base.is_dir():
            continue
        for p in sorted(base.glob("*/*.ipynb")):
            key = (p.parent.name, p.name)
            if key in seen or ".ipynb_checkpoints" in p.parts:
                continue
            seen.add(key)
            try:
                yield course.release_dir.name + "/" + "/".join(key), p, read_notebook(p)
            except ValueError:
                continue


def wrong_notebook(nb, template, course: Course, path: Path) -> str | None:
    """Why `nb` is not the notebook `path` names, or None. Compares its grade ids with the template's;
    without a template, with the other notebooks of the course (notebook 02 saved over notebook 01)."""
    name = path.stem
    ids = set(_ids(nb))
    if template is not None and template is not nb:
        ref = set(_ids(template))
        if not ref or _same_notebook(ids, ref):
            return None
    elif not ids:
        return None  # nothing to compare with, and nothing graded: reported later
    else:
        ref = None
    other = None
    for shown, real, cand in _course_notebooks(course):
        if real.resolve() == path.resolve() or (Path(shown).name == path.name and ref is not None):
            continue
        cids = set(_ids(cand))
        if cids and _same_notebook(ids, cids):
            other = shown
            break
    if ref is None and (other is None or Path(other).name == path.name):
        return None
    if not ids:
        what = "it has none of its exercises (no nbgrader grade ids: a notebook of another course, or a new one?)"
    elif other:
        what = f"its exercises are those of {other}"
    else:
        shown = ", ".join(sorted(ids)[:4]) + (", ..." if len(ids) > 4 else "")
        what = f"its exercises ({shown}) are not this course's (a notebook of another course?)"
    homes = [f"{course.release_dir.name}/{p.parent.name}/{p.name}"
             for base in (course.release_dir, course.source_dir) if base.is_dir() for p in sorted(base.glob(f"*/{path.name}"))]
    where = f"the course's {name} notebook is {homes[0]}; " if homes else ""
    return (f"this is not the {name} notebook: {what}. Check the file you saved or opened: {where}if another "
            f"notebook was saved over it, get a fresh copy of it from the course")


# ---------------------------------------------------------------- edited locked cells

def nbgrader_checksum(cell) -> str:
    """nbgrader.utils.compute_checksum, for a cell's current source and metadata (md5 of the source,
    the cell type, the grade / solution / locked flags, the grade id, and the points of a graded cell)."""
    meta = C.nbg(cell)
    grade, solution = bool(meta.get("grade", False)), bool(meta.get("solution", False))
    locked = False if solution else (True if grade else bool(meta.get("locked", False)))
    m = hashlib.md5()
    m.update(C.source(cell).encode("utf-8"))
    m.update(str(cell.get("cell_type", "")).encode("utf-8"))
    m.update(str(grade).encode())
    m.update(str(solution).encode())
    m.update(str(locked).encode())
    m.update(str(meta.get("grade_id", "")).encode("utf-8"))
    if grade:
        try:
            m.update(str(float(meta.get("points", 0))).encode())
        except (TypeError, ValueError):
            m.update(b"?")
    return m.hexdigest()


def _verified(cell) -> bool:
    stored = C.nbg(cell).get("checksum")
    return isinstance(stored, str) and stored == nbgrader_checksum(cell)


def edited_locked_cells(nb) -> list[str]:
    """Grade ids of the cells that are not the student's (anything but an answer cell) and do not
    match the checksum stored in the release, or carry none."""
    if not any(C.nbg(c).get("checksum") for c in nb.cells):
        return []  # not a released copy (a source notebook, or a notebook of no course): nothing to verify
    return [C.grade_id(c) for c in nb.cells if C.grade_id(c) and not C.is_solution(c) and not _verified(c)]


def verify_locked(nb, template, origin):
    """(template to repair with, notes, grade ids not counted).

    The trusted version of each instructor cell (test cells and locked cells) is the instructor's
    source (origin "solutions"), else the first of the released template's cell and the student's cell
    that still matches its nbgrader checksum. An edited cell of the student's is "restored" when a
    trusted version exists, else "not counted"; a notebook with graded cells and no checksum at all
    (and no other copy to compare with) cannot be verified, and none of its tests is counted."""
    import copy

    if origin == "solutions":
        edited = edited_locked_cells(nb)
        return template, [f"edited {'test' if C.is_autograded(c) else 'locked'} cell {C.grade_id(c)}: restored "
                          f"(the original ran, not your edit)" for c in nb.cells if C.grade_id(c) in edited], []
    own = {C.grade_id(c): c for c in nb.cells if C.grade_id(c)}
    base = template if template is not None else nb
    checksums = any(C.nbg(c).get("checksum") for c in nb.cells) or (
        template is not None and any(C.nbg(c).get("checksum") for c in template.cells))
    notes, not_counted = [], []
    if not checksums:
        graded = [C.grade_id(c) for c in base.cells if C.is_autograded(c) and C.grade_id(c)]
        if graded:
            notes.append("the test cells cannot be verified (this copy has no nbgrader checksums): no test is "
                         "counted. Work in the course's copy of the notebook")
        return base, notes, graded
    repaired = copy.deepcopy(base)
    for i, tcell in enumerate(repaired.cells):
        gid = C.grade_id(tcell)
        if not gid or not C.is_instructor(tcell):
            continue
        mine = own.get(gid)
        kind = "test" if C.is_autograded(tcell) else "locked"
        mine_ok = mine is not None and _verified(mine)
        if template is not None and _verified(tcell):
            trusted = True
        elif mine_ok:
            repaired.cells[i] = copy.deepcopy(mine)  # the committed copy was edited, the student's is intact
            trusted = True
        else:
            trusted = False
        if mine is not None and not mine_ok:
            if trusted:
                notes.append(f"edited {kind} cell {gid}: restored (the original ran, not your edit)")
            else:
                notes.append(f"edited {kind} cell {gid}: not counted (put the original cell back: copy it from a "
                             f"fresh copy of the course's notebook; `git diff` shows what changed)")
        elif not trusted:
            notes.append(f"{kind} cell {gid}: deleted, and no verified original to restore: not counted")
        if not trusted:
            if C.is_autograded(tcell):
                not_counted.append(gid)
            else:  # an edited set-up or helper cell: every test relies on it
                not_counted += [C.grade_id(c) for c in repaired.cells if C.is_autograded(c) and C.grade_id(c)]
    return repaired, notes, list(dict.fromkeys(not_counted))


def format_table(scores, width: int = 72, hidden: bool = False) -> str:
    rows = [("exercise", "points", "result")]
    for s in scores:
        if s.kind == "manual":
            rows.append((s.grade_id, f"{s.max_points:g}", "graded by hand"))
        elif s.passed:
            rows.append((s.grade_id, f"{s.max_points:g}", "passed"))
        else:
            msg = s.message if len(s.message) <= width else s.message[: width - 3] + "..."
            rows.append((s.grade_id, f"{s.max_points:g}", f"FAILED  {'(hidden test) ' if s.hidden_failed else ''}{msg}"))
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    lines = [f"{a:<{w0}}  {b:>{w1}}  {c}" for a, b, c in rows]
    lines.insert(1, "-" * max(len(ln) for ln in lines[:1] + lines[1:]))
    got, maxp = totals(scores)
    manual = sum(s.max_points for s in scores if s.kind == "manual")
    lines.append("")
    lines.append(f"{'all tests, hidden ones included' if hidden else 'visible tests'}: {got:g}/{maxp:g} points"
                 + (f" (+ {manual:g} points graded by hand)" if manual else "")
                 + ("." if hidden else ". Hidden tests run at grading time and may still fail."))
    return "\n".join(lines)


def _command(path: Path, hidden: bool) -> str:
    try:
        shown = path.resolve().relative_to(Path.cwd().resolve())
    except ValueError:
        shown = path
    return f".venv/bin/python -m grader check {shlex.quote(str(shown))}" + (" --hidden" if hidden else "")


def next_steps(scores, path: Path, hidden: bool, problems: bool, hidden_available: bool = False) -> str:
    """The end of check's output: what to do now. hidden_available: solutions/ is there (a
    self-learner), so --hidden would run the hidden tests."""
    auto = [s for s in scores if s.kind == "auto"]
    failed = [s for s in auto if not s.passed]
    again = f"save the notebook (Ctrl+S) and run `{_command(path, hidden)}` again"
    if failed:
        first = failed[0]
        why = first.message if len(first.message) <= 100 else first.message[:97] + "..."
        more = f" ({len(failed) - 1} more after it)" if len(failed) > 1 else ""
        if first.message.startswith("edited test cell"):
            return (f"Next: put the original {first.grade_id} back{more}: copy the cell from a fresh copy of the "
                    f"course's notebook (your answers stay in your answer cells), then {again}.")
        if first.message.startswith("NotImplementedError"):
            how = "Write its answer where it says # YOUR CODE HERE (replace the raise NotImplementedError() line)"
        elif first.detail:
            how = "Read its message above, change your answer cell (not the test)"
        else:
            how = "Change your answer cell (not the test)"
        return (f"Next: fix {first.grade_id} first{more}: {why}\n"
                f"      {how}, then {again}.")
    if problems:
        return f"Next: fix the problem above, then {again}."
    manual = [s.grade_id for s in scores if s.kind == "manual"]
    lines = ["Next: every " + ("" if hidden else "visible ") + "test passes."
             + ("" if hidden else " Hidden tests run when your notebook is graded.")]
    if hidden_available and not hidden:
        lines.append(f"      This copy has the instructor's notebooks: `{_command(path, True)}` runs the hidden tests too.")
    if manual:
        lines.append(f"      Write the answers graded by hand ({', '.join(manual)}) if you have not yet.")
    lines.append(f"      To submit: Restart Kernel and Run All Cells, save, and hand in {path.name} itself (do not "
                 f"rename it) the way your course asks (its LMS assignment page).")
    return "\n".join(lines)


def check(path: str | Path, course: Course | None = None, timeout: float = DEFAULT_TIMEOUT, out=print,
          hidden: bool = False) -> int:
    path = Path(path)
    try:
        nb = read_notebook(path)
    except (ValueError, OSError) as e:
        out(f"error: {e}")
        return 2
    course = course or Course.at()
    template, origin = template_and_origin(course, path)
    if hidden and origin != "solutions":
        out(f"cannot run the hidden tests: they are only in the instructor's notebooks ({course.source_dirname}/"
            f"{path.resolve().parent.name}/{path.name}), and this copy of the course has no "
            f"{course.source_dirname}/ for this notebook. Run without --hidden to check the visible tests; the "
            f"hidden ones run when your notebook is graded.")
        return 2
    why = wrong_notebook(nb, template, course, path)
    if why:
        out(f"error: {why}")
        return 2
    template, verify_notes, not_counted = verify_locked(nb, template, origin)
    nb, notes = repair(nb, template)
    starts = hidden_starts(nb) if hidden else {}
    if not hidden:
        nb = without_hidden(nb)
    for n in verify_notes:
        out(f"note: {n}")
    for n in notes:
        out(f"note: {n} (the autograder does the same; better fix your notebook)")
    with tempfile.TemporaryDirectory(prefix="grader-check-") as tmp:
        for f in path.parent.iterdir():  # data files next to the notebook
            if f.is_file() and f.suffix != ".ipynb":
                shutil.copy2(f, tmp)
        result = run_notebook(nb, cwd=tmp, timeout=timeout)
    scores = score_notebook(nb, result.executed, starts)
    for s in scores:
        if s.grade_id in not_counted and s.kind == "auto":
            s.points, s.passed, s.hidden_failed = 0.0, False, False
            s.message = s.detail = "edited test cell: not counted (put the original test cell back)"
            s.failure_kind = ""
    tainted, _, _ = review(nb, template)
    for n in withhold(scores, nb, tainted):
        out(f"note: {n}")
    if not [s for s in scores if s.kind == "auto"]:
        out(f"{path}: no graded test cells found (is this a course notebook?)")
        return 1
    out(format_table(scores, hidden=hidden))
    details = [s for s in scores if s.kind == "auto" and not s.passed and s.detail]
    for s in details:  # the whole message: the "known mistake" and "hint" lines, the fix
        lines = [ln for para in s.detail.splitlines()[:20] for ln in textwrap.wrap(para, 100) or [""]]
        out(f"\n{s.grade_id}{' (hidden test)' if s.hidden_failed else ''}:\n" + "\n".join("    " + ln for ln in lines))
    if result.problems:
        out("problems: " + result.outcome)
    out("\n" + next_steps(scores, path, hidden, bool(result.problems), hidden_available=origin == "solutions"))
    ok = all(s.passed for s in scores if s.kind == "auto") and not result.problems
    return 0 if ok else 1
