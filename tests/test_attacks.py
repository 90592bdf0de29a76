"""Hostile submissions: a student who wants marks without the work, or to harm the class.

One autograde batch of the fixture assignment holds every attacker and two canaries, one correct and
one wrong. An attacker's honest work is wrong everywhere (square returns x + 1, cube returns 0), so
its honest score is 0/5. For each attack the test checks that
- the attacker gets its honest score (or is flagged, and gets nothing automatically);
- the canaries keep 5/5 and 0/5;
- no file outside the sandbox changed (the course, nnlab, the venv, the other submissions);
- no process is left behind.
The sandbox tests need bubblewrap: without it they skip in one line (CI installs it and never skips).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from test_grader_e2e import ASSIGNMENT, CUBE, FIXTURE, NOTEBOOK, REPO, SQUARE, course_copy, index_of, released

from grader.execute import run_notebook
from grader.sandbox import Limits, bwrap_path

pytestmark = [pytest.mark.grading, pytest.mark.slow]

MARKER = "attack-marker-7x9"            # in the command line of every process an attacker leaves running
WRONG_SQUARE = "def square(x):\n    return x + 1"
WRONG_CUBE = "def cube(x):\n    return 0"


def need_sandbox():
    if bwrap_path() is None:
        if os.environ.get("CI"):
            pytest.fail("bwrap is missing on CI: .ci/run installs bubblewrap")
        pytest.skip("bubblewrap (bwrap) is not installed: sandbox tests skipped (apt-get install bubblewrap)")


def with_answers(square=WRONG_SQUARE, cube=WRONG_CUBE, extra_cells=(), nb=None):
    nb = copy.deepcopy(nb or released())
    nb.cells[index_of(nb, "square_impl")].source = square
    nb.cells[index_of(nb, "cube_impl")].source = cube
    at = index_of(nb, "cube_impl") + 1
    for src in extra_cells:
        nb.cells.insert(at, nbformat.v4.new_code_cell(src))
        at += 1
    return nb


def attacks(course: Path, out: Path, subs: Path) -> dict:
    """attacker -> notebook. Each one is one kind of attack from the review of the grader."""
    sol = course / "solutions" / ASSIGNMENT / NOTEBOOK
    venv_site = next(Path(sys.prefix).glob("lib/python*/site-packages"))
    a = {
        # --- answers that fake a passing value
        "eq_always_true": with_answers(square="class Yes:\n    def __eq__(self, other):\n        return True\n"
                                              "    __ne__ = lambda self, other: False\n"
                                              "def square(x):\n    return Yes()",
                                       cube="def cube(x):\n    return square(x)"),
        "int_subclass": with_answers(square="class T(int):\n    def __eq__(self, o):\n        return True\n"
                                            "def square(x):\n    return T(0)"),
        "array_subclass": with_answers(square="import numpy as _np\nclass A(_np.ndarray):\n"
                                              "    def __eq__(self, o):\n        return True\n"
                                              "def square(x):\n    return _np.zeros(3).view(A)"),
        # --- rebinding the helpers and the kernel
        "rebind_helpers": with_answers(extra_cells=["import numpy as np\nnp.allclose = lambda *a, **k: True\n"
                                                    "AssertionError = KeyboardInterrupt\n"
                                                    "assert_close = lambda *a, **k: None"]),
        "kernel_takeover": with_answers(extra_cells=[
            "ip = get_ipython()\nip.showtraceback = lambda *a, **k: None\n"
            "ip.input_transformers_cleanup.append(lambda lines: ['pass\\n'])\n"
            "ip.events.register('post_run_cell', lambda *a: None)"]),
        "settrace_thread": with_answers(extra_cells=[
            "import sys, threading\nsys.settrace(lambda *a: None)\n"
            "def rebind():\n    while True:\n        globals()['square'] = lambda x: x * x\n"
            "threading.Thread(target=rebind, daemon=True).start()"]),
        "bdbquit": with_answers(extra_cells=["import bdb\nraise bdb.BdbQuit()"]),
        "exec_answer": with_answers(square="exec('def square(x):\\n    return x * x')",
                                    cube="import builtins\ncube = eval('lambda x: x ** 3')"),
        # --- files: reading the instructor's solution, writing the course and the grading output
        "reads_solution": with_answers(square=f"import json\nsrc = json.load(open({str(sol)!r}))\n"
                                              "code = [''.join(c['source']) for c in src['cells'] if 'square_impl' in str(c['metadata'])][0]\n"
                                              "square = None\nfor line in [code]:\n    ns = {}\n    exec(line, ns)\n    square = ns['square']"),
        "reads_solution_quietly": with_answers(square=f"def square(x):\n    t = open({str(sol)!r}).read()\n"
                                                      "    return x * x if 'return x * x' in t else x + 1"),
        "writes_course": with_answers(extra_cells=[
            f"for p in [{str(sol)!r}, {str(REPO / 'nnlab' / 'checks.py')!r}, {str(venv_site / 'zz_attack.pth')!r},"
            f" {str(Path.home() / '.ipython/profile_default/startup/00-attack.py')!r}, {str(out / 'grades.csv')!r},"
            f" {str(subs / 'canary_good' / ASSIGNMENT / NOTEBOOK)!r}, {str(REPO / 'grader' / 'judge.py')!r}]:\n"
            "    try:\n        open(p, 'a').write('#attacked')\n    except Exception as e:\n        print(type(e).__name__)"]),
        "prints_history": with_answers(extra_cells=["print(In, Out)", "print(open('/proc/self/cmdline').read())"]),
        "feedback_script": with_answers(extra_cells=[
            "from IPython.display import HTML, Javascript, display\n"
            "display(HTML('<script>alert(\"owned\")</script>'))\ndisplay(Javascript('alert(1)'))"]),
        # --- harm to others: daemons, signals, bombs
        "daemons": with_answers(extra_cells=[
            "import subprocess, sys\n"
            f"code = 'import time\\nwhile True:\\n    time.sleep(0.2)\\n    open({str(out / 'grades.csv')!r}, \"w\").write(\"forged\")'\n"
            "for i in range(50):\n"
            f"    subprocess.Popen([sys.executable, '-c', code, '{MARKER}'], start_new_session=True,\n"
            "                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)"]),
        "kills_grader": with_answers(extra_cells=[
            "import os, signal\nfor pid in [os.getppid(), 1, -1]:\n"
            "    try:\n        os.kill(pid, signal.SIGKILL)\n    except Exception as e:\n        print(e)"]),
        "memory_bomb": with_answers(extra_cells=["blob = bytearray(8 * 2 ** 30)"]),
        "fork_bomb": with_answers(extra_cells=[
            "import os, time\nkids = 0\ntry:\n    for i in range(10000):\n        if os.fork() == 0:\n"
            f"            time.sleep(600)  # {MARKER}\n            os._exit(0)\n        kids += 1\n"
            "except OSError as e:\n    print('stopped after', kids, type(e).__name__)"]),
        "output_bomb": with_answers(extra_cells=["print('x' * 10_000_000)\nprint('y' * 10_000_000)"]),
        "file_bomb": with_answers(extra_cells=["open('big', 'wb').write(b'0' * 300_000_000)"]),
        # --- metadata that used to raise an internal error or add points
        "bad_metadata": _bad_metadata(),
    }
    return a


def _bad_metadata():
    nb = with_answers()
    nb.cells[index_of(nb, "square_impl")].metadata["nbgrader"]["grade_id"] = ["square_impl"]
    nb.cells[index_of(nb, "test_cube")].metadata["nbgrader"]["points"] = 1000
    extra = nbformat.v4.new_code_cell("pass")
    extra.metadata["nbgrader"] = {"grade": True, "solution": False, "points": 1000, "locked": True}
    nb.cells.append(extra)
    raw = json.loads(nbformat.writes(nb))
    raw["cells"].insert(3, "not a cell")
    raw["cells"].insert(4, {"cell_type": "code", "source": 42, "metadata": []})
    return json.dumps(raw)


def tree_digest(paths) -> str:
    h = hashlib.sha256()
    for root in paths:
        for p in sorted(Path(root).rglob("*")) if Path(root).is_dir() else [Path(root)]:
            if p.is_file() and "__pycache__" not in p.parts and ".pytest_cache" not in p.parts:
                h.update(str(p).encode() + p.read_bytes())
    return h.hexdigest()


def marked_processes() -> list[str]:
    found = []
    for p in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if MARKER in cmd and "pytest" not in cmd:
            found.append(f"{p.name}: {cmd[:100]}")
    return found


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    need_sandbox()
    tmp = tmp_path_factory.mktemp("attacks")
    course, subs, out = course_copy(tmp), tmp / "subs", tmp / "out"
    klass = attacks(course, out, subs)
    klass["canary_good"] = with_answers(square=SQUARE, cube=CUBE)
    klass["canary_bad"] = with_answers()
    for student, nb in klass.items():
        d = subs / student / ASSIGNMENT
        d.mkdir(parents=True)
        (d / NOTEBOOK).write_text(nb if isinstance(nb, str) else nbformat.writes(nb))
    (subs / "symlinker" / ASSIGNMENT).mkdir(parents=True)
    os.symlink(course / "solutions" / ASSIGNMENT / NOTEBOOK, subs / "symlinker" / ASSIGNMENT / NOTEBOOK)
    (subs / "stray.bin").write_bytes(os.urandom(300))
    watched = [course / "solutions", course / "notebooks", REPO / "nnlab", REPO / "grader",
               next(Path(sys.prefix).glob("lib/python*/site-packages")) / "zz_attack.pth",
               *(subs / s for s in ("canary_good", "canary_bad"))]
    before = tree_digest(watched)
    r = subprocess.run([sys.executable, "-m", "grader", "autograde", subs, "--out", out, "--jobs", "2",
                        "--timeout", "20", "--course", course, "--max-output", "5", "--processes", "64",
                        "--require-sandbox"], capture_output=True, text=True, timeout=1200)
    time.sleep(2)  # a forged grades.csv would be written again by now
    with open(out / "grades.csv", newline="") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    return {"run": r, "rows": rows, "out": out, "before": before, "after": tree_digest(watched),
            "left": marked_processes(), "klass": klass, "log": r.stdout}


def score(batch, student):
    row = batch["rows"].get(student)
    assert row is not None, f"{student} has no grade:\n{batch['log']}"
    return float(row["score"])


def log_line(batch, student):
    return next((ln for ln in batch["log"].splitlines() if ln.startswith(student + " ")), "")


ATTACKERS = ["eq_always_true", "int_subclass", "array_subclass", "rebind_helpers", "kernel_takeover",
             "settrace_thread", "bdbquit", "exec_answer", "reads_solution", "reads_solution_quietly", "writes_course",
             "prints_history", "feedback_script", "daemons", "kills_grader", "memory_bomb", "fork_bomb",
             "output_bomb", "file_bomb", "bad_metadata"]


@pytest.mark.parametrize("attacker", ATTACKERS)
def test_attacker_gets_its_honest_score(batch, attacker):
    assert score(batch, attacker) == 0, log_line(batch, attacker)
    assert float(batch["rows"][attacker]["max_score"]) == 5, "the source's points always win"


def test_canaries_keep_their_grades(batch):
    assert score(batch, "canary_good") == 5, batch["log"]
    assert score(batch, "canary_bad") == 0, batch["log"]
    assert batch["rows"]["canary_good"]["test_cube"] == "3"


def test_nothing_outside_the_sandbox_changed(batch):
    assert batch["before"] == batch["after"]
    assert "forged" not in (batch["out"] / "grades.csv").read_text()


def test_no_process_left_behind(batch):
    assert batch["left"] == []


def test_flagged_and_refused_submissions_are_reported(batch):
    log, report = batch["log"], (batch["out"] / "report.txt").read_text()
    assert "FLAGGED" in log_line(batch, "exec_answer") and "uses exec" in report
    assert "symlink" in log or "symbolic link" in log
    assert "symlinker" not in batch["rows"]
    assert "too much output" in log_line(batch, "output_bomb")
    assert batch["run"].returncode == 1  # the symlink was not graded
    assert "sandbox: bubblewrap" in log


def test_feedback_is_sanitised_and_leaks_nothing(batch):
    fb = (batch["out"] / "feedback" / "feedback_script" / ASSIGNMENT / "fixture.html").read_text()
    assert "<script>alert" not in fb and "application/javascript" not in fb  # the source is shown escaped only
    history = (batch["out"] / "feedback" / "prints_history" / ASSIGNMENT / "fixture.html").read_text()
    assert "hidden: square of an array" not in history and "cube(-3)" not in history


# --- the limits, each proved on both sides --------------------------------------------------

def run_cells(tmp_path, *sources, **limits):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    work = tmp_path / f"w{time.monotonic_ns()}"
    work.mkdir()
    timeout = limits.pop("timeout", 30)
    result = run_notebook(nb, work, timeout=timeout, limits=Limits(**limits), sandbox=True)
    return result, nb


def error_name(cell):
    return next((o.get("ename") for o in cell.outputs if o.output_type == "error"), None)


def test_memory_limit(tmp_path):
    need_sandbox()
    r, nb = run_cells(tmp_path, "a = bytearray(300 * 2 ** 20); a[-1] = 1", "b = bytearray(1200 * 2 ** 20)",
                      memory=1024 * 2 ** 20)
    assert error_name(nb.cells[0]) is None and error_name(nb.cells[1]) == "MemoryError", r.outcome


def test_output_limit(tmp_path):
    need_sandbox()
    r, nb = run_cells(tmp_path, "print('x' * 400_000)", output=1_000_000)
    assert r.outcome == "ok"
    r, nb = run_cells(tmp_path, "print('x' * 400_000)", "print('x' * 700_000)", "print('after')", output=1_000_000)
    assert "too much output in cell #2" in r.outcome
    assert not nb.cells[2].outputs  # the run stopped there


def test_file_size_limit(tmp_path):
    need_sandbox()
    r, nb = run_cells(tmp_path, "open('f', 'wb').write(b'0' * 900_000)", "open('g', 'wb').write(b'0' * 1_100_000)",
                      file_size=1_000_000)
    assert error_name(nb.cells[0]) is None and error_name(nb.cells[1]) is not None


def test_process_limit(tmp_path):
    need_sandbox()
    spawn = ("import subprocess\nps = [subprocess.Popen(['sleep', '30']) for _ in range({n})]\n"
             "[p.kill() for p in ps]")
    r, nb = run_cells(tmp_path, spawn.format(n=5), spawn.format(n=60), processes=40)
    assert error_name(nb.cells[0]) is None and error_name(nb.cells[1]) in ("BlockingIOError", "OSError"), r.outcome


def test_time_limits(tmp_path):
    need_sandbox()
    r, nb = run_cells(tmp_path, "import time; time.sleep(1)", "time.sleep(60)", "print('next')", timeout=4)
    assert "timeout in cell #2" in r.outcome and nb.cells[2].outputs
    r, nb = run_cells(tmp_path, "import time; time.sleep(3)", "time.sleep(3)", "print('never')",
                      timeout=30, notebook_timeout=5)
    assert "notebook time limit" in r.outcome


def test_process_tree_gone_and_sandboxes_apart(tmp_path):
    """A daemon dies with its sandbox; two sandboxes running at once do not see each other."""
    need_sandbox()
    results = {}

    def first():
        results["a"] = run_cells(tmp_path, f"import subprocess\nsubprocess.Popen(['sleep', '300', '{MARKER}'], "
                                           "start_new_session=True)\nimport time; time.sleep(6)")

    t = threading.Thread(target=first)
    t.start()
    time.sleep(3)
    other = sorted(tmp_path.glob("w*"))[0]
    r, nb = run_cells(tmp_path, f"import os\nprint(os.path.exists({str(other)!r}), "
                                "len([p for p in os.listdir('/proc') if p.isdigit()]))")
    t.join()
    seen, pids = nb.cells[0].outputs[0]["text"].split()
    assert seen == "False" and int(pids) < 10
    deadline = time.monotonic() + 5
    while marked_processes() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert marked_processes() == []


def test_kill_9_mid_batch_then_rerun(tmp_path):
    """kill -9 of the grader in the middle of a batch, then a rerun: every grade once, none lost,
    no half-written file; the grades equal those of an uninterrupted run."""
    course, subs = course_copy(tmp_path), tmp_path / "subs"
    for i in range(6):
        d = subs / f"s{i}" / ASSIGNMENT
        d.mkdir(parents=True)
        nb = with_answers(square=SQUARE if i % 2 else WRONG_SQUARE, cube=CUBE if i % 3 else WRONG_CUBE)
        (d / NOTEBOOK).write_text(nbformat.writes(nb))
    args = [sys.executable, "-m", "grader", "autograde", subs, "--course", course, "--jobs", "1"]
    out = tmp_path / "out"
    p = subprocess.Popen([*args, "--out", out], stdout=subprocess.PIPE, text=True, start_new_session=True)
    graded = 0
    for ln in p.stdout:
        graded += ln.startswith("s")
        if graded == 2:
            break
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    for f in (out / "results").rglob("*.json"):
        json.loads(f.read_text())  # whole or absent
    r = subprocess.run([*args, "--out", out], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    clean = subprocess.run([*args, "--out", tmp_path / "clean"], capture_output=True, text=True, timeout=600)
    assert (out / "grades.csv").read_text() == (tmp_path / "clean" / "grades.csv").read_text()
    assert len(list((out / "results").rglob("*.json"))) == 6


def test_a_dying_worker_loses_no_other_grade(tmp_path):
    """A worker that dies (here on purpose, for one student) is replaced: the others are graded once
    each, and the student whose job kills its worker twice is reported, not retried for ever."""
    course, subs = course_copy(tmp_path), tmp_path / "subs"
    for name in ("a", "b", "crasher", "c"):
        d = subs / name / ASSIGNMENT
        d.mkdir(parents=True)
        (d / NOTEBOOK).write_text(nbformat.writes(with_answers(square=SQUARE, cube=CUBE)))
    env = {**os.environ, "GRADER_TEST_CRASH_WORKER_FOR": "crasher"}
    r = subprocess.run([sys.executable, "-m", "grader", "autograde", subs, "--out", tmp_path / "out", "--course", course,
                        "--jobs", "2"], capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "crasher 00_fixture skipped: its grading worker died 2 times" in r.stdout
    with open(tmp_path / "out" / "grades.csv", newline="") as f:
        rows = [row["student"] for row in csv.DictReader(f)]
    assert sorted(rows) == ["a", "b", "c"]
