"""A released notebook is written as JupyterLab writes it back, so opening one changes nothing;
the stale check compares what matters; release fails fast and never touches .ipynb_checkpoints."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

import grader.release as R
from grader import cells as C
from grader.course import Course, read_notebook
from grader.release import WorkWouldBeLost, differences, kernel_language_info, release

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "course"
REAL = Course.at(REPO)

pytestmark = pytest.mark.grading


def released_notebooks():
    """The fixture's release and the course's committed releases (those without someone's answers)."""
    paths = [FIXTURE / "notebooks" / "00_fixture" / "fixture.ipynb"]
    for a in REAL.assignments():
        for src in REAL.source_notebooks(a):
            rel = REAL.release_notebook(a, src.name)
            if rel.is_file() and not R.holds_answers(rel, R.expected_stubs(read_notebook(src))):
                paths.append(rel)
    return paths


def as_lab_saves_it(text: str, language_info: dict) -> str:
    """What JupyterLab writes for a notebook opened and saved untouched: the browser parses the JSON
    (JavaScript has one number type: 3.0 becomes 3), the kernel sets metadata.language_info, and the
    server writes the model with nbformat (sorted keys, indent 1)."""
    model = json.loads(text, parse_float=lambda s: int(float(s)) if float(s).is_integer() else float(s))
    model["metadata"]["language_info"] = language_info
    out = nbformat.writes(nbformat.from_dict(model), version=nbformat.NO_CONVERT)
    return out if out.endswith("\n") else out + "\n"


@pytest.mark.parametrize("path", released_notebooks(), ids=lambda p: p.name)
def test_opening_and_saving_in_lab_changes_nothing(path):
    text = path.read_text(encoding="utf-8")
    assert as_lab_saves_it(text, kernel_language_info()) == text, \
        f"{path}: JupyterLab would rewrite it on opening; run `python -m grader release`"


def test_points_are_written_as_integers():
    text = (FIXTURE / "notebooks" / "00_fixture" / "fixture.ipynb").read_text()
    assert '"points": 3,' in text and '"points": 3.0' not in text


def test_stale_check_ignores_what_opening_changes():
    nb = read_notebook(FIXTURE / "notebooks" / "00_fixture" / "fixture.ipynb")
    opened = nbformat.reads(as_lab_saves_it(nbformat.writes(nb), {"name": "python", "version": "3.99.0"}), 4)
    for c in opened.cells:
        if C.is_graded(c):
            c.metadata.nbgrader["points"] = float(c.metadata.nbgrader["points"])
        c.id = "changed-" + c.id
    assert differences(opened, nb) == []
    edited = nbformat.reads(nbformat.writes(nb), 4)
    next(c for c in edited.cells if C.grade_id(c) == "test_cube").source += "\n# extra"
    next(c for c in edited.cells if C.grade_id(c) == "test_square").metadata.nbgrader["points"] = 5
    diff = differences(edited, nb)
    assert any("test_cube" in d and "source" in d for d in diff)
    assert any("test_square" in d and "metadata" in d for d in diff)


@pytest.fixture
def course(tmp_path):
    shutil.copytree(FIXTURE, tmp_path / "course")
    return tmp_path / "course"


def fill(path):
    nb = read_notebook(path)
    next(c for c in nb.cells if C.grade_id(c) == "square_impl").source = "def square(x):\n    return x * x"
    nbformat.write(nb, str(path))


def test_release_fails_fast_before_running_nbgrader(course, monkeypatch):
    fill(course / "notebooks" / "00_fixture" / "fixture.ipynb")

    def no_nbgrader(*a, **k):
        raise AssertionError("nbgrader ran before the answers were found")

    monkeypatch.setattr(R, "generate", no_nbgrader)
    t = time.monotonic()
    with pytest.raises(WorkWouldBeLost, match="hold answers"):
        release(Course.at(course), log=lambda *a: None)
    assert time.monotonic() - t < 2


def test_expected_stubs_match_nbgrader():
    src = read_notebook(FIXTURE / "solutions" / "00_fixture" / "fixture.ipynb")
    rel = read_notebook(FIXTURE / "notebooks" / "00_fixture" / "fixture.ipynb")
    assert R.expected_stubs(src) == R._stub_counts(rel)
    for a in REAL.assignments():
        for s in REAL.source_notebooks(a):
            fresh = REAL.release_notebook(a, s.name)
            if fresh.is_file() and not R.holds_answers(fresh, R.expected_stubs(read_notebook(s))):
                assert R.expected_stubs(read_notebook(s)) == R._stub_counts(read_notebook(fresh)), s


def test_release_ignores_and_keeps_ipynb_checkpoints(course):
    folder = course / "notebooks" / "00_fixture" / ".ipynb_checkpoints"
    folder.mkdir()
    backup = folder / "fixture-checkpoint.ipynb"
    shutil.copy(course / "notebooks" / "00_fixture" / "fixture.ipynb", backup)
    fill(backup)  # Lab's backup of a student's work
    work = backup.read_bytes()
    release(Course.at(course), log=lambda *a: None)             # not refused: the backup is no release
    release(Course.at(course), log=lambda *a: None, force=True)  # and --force does not delete it
    assert backup.read_bytes() == work


def test_release_keeps_a_notebook_that_differs_only_in_language_info(course):
    path = course / "notebooks" / "00_fixture" / "fixture.ipynb"
    nb = read_notebook(path)
    nb.metadata.language_info = dict(kernel_language_info(), version="3.10.0")
    text = R.normalise(nb, nb.metadata.language_info)
    path.write_text(text)
    release(Course.at(course), log=lambda *a: None)
    assert path.read_text() == text


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_a_real_jupyter_server_and_kernel_save_the_release_unchanged(tmp_path):
    """Lab's contents API and a real kernel: GET each release, set the kernel's language_info, PUT it back
    (as the browser does, numbers through JavaScript), then compare the files byte for byte."""
    from jupyter_client.manager import start_new_kernel

    work = tmp_path / "work"
    paths = released_notebooks()
    for i, p in enumerate(paths):
        (work / str(i)).mkdir(parents=True)
        shutil.copy(p, work / str(i) / p.name)
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        info = kc.kernel_info(reply=True)["content"]["language_info"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    port, token = _free_port(), "release-format-token"
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "server", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", f"--ServerApp.root_dir={work}", f"--IdentityProvider.token={token}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)})
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}

    def api(path, method="GET", body=None):
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/contents/{path}", method=method,
                                     headers=headers, data=body)
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.read().decode()

    try:
        deadline = time.time() + 60
        while True:
            try:
                api("")
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError("jupyter server did not start within 60 s")
                time.sleep(0.5)
        changed = []
        for i, p in enumerate(paths):
            rel = f"{i}/{p.name}"
            before = (work / rel).read_bytes()
            model = json.loads(api(rel + "?content=1"), parse_float=lambda s: int(float(s)) if float(s).is_integer()
                               else float(s))
            nb = model["content"]
            nb["metadata"]["language_info"] = info
            api(rel, "PUT", json.dumps({"type": "notebook", "format": "json", "content": nb}).encode())
            if (work / rel).read_bytes() != before:
                changed.append(str(p))
        assert not changed, f"saving through Jupyter rewrote {changed}"
    finally:
        server.terminate()
        server.wait(timeout=20)
