"""The student's feedback and self-check: what a failure teaches, math that renders offline, test cells
that cannot be edited into passing, --hidden for self-learners, and the wrong notebook refused.

Fast tests need no kernel; the ones marked slow run the fixture notebook (a few seconds each).
"""

from __future__ import annotations

import copy
import re
from dataclasses import replace
import shutil
import subprocess
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from grader import cells as C
from grader.check import (check, edited_locked_cells, nbgrader_checksum, next_steps, verify_locked,
                          wrong_notebook)
from grader.cli import build_parser
from grader.course import Course, read_notebook
from grader.feedback import feedback_notebook, find_math, math_html, render_html, verdict
from grader.scoring import CellScore, failure_kind, score_cell

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "course"
REAL = Course.at(REPO)
RELEASED = sorted(p for p in (REPO / "notebooks").glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)

pytestmark = pytest.mark.grading


def fixture_release():
    return read_notebook(FIXTURE / "notebooks" / "00_fixture" / "fixture.ipynb")


def table_rows(out: str) -> dict:
    """grade id -> its row in check's table (not the detail paragraphs below it)."""
    rows = {}
    for ln in out.splitlines():
        if ln.startswith("test_") and not ln.rstrip().endswith(":"):
            rows.setdefault(ln.split()[0], ln)
    return rows


def cell(nb, gid):
    return next(c for c in nb.cells if C.grade_id(c) == gid)


def students_copy(tmp_path: Path, git: bool = False) -> Path:
    """The fixture course as a graded class gets it: notebooks/ only, no solutions/."""
    root = tmp_path / "students"
    shutil.copytree(FIXTURE / "notebooks", root / "notebooks")
    if git:
        run = lambda *a: subprocess.run(["git", "-C", str(root), *a], check=True, capture_output=True)  # noqa: E731
        run("init", "-q")
        run("add", ".")
        run("-c", "user.name=course", "-c", "user.email=course@example.org", "commit", "-qm", "release")
    return root


def error_from(fn, *args, **kwargs) -> dict:
    """The error output a failing nnlab.checks call leaves in a test cell."""
    try:
        fn(*args, **kwargs)
    except AssertionError as e:
        return {"output_type": "error", "ename": "AssertionError", "evalue": str(e),
                "traceback": ["Cell In[1], line 3", f"AssertionError: {e}"]}
    raise AssertionError("the check passed")


# ---------------------------------------------------------------- item 5: what a failure says

def test_failure_kind_names_each_nnlab_check_without_quoting_it():
    from nnlab import checks
    from nnlab.activations import sigmoid_forward

    secret = "x_secret_input"
    x = np.ones((2, 3), np.float32)
    cases = {
        "your function called nnlab's own implementation":
            error_from(checks.forbid_calls, lambda v: sigmoid_forward(v), x),
        "wrong dtype": error_from(checks.assert_dtype, x.astype(np.float64), np.float32, name=secret),
        "wrong shape": error_from(checks.assert_shape, x, (3, 2), name=secret),
        "wrong values on a random input": error_from(checks.assert_close, x, x + 1, name=secret,
                                                     mistakes={"a known slip": x + 1}, hint="a secret hint"),
        "returned None (a missing return?)": error_from(checks.assert_close, None, x, name=secret),
        "your function changed one of its input arrays in place":
            error_from(checks.assert_no_mutation, lambda a: a.__setitem__(0, 5.0), x.copy(), name=secret),
        "wrong gradient (the gradient check failed on a random input)":
            error_from(checks.assert_grad_close, np.ones(3), np.zeros(3), name=secret),
    }
    close_shape = error_from(checks.assert_close, x, np.ones(4), name=secret)
    assert failure_kind(close_shape) == "wrong shape"
    for kind, err in cases.items():
        got = failure_kind(err)
        assert got == kind, (kind, err["evalue"])
        assert secret not in got and "hint" not in got
    scalar = error_from(checks.assert_close, 1.5, 2.0, name=secret)
    assert failure_kind(scalar) == "wrong values on a random input"
    # a plain assert of a hidden test: nothing can be said without quoting it
    assert failure_kind({"ename": "AssertionError", "evalue": "hidden: square of an array"}) == ""
    student = {"ename": "TypeError", "evalue": "unsupported operand", "traceback": [
        "Cell In[1], line 4", "raised in your code:\n  File ..., in sigmoid_forward", "TypeError: unsupported"]}
    assert failure_kind(student) == "your code raised an exception (TypeError)"
    assert failure_kind({"ename": "ValueError", "evalue": "too many values to unpack", "traceback": []}) \
        .startswith("raised an exception (ValueError)")
    assert "stub" in failure_kind({"ename": "NotImplementedError", "evalue": ""})


def _failed_cell(gid: str, err: dict) -> dict:
    c = new_code_cell("assert_close(f(x), ref)\n### BEGIN HIDDEN TESTS\nassert_dtype(f(z), np.float32)\n### END HIDDEN TESTS",
                      metadata={"nbgrader": {"grade": True, "solution": False, "locked": True, "grade_id": gid,
                                             "points": 2}})
    c.outputs = [new_output("error", **{k: err[k] for k in ("ename", "evalue", "traceback")})]
    return c


def test_hidden_failure_gives_its_kind_and_never_its_message():
    from nnlab import checks

    err = error_from(checks.assert_dtype, np.ones(3), np.float32, name="hidden_probe_z")
    err["traceback"] = ["Cell In[1], line 3", err["traceback"][1]]  # line 3: inside the hidden block
    s = score_cell(_failed_cell("test_f", err), ran=True, hidden_start=2)
    assert s.hidden_failed and s.failure_kind == "wrong dtype"
    text = verdict(s)
    assert "a hidden test failed" in text and "kind of failure: wrong dtype" in text
    assert "hidden_probe_z" not in text and "float64" not in text


def test_feedback_keeps_known_mistake_and_hint_of_a_visible_failure_only():
    detail = ("f(x) is wrong at 3 of 3 entries; e.g. at index (0,): expected 1.0, got 2.0 (tolerance rtol=1e-06, atol=1e-08)"
              "\nThis looks like a known mistake: you used exp(x) instead of exp(-x)."
              "\nHint: sigma(0) = 1/2")
    visible = CellScore("test_f", "auto", 0.0, 2, False, "AssertionError: " + detail.splitlines()[0], False, detail,
                        "wrong values on a random input")
    text = verdict(visible)
    assert "This looks like a known mistake: you used exp(x) instead of exp(-x)." in text
    assert "Hint: sigma(0) = 1/2" in text
    hidden = CellScore("test_g", "auto", 0.0, 2, False, "AssertionError: secret", True,
                       detail.replace("exp(x)", "the hidden shape"), "wrong values on a random input")
    text = verdict(hidden)
    assert "known mistake" not in text and "Hint" not in text and "hidden shape" not in text
    assert "kind of failure: wrong values on a random input" in text
    withheld = CellScore("test_h", "auto", 0.0, 2, False, "not graded automatically: the code of f imports nnlab. "
                         "The instructor will look at it.", False, "")
    assert "not graded automatically: the code of f imports nnlab" in verdict(withheld)

    nb = fixture_release()
    scores = [replace(visible, grade_id="test_square"), replace(hidden, grade_id="test_cube")]
    page = render_html(feedback_notebook(nb, scores, "alice, 00_fixture: 0/5"))
    assert "This looks like a known mistake: you used exp(x) instead of exp(-x)." in page
    assert "Hint: sigma(0) = 1/2" in page and "hidden shape" not in page
    assert "kind of failure: wrong values on a random input" in page


# ---------------------------------------------------------------- item 5: math with no network

MATH_NB = new_notebook(cells=[
    new_markdown_cell("# Sigmoid $\\sigma$\n\nInline $\\frac12 \\le \\sqrt2$, escaped \\$5, and code `$x$ stays`.\n\n"
                      "$$\\text{relu}'(x) = \\begin{cases} 1 & x > 0 \\\\ 0 & x \\le 0 \\end{cases}$$\n\n"
                      "| a | b |\n|---|---|\n| $x^2$ | 2 |\n"),
    new_markdown_cell("<script>alert('student')</script><img src=\"https://example.org/track.png\"> "
                      "<a href=\"javascript:alert(1)\">link</a> $\\begin{pmatrix} 1 \\end{pmatrix}$"),
])


def test_math_is_drawn_beforehand_and_the_page_loads_nothing():
    page = render_html(MATH_NB)
    assert not re.search(r"<script", page), "the feedback page runs no script"
    assert not re.search(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page), "nothing is loaded from the network"
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert page.count('class="math"') >= 6  # sigma, 1/2 <= sqrt 2, x^2, and the two cases rows (+ prefix)
    assert 'src="data:image/png;base64,' in page and 'class="math-rows"' in page
    assert "\\frac12" not in re.sub(r'alt="[^"]*"', "", page)  # only in the images' alt text
    assert "<code>$x$ stays</code>" in page  # math inside code is code
    assert re.search(r'<h1 id="[^"<>]*"', page), "a heading's anchor keeps a well-formed id"
    # markdown renders as HTML (nbconvert's own sanitiser escaped <p>, <h1>, <table>)
    assert "&lt;p&gt;" not in page and "&lt;h1" not in page and "<table" in page and "<th" in page
    # a student's markdown cannot run or load anything; what mathtext cannot draw stays as text
    assert "javascript:" not in page and "example.org" not in page
    assert "<code class=\"math-tex\">$\\begin{pmatrix} 1 \\end{pmatrix}$</code>" in page


def test_find_math_skips_code_and_escaped_dollars():
    md = "a $x$ b `$y$` c \\$3 and $$z$$ and\n```\n$w$\n```\n\\(p\\) \\[q\\]"
    assert [(t, d) for _, _, t, d in find_math(md)] == [("x", False), ("z", True), ("p", False), ("q", True)]
    assert math_html("\\frac1N\\sum_n x_n", True).startswith('<span class="math-display"><img class="math"')


def test_every_course_formula_is_drawn():
    """Each formula of the released notebooks becomes images (none is left as LaTeX source)."""
    left = []
    for path in RELEASED:
        for c in read_notebook(path).cells:
            if c.cell_type == "markdown":
                for _, _, tex, display in find_math(C.source(c)):
                    if "math-tex" in math_html(tex, display):
                        left.append((path.parent.name, tex[:60]))
    assert not left, left


# ---------------------------------------------------------------- item 6: edited test cells

@pytest.mark.parametrize("path", RELEASED + [FIXTURE / "notebooks" / "00_fixture" / "fixture.ipynb"],
                         ids=lambda p: p.parent.name)
def test_checksum_is_nbgraders(path):
    from nbgrader.utils import compute_checksum

    nb = read_notebook(path)
    checked = [c for c in nb.cells if C.nbg(c).get("checksum") and not C.is_solution(c)]
    assert checked, "a release stores checksums"
    for c in checked:
        assert nbgrader_checksum(c) == compute_checksum(c) == C.nbg(c)["checksum"], C.grade_id(c)
    assert edited_locked_cells(nb) == []


def test_edits_to_a_locked_cell_are_found():
    nb = fixture_release()
    cell(nb, "test_cube").source = "print('passed')"
    cell(nb, "test_square").metadata.nbgrader["points"] = 20
    cell(nb, "setup").metadata.nbgrader["locked"] = False
    cell(nb, "square_impl").source = "def square(x):\n    return x * x"  # an answer: not an edit
    assert sorted(edited_locked_cells(nb)) == ["setup", "test_cube", "test_square"]


def test_an_edited_test_is_restored_from_a_verified_copy_else_not_counted():
    release = fixture_release()
    student = copy.deepcopy(release)
    cell(student, "test_cube").source = "print('passed')"
    # no other copy (a students' copy without git): not counted
    tmpl, notes, not_counted = verify_locked(student, None, None)
    assert not_counted == ["test_cube"] and "edited test cell test_cube: not counted" in notes[0]
    # the committed release is intact: restored from it
    tmpl, notes, not_counted = verify_locked(student, release, "release")
    assert not_counted == [] and "edited test cell test_cube: restored" in notes[0]
    assert C.source(cell(tmpl, "test_cube")) == C.source(cell(release, "test_cube"))
    # the student committed the edit: the committed copy fails its checksum too
    tmpl, notes, not_counted = verify_locked(student, copy.deepcopy(student), "release")
    assert not_counted == ["test_cube"]
    # only the committed copy was edited: the student's intact cell is the one that runs
    tmpl, notes, not_counted = verify_locked(release, student, "release")
    assert not_counted == [] and notes == [] and C.source(cell(tmpl, "test_cube")) == C.source(cell(release, "test_cube"))
    # an edited set-up cell cannot be trusted by any test
    broken = copy.deepcopy(release)
    cell(broken, "setup").source = "import numpy as np\ndef assert_close(*a, **k): pass"
    _, notes, not_counted = verify_locked(broken, None, None)
    assert set(not_counted) == {"test_square", "test_cube"} and "edited locked cell setup: not counted" in notes[0]
    # checksums stripped: nothing can be verified, nothing is counted
    bare = copy.deepcopy(release)
    for c in bare.cells:
        C.nbg(c).pop("checksum", None)
    _, notes, not_counted = verify_locked(bare, None, None)
    assert set(not_counted) == {"test_square", "test_cube"} and "cannot be verified" in notes[0]


@pytest.mark.slow
def test_check_in_a_students_copy_does_not_trust_an_edited_test(tmp_path, capsys):
    root = students_copy(tmp_path)
    path = root / "notebooks" / "00_fixture" / "fixture.ipynb"
    nb = read_notebook(path)
    cell(nb, "test_cube").source = "print('all good')"  # cube is still the stub
    cell(nb, "square_impl").source = "def square(x):\n    return x * x"
    nbformat.write(nb, str(path))
    assert check(path, Course.at(root), timeout=60) == 1
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert "edited test cell test_cube: not counted" in out
    assert "FAILED" in rows["test_cube"] and "passed" in rows["test_square"] and "2/5 points" in out
    assert "Next: put the original test_cube back" in out


@pytest.mark.slow
def test_check_in_a_students_git_copy_restores_an_edited_test(tmp_path, capsys):
    root = students_copy(tmp_path, git=True)
    path = root / "notebooks" / "00_fixture" / "fixture.ipynb"
    nb = read_notebook(path)
    cell(nb, "test_cube").source = "print('all good')"
    nbformat.write(nb, str(path))
    assert check(path, Course.at(root), timeout=60) == 1
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert "edited test cell test_cube: restored" in out
    assert "NotImplementedError" in rows["test_cube"], "the original test ran, and the stub fails it"


# ---------------------------------------------------------------- item 8: --hidden and what to do next

def test_check_has_a_hidden_option():
    args = build_parser().parse_args(["check", "x.ipynb", "--hidden"])
    assert args.hidden is True
    assert build_parser().parse_args(["check", "x.ipynb"]).hidden is False


def test_hidden_without_solutions_says_it_cannot(tmp_path, capsys):
    root = students_copy(tmp_path)
    path = root / "notebooks" / "00_fixture" / "fixture.ipynb"
    assert check(path, Course.at(root), hidden=True) == 2
    out = capsys.readouterr().out
    assert "cannot run the hidden tests" in out and "solutions/" in out and "without --hidden" in out


def test_next_steps_name_the_first_failure_and_how_to_submit():
    failed = [CellScore("test_a", "auto", 2, 2, True), CellScore("test_b", "auto", 0, 3, False, "AssertionError: b"),
              CellScore("test_c", "auto", 0, 3, False, "AssertionError: c"), CellScore("q_d", "manual", None, 1, None)]
    text = next_steps(failed, Path("notebooks/00_fixture/fixture.ipynb"), False, False)
    assert text.startswith("Next: fix test_b first (1 more after it): AssertionError: b")
    assert "grader check notebooks/00_fixture/fixture.ipynb` again" in text
    done = [CellScore("test_a", "auto", 2, 2, True), CellScore("q_d", "manual", None, 1, None)]
    text = next_steps(done, Path("notebooks/00_fixture/fixture.ipynb"), False, False)
    assert "every visible test passes" in text and "q_d" in text and "submit" in text and "fixture.ipynb" in text
    assert "--hidden" not in text
    assert "fixture.ipynb --hidden` runs the hidden tests too" in next_steps(done, Path("fixture.ipynb"), False, False,
                                                                           hidden_available=True)


def _hidden_fail(tmp_path) -> Path:
    nb = fixture_release()
    cell(nb, "square_impl").source = "def square(x):\n    return abs(x) * 3"  # passes the visible tests only
    cell(nb, "cube_impl").source = "def cube(x):\n    return x * x * x"
    path = tmp_path / "00_fixture" / "fixture.ipynb"
    path.parent.mkdir()
    nbformat.write(nb, str(path))
    return path


@pytest.mark.slow
def test_check_hidden_runs_the_hidden_tests_for_a_self_learner(tmp_path, capsys):
    path = _hidden_fail(tmp_path)
    assert check(path, Course.at(FIXTURE), timeout=60, hidden=True) == 1
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert "FAILED" in rows["test_square"] and "hidden" in rows["test_square"] and "passed" in rows["test_cube"]
    assert "hidden ones included: 3/5 points" in out
    assert "Next: fix test_square first" in out and "--hidden` again" in out
    assert check(path, Course.at(FIXTURE), timeout=60) == 0  # without --hidden: the visible tests pass
    out = capsys.readouterr().out
    assert "Next: every visible test passes" in out and "submit" in out and "--hidden` runs the hidden tests" in out


# ---------------------------------------------------------------- check on the wrong notebook

def test_every_released_notebook_is_its_own():
    for path in RELEASED:
        nb = read_notebook(path)
        assert wrong_notebook(nb, read_notebook(path), REAL, path) is None, path


@pytest.mark.skipif(not (REPO / "notebooks" / "02_preprocessing" / "preprocessing.ipynb").is_file(),
                    reason="the course has no notebook 02")
def test_check_refuses_notebook_02_saved_as_activations(tmp_path, capsys):
    path = tmp_path / "01_activations" / "activations.ipynb"
    path.parent.mkdir()
    shutil.copy(REPO / "notebooks" / "02_preprocessing" / "preprocessing.ipynb", path)
    assert check(path, REAL) == 2
    out = capsys.readouterr().out
    assert "this is not the activations notebook" in out and "02_preprocessing/preprocessing.ipynb" in out
    # in a students' copy without git, saved over the course's own file
    root = tmp_path / "students"
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    own = root / "notebooks" / "01_activations" / "activations.ipynb"
    shutil.copy(REPO / "notebooks" / "02_preprocessing" / "preprocessing.ipynb", own)
    assert check(own, Course.at(root)) == 2
    assert "this is not the activations notebook" in capsys.readouterr().out


def test_check_refuses_a_notebook_of_another_course(tmp_path, capsys):
    path = tmp_path / "00_fixture" / "fixture.ipynb"
    path.parent.mkdir()
    other = new_notebook(cells=[
        new_code_cell("def f(x):\n    return x", metadata={"nbgrader": {"grade": False, "solution": True,
                                                                     "locked": False, "grade_id": "q1_answer"}}),
        new_code_cell("assert f(1) == 1", metadata={"nbgrader": {"grade": True, "solution": False, "locked": True,
                                                               "grade_id": "q1_test", "points": 1}})])
    nbformat.write(other, str(path))
    assert check(path, Course.at(FIXTURE)) == 2
    out = capsys.readouterr().out
    assert "this is not the fixture notebook" in out and "another course" in out
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), str(path))
    assert check(path, Course.at(FIXTURE)) == 2
    assert "this is not the fixture notebook" in capsys.readouterr().out
