"""Who is who in an LMS download (Canvas, Moodle, a roster), and grades in the CSV formats LMS gradebooks import.

Fast: no kernel runs here. The fixture course has one notebook, fixture.ipynb.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
from pathlib import Path

import pytest

from grader.cli import build_parser, main
from grader.course import Course
from grader.lms import Roster, RosterError, lms_table
from grader.submissions import LAYOUTS, SubmissionsError, discover

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "course"
RELEASED = (FIXTURE / "notebooks" / "00_fixture" / "fixture.ipynb").read_text()

pytestmark = pytest.mark.grading


def folder(tmp_path, names, text=RELEASED):
    root = tmp_path / "subs"
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        (root / n).write_text(text)
    return root


def found(subs):
    return {s.student: {n: p.name for n, p in s.notebooks.items()} for s in subs}


ROSTER = """student_id,name,email,lms_id,section
s001,John Smith,jsmith@example.edu,33333,A
s002,John Smith,john.smith@example.edu,44444,B
s003,Grace Hopper,grace@example.edu,66666,A
s004,Frank Ocean,frank@example.edu,55555,B
"""


@pytest.fixture
def roster(tmp_path):
    p = tmp_path / "roster.csv"
    p.write_text(ROSTER)
    return p


# ---------------------------------------------------------------- item 1: never merge two students

def test_two_students_with_one_name_are_two_students(tmp_path):
    root = folder(tmp_path, ["smithjohn_33333_3_fixture.ipynb", "smithjohn_44444_4_fixture.ipynb"])
    subs, problems = discover(Course.at(FIXTURE), root)
    assert found(subs) == {"smithjohn-33333": {"fixture.ipynb": "smithjohn_33333_3_fixture.ipynb"},
                           "smithjohn-44444": {"fixture.ipynb": "smithjohn_44444_4_fixture.ipynb"}}
    assert {s.lms_id for s in subs} == {"33333", "44444"}
    assert any("2 students are called smithjohn" in p and "--roster" in p for p in problems), problems


def test_a_unique_canvas_name_keeps_the_name(tmp_path):
    subs, _ = discover(Course.at(FIXTURE), folder(tmp_path, ["carol_1234_5678_fixture.ipynb"]))
    assert found(subs) == {"carol": {"fixture.ipynb": "carol_1234_5678_fixture.ipynb"}}
    assert subs[0].lms_id == "1234"


def test_canvas_and_moodle_formats_with_a_roster(tmp_path, roster):
    root = folder(tmp_path, [
        "smithjohn_33333_3_fixture.ipynb",                                  # Canvas
        "smithjohn_44444_4_fixture-1.ipynb",                                # Canvas re-submission copy
        "oceanfrank_LATE_55555_9_fixture.ipynb",                            # Canvas, late
        "Grace Hopper_66666_assignsubmission_file_/fixture.ipynb",          # Moodle, in folders
    ])
    subs, problems = discover(Course.at(FIXTURE), root, roster=roster)
    assert sorted(found(subs)) == ["s001", "s002", "s003", "s004"], (found(subs), problems)
    assert found(subs)["s002"] == {"fixture.ipynb": "smithjohn_44444_4_fixture-1.ipynb"}
    assert problems == []


def test_moodle_flat_with_a_roster(tmp_path, roster):
    root = folder(tmp_path, ["Grace Hopper_66666_assignsubmission_file_fixture.ipynb"])
    subs, problems = discover(Course.at(FIXTURE), root, roster=Roster.read(roster))
    assert found(subs) == {"s003": {"fixture.ipynb": "Grace Hopper_66666_assignsubmission_file_fixture.ipynb"}}


def test_two_files_for_one_student_and_notebook_stop_the_run(tmp_path):
    root = folder(tmp_path, ["alice/00_fixture/fixture.ipynb", "alice_12_fixture.ipynb"])
    with pytest.raises(SubmissionsError, match="2 files for fixture.ipynb.*Nothing was graded"):
        discover(Course.at(FIXTURE), root)


def test_a_roster_that_maps_two_files_to_one_student_stops_the_run(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("student_id,name,email,lms_id\ns001,John Smith,j@example.edu,33333\n"
                 "s001x,Jon Smith,x@example.edu,1\n")
    root = folder(tmp_path, ["smithjohn_33333_3_fixture.ipynb", "s001_7_fixture.ipynb"])
    with pytest.raises(SubmissionsError, match="s001 00_fixture: 2 files for fixture.ipynb come from different people"):
        discover(Course.at(FIXTURE), root, roster=p)


def test_resubmissions_still_pick_the_latest(tmp_path):
    root = folder(tmp_path, ["dave_late_99_fixture.ipynb", "dave_late_99_fixture-2.ipynb"])
    subs, problems = discover(Course.at(FIXTURE), root)
    assert found(subs) == {"dave": {"fixture.ipynb": "dave_late_99_fixture-2.ipynb"}}
    assert any("graded dave_late_99_fixture-2.ipynb" in p for p in problems)


def test_a_student_missing_from_the_roster_is_reported(tmp_path, roster):
    root = folder(tmp_path, ["nobody_77777_1_fixture.ipynb"])
    subs, problems = discover(Course.at(FIXTURE), root, roster=roster)
    assert found(subs) == {"nobody-77777": {"fixture.ipynb": "nobody_77777_1_fixture.ipynb"}}
    assert any("not in the roster" in p for p in problems)


def test_the_course_folder_is_not_a_submissions_folder(tmp_path):
    root = tmp_path / "notebooks"
    (root / "00_fixture").mkdir(parents=True)
    (root / "00_fixture" / "fixture.ipynb").write_text(RELEASED)
    with pytest.raises(SubmissionsError) as e:
        discover(Course.at(FIXTURE), root)
    assert "not students' submissions" in str(e.value) and LAYOUTS in str(e.value)


def test_the_real_release_is_refused_and_invents_no_student():
    real = Course.at(REPO)
    if not real.assignments():
        pytest.skip("no assignment yet")
    with pytest.raises(SubmissionsError, match="Accepted layouts"):
        discover(real, real.release_dir)


def test_cli_autograde_refuses_a_non_layout_folder(tmp_path, capsys):
    root = tmp_path / "n" / "00_fixture"
    root.mkdir(parents=True)
    (root / "fixture.ipynb").write_text(RELEASED)
    code = main(["autograde", str(tmp_path / "n"), "--out", str(tmp_path / "out"), "--course", str(FIXTURE)])
    err = capsys.readouterr().err
    assert code == 2 and "Accepted layouts" in err
    assert not (tmp_path / "out" / "gradebook.db").exists()


def test_roster_errors(tmp_path):
    p = tmp_path / "r.csv"
    p.write_text("name,email\nA,a@x\n")
    with pytest.raises(RosterError, match="no student id column"):
        Roster.read(p)
    p.write_text("student_id,lms_id\na,1\nb,1\n")
    with pytest.raises(RosterError, match="LMS id '1' appears twice"):
        Roster.read(p)


def test_autograde_and_export_accept_a_roster():
    args = build_parser().parse_args(["autograde", "subs", "--out", "o", "--roster", "r.csv"])
    assert args.roster == Path("r.csv")
    args = build_parser().parse_args(["export", "--out", "x.csv", "--format", "canvas", "--roster", "r.csv"])
    assert args.format == "canvas"


# ---------------------------------------------------------------- item 4: grades an LMS can import

def scores(square, cube):
    return {"fixture.ipynb": [{"grade_id": "test_square", "kind": "auto", "points": square},
                              {"grade_id": "test_cube", "kind": "auto", "points": cube},
                              {"grade_id": "q_parity", "kind": "manual", "points": None}]}


@pytest.fixture(scope="module")
def gradebook_dir(tmp_path_factory):
    """A gradebook of the fixture course: s001 hand-graded (2+3+1), s002 not yet (2+0+?), s003 unknown to the roster."""
    from grader.gradebook import ensure_assignments, open_gradebook, record

    out = tmp_path_factory.mktemp("gb")
    ensure_assignments(Course.at(FIXTURE), out, {"00_fixture"}, log=lambda *a: None)
    gb = open_gradebook(out)
    record(gb, "s001", "00_fixture", scores(2, 3))
    record(gb, "s002", "00_fixture", scores(2, 0))
    record(gb, "smithjohn-77777", "00_fixture", scores(0, 0))
    g = gb.find_grade("q_parity", "fixture", "00_fixture", "s001")
    g.manual_score = 1
    gb.db.commit()
    gb.close()
    return out


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.reader(f))


def test_export_canvas(gradebook_dir, roster, tmp_path, capsys):
    out = tmp_path / "canvas.csv"
    assert main(["export", "--gradebook", str(gradebook_dir), "--out", str(out), "--format", "canvas",
                 "--roster", str(roster), "--course", str(FIXTURE)]) == 0
    table = read_csv(out)
    assert table[0] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section", "00_fixture"]
    rows = {r[2]: r for r in table[1:]}
    assert rows["s001"] == ["John Smith", "33333", "s001", "jsmith@example.edu", "A", "6"]
    assert rows["s002"] == ["John Smith", "44444", "s002", "john.smith@example.edu", "B", ""]
    printed = capsys.readouterr().out
    assert "s002 00_fixture: hand-grading not finished, grade left blank" in printed
    assert "smithjohn-77777: not in the roster" in printed
    assert "s003 (Grace Hopper): in the roster, no submission graded" in printed


def test_export_moodle(gradebook_dir, roster, tmp_path):
    out = tmp_path / "moodle.csv"
    assert main(["export", "--gradebook", str(gradebook_dir), "--out", str(out), "--format", "moodle",
                 "--roster", str(roster), "--course", str(FIXTURE)]) == 0
    table = read_csv(out)
    assert table[0] == ["ID number", "Email address", "Full name", "00_fixture"]
    assert ["s001", "jsmith@example.edu", "John Smith", "6"] in table


def test_export_default_format_is_unchanged(gradebook_dir, tmp_path):
    out = tmp_path / "grades.csv"
    assert main(["export", "--gradebook", str(gradebook_dir), "--out", str(out), "--course", str(FIXTURE)]) == 0
    table = read_csv(out)
    assert table[0] == ["student", "assignment", "score", "max_score", "manual_score", "manual_max_score",
                        "total_score", "total_max_score", "test_square", "test_cube", "q_parity"]
    assert ["s001", "00_fixture", "5", "5", "1", "1", "6", "6", "2", "3", "1"] in table


def test_export_lms_format_needs_a_roster(gradebook_dir, tmp_path, capsys):
    assert main(["export", "--gradebook", str(gradebook_dir), "--out", str(tmp_path / "x.csv"),
                 "--format", "canvas", "--course", str(FIXTURE)]) == 2
    assert "needs --roster" in capsys.readouterr().err


def test_a_bad_roster_stops_autograde(tmp_path, capsys):
    root = folder(tmp_path, ["carol_1234_5678_fixture.ipynb"])
    bad = tmp_path / "bad.csv"
    bad.write_text("name\nCarol\n")
    with pytest.raises(SubmissionsError, match="no student id column"):
        discover(Course.at(FIXTURE), root, roster=bad)
    code = main(["autograde", str(root), "--out", str(tmp_path / "out"), "--roster", str(bad),
                 "--course", str(FIXTURE)])
    assert code == 2 and "no student id column" in capsys.readouterr().err
