"""Find the submissions to grade.

Accepted layouts, as a folder or as a .zip of one:

1. nbgrader's submitted layout: ``STUDENT/ASSIGNMENT/NOTEBOOK.ipynb``. A notebook that was renamed
   (``fixture (1).ipynb``, ``Copy of fixture.ipynb``) is matched to the assignment's notebook when it
   is the only notebook of the folder, else by the grade_ids it contains.
2. A Canvas download: ``NAME[_LATE]_USERID_ATTACHMENTID_FILE``, e.g. ``smithjohn_33333_3_activations.ipynb``,
   ``frank_LATE_55555_9_activations-1.ipynb``. The student's key is Canvas's user id (USERID).
3. A Moodle download: ``FULL NAME_PARTICIPANTID_assignsubmission_file_FILE``, flat or as a folder
   ``FULL NAME_PARTICIPANTID_assignsubmission_file_/FILE``. The student's key is the participant id.
4. Any other LMS, flat: ``STUDENT_<anything>_NOTEBOOK.ipynb`` (``alice_late_1_activations.ipynb``);
   STUDENT is everything before the first underscore. For a notebook ``NAME.ipynb`` the pattern is

       ^(?P<student>[^_/]+)_(?:.*_)?NAME(?:-\\d+| ?\\(\\d+\\))?\\.ipynb$

FILE (or NOTEBOOK) is the name of one of the course's notebooks, optionally followed by ``-N`` or `` (N)``
(re-submission copies); a file whose name matches no notebook is matched by its grade_ids.

Who is who. With a roster (grader/lms.py: student_id, name, email, lms_id), the LMS id is looked up
in it and the student is graded under the roster's student_id (then by e-mail or by a name that only one
roster student has). Without a roster, a Canvas or Moodle student is graded under the name in the file
name, and when two LMS ids share a name, under NAME-LMSID each: two students called smithjohn are never
merged.

Never a silent pick: when one student has several files for one notebook, the highest re-submission
number (then Canvas's attachment id) is graded and the others are reported; two files of the same rank
stop the run (SubmissionsError). A folder in none of these layouts (for example notebooks/, the release)
stops the run too, and the message lists the layouts.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from . import cells as C
from .course import Course, read_notebook

SUFFIX = r"(?:-(?P<n>\d+)| ?\((?P<p>\d+)\))?\.ipynb$"
CANVAS = re.compile(r"^(?P<name>[^_/]+?)(?P<late>_LATE)?_(?P<uid>\d+)_(?P<aid>\d+)_(?P<file>.+\.ipynb)$")
MOODLE = re.compile(r"^(?P<name>[^/]+?)_(?P<uid>\d+)_assign(?:submission|feedback)_[a-z]+_?(?P<file>.*)$")

LAYOUTS = """Accepted layouts (a folder, or a .zip of one):
  nbgrader:  STUDENT/ASSIGNMENT/NOTEBOOK.ipynb            e.g. alice/01_activations/activations.ipynb
  Canvas:    NAME[_LATE]_USERID_ATTACHMENTID_NOTEBOOK.ipynb  e.g. smithjohn_33333_3_activations.ipynb
  Moodle:    FULL NAME_ID_assignsubmission_file_NOTEBOOK.ipynb, or a folder FULL NAME_ID_assignsubmission_file_/
  other LMS: STUDENT_<anything>_NOTEBOOK.ipynb              e.g. alice_12_activations.ipynb"""


class SubmissionsError(ValueError):
    """The run must stop: a folder in no accepted layout, or two files that would be one grade."""


def lms_pattern(stem: str) -> re.Pattern:
    return re.compile(r"^(?P<student>[^_/]+)_(?:.*_)?" + re.escape(stem) + SUFFIX)


@dataclass
class Submission:
    student: str
    assignment: str
    notebooks: dict = field(default_factory=dict)   # source notebook name -> submitted file
    notes: list = field(default_factory=list)
    name: str = ""      # the name the LMS gives, if any
    lms_id: str = ""    # the LMS's id of the student, if any

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


def _resubmission_number(filename: str) -> int:
    m = re.search(SUFFIX, filename)
    return int((m.group("n") or m.group("p") or 0)) if m else 0


@dataclass
class _File:
    path: Path
    notebook: str           # the course notebook it is graded as
    assignment: str
    label: str              # student key before the roster: folder name, LMS name
    lms_id: str = ""
    name: str = ""          # the name in an LMS file name
    rank: tuple = (0, 0)    # (re-submission number, Canvas attachment id): the highest is graded
    note: str = ""

    @property
    def origin(self) -> str:
        """Who the file says it is from, before any roster: files of one origin can be re-submissions
        of each other, files of two origins never are."""
        return f"LMS id {self.lms_id}" if self.lms_id else f"{self.label}"


def _notebook_for(filename: str, index: dict) -> str | None:
    """The course notebook a file name (FILE part of a download) names, with its re-submission suffix."""
    for nb_name in sorted(index, key=len, reverse=True):
        if re.fullmatch(re.escape(Path(nb_name).stem) + SUFFIX, filename):
            return nb_name
    return None


def _resolve(files: list[_File], roster, problems: list[str]) -> None:
    """Give every file its student key (in f.label): the roster's student id, or a name that is unique."""
    if roster is not None:
        for f in files:
            s = None
            if f.lms_id:
                s = roster.by_lms.get(f.lms_id)
            if s is None and f.label in roster.by_id:
                s = roster.by_id[f.label]
            if s is None and f.label.lower() in roster.by_email:
                s = roster.by_email[f.label.lower()]
            if s is None and (f.name or f.label):
                same = roster.by_name(f.name or f.label)
                if len(same) == 1:
                    s = same[0]
                    f.note = "; ".join(filter(None, [f.note, f"matched to {s.student_id} in the roster by the name "
                                                                  f"{f.name or f.label}"]))
                elif len(same) > 1:
                    raise SubmissionsError(
                        f"{f.path.name}: {len(same)} students of the roster are called {f.name or f.label} "
                        f"({', '.join(x.student_id for x in same)}) and the file's LMS id {f.lms_id or '(none)'} "
                        f"is none of theirs: add the LMS ids to the roster's lms_id column")
            if s is None:
                problems.append(f"{f.path.name}: {f.name or f.label} (LMS id {f.lms_id or 'none'}) is not in the "
                                f"roster {roster.path or ''}; graded as {f.label if not f.lms_id else f.label + '-' + f.lms_id}")
                if f.lms_id:
                    f.label = f"{f.label}-{f.lms_id}"
            else:
                f.label = s.student_id
        return
    ids_by_name: dict[str, set] = {}
    for f in files:
        if f.lms_id:
            ids_by_name.setdefault(f.label, set()).add(f.lms_id)
    for name, ids in sorted(ids_by_name.items()):
        if len(ids) > 1:
            problems.append(f"{len(ids)} students are called {name} (LMS ids {', '.join(sorted(ids))}): graded as "
                            + ", ".join(f"{name}-{i}" for i in sorted(ids))
                            + "; a roster (--roster) maps LMS ids to student ids")
    for f in files:
        if f.lms_id and len(ids_by_name[f.label]) > 1:
            f.label = f"{f.label}-{f.lms_id}"


def discover(course: Course, root: Path, roster=None) -> tuple[list[Submission], list[str]]:
    """Submissions under `root` (a folder already extracted), and the problems found (files skipped,
    re-submissions not graded). `roster`: a grader.lms.Roster, a path to a roster CSV, or None.
    Raises SubmissionsError when the run must stop (see the module docstring)."""
    if roster is not None and not hasattr(roster, "by_lms"):
        from .lms import Roster, RosterError

        try:
            roster = Roster.read(roster)
        except (RosterError, OSError) as e:   # a roster that cannot be used stops the run
            raise SubmissionsError(f"roster: {e}") from None
    problems: list[str] = []
    assignments = set(course.assignments())
    index = course.notebook_index()  # name -> (assignment, source path)
    ids_cache: dict[str, set] = {}

    def source_ids(name):
        if name not in ids_cache:
            ids_cache[name] = _grade_ids(index[name][1])
        return ids_cache[name]

    def by_cells(p, names=None):
        return _match_by_ids(p, {n: source_ids(n) for n in (names or index)})

    paths = sorted(p for p in root.rglob("*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts and not p.name.startswith("._") and "__MACOSX" not in p.parts)
    files: list[_File] = []
    by_folder: dict[Path, list] = {}
    course_like = []   # ASSIGNMENT/NOTEBOOK.ipynb with no student: a release or source folder
    for p in paths:
        rel = p.relative_to(root)
        if len(rel.parts) >= 3 and rel.parts[-2] in assignments:
            by_folder.setdefault(p.parent, []).append(p)
            continue
        in_moodle_folder = p.parent != root and MOODLE.match(p.parent.name)
        if p.name in index and not in_moodle_folder:   # the course's own notebook name: no student in it
            course_like.append(rel)
            problems.append(f"{rel}: a course notebook with no student in its name or folder; skipped")
            continue
        m_moodle = MOODLE.match(p.name) or (MOODLE.match(p.parent.name) if p.parent != root else None)
        m_canvas = CANVAS.match(p.name)
        name = None
        if m_moodle:
            filename = m_moodle.group("file") if MOODLE.match(p.name) else p.name
            f = _File(p, "", "", m_moodle.group("name"), lms_id=m_moodle.group("uid"), name=m_moodle.group("name"),
                      rank=(_resubmission_number(filename), 0))
            name = _notebook_for(filename, index)
        elif m_canvas:
            filename = m_canvas.group("file")
            f = _File(p, "", "", m_canvas.group("name"), lms_id=m_canvas.group("uid"), name=m_canvas.group("name"),
                      rank=(_resubmission_number(filename), int(m_canvas.group("aid"))))
            name = _notebook_for(filename, index)
        else:
            student = None
            for nb_name in sorted(index, key=len, reverse=True):
                m = lms_pattern(Path(nb_name).stem).match(p.name)
                if m:
                    name, student = nb_name, m.group("student")
                    break
            if student is None:
                student = p.name.split("_", 1)[0] if "_" in p.name else None
            if student is None:
                problems.append(f"{rel}: cannot tell the student and notebook (expected STUDENT_..._NOTEBOOK.ipynb"
                                f" or STUDENT/ASSIGNMENT/NOTEBOOK.ipynb); skipped")
                continue
            f = _File(p, "", "", student, rank=(_resubmission_number(p.name), 0))
        if name is None:
            name = by_cells(p)
            if name is None:
                problems.append(f"{rel}: cannot tell which notebook of the course this is (its name is none of "
                                f"{sorted(index)} and it holds none of their cells); skipped")
                continue
            f.note = f"{p.name} matched to {name} by its cells"
        f.notebook, f.assignment = name, index[name][0]
        files.append(f)

    for folder, fpaths in by_folder.items():
        student, assignment = folder.parent.name, folder.name
        expected = {p.name for p in course.source_notebooks(assignment)}
        taken = {p.name for p in fpaths if p.name in expected}
        for p in fpaths:
            if p.name in expected:
                files.append(_File(p, p.name, assignment, student))
        for p in (p for p in fpaths if p.name not in expected):
            missing = expected - taken
            if len(expected) == 1 and len(fpaths) == 1:
                name = next(iter(expected))
            else:
                name = by_cells(p, missing or expected)
            if name is None or name in taken:
                problems.append(f"{p.relative_to(root)}: not a notebook of {assignment} (expected "
                                f"{sorted(expected)}); skipped")
                continue
            taken.add(name)
            files.append(_File(p, name, assignment, student, note=f"renamed notebook {p.name} graded as {name}"))

    if paths and not files:
        what = (f"{root} holds the course's own notebooks ({', '.join(map(str, course_like[:3]))}"
                f"{', ...' if len(course_like) > 3 else ''}), not students' submissions" if course_like
                else f"no file under {root} is a submission of this course")
        raise SubmissionsError(f"{what}.\n{LAYOUTS}")

    origins = {id(f): f.origin for f in files}
    _resolve(files, roster, problems)

    grouped: dict[tuple, dict] = {}
    for f in files:
        grouped.setdefault((f.label, f.assignment), {}).setdefault(f.notebook, []).append(f)
    subs = []
    for key in sorted(grouped):
        sub = Submission(*key)
        for name, fs in sorted(grouped[key].items()):
            fs = sorted(fs, key=lambda f: (f.rank, f.path.name))
            best = fs[-1]
            ties = [f for f in fs if f.rank == best.rank]
            if len({origins[id(f)] for f in fs}) > 1:
                raise SubmissionsError(
                    f"{key[0]} {key[1]}: {len(fs)} files for {name} come from different people "
                    f"({', '.join(sorted({origins[id(f)] for f in fs}))}) and would be graded as one: "
                    f"{', '.join(str(f.path.relative_to(root)) for f in fs)}. Check the roster's lms_id column, "
                    f"or remove the wrong file. Nothing was graded.")
            if len(ties) > 1:
                raise SubmissionsError(
                    f"{key[0]} {key[1]}: {len(ties)} files for {name} and none is a later re-submission of the "
                    f"other: {', '.join(str(f.path.relative_to(root)) for f in ties)}. Two students graded as one, "
                    f"or one student's duplicate? Remove the wrong file, or give a roster (--roster) that tells "
                    f"them apart by LMS id. Nothing was graded.")
            sub.notebooks[name] = best.path
            sub.name, sub.lms_id = sub.name or best.name, sub.lms_id or best.lms_id
            for f in fs:
                if f.note and f.note not in sub.notes and f is best:
                    sub.notes.append(f.note)
            if len(fs) > 1:
                problems.append(f"{key[0]} {key[1]}: {len(fs)} files for {name}; graded {best.path.name}, "
                                f"ignored {', '.join(f.path.name for f in fs[:-1])}")
        subs.append(sub)
    return subs, problems
