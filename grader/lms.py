"""The class roster, and grades in the CSV formats that Canvas and Moodle gradebooks import.

Roster: a CSV file with a header row and one row per student. Columns (case and spaces do not matter):

    student_id   the id the course uses for the student (nbgrader's student id, Moodle's "ID number",
                 Canvas's "SIS User ID"); also accepted as "student", "id", "sis user id"
    name         full name, e.g. "Grace Hopper"
    email        e-mail address (Moodle can map grades by it)
    lms_id       the id the LMS puts in its download file names: Canvas's user id
                 (smithjohn_33333_..._activations.ipynb), Moodle's participant id
                 (Grace Hopper_66666_assignsubmission_file_...); also "canvas id", "moodle id", "lms id"
    login        optional: Canvas's "SIS Login ID" (default: the e-mail address)
    section      optional: Canvas's "Section"

Example:

    student_id,name,email,lms_id
    s001,John Smith,jsmith@example.edu,33333
    s002,John Smith,john.smith@example.edu,44444

Canvas import (Grades > Import): columns Student, ID (Canvas user id = lms_id), SIS User ID, SIS Login ID,
Section, then one column per assignment. Moodle import (Grades > Import > CSV file): "ID number" and
"Email address" (map users by either), then one column per grade item. A grade is the assignment's
total (autograded plus hand-graded points); it is left blank, and reported, while hand-grading is not done.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

_ALIASES = {
    "student_id": ("student_id", "studentid", "student", "id", "sis_user_id", "id_number", "idnumber"),
    "name": ("name", "full_name", "fullname", "student_name"),
    "email": ("email", "e_mail", "email_address", "mail"),
    "lms_id": ("lms_id", "lmsid", "canvas_id", "canvas_user_id", "moodle_id", "participant_id", "user_id"),
    "login": ("login", "sis_login_id", "login_id", "username"),
    "section": ("section",),
}


def _norm_header(h: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", h.strip().lower()).strip("_")


def name_key(name: str) -> str:
    """A name as LMS file names spell it: lower case, letters and digits only."""
    return re.sub(r"[^0-9a-z]+", "", name.lower())


@dataclass
class Student:
    student_id: str
    name: str = ""
    email: str = ""
    lms_id: str = ""
    login: str = ""
    section: str = ""


class RosterError(ValueError):
    """The roster file cannot be used (missing column, duplicated id)."""


class Roster:
    def __init__(self, students: list[Student], path: Path | None = None):
        self.students = students
        self.path = path
        self.by_id, self.by_lms, self.by_email = {}, {}, {}
        for s in students:
            for table, key, what in ((self.by_id, s.student_id, "student id"), (self.by_lms, s.lms_id, "LMS id"),
                                     (self.by_email, s.email.lower(), "e-mail")):
                if not key:
                    continue
                if key in table:
                    raise RosterError(f"{path or 'roster'}: {what} {key!r} appears twice "
                                      f"({table[key].name or table[key].student_id} and {s.name or s.student_id})")
                table[key] = s

    @classmethod
    def read(cls, path) -> "Roster":
        path = Path(path)
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            try:
                header = next(reader)
            except StopIteration:
                raise RosterError(f"{path}: empty roster") from None
            columns = {}
            for i, h in enumerate(header):
                for field, aliases in _ALIASES.items():
                    if _norm_header(h) in aliases and field not in columns:
                        columns[field] = i
            if "student_id" not in columns:
                raise RosterError(f"{path}: no student id column; the header must name the columns "
                                  f"student_id, name, email, lms_id (found {header})")
            students = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                get = {k: (row[i].strip() if i < len(row) else "") for k, i in columns.items()}
                if not get["student_id"]:
                    raise RosterError(f"{path}: a row without a student id: {row}")
                students.append(Student(**get))
        return cls(students, path)

    def by_name(self, name: str) -> list[Student]:
        """Students whose name matches `name` as an LMS spells it: "Grace Hopper", "gracehopper" or
        Canvas's last-name-first "hoppergrace"."""
        key = name_key(name)
        out = []
        for s in self.students:
            words = s.name.split()
            forms = {name_key(s.name)}
            if len(words) > 1:
                forms.add(name_key(words[-1] + "".join(words[:-1])))
            if key and key in forms:
                out.append(s)
        return out

    def lookup(self, key: str) -> Student | None:
        """The student a gradebook id stands for: a student id, an LMS id, an e-mail address, or a
        name-LMSID key given to same-name students graded without a roster."""
        if key in self.by_id:
            return self.by_id[key]
        if key in self.by_lms:
            return self.by_lms[key]
        if key.lower() in self.by_email:
            return self.by_email[key.lower()]
        if "-" in key and key.rsplit("-", 1)[1] in self.by_lms:
            return self.by_lms[key.rsplit("-", 1)[1]]
        return None


FORMATS = ("csv", "canvas", "moodle")


def lms_table(fmt: str, columns: list[str], rows: list[dict], roster: Roster) -> tuple[list[str], list[list[str]], list[str]]:
    """(header, rows, warnings) for fmt 'canvas' or 'moodle', from gradebook.rows(): one row per student,
    one column per assignment holding its total score."""
    assignments = sorted({r["assignment"] for r in rows})
    per_student: dict[str, dict] = {}
    warnings = []
    for r in rows:
        grade = r.get("total_score", "")
        if grade == "":
            warnings.append(f"{r['student']} {r['assignment']}: hand-grading not finished, grade left blank")
        per_student.setdefault(r["student"], {})[r["assignment"]] = grade
    if fmt == "canvas":
        header = ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] + assignments
    elif fmt == "moodle":
        header = ["ID number", "Email address", "Full name"] + assignments
    else:
        raise ValueError(f"unknown format {fmt!r}; choose one of {FORMATS}")
    out = []
    seen = set()
    for key in sorted(per_student):
        s = roster.lookup(key)
        if s is None:
            warnings.append(f"{key}: not in the roster {roster.path or ''}; its row cannot be imported")
            s = Student(student_id=key)
        seen.add(s.student_id)
        grades = [per_student[key].get(a, "") for a in assignments]
        if fmt == "canvas":
            if not s.lms_id:
                warnings.append(f"{key}: the roster gives no LMS id (Canvas's ID column) for {s.student_id}")
            out.append([s.name, s.lms_id, s.student_id, s.login or s.email, s.section] + grades)
        else:
            out.append([s.student_id, s.email, s.name] + grades)
    for s in roster.students:
        if s.student_id not in seen:
            warnings.append(f"{s.student_id} ({s.name}): in the roster, no submission graded")
    return header, out, warnings


def write_lms_csv(path: Path, fmt: str, columns, rows, roster: Roster) -> tuple[int, list[str]]:
    header, data, warnings = lms_table(fmt, columns, rows, roster)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(data)
    return len(data), warnings
