"""Find the submissions to grade.

Two layouts are accepted, as a folder or as a .zip of one:

1. nbgrader's submitted layout: ``STUDENT/ASSIGNMENT/NOTEBOOK.ipynb``. A notebook that was renamed
   (``fixture (1).ipynb``, ``Copy of fixture.ipynb``) is matched to the assignment's notebook when it
   is the only notebook of the folder, else by the grade_ids it contains.
2. An LMS download (Canvas, Moodle, ...): a flat folder of files named

       STUDENT_<anything>_NOTEBOOK.ipynb     e.g.  alice_12345_67890_activations.ipynb
                                                   bob_late_1234_activations-2.ipynb

   STUDENT is everything before the first underscore; NOTEBOOK is the name of one of the course's
   notebooks (``activations.ipynb``), optionally followed by ``-N`` or `` (N)`` (re-submission copies).
   The regular expression, for a notebook ``NAME.ipynb``:

       ^(?P<student>[^_/]+)_(?:.*_)?NAME(?:-\\d+| ?\\(\\d+\\))?\\.ipynb$

   A file whose name matches no notebook is matched by its grade_ids. When a student has several
   files for the same notebook, the one with the highest re-submission number (then the last
   by name) is graded and the others are reported.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import cells as C
from .course import Course, read_notebook

SUFFIX = r"(?:-(?P<n>\d+)| ?\((?P<p>\d+)\))?\.ipynb$"


def lms_pattern(stem: str) -> re.Pattern:
    return re.compile(r"^(?P<student>[^_/]+)_(?:.*_)?" + re.escape(stem) + SUFFIX)


@dataclass
class Submission:
    student: str
    assignment: str
    notebooks: dict = field(default_factory=dict)   # source notebook name -> submitted file
    notes: list = field(default_factory=list)

    @property
    def key(self):
        return (self.student, self.assignment)


def extract_zip(path: Path, dest: Path) -> Path:
    with zipfile.ZipFile(path) as z:
        for info in z.infolist():
            target = (dest / info.filename).resolve()
            if not str(target).startswith(str(dest.resolve())):  # no path traversal
                continue
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(info))
    return dest


def _grade_ids(path: Path) -> set:
    try:
        nb = read_notebook(path)
    except (ValueError, OSError):
        return set()
    return {C.grade_id(c) for c in nb.cells if C.grade_id(c)}


def _match_by_ids(path: Path, candidates: dict) -> str | None:
    """candidates: notebook name -> set of grade_ids. The best overlap, if any."""
    ids = _grade_ids(path)
    best = max(candidates, key=lambda n: len(ids & candidates[n]), default=None)
    return best if best and ids & candidates[best] else None


def _resubmission_rank(path: Path) -> tuple:
    m = re.search(SUFFIX, path.name)
    n = int((m.group("n") or m.group("p") or 0)) if m else 0
    return (n, path.name)


def discover(course: Course, root: Path) -> tuple[list[Submission], list[str]]:
    """Submissions under `root` (a folder already extracted), and the problems found."""
    problems: list[str] = []
    assignments = set(course.assignments())
    index = course.notebook_index()  # name -> (assignment, source path)
    ids_cache: dict[str, set] = {}

    def source_ids(name):
        if name not in ids_cache:
            ids_cache[name] = _grade_ids(index[name][1])
        return ids_cache[name]

    files = sorted(p for p in root.rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("._") and "__MACOSX" not in p.parts)
    found: dict[tuple, dict] = {}   # (student, assignment) -> notebook name -> [paths]
    notes: dict[tuple, list] = {}
    by_folder: dict[Path, list] = {}
    for p in files:
        rel = p.relative_to(root)
        if len(rel.parts) >= 3 and rel.parts[-2] in assignments:
            by_folder.setdefault(p.parent, []).append(p)
            continue
        # LMS flat file
        name = None
        for nb_name in sorted(index, key=len, reverse=True):
            m = lms_pattern(Path(nb_name).stem).match(p.name)
            if m:
                name, student = nb_name, m.group("student")
                break
        if name is None:
            student = p.name.split("_", 1)[0] if "_" in p.name else None
            name = _match_by_ids(p, {n: source_ids(n) for n in index})
            if student is None or name is None:
                problems.append(f"{rel}: cannot tell the student and notebook (expected STUDENT_..._NOTEBOOK.ipynb"
                                f" or STUDENT/ASSIGNMENT/NOTEBOOK.ipynb); skipped")
                continue
            notes.setdefault((student, index[name][0]), []).append(f"{p.name} matched to {name} by its cells")
        found.setdefault((student, index[name][0]), {}).setdefault(name, []).append(p)

    for folder, paths in by_folder.items():
        student, assignment = folder.parent.name, folder.name
        expected = {p.name for p in course.source_notebooks(assignment)}
        key = (student, assignment)
        for p in paths:
            if p.name in expected:
                found.setdefault(key, {}).setdefault(p.name, []).append(p)
        strays = [p for p in paths if p.name not in expected]
        for p in strays:
            missing = expected - set(found.get(key, {}))
            if len(expected) == 1 and len(paths) == 1:
                name = next(iter(expected))
            else:
                name = _match_by_ids(p, {n: source_ids(n) for n in missing or expected})
            if name is None or name in found.get(key, {}):
                problems.append(f"{p.relative_to(root)}: not a notebook of {assignment} (expected "
                                f"{sorted(expected)}); skipped")
                continue
            found.setdefault(key, {})[name] = [p]
            notes.setdefault(key, []).append(f"renamed notebook {p.name} graded as {name}")

    subs = []
    for key in sorted(found):
        sub = Submission(*key, notes=list(notes.get(key, [])))
        for name, paths in sorted(found[key].items()):
            paths = sorted(paths, key=_resubmission_rank)
            sub.notebooks[name] = paths[-1]
            if len(paths) > 1:
                problems.append(f"{key[0]} {key[1]}: {len(paths)} files for {name}; graded {paths[-1].name}, "
                                f"ignored {', '.join(q.name for q in paths[:-1])}")
        subs.append(sub)
    return subs, problems
