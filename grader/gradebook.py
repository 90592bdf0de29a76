"""The nbgrader gradebook (sqlite in OUT/gradebook.db) and its CSV export.

Only the parent process of `autograde` writes here (sqlite and several writers do not mix).
Assignments are registered with nbgrader's own generate_assignment, so OUT is a workspace that
nbgrader's formgrader can open for hand-grading.

CSV columns, one row per student and assignment:
    student, assignment, score, max_score       autograded points only (after any manual override)
    manual_score, manual_max_score              hand-graded points: blank until every such cell is graded
    total_score, total_max_score                blank until hand-grading is complete
    then one column per graded cell (its grade_id), in notebook order: hand-graded cells blank until graded.
"""

from __future__ import annotations

import csv
import hashlib
import json
import tempfile
from pathlib import Path

from .course import Course, nbgrader_env

FIXED_COLUMNS = ["student", "assignment", "score", "max_score", "manual_score", "manual_max_score",
                 "total_score", "total_max_score"]


def db_url(out: Path) -> str:
    return "sqlite:///" + str(Path(out).resolve() / "gradebook.db")


def open_gradebook(out: Path):
    nbgrader_env()
    from nbgrader.api import Gradebook

    return Gradebook(db_url(out))


def _source_hash(course: Course, assignment: str) -> str:
    h = hashlib.sha256()
    for p in course.source_notebooks(assignment):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def ensure_assignments(course: Course, out: Path, assignments, log=print) -> None:
    """Register the assignments in OUT's gradebook (again if their source changed)."""
    from .release import generate

    stamp_file = Path(out) / "sources.json"
    stamps = json.loads(stamp_file.read_text()) if stamp_file.exists() else {}
    todo = [a for a in sorted(assignments) if stamps.get(a) != _source_hash(course, a)]
    if not todo:
        return
    log(f"registering {', '.join(todo)} in {Path(out) / 'gradebook.db'}")
    with tempfile.TemporaryDirectory(prefix="grader-gb-") as tmp:
        generate(course, todo, Path(tmp), db_url=db_url(out))
    for a in todo:
        stamps[a] = _source_hash(course, a)
    stamp_file.write_text(json.dumps(stamps, indent=1, sort_keys=True) + "\n")


def record(gb, student: str, assignment: str, notebooks: dict) -> None:
    """notebooks: notebook name (with .ipynb) -> list of score dicts (scoring.CellScore.as_dict)."""
    from nbgrader.api import MissingEntry

    import warnings

    with warnings.catch_warnings():  # nbgrader's add_submission trips SQLAlchemy autoflush warnings
        warnings.simplefilter("ignore")
        _record(gb, student, assignment, notebooks, MissingEntry)


def _record(gb, student, assignment, notebooks, MissingEntry):
    gb.update_or_create_student(student)
    kept = {}   # hand-grading done before this regrade (in the formgrader): never lost
    try:
        old = gb.find_submission(assignment, student)
        for nb in old.notebooks:
            for g in nb.grades:
                if g.manual_score is not None or g.extra_credit is not None:
                    kept[(nb.name, g.name)] = (g.manual_score, g.extra_credit)
            for c in nb.comments:
                if c.manual_comment:
                    kept[(nb.name, "comment", c.name)] = c.manual_comment
        gb.remove_submission(assignment, student)
    except MissingEntry:
        pass
    gb.add_submission(assignment, student)
    for name, scores in notebooks.items():
        stem = Path(name).stem
        for s in scores:
            try:
                g = gb.find_grade(s["grade_id"], stem, assignment, student)
            except MissingEntry:
                continue
            if s["kind"] == "auto":
                g.auto_score, g.needs_manual_grade = float(s["points"] or 0), False
            else:
                g.auto_score, g.needs_manual_grade = None, True
            if (stem, s["grade_id"]) in kept:
                g.manual_score, g.extra_credit = kept[(stem, s["grade_id"])]
                g.needs_manual_grade = g.manual_score is None and g.auto_score is None
        try:
            for c in gb.find_submission_notebook(stem, assignment, student).comments:
                if (stem, "comment", c.name) in kept:
                    c.manual_comment = kept[(stem, "comment", c.name)]
        except MissingEntry:
            pass
    gb.db.commit()


def _cell_order(course: Course | None, assignment, notebook_name: str, names: list[str]) -> list[str]:
    if course is not None:
        from . import cells as C
        from .course import read_notebook

        src = course.source_dir / assignment / (notebook_name + ".ipynb")
        if src.is_file():
            order = [C.grade_id(c) for c in read_notebook(src).cells if C.is_graded(c)]
            return [n for n in order if n in names] + sorted(n for n in names if n not in order)
    return sorted(names)


def rows(gb, course: Course | None = None) -> tuple[list[str], list[dict]]:
    """(columns, rows) of the grades table, from the gradebook."""
    columns = list(FIXED_COLUMNS)
    out = []
    for assignment in sorted(gb.assignments, key=lambda a: a.name):
        cells = []  # (notebook, grade cell name, is_manual)
        for nb in sorted(assignment.notebooks, key=lambda n: n.name):
            manual_names = {c.name for c in nb.solution_cells}
            names = [c.name for c in nb.grade_cells]
            for name in _cell_order(course, assignment.name, nb.name, names):
                cells.append((nb.name, name, name in manual_names))
                if name not in columns:
                    columns.append(name)
        for sub in sorted(assignment.submissions, key=lambda s: s.student.id):
            row = {"student": sub.student.id, "assignment": assignment.name}
            auto = maxauto = manual = maxmanual = 0.0
            manual_done = True
            for nbname, name, is_manual in cells:
                g = next(g for g in sub.notebooks if g.name == nbname).grades
                g = next(x for x in g if x.name == name)
                if is_manual:
                    maxmanual += g.max_score
                    val = g.manual_score
                    if val is None:
                        manual_done = False
                    else:
                        manual += val
                else:
                    maxauto += g.max_score
                    val = g.score
                    auto += val or 0
                row[name] = "" if val is None else f"{val:g}"
            row.update(score=f"{auto:g}", max_score=f"{maxauto:g}", manual_max_score=f"{maxmanual:g}",
                       total_max_score=f"{maxauto + maxmanual:g}")
            row["manual_score"] = f"{manual:g}" if manual_done else ""
            row["total_score"] = f"{auto + manual:g}" if manual_done else ""
            out.append(row)
    return columns, out


def export_csv(gb, path: Path, course: Course | None = None) -> int:
    columns, data = rows(gb, course)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(data)
    return len(data)
