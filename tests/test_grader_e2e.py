"""End to end: autograde a class of damaged submissions of the fixture assignment.

One autograde run (module-scoped, ~30 s on two cores) over a class in which every student
breaks something plain nbgrader gets wrong; each test then checks one student's outcome.
"""

from __future__ import annotations

import copy
import csv
import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from grader.course import Course
from grader.release import release

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "course"
ASSIGNMENT, NOTEBOOK = "00_fixture", "fixture.ipynb"

pytestmark = [pytest.mark.grading, pytest.mark.slow]

SQUARE = "def square(x):\n    return x * x"
CUBE = "def cube(x):\n    return x * x * x"


def grader(*args, cwd=REPO, timeout=600):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def released():
    return nbformat.read(FIXTURE / "notebooks" / ASSIGNMENT / NOTEBOOK, as_version=4)


def index_of(nb, gid):
    return next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade_id") == gid)


def answer(nb, square=SQUARE, cube=CUBE, q="Odd powers keep the sign."):
    nb = copy.deepcopy(nb)
    if square is not None:
        nb.cells[index_of(nb, "square_impl")].source = square
    if cube is not None:
        nb.cells[index_of(nb, "cube_impl")].source = cube
    if q is not None:
        nb.cells[index_of(nb, "q_parity")].source = q
    return nb


def make_class() -> dict:
    """student -> (notebook or raw text, file name)."""
    rel = released()
    full = answer(rel)
    deleted = answer(rel, cube="def cube(x):\n    return 0")
    del deleted.cells[index_of(deleted, "test_cube")]
    dup = answer(rel)
    for gid in ("square_impl", "test_cube"):  # a copied stub below the answer, a copied test
        copied = copy.deepcopy(rel.cells[index_of(rel, gid)])
        copied.id = f"copy-of-{gid}"
        dup.cells.insert(index_of(dup, gid) + 1, copied)
    dup2 = answer(rel, square=None)  # answer typed into a copy of the stub, original left as is
    i = index_of(dup2, "square_impl")
    copied = copy.deepcopy(dup2.cells[i])
    copied.source, copied.id = SQUARE, "copied-cell"
    dup2.cells.insert(i + 1, copied)
    reordered = answer(rel)
    a, b = index_of(reordered, "cube_impl"), index_of(reordered, "test_cube")
    block = reordered.cells[a:b + 1]
    del reordered.cells[a:b + 1]
    reordered.cells[1:1] = block
    noisy = answer(rel, square="import sys, warnings\ndef square(x):\n"
                               "    warnings.warn('squaring is deprecated')\n"
                               "    print('debug', x, file=sys.stderr)\n    return x * x")
    return {
        "full": (full, NOTEBOOK),
        "empty": (rel, NOTEBOOK),
        "partial": (answer(rel, cube=None), NOTEBOOK),
        "hiddenfail": (answer(rel, square="def square(x):\n    return abs(x) * 3"), NOTEBOOK),
        "noisy": (noisy, NOTEBOOK),
        "deleted": (deleted, NOTEBOOK),
        "dup": (dup, NOTEBOOK),
        "dup2": (dup2, NOTEBOOK),
        "reordered": (reordered, NOTEBOOK),
        "renamed": (full, "fixture (1).ipynb"),
        "asks": (answer(rel, square="name = input('your name? ')\n" + SQUARE), NOTEBOOK),
        "loops": (answer(rel, cube="while True:\n    pass\n" + CUBE), NOTEBOOK),
        "dies": (answer(rel, cube="import os\nos._exit(1)\n" + CUBE), NOTEBOOK),
        "stubborn": (answer(rel, cube="while True:\n    try:\n        while True:\n            pass\n"
                                      "    except KeyboardInterrupt:\n        pass\n" + CUBE), NOTEBOOK),
        "corrupt": ('{"cells": [ this is not json', NOTEBOOK),
    }


def write_class(root: Path, klass: dict) -> Path:
    for student, (nb, name) in klass.items():
        d = root / student / ASSIGNMENT
        d.mkdir(parents=True)
        if isinstance(nb, str):
            (d / name).write_text(nb)
        else:
            nbformat.write(nb, str(d / name))
    return root


def course_copy(tmp: Path) -> Path:
    dst = tmp / "course"
    shutil.copytree(FIXTURE, dst)
    return dst


def read_csv(path):
    with open(path, newline="") as f:
        return {(r["student"], r["assignment"]): r for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """The class graded once, even under pytest-xdist (`make test` runs -n 2): the first worker
    grades into a folder shared by all workers, under a file lock; the others reuse its result."""
    import fcntl

    base = tmp_path_factory.getbasetemp()
    shared = (base.parent if base.name.startswith("popen-gw") else base) / "grader-e2e-class"
    shared.mkdir(parents=True, exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        course, subs, out, saved = shared / "course", shared / "submitted", shared / "out", shared / "run.json"
        if not saved.exists():
            for p in (course, subs, out):
                shutil.rmtree(p, ignore_errors=True)
            course_copy(shared)
            write_class(subs, make_class())
            r = grader("autograde", subs, "--out", out, "--jobs", 2, "--timeout", 4, "--course", course)
            saved.write_text(json.dumps({"returncode": r.returncode, "stdout": r.stdout, "stderr": r.stderr}))
        run = json.loads(saved.read_text())
    r = subprocess.CompletedProcess([], run["returncode"], run["stdout"], run["stderr"])
    return {"course": course, "subs": subs, "out": out, "run": r, "rows": read_csv(out / "grades.csv"),
            "log": r.stdout}


def row(graded, student):
    return graded["rows"][(student, ASSIGNMENT)]


def line(graded, student):
    return next(ln for ln in graded["log"].splitlines() if ln.startswith(student + " "))


class TestAutograde:
    def test_run_reports_corrupt_and_throughput(self, graded):
        r = graded["run"]
        assert r.returncode == 1, r.stdout + r.stderr  # one submission could not be graded
        assert "corrupt" in line(graded, "corrupt") and "skipped" in line(graded, "corrupt")
        assert ("corrupt", ASSIGNMENT) not in graded["rows"]
        assert "submissions/minute" in r.stdout

    def test_columns(self, graded):
        with open(graded["out"] / "grades.csv", newline="") as f:
            header = next(csv.reader(f))
        assert header[:4] == ["student", "assignment", "score", "max_score"]
        assert header[-3:] == ["test_square", "test_cube", "q_parity"]
        assert "manual_score" in header

    @pytest.mark.parametrize("student, score", [
        ("full", 5), ("empty", 0), ("partial", 2), ("hiddenfail", 3), ("noisy", 5), ("deleted", 2),
        ("dup", 5), ("dup2", 5), ("reordered", 5), ("renamed", 5), ("asks", 3), ("loops", 2), ("dies", 2),
        ("stubborn", 2)])
    def test_scores(self, graded, student, score):
        r = row(graded, student)
        assert (float(r["score"]), float(r["max_score"])) == (score, 5), (r, line(graded, student))
        assert r["q_parity"] == "" and r["manual_score"] == "" and r["total_score"] == ""
        assert r["manual_max_score"] == "1"

    def test_full_log_line(self, graded):
        assert line(graded, "full") == f"full {ASSIGNMENT} 5/5 ok"

    def test_stderr_does_not_fail(self, graded):
        assert row(graded, "noisy")["test_square"] == "2"

    def test_deleted_test_restored_and_graded(self, graded):
        assert "restored deleted test_cube" in line(graded, "deleted")
        assert row(graded, "deleted")["test_cube"] == "0"

    def test_duplicates_and_reorder_noted(self, graded):
        assert "duplicate square_impl dropped" in line(graded, "dup")
        assert "duplicate square_impl dropped" in line(graded, "dup2")
        assert "cells reordered" in line(graded, "reordered")

    def test_renamed(self, graded):
        assert "renamed notebook fixture (1).ipynb graded as fixture.ipynb" in line(graded, "renamed")

    def test_outcomes(self, graded):
        assert "input() called in cell square_impl" in line(graded, "asks")
        assert "timeout in cell cube_impl" in line(graded, "loops")
        assert "kernel died in cell cube_impl" in line(graded, "dies")
        assert "timeout in cell cube_impl (kernel stopped)" in line(graded, "stubborn")

    def test_feedback_has_no_hidden_source(self, graded):
        fb = graded["out"] / "feedback"
        files = sorted(fb.glob(f"*/{ASSIGNMENT}/fixture.html"))
        assert len(files) == 14
        source = nbformat.read(FIXTURE / "solutions" / ASSIGNMENT / NOTEBOOK, as_version=4)
        secret = ["hidden: square of an array", "np.allclose(square(x)", "cube(-3)", "BEGIN HIDDEN", "return x * x * x"]
        for f in files:
            text = f.read_text()
            assert "hidden tests ran here" in text
            for s in secret[:4]:
                assert s not in text, (f, s)
        assert source is not None
        hf = (fb / "hiddenfail" / ASSIGNMENT / "fixture.html").read_text()
        assert "a hidden test failed" in hf
        assert "square(3) should be 9" in (fb / "empty" / ASSIGNMENT / "fixture.html").read_text() or \
               "not done yet" in (fb / "empty" / ASSIGNMENT / "fixture.html").read_text()

    def test_export_matches_grades_csv(self, graded, tmp_path):
        r = grader("export", "--gradebook", graded["out"], "--out", tmp_path / "e.csv", "--course", graded["course"])
        assert r.returncode == 0, r.stderr
        assert (tmp_path / "e.csv").read_text() == (graded["out"] / "grades.csv").read_text()

    def test_gradebook(self, graded):
        sys.path.insert(0, str(REPO))
        from nbgrader.api import Gradebook

        gb = Gradebook("sqlite:///" + str(graded["out"] / "gradebook.db"))
        try:
            assert gb.find_submission(ASSIGNMENT, "full").score == 5
            assert gb.find_submission(ASSIGNMENT, "full").needs_manual_grade
        finally:
            gb.close()

    def test_rerun_skips_then_force_regrades(self, graded, tmp_path):
        out = tmp_path / "out"  # a copy: the shared result stays as it was for the other tests
        shutil.copytree(graded["out"], out)
        r = grader("autograde", graded["subs"], "--out", out, "--course", graded["course"])
        assert "14 submission(s) already graded" in r.stdout, r.stdout + r.stderr
        assert "graded 0 submission(s)" in r.stdout
        one = tmp_path / "one"
        shutil.copytree(graded["subs"] / "full", one / "full")
        r = grader("autograde", one, "--out", out, "--course", graded["course"], "--force", "--jobs", 1)
        assert "graded 1 submission(s)" in r.stdout, r.stdout + r.stderr
        rows = read_csv(out / "grades.csv")
        assert rows[("full", ASSIGNMENT)]["score"] == "5" and len(rows) == 14


def test_lms_zip(tmp_path):
    course = course_copy(tmp_path)
    klass = make_class()
    z = tmp_path / "download.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.writestr("carol_1234_5678_fixture.ipynb", nbformat.writes(klass["full"][0]))
        zf.writestr("dave_late_99_fixture.ipynb", nbformat.writes(klass["empty"][0]))
        zf.writestr("dave_late_99_fixture-2.ipynb", nbformat.writes(klass["partial"][0]))
        zf.writestr("readme.txt", "not a notebook")
    out = tmp_path / "out"
    r = grader("autograde", z, "--out", out, "--jobs", 2, "--course", course)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = read_csv(out / "grades.csv")
    assert rows[("carol", ASSIGNMENT)]["score"] == "5"
    assert rows[("dave", ASSIGNMENT)]["score"] == "2"  # the re-submission -2 wins
    assert "graded dave_late_99_fixture-2.ipynb" in r.stdout
    assert json.loads((out / "results" / "carol" / f"{ASSIGNMENT}.json").read_text())["student"] == "carol"


# Every course notebook (each costs three kernels of about half a minute).
REAL_ASSIGNMENTS = sorted(p.name for p in (REPO / "solutions").glob("*") if p.is_dir() and any(p.glob("*.ipynb")))


@pytest.mark.notebooks
@pytest.mark.parametrize("assignment", REAL_ASSIGNMENTS or [pytest.param(None, marks=pytest.mark.skip("no course notebook yet"))])
def test_course_assignment_end_to_end(assignment, tmp_path):
    """The real notebook: the solution earns every autograded point; the solution with its first
    exercise left as the stub earns some but not all; the release with all its test cells deleted gets
    them back, hidden tests included, and earns nothing."""
    subs = tmp_path / "subs"
    release(Course.at(REPO), [assignment], dest=tmp_path / "release", log=lambda *a: None)  # notebooks/ may hold work
    for src in sorted((REPO / "solutions" / assignment).glob("*.ipynb")):
        rel = nbformat.read(tmp_path / "release" / assignment / src.name, as_version=4)
        gutted = copy.deepcopy(rel)
        gutted.cells = [c for c in gutted.cells if not c.metadata.get("nbgrader", {}).get("grade")
                        or c.metadata["nbgrader"].get("solution")]
        solution = nbformat.read(src, as_version=4)
        partial = copy.deepcopy(solution)
        stubs = {c.metadata["nbgrader"]["grade_id"]: c.source for c in rel.cells
                 if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}
        first = next(c for c in partial.cells if c.metadata.get("nbgrader", {}).get("grade_id") in stubs)
        first.source = stubs[first.metadata["nbgrader"]["grade_id"]]
        for student, nb in (("solution", solution), ("partial", partial), ("gutted", gutted)):
            (subs / student / assignment).mkdir(parents=True, exist_ok=True)
            nbformat.write(nb, str(subs / student / assignment / src.name))
    out = tmp_path / "out"
    r = grader("autograde", subs, "--out", out, "--jobs", 2)
    assert r.returncode == 0, r.stdout + r.stderr
    rows = read_csv(out / "grades.csv")
    full = rows[("solution", assignment)]
    assert float(full["score"]) == float(full["max_score"]) > 0, r.stdout
    assert 0 < float(rows[("partial", assignment)]["score"]) < float(full["score"]), r.stdout
    assert float(rows[("gutted", assignment)]["score"]) == 0, r.stdout
    assert "restored deleted" in next(ln for ln in r.stdout.splitlines() if ln.startswith("gutted "))


def test_same_name_students_in_a_canvas_download_are_both_graded(tmp_path):
    """Two Canvas students called smithjohn (user ids 33333 and 44444): two grades, none lost."""
    klass = make_class()
    subs = tmp_path / "canvas"
    subs.mkdir()
    nbformat.write(klass["full"][0], str(subs / "smithjohn_33333_3_fixture.ipynb"))
    nbformat.write(klass["empty"][0], str(subs / "smithjohn_44444_4_fixture.ipynb"))
    out = tmp_path / "out"
    r = grader("autograde", subs, "--out", out, "--course", FIXTURE, "--jobs", "2")
    assert r.returncode == 0, r.stdout + r.stderr
    with open(out / "grades.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    assert {k: rows[k]["score"] for k in rows} == {"smithjohn-33333": "5", "smithjohn-44444": "0"}, r.stdout
    assert "2 students are called smithjohn" in r.stdout


def test_ambiguous_files_and_the_course_folder_stop_autograde(tmp_path):
    klass = make_class()
    subs = tmp_path / "twice"
    (subs / "alice" / ASSIGNMENT).mkdir(parents=True)
    nbformat.write(klass["full"][0], str(subs / "alice" / ASSIGNMENT / NOTEBOOK))
    nbformat.write(klass["empty"][0], str(subs / "alice_7_fixture.ipynb"))
    r = grader("autograde", subs, "--out", tmp_path / "out", "--course", FIXTURE)
    assert r.returncode == 2 and "Nothing was graded" in r.stderr, r.stdout + r.stderr
    r = grader("autograde", FIXTURE / "notebooks", "--out", tmp_path / "out2", "--course", FIXTURE)
    assert r.returncode == 2 and "Accepted layouts" in r.stderr and "weight" not in r.stdout


def test_a_roster_names_the_students(tmp_path):
    """With --roster, Canvas's user ids become the roster's student ids, and export --format canvas has them."""
    klass = make_class()
    subs = tmp_path / "canvas"
    subs.mkdir()
    nbformat.write(klass["full"][0], str(subs / "smithjohn_33333_3_fixture.ipynb"))
    nbformat.write(klass["empty"][0], str(subs / "smithjohn_44444_4_fixture.ipynb"))
    roster = tmp_path / "roster.csv"
    roster.write_text("student_id,name,email,lms_id\ns001,John Smith,j1@example.edu,33333\n"
                      "s002,John Smith,j2@example.edu,44444\n")
    out = tmp_path / "out"
    r = grader("autograde", subs, "--out", out, "--course", FIXTURE, "--roster", roster)
    assert r.returncode == 0, r.stdout + r.stderr
    with open(out / "grades.csv", newline="") as f:
        assert {row["student"]: row["score"] for row in csv.DictReader(f)} == {"s001": "5", "s002": "0"}
    r = grader("export", "--gradebook", out, "--out", tmp_path / "canvas.csv", "--format", "canvas",
               "--roster", roster, "--course", FIXTURE)
    assert r.returncode == 0, r.stderr
    with open(tmp_path / "canvas.csv", newline="") as f:
        table = list(csv.reader(f))
    assert table[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert {(row[1], row[2]) for row in table[1:]} == {("33333", "s001"), ("44444", "s002")}
