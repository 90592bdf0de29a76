"""The grading pipeline, piece by piece: release, leaks, staleness, repair, submissions, check, validate.

The fixture course (tests/fixtures/course) is small and fast; the real course (solutions/, notebooks/)
is checked too, and those tests skip cleanly while it has no notebook yet.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from grader import cells as C
from grader.check import check, format_table
from grader.cli import build_parser
from grader.course import Course, read_notebook
from grader.release import WorkWouldBeLost, differences, holds_answers, normalise, release
from grader.repair import repair, without_hidden
from grader.scoring import CellScore, failing_line, failure_message
from grader.submissions import discover, lms_pattern
from grader.validate import leaks, validate

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "course"
REAL = Course.at(REPO)
REAL_ASSIGNMENTS = REAL.assignments()

pytestmark = pytest.mark.grading


def fixture_source():
    return read_notebook(FIXTURE / "solutions" / "00_fixture" / "fixture.ipynb")


def fixture_release():
    return read_notebook(FIXTURE / "notebooks" / "00_fixture" / "fixture.ipynb")


def ids(nb):
    return [C.grade_id(c) for c in nb.cells if C.grade_id(c)]


def cell(nb, gid):
    return next(c for c in nb.cells if C.grade_id(c) == gid)


# ---------------------------------------------------------------- command line

@pytest.mark.parametrize("command", ["release", "validate", "check", "autograde", "export"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args([command, "--help"])
    assert e.value.code == 0
    assert "--course" in capsys.readouterr().out


def test_autograde_jobs_default_to_cores():
    import os

    args = build_parser().parse_args(["autograde", "subs", "--out", "o"])
    assert args.jobs == os.cpu_count() and not args.force


def test_grader_never_imports_nnlab():
    for f in (REPO / "grader").glob("*.py"):
        text = f.read_text()
        assert "import nnlab" not in text and "from nnlab" not in text, f


# ---------------------------------------------------------------- release

@pytest.fixture(scope="module")
def fixture_released_twice(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rel")
    course = tmp / "course"
    shutil.copytree(FIXTURE, course)
    shutil.rmtree(course / "notebooks")
    path = course / "notebooks" / "00_fixture" / "fixture.ipynb"
    release(Course.at(course), log=lambda *a: None)
    first = path.read_bytes()
    release(Course.at(course), ["00_fixture"], log=lambda *a: None)
    return first, path.read_bytes(), course


def test_release_is_deterministic(fixture_released_twice):
    first, second, _ = fixture_released_twice
    assert first == second


def test_fixture_release_is_not_stale(fixture_released_twice):
    first, _, _ = fixture_released_twice
    diff = differences(nbformat.reads(first.decode(), as_version=4), fixture_release())
    assert not diff, ("tests/fixtures/course/notebooks is stale: run python -m grader release --course "
                      "tests/fixtures/course\n" + "\n".join(diff))


def test_release_is_clean():
    text = (FIXTURE / "notebooks" / "00_fixture" / "fixture.ipynb").read_text()
    nb = fixture_release()
    assert text.endswith("}\n") and nb.nbformat_minor == 5
    assert all(c.outputs == [] and c.execution_count is None for c in nb.cells if c.cell_type == "code")
    assert set(nb.metadata) == {"kernelspec", "language_info"}
    assert C.points(cell(nb, "test_cube")) == 3 and C.is_locked(cell(nb, "test_cube"))
    assert "raise NotImplementedError" in C.source(cell(nb, "square_impl"))
    assert C.source(cell(nb, "q_parity")) == "YOUR ANSWER HERE"
    assert normalise(nb) == text


def test_normalise_drops_volatile_metadata():
    nb = fixture_release()
    nb.metadata["widgets"] = {"x": 1}
    nb.cells[1].metadata["collapsed"] = True
    nb.cells[1].execution_count = 7
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hi")]
    assert normalise(nb) == normalise(fixture_release())


def test_fixture_release_does_not_leak():
    assert leaks(fixture_source(), fixture_release()) == []


def test_leak_detector_can_fail():
    rel = fixture_release()
    cell(rel, "square_impl").source = "def square(x):\n    return x * x  # ok"
    cell(rel, "test_cube").source += "\nassert cube(-3) == -27, \"hidden: cube of a negative number\""
    found = leaks(fixture_source(), rel)
    assert any("cube(-3)" in f for f in found)


@pytest.fixture(scope="module")
def real_fresh_release(tmp_path_factory):
    if not REAL_ASSIGNMENTS or not REAL.source_dir.is_dir():
        pytest.skip("solutions/ has no assignment yet")
    dest = tmp_path_factory.mktemp("real-release")
    release(REAL, dest=dest, log=lambda *a: None)
    return dest


@pytest.mark.parametrize("assignment", REAL_ASSIGNMENTS or [pytest.param(None, marks=pytest.mark.skip("no assignment yet"))])
def test_notebooks_are_not_stale(assignment, real_fresh_release):
    for src in REAL.source_notebooks(assignment):
        committed = REAL.release_notebook(assignment, src.name)
        assert committed.is_file(), f"{committed} missing: run `python -m grader release {assignment}`"
        fresh = real_fresh_release / assignment / src.name
        if holds_answers(committed, fresh):  # someone is working in this checkout: their work is not a stale release
            pytest.skip(f"{committed} holds answers (your work), so it is not compared with a fresh release")
        diff = differences(read_notebook(committed), read_notebook(fresh))
        assert not diff, (f"{committed} is stale: run `python -m grader release {assignment}` and commit "
                          f"notebooks/\n" + "\n".join(diff))


RELEASED = sorted(REAL.release_dir.glob("*/*.ipynb")) if REAL.release_dir.is_dir() else []


@pytest.mark.parametrize("path", RELEASED or [pytest.param(None, marks=pytest.mark.skip("notebooks/ is empty"))],
                         ids=lambda p: str(p.relative_to(REAL.release_dir)) if p else "none")
def test_released_notebooks_do_not_leak(path, real_fresh_release):
    if not REAL.source_dir.is_dir():
        pytest.skip("no solutions/ here (a student copy of the course)")
    if holds_answers(path, real_fresh_release / path.parent.name / path.name):
        pytest.skip(f"{path} holds answers (your work): the leak check applies to releases only")
    text = path.read_text()
    for marker in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS"):
        assert marker not in text, f"{path} contains {marker!r}"
    src = REAL.source_dir / path.parent.name / path.name
    assert src.is_file(), f"{path} has no source in solutions/: delete it or restore its source"
    assert leaks(read_notebook(src), read_notebook(path)) == []


# ---------------------------------------------------------------- repair

def test_repair_restores_deleted_test_with_hidden_part():
    student = fixture_release()
    del student.cells[student.cells.index(cell(student, "test_cube"))]
    nb, notes = repair(student, fixture_source())
    assert ids(nb) == ids(fixture_source())
    assert "restored deleted test_cube" in notes
    assert "BEGIN HIDDEN TESTS" in C.source(cell(nb, "test_cube"))
    assert "raise NotImplementedError" in C.source(cell(nb, "cube_impl"))  # the student's, not the solution


def test_repair_restores_edited_test_and_keeps_answers():
    student = fixture_release()
    cell(student, "test_square").source = "pass"
    cell(student, "square_impl").source = "def square(x):\n    return x ** 2"
    nb, notes = repair(student, fixture_source())
    assert C.source(cell(nb, "test_square")) == C.source(cell(fixture_source(), "test_square"))
    assert C.source(cell(nb, "square_impl")) == "def square(x):\n    return x ** 2"
    assert notes == []


def test_repair_duplicate_keeps_the_edited_copy():
    student = fixture_release()
    i = student.cells.index(cell(student, "square_impl"))
    answer = copy.deepcopy(student.cells[i])
    answer.source, answer.id = "def square(x):\n    return x * x", "copy"
    student.cells.insert(i + 1, answer)
    nb, notes = repair(student, fixture_source())
    assert ids(nb) == ids(fixture_source())
    assert C.source(cell(nb, "square_impl")) == answer.source
    assert "duplicate square_impl dropped" in notes


def test_repair_reorders_and_keeps_added_cells_with_their_neighbour():
    student = fixture_release()
    extra = new_code_cell("helper = 1")
    i = student.cells.index(cell(student, "cube_impl"))
    student.cells.insert(i + 1, extra)
    block = student.cells[i:i + 3]  # cube_impl, the student's helper, test_cube
    del student.cells[i:i + 3]
    student.cells[0:0] = block
    nb, notes = repair(student, fixture_source())
    assert ids(nb) == ids(fixture_source())
    assert "cells reordered" in notes
    srcs = [C.source(c) for c in nb.cells]
    assert srcs.index("helper = 1") == nb.cells.index(cell(nb, "cube_impl")) + 1
    assert len({c.id for c in nb.cells}) == len(nb.cells)


def test_repair_unknown_grade_id_becomes_plain():
    student = fixture_release()
    odd = new_markdown_cell("mine")
    odd.metadata["nbgrader"] = {"grade": True, "grade_id": "not_ours", "points": 99, "solution": False}
    student.cells.append(odd)
    nb, notes = repair(student, fixture_source())
    assert "not_ours" not in ids(nb) and any(C.source(c) == "mine" for c in nb.cells)


def test_without_hidden():
    nb = without_hidden(fixture_source())
    text = "\n".join(C.source(c) for c in nb.cells)
    assert "HIDDEN" not in text and "cube(-3)" not in text and "assert cube(2) == 8" in text


# ---------------------------------------------------------------- scoring details

def test_failing_line_and_message():
    tb = ["\x1b[0;31m---------------------------------------------------------------------------\x1b[0m",
          "\x1b[0;31mAssertionError\x1b[0m                            Traceback (most recent call last)",
          "Cell \x1b[0;32mIn[5], line 4\x1b[0m\n\x1b[1;32m      2\x1b[0m x = 1\n\x1b[0;32m----> 4\x1b[0m \x1b[38;5;28;01massert\x1b[39;00m cube(\x1b[38;5;241m-\x1b[39m\x1b[38;5;241m3\x1b[39m)",
          "\x1b[0;31mAssertionError\x1b[0m: hidden: cube"]
    err = {"ename": "AssertionError", "evalue": "square(3) should be 9, got 6\nmore detail", "traceback": tb}
    assert failing_line(err) == 4
    assert failure_message(err) == "AssertionError: square(3) should be 9, got 6"
    assert "input()" in failure_message({"ename": "StdinNotImplementedError", "evalue": "raw_input was called"})


def test_check_table_format():
    scores = [CellScore("test_a", "auto", 2, 2, True), CellScore("test_b", "auto", 0, 3, False, "AssertionError: b"),
              CellScore("q_c", "manual", None, 1, None)]
    table = format_table(scores)
    assert "test_a" in table and "passed" in table and "FAILED  AssertionError: b" in table
    assert "graded by hand" in table and "2/5 points" in table


# ---------------------------------------------------------------- submissions

def test_lms_pattern():
    p = lms_pattern("weight_init")
    assert p.match("alice_12345_678_weight_init.ipynb").group("student") == "alice"
    assert p.match("bob_late_1_weight_init-2.ipynb").group("n") == "2"
    assert p.match("carol_weight_init (3).ipynb").group("p") == "3"
    assert not p.match("dave_12_init.ipynb")
    assert not p.match("weight_init.ipynb".replace("_", "-"))


def test_discover_layouts(tmp_path):
    rel = (FIXTURE / "notebooks" / "00_fixture" / "fixture.ipynb").read_text()
    for rel_path in ["alice/00_fixture/fixture.ipynb", "bob/00_fixture/Copy of fixture.ipynb",
                     "carol_99_fixture.ipynb", "dave_99_my_answers.ipynb", "junk.ipynb"]:
        (tmp_path / rel_path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel_path).write_text(rel)
    subs, problems = discover(Course.at(FIXTURE), tmp_path)
    got = {(s.student, s.assignment): list(s.notebooks) for s in subs}
    assert got == {(n, "00_fixture"): ["fixture.ipynb"] for n in ("alice", "bob", "carol", "dave")}
    assert any("junk.ipynb" in p for p in problems)
    assert any("renamed" in n for s in subs if s.student == "bob" for n in s.notes)


# ---------------------------------------------------------------- check and validate (run kernels)

@pytest.mark.slow
def test_check_solution_passes(capsys):
    code = check(FIXTURE / "solutions" / "00_fixture" / "fixture.ipynb", Course.at(FIXTURE), timeout=60)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "test_square" in out and "5/5 points" in out and "hidden" not in out.split("points")[0]


@pytest.mark.slow
def test_check_release_fails_and_hides_hidden_tests(tmp_path, capsys):
    nb = fixture_release()
    cell(nb, "square_impl").source = "def square(x):\n    return abs(x) * 3"  # fails only the hidden test
    path = tmp_path / "00_fixture" / "fixture.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, str(path))
    code = check(path, Course.at(FIXTURE), timeout=60)
    out = capsys.readouterr().out
    assert code == 1
    rows = {ln.split()[0]: ln for ln in out.splitlines() if ln.startswith("test_")}
    assert "passed" in rows["test_square"]  # hidden tests are not run
    assert "FAILED" in rows["test_cube"] and "NotImplementedError" in rows["test_cube"]
    assert "2/5 points" in out and "cube(-3)" not in out


def test_release_never_overwrites_answers(fixture_released_twice):
    *_, course = fixture_released_twice
    path = course / "notebooks" / "00_fixture" / "fixture.ipynb"
    nb = read_notebook(path)
    cell(nb, "square_impl").source = "def square(x):\n    return x * x"
    nbformat.write(nb, str(path))
    work = path.read_bytes()
    with pytest.raises(WorkWouldBeLost, match="hold answers"):
        release(Course.at(course), ["00_fixture"], log=lambda *a: None)
    assert path.read_bytes() == work, "a refused release must leave the student's work as it was"
    release(Course.at(course), ["00_fixture"], log=lambda *a: None, force=True)
    assert path.read_bytes() != work


@pytest.mark.slow
def test_check_takes_tests_from_the_source_not_the_students_copy(tmp_path, capsys):
    course = tmp_path / "course"
    shutil.copytree(FIXTURE, course)
    path = course / "notebooks" / "00_fixture" / "fixture.ipynb"
    nb = read_notebook(path)
    cell(nb, "test_cube").source = "print('skipped')"  # an edited (and maybe committed) test cell
    nbformat.write(nb, str(path))
    assert check(path, Course.at(course), timeout=60) == 1
    rows = {ln.split()[0]: ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("test_")}
    assert "FAILED" in rows["test_cube"], "the instructor's test cell must be put back"


@pytest.mark.slow
def test_validate_fixture():
    lines = []
    assert validate(Course.at(FIXTURE), timeout=60, log=lines.append) == 0, lines


@pytest.mark.slow
def test_validate_catches_a_test_that_cannot_fail(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(FIXTURE, course)
    src = course / "solutions" / "00_fixture" / "fixture.ipynb"
    nb = read_notebook(src)
    weak = new_code_cell("assert True")
    weak.metadata["nbgrader"] = {"grade": True, "grade_id": "test_weak", "locked": True, "points": 1,
                                 "schema_version": 3, "solution": False, "task": False}
    nb.cells.append(weak)
    nbformat.write(nb, str(src))
    lines = []
    assert validate(Course.at(course), timeout=60, log=lines.append) == 1
    assert any("test_weak passes on the untouched stub" in ln for ln in lines), lines


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("assignment", REAL_ASSIGNMENTS or [pytest.param(None, marks=pytest.mark.skip("no assignment yet"))])
def test_validate_course(assignment):
    lines = []
    n = validate(REAL, [assignment], log=lines.append)
    assert n == 0, "\n".join(lines)
