"""More hostile submissions, and honest ones in unusual styles, against the trusted judge.

Batches graded once each (module-scoped) with `python -m grader autograde --jobs 2`:
- the fixture assignment (a copy of tests/fixtures/course): attackers whose honest work is wrong
  (honest score 0/5, or 0 and flagged), honest students in unusual styles (5/5 and not flagged),
  and the two canaries of tests/test_attacks.py;
- notebook 01 of the real course, with its experiment cells deleted to keep the run short:
  an attacker that takes nnlab's activations past the static review, honest students whose
  answers are the instructor's solution written in another style, and two canaries;
- one small batch per bomb aimed at the grader's own memory or time (the judge, the static review),
  each with the canaries.
Each test names one attack or style; it passes once the grader gives the honest score.
"""

from __future__ import annotations

import copy
import csv
import os
import re
import subprocess
import sys
import time

import nbformat
import pytest

from test_attacks import WRONG_CUBE, WRONG_SQUARE, marked_processes, need_sandbox, tree_digest, with_answers
from test_grader_e2e import ASSIGNMENT, CUBE, NOTEBOOK, REPO, SQUARE, course_copy, index_of

pytestmark = [pytest.mark.grading, pytest.mark.slow]

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def appended(nb, *sources):
    """`nb` with plain code cells added at its very end (after the last test)."""
    nb = copy.deepcopy(nb)
    for src in sources:
        nb.cells.append(nbformat.v4.new_code_cell(src))
    return nb


# --- the fixture batch -----------------------------------------------------------------------

# Correct answers that keep what the tests passed them; a cell of the student's own after the last
# test prints it, and the student's cells keep their outputs in the feedback.
LEAK_SQUARE = "_seen = []\ndef square(x):\n    _seen.append(repr(x))\n    return x * x"
LEAK_CUBE = "def cube(x):\n    _seen.append(repr(x))\n    return x * x * x"

# Outputs whose size is in their metadata: the output limit counts text and data only.
METADATA_BOMB = "for _i in range(300):\n    display({'text/plain': ''}, metadata={'pad': 'A' * 10 ** 6}, raw=True)"

# A correct answer that prints 600 MB while the hidden test calls it: the judge keeps every message.
PRINT_BOMB = ("def square(x):\n    if not isinstance(x, int):\n        for _ in range(600):\n"
              "            print('p' * 10 ** 6)\n    return x * x")

# The agent's comm answers every request with a 1.1 MB message whose 2000 list entries all point at
# the same 1 MiB array blob: the judge decodes 2 GiB (a million entries would be a terabyte). The
# comm is reached through the `comm` package, which the review does not know.
BLOB_BOMB = r'''import base64, io, json, struct
import numpy as np
from comm import get_comm_manager
_buf = io.BytesIO()
np.lib.format.write_array(_buf, np.zeros(2 ** 17))
_blob = _buf.getvalue()
_head = json.dumps({"v": {"L": [{"A": 0}] * 2000}, "b": [len(_blob)]}).encode()
_payload = base64.b64encode(b"GRW1" + struct.pack("<Q", len(_head)) + _head + _blob).decode()
for _c in list(get_comm_manager().comms.values()):
    _c.on_msg(lambda msg, _c=_c: _c.send({"r": _payload}))'''

FIXTURE_ATTACKERS = {
    # dynamic code the review does not see: exec reached as an attribute of __builtins__,
    # strings run by timeit and cProfile (neither is in the review's lists)
    "exec_via_builtins": dict(square='__builtins__.exec("def square(x):\\n    return x * x")'),
    "timeit_string": dict(square='import timeit\ntimeit.timeit("import __main__\\n__main__.square = lambda x: x * x", '
                                 'number=1)'),
    "cprofile_string": dict(cube='import cProfile\ncProfile.run("def cube(x):\\n    return x * x * x")'),
    "getattr_strings": dict(square='_run = getattr(__builtins__, "ex" + "ec")\n_run("def square(x):\\n    return x * x")'),
    # a line IPython accepts and ast does not: the review skips the whole cell, imports and exec included
    "unparsable_cell": dict(square='_ = %who_ls\nimport nnlab, sys\nexec("def square(x):\\n    return x * x")'),
    # a script written by the cell, run by a magic line (the review drops lines that start with %)
    "run_magic": dict(square="open('s.py', 'w').write('def square(x):\\n    return x * x\\n')\n%run -i s.py"),
}

FIXTURE_HONEST = {
    # correct answers, with a scratch cell of the student's own that reuses the name `x`
    # (a name the hidden test binds) or a built-in's name
    "scratch_x": dict(extra=["x = np.array([1.0, 2.0, 3.0])\nprint(square(x), cube(x))"]),
    "scratch_builtin_name": dict(extra=["input = np.arange(3.0)\nprint(square(input), cube(input))"]),
    "test_in_answer_cell": dict(square="def square(x):\n    return x * x\n\nx = 3\nprint(square(x))"),
    # correct answers in other styles, with a construct the review flags although it cannot reach nnlab
    "types_namespace": dict(square="from types import SimpleNamespace\ncfg = SimpleNamespace(power=2)\n"
                                   "def square(x):\n    return x ** cfg.power"),
    "setattr_class": dict(square="class Power:\n    def __init__(self, p):\n        setattr(self, 'p', p)\n"
                                 "    def __call__(self, x):\n        return x ** self.p\nsquare = Power(2)"),
}


@pytest.fixture(scope="module")
def fixture_batch(tmp_path_factory):
    need_sandbox()
    tmp = tmp_path_factory.mktemp("attacks_more")
    course, subs, out = course_copy(tmp), tmp / "subs", tmp / "out"
    klass = {"canary_good": with_answers(square=SQUARE, cube=CUBE), "canary_bad": with_answers()}
    for name, a in FIXTURE_ATTACKERS.items():
        klass[name] = with_answers(square=a.get("square", WRONG_SQUARE), cube=a.get("cube", WRONG_CUBE))
    for name, h in FIXTURE_HONEST.items():
        klass[name] = with_answers(square=h.get("square", SQUARE), cube=h.get("cube", CUBE),
                                   extra_cells=h.get("extra", ()))
    # a grade_id with a line break: repair's note "unknown grade_id ..." goes into the log line
    forger = with_answers()
    cell = nbformat.v4.new_code_cell("pass")
    cell.metadata["nbgrader"] = {"grade_id": "zz\ncanary_bad 00_fixture 5/5 ok", "grade": False, "solution": False}
    forger.cells.insert(index_of(forger, "cube_impl"), cell)
    klass["log_injection"] = forger
    klass["hidden_inputs_leak"] = appended(with_answers(square=LEAK_SQUARE, cube=LEAK_CUBE), "print('SEEN:', _seen)")
    klass["metadata_bomb"] = with_answers(extra_cells=[METADATA_BOMB])
    for student, nb in klass.items():
        d = subs / student / ASSIGNMENT
        d.mkdir(parents=True)
        (d / NOTEBOOK).write_text(nbformat.writes(nb))
    watched = [course / "solutions", course / "notebooks", *(subs / s for s in ("canary_good", "canary_bad"))]
    before = tree_digest(watched)
    return grade(subs, out, course, watched, before, "--max-output", "5")


def grade(subs, out, course, watched, before, *options):
    # the grader's own memory: RUSAGE_CHILDREN of a wrapper is the largest process of the batch (the
    # workers, where the judge runs, and the kernels, none of which needs more than a few hundred MB here)
    wrapper = ("import resource, subprocess, sys\nr = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "sys.stdout.write(r.stdout)\nsys.stderr.write(r.stderr)\n"
               "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\nsys.exit(r.returncode)")
    t0 = time.monotonic()
    r = subprocess.run([sys.executable, "-c", wrapper, sys.executable, "-m", "grader", "autograde", subs,
                        "--out", out, "--jobs", "2", "--timeout", "30", "--course", course, "--require-sandbox",
                        *options],
                       capture_output=True, text=True, timeout=1800, env=ENV, cwd=REPO)
    with open(out / "grades.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    maxrss = int(re.search(r"MAXRSS_KB (\d+)", r.stdout).group(1)) * 1024
    return {"run": r, "rows": rows, "out": out, "before": before, "after": tree_digest(watched),
            "left": marked_processes(), "log": r.stdout, "maxrss": maxrss, "seconds": time.monotonic() - t0}


def line_of(batch, student):
    return next((ln for ln in batch["log"].splitlines() if ln.startswith(student + " ")), f"{student}: no log line")


def score(batch, student):
    row = batch["rows"].get(student)
    assert row is not None, f"{student} has no grade:\n{batch['log']}"
    return float(row["score"])


def test_fixture_canaries(fixture_batch):
    assert score(fixture_batch, "canary_good") == 5, fixture_batch["log"]
    assert score(fixture_batch, "canary_bad") == 0, fixture_batch["log"]
    assert fixture_batch["before"] == fixture_batch["after"]
    assert fixture_batch["left"] == []


@pytest.mark.parametrize("attacker", sorted(FIXTURE_ATTACKERS))
def test_dynamic_code_the_review_misses_is_withheld(fixture_batch, attacker):
    """The existing suite's exec_answer gets 0 and FLAGGED; the same answer spelt another way must too."""
    line = line_of(fixture_batch, attacker)
    assert score(fixture_batch, attacker) == 0, line
    assert "FLAGGED" in line, line


@pytest.mark.parametrize("student", sorted(FIXTURE_HONEST))
def test_honest_style_keeps_its_points(fixture_batch, student):
    line = line_of(fixture_batch, student)
    assert score(fixture_batch, student) == 5, line
    assert "FLAGGED" not in line, line


def test_a_submission_cannot_write_lines_into_the_log(fixture_batch):
    assert [ln for ln in fixture_batch["log"].splitlines() if ln.startswith("canary_bad ")] == [
        "canary_bad 00_fixture 0/5 ok"], fixture_batch["log"]
    log = (fixture_batch["out"] / "autograde.log").read_text()
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ", ln) for ln in log.splitlines()), log


def test_output_limit_counts_metadata(fixture_batch):
    """300 outputs of 1 MB of metadata each, against a 5 MB output limit."""
    line = line_of(fixture_batch, "metadata_bomb")
    assert "too much output" in line, line
    graded = fixture_batch["out"] / "autograded" / "metadata_bomb" / ASSIGNMENT / NOTEBOOK
    assert graded.stat().st_size < 20 * 10 ** 6, f"the graded notebook holds {graded.stat().st_size / 1e6:.0f} MB"


# --- the judge's own memory: one small batch per bomb, with the canaries ----------------------

BOMBS = {"blob_bomb": with_answers(extra_cells=[BLOB_BOMB]),
         "print_bomb": with_answers(square=PRINT_BOMB, cube=CUBE)}


@pytest.fixture(scope="module", params=sorted(BOMBS))
def bomb_batch(request, tmp_path_factory):
    need_sandbox()
    tmp = tmp_path_factory.mktemp(request.param)
    course, subs, out = course_copy(tmp), tmp / "subs", tmp / "out"
    klass = {request.param: BOMBS[request.param], "canary_good": with_answers(square=SQUARE, cube=CUBE),
             "canary_bad": with_answers()}
    for student, nb in klass.items():
        d = subs / student / ASSIGNMENT
        d.mkdir(parents=True)
        (d / NOTEBOOK).write_text(nbformat.writes(nb))
    watched = [course / "solutions", course / "notebooks"]
    res = grade(subs, out, course, watched, tree_digest(watched))
    res["bomb"] = request.param
    return res


def test_a_kernel_cannot_make_the_judge_use_gigabytes(bomb_batch):
    """blob_bomb: a 1.1 MB reply whose list holds one blob 2000 times (the judge decodes 2 GiB);
    print_bomb: 600 MB printed during a test's call (the judge keeps every message it receives)."""
    b = bomb_batch
    assert score(b, "canary_good") == 5 and score(b, "canary_bad") == 0, b["log"]
    # A blob used many times no longer decodes to gigabytes. One huge message still passes through the
    # grading process (received by the judge's and the notebook client's sockets, then dropped), so its
    # memory is bounded by the kernel's own limit (2 GiB of data): at most a few GiB, never unbounded.
    assert b["maxrss"] < 3 * 2 ** 30, f"{b['bomb']}: the grader grew to {b['maxrss'] / 2 ** 30:.1f} GiB"


# --- notebook 01 ----------------------------------------------------------------------------

NB01 = "01_activations"
RELEASED01 = REPO / "notebooks" / NB01 / "activations.ipynb"
SOLUTION01 = REPO / "solutions" / NB01 / "activations.ipynb"

# nnlab's activations, imported through __builtins__ (no `nnlab` name, no `import`), with the
# judge's forbid_calls profile hook switched off inside each call (getattr with a string).
STEAL = '''_imp = getattr(__builtins__, "__import__")
_act = _imp("nn" + "lab.activations", fromlist=["_"])
_off = getattr(_imp("s" + "ys"), "set" + "profile")
def _theirs(name):
    f = getattr(_act, name)
    def g(*args, **kwargs):
        _off(None)
        return f(*args, **kwargs)
    return g
'''
# The same without __builtins__: nnlab's namespaces reached from the setup cell's `mlp`, and the
# calls made in a worker thread, which the judge's profile hook (set in the calling thread) never sees.
STEAL_THREADS = '''from concurrent.futures import ThreadPoolExecutor
_pool = ThreadPoolExecutor(1)
_ns = getattr(getattr(mlp, "__glob" + "als__")["ACTIVATIONS"]["relu"][0], "__glob" + "als__")
def _theirs(name):
    f = _ns[name]
    def g(*args, **kwargs):
        return _pool.submit(f, *args, **kwargs).result()
    return g
'''
# Plain imports and exec, in a cell the review cannot parse (one IPython-only line): it skips it.
STEAL_UNPARSABLE = STEAL.replace('_imp = getattr(__builtins__, "__import__")', "_ = %who_ls\nimport sys, nnlab.activations\n"
                                 "_imp = __import__")
STOLEN = {gid: "\n".join(f"{n} = _theirs({n!r})" for n in names) for gid, names in {
    "sigmoid_impl": ("sigmoid_forward", "sigmoid_backward"), "tanh_impl": ("tanh_forward", "tanh_backward"),
    "relu_impl": ("relu_forward", "relu_backward"), "leaky_relu_impl": ("leaky_relu_forward", "leaky_relu_backward"),
    "prelu_impl": ("prelu_forward", "prelu_backward"), "elu_impl": ("elu_forward", "elu_backward"),
    "selu_impl": ("selu_forward", "selu_backward"), "maxout_impl": ("maxout_forward", "maxout_backward")}.items()}


def _gid(cell):
    return (cell.get("metadata", {}).get("nbgrader") or {}).get("grade_id")


def nb01(answers=None, steal=None, extra_after=None):
    """The released notebook 01 without its experiment cells; `answers`: grade_id -> source."""
    nb = nbformat.read(RELEASED01, as_version=4)
    nb.cells = [c for c in nb.cells if c.cell_type != "code" or _gid(c)]
    for c in nb.cells:
        if _gid(c) in (answers or {}):
            c.source = answers[_gid(c)]
    if steal:
        at = next(i for i, c in enumerate(nb.cells) if _gid(c) == "setup") + 1
        nb.cells.insert(at, nbformat.v4.new_code_cell(steal))
    for gid, src in (extra_after or {}).items():
        at = next(i for i, c in enumerate(nb.cells) if _gid(c) == gid) + 1
        nb.cells.insert(at, nbformat.v4.new_code_cell(src))
    return nb


def solution_answers() -> dict:
    sol = nbformat.read(SOLUTION01, as_version=4)
    return {_gid(c): c.source for c in sol.cells if c.cell_type == "code" and (c.metadata.get("nbgrader") or {}).get("solution")}


def namedtuple_maxout(src: str) -> str:
    """The solution's maxout, with its cache as a namedtuple read by attribute (an honest style)."""
    src = src.replace("cache = (x, w, idx)", "cache = MaxoutCache(x, w, idx)")
    src = src.replace("x, w, idx = cache", "x, w, idx = cache.x, cache.w, cache.idx")
    assert "MaxoutCache(" in src and "cache.idx" in src
    return "from collections import namedtuple\nMaxoutCache = namedtuple('MaxoutCache', 'x w idx')\n\n" + src


@pytest.fixture(scope="module")
def batch01(tmp_path_factory):
    need_sandbox()
    tmp = tmp_path_factory.mktemp("attacks01")
    subs, out = tmp / "subs", tmp / "out"
    sol = solution_answers()
    klass = {
        "o1_canary_good": nb01(sol),
        "o1_canary_bad": nb01(),
        "o1_steal_nnlab": nb01(STOLEN, steal=STEAL),
        "o1_steal_threads": nb01(STOLEN, steal=STEAL_THREADS),
        "o1_steal_unparsable": nb01(STOLEN, steal=STEAL_UNPARSABLE),
        "o1_namedtuple_cache": nb01({**sol, "maxout_impl": namedtuple_maxout(sol["maxout_impl"])}),
        "o1_scratch_cell": nb01(sol, extra_after={"sigmoid_impl": "x = np.linspace(-3, 3, 7)\n"
                                                                  "out, cache = sigmoid_forward(x)\nprint(out)"}),
    }
    for student, nb in klass.items():
        d = subs / student / NB01
        d.mkdir(parents=True)
        (d / "activations.ipynb").write_text(nbformat.writes(nb))
    r = subprocess.run([sys.executable, "-m", "grader", "autograde", subs, "--out", out, "--jobs", "2",
                        "--course", REPO, "--require-sandbox"], capture_output=True, text=True, timeout=1800,
                       env=ENV, cwd=REPO)
    with open(out / "grades.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return {"run": r, "rows": rows, "out": out, "log": r.stdout, "left": marked_processes()}


def full01(batch):
    return float(batch["rows"]["o1_canary_good"]["max_score"])


def test_01_canaries(batch01):
    assert score(batch01, "o1_canary_good") == full01(batch01), batch01["log"]
    assert score(batch01, "o1_canary_bad") == 0, batch01["log"]
    assert batch01["left"] == []  # (files: other sessions edit the shared tree; tests/test_attacks.py watches them)


@pytest.mark.parametrize("attacker", ["o1_steal_nnlab", "o1_steal_threads", "o1_steal_unparsable"])
def test_01_nnlab_taken_past_the_review_earns_nothing(batch01, attacker):
    """Every stolen exercise is nnlab's own code: no points automatically, and flagged."""
    line = line_of(batch01, attacker)
    assert score(batch01, attacker) == 0, line
    assert "FLAGGED" in line, line


def test_01_namedtuple_cache_keeps_its_points(batch01):
    row = batch01["rows"]["o1_namedtuple_cache"]
    assert row["test_maxout"] == batch01["rows"]["o1_canary_good"]["test_maxout"], line_of(batch01, "o1_namedtuple_cache")
    assert score(batch01, "o1_namedtuple_cache") == full01(batch01)


def test_01_scratch_cell_keeps_its_points(batch01):
    line = line_of(batch01, "o1_scratch_cell")
    assert score(batch01, "o1_scratch_cell") == full01(batch01), line
    assert "FLAGGED" not in line, line


# --- the static review's own time -------------------------------------------------------------

def test_the_review_of_a_large_answer_is_bounded(tmp_path):
    """A 1.6 MB cell of 2000 copies of an nnlab function (a notebook of up to 50 MB is accepted): the
    review (integrity.review, before the kernel starts, outside every time limit) must neither stall
    its worker nor let the copies through. Today 400 copies take 170 s (0.2-0.7 s per function:
    difflib against every nnlab function of similar length, and ast.get_source_segment rescans the
    whole cell for each statement), so 2000 take a quarter of an hour and 50 MB many hours."""
    import inspect
    import signal

    import nnlab.activations

    need_sandbox()
    course, subs, out = course_copy(tmp_path), tmp_path / "subs", tmp_path / "out"
    body = inspect.getsource(nnlab.activations.maxout_backward)
    big = "\n\n".join(body.replace("def maxout_backward", f"def _copy{i}") for i in range(2000))
    klass = {"review_bomb": with_answers(extra_cells=[big]), "canary_good": with_answers(square=SQUARE, cube=CUBE),
             "canary_bad": with_answers()}
    for student, nb in klass.items():
        d = subs / student / ASSIGNMENT
        d.mkdir(parents=True)
        (d / NOTEBOOK).write_text(nbformat.writes(nb))
    p = subprocess.Popen([sys.executable, "-m", "grader", "autograde", subs, "--out", out, "--jobs", "2",
                          "--course", course, "--require-sandbox"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=ENV, cwd=REPO, start_new_session=True)
    try:
        log, _ = p.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)  # the workers too
        log, _ = p.communicate()
        pytest.fail("the batch did not finish in 180 s:\n" + log)
    batch = {"log": log}
    assert "canary_good 00_fixture 5/5" in log and "canary_bad 00_fixture 0/5" in log, log
    assert "FLAGGED" in line_of(batch, "review_bomb"), log


def test_self_check_keeps_an_honest_scratch_cell(tmp_path):
    """`grader check` reviews the code as grading does: a correct notebook with a scratch cell that
    names its array `x` (a name only the *hidden* part of test_square binds) must pass, and the
    check must not name what the hidden tests bind."""
    need_sandbox()
    d = tmp_path / ASSIGNMENT
    d.mkdir()
    nb = with_answers(square=SQUARE, cube=CUBE, extra_cells=["x = np.array([1.0, 2.0, 3.0])\nprint(square(x), cube(x))"])
    (d / NOTEBOOK).write_text(nbformat.writes(nb))
    r = subprocess.run([sys.executable, "-m", "grader", "check", d / NOTEBOOK, "--course", course_copy(tmp_path)],
                       capture_output=True, text=True, timeout=300, env=ENV, cwd=REPO)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "instructor's x" not in r.stdout, r.stdout
