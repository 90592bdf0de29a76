"""The set-up a user meets first: pinned requirements, the Makefile's two commands, JupyterLab serving the course."""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_requirements_are_pinned():
    lines = [line.split("#")[0].strip() for line in (ROOT / "requirements.txt").read_text().splitlines()]
    reqs = [line for line in lines if line]
    unpinned = [r for r in reqs if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.+\-]*", r)]
    assert not unpinned, f"pin exact versions (name==x.y.z): {unpinned}"
    names = {r.split("==")[0].lower() for r in reqs}
    assert {"numpy", "matplotlib", "jupyterlab", "nbgrader", "pytest", "nbval"} <= names


def test_make_lab_is_headless_and_takes_a_port():
    dry = subprocess.run(["make", "-n", "lab", "PORT=9123"], cwd=ROOT, capture_output=True, text=True)
    assert dry.returncode == 0, dry.stderr
    assert "--port=9123" in dry.stdout and "--no-browser" in dry.stdout


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_jupyterlab_serves_the_course(tmp_path):
    port, token = _free_port(), "course-test-token"
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
         f"--port={port}", f"--ServerApp.root_dir={ROOT}", f"--IdentityProvider.token={token}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path)})
    try:
        url = f"http://127.0.0.1:{port}/api/contents?token={token}"
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    listing = json.load(response)
                break
            except OSError:
                if time.time() > deadline or server.poll() is not None:
                    raise AssertionError("JupyterLab did not start within 60 s")
                time.sleep(0.5)
        names = {item["name"] for item in listing["content"]}
        assert {"notebooks", "nnlab", "datasets", "README.md"} <= names
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10) as response:
            assert response.status == 200
    finally:
        server.terminate()
        server.wait(timeout=20)


def test_a_broken_venv_is_detected(tmp_path):
    """A .venv whose Python is gone (moved, upgraded) is named, with the way out, instead of
    '/bin/sh: .venv/bin/python: not found'."""
    for name in ("Makefile", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, tmp_path / name)
    (tmp_path / ".venv" / "bin").mkdir(parents=True)
    (tmp_path / ".venv" / "bin" / "python").symlink_to(tmp_path / "no-such-python")
    (tmp_path / ".venv" / ".installed").touch()
    for target in ("test", "lab", "setup"):
        r = subprocess.run(["make", target], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        assert r.returncode != 0 and "is broken" in out and "make clean" in out, out
        assert "not found" not in out, out


def test_make_lab_says_when_it_already_runs(tmp_path):
    """already_running.py finds a server of this folder in Jupyter's runtime files."""
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    info = {"url": "http://127.0.0.1:8765/", "port": 8765, "token": "abc", "pid": os.getpid(),
            "root_dir": str(ROOT), "base_url": "/", "secure": False, "hostname": "127.0.0.1",
            "sock": "", "password": False, "version": "2"}
    (runtime / f"jpserver-{os.getpid()}.json").write_text(json.dumps(info))
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(runtime)}
    script = ROOT / "jupyter" / "already_running.py"
    r = subprocess.run([sys.executable, script, str(ROOT)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and "already running" in r.stdout and "http://127.0.0.1:8765/lab?token=abc" in r.stdout
    r = subprocess.run([sys.executable, script, str(tmp_path)], env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == ""


def test_student_copy_is_a_repository_with_its_own_readme(tmp_path):
    """make student-copy on a small committed course: no solutions/, STUDENTS.md as README, one commit,
    and the instructor-only targets say they need solutions/."""
    repo = tmp_path / "course"
    (repo / "solutions" / "01_x").mkdir(parents=True)
    (repo / "solutions" / "01_x" / "x.ipynb").write_text("{}")
    (repo / "notebooks" / "01_x").mkdir(parents=True)
    (repo / "notebooks" / "01_x" / "x.ipynb").write_text("{}")
    for name in ("Makefile", "README.md", "STUDENTS.md", "requirements.txt", "pyproject.toml"):
        shutil.copy(ROOT / name, repo / name)
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "course"]):
        subprocess.run(git + cmd, cwd=repo, check=True, capture_output=True)
    dest = tmp_path / "for-students"
    r = subprocess.run(["make", "student-copy", f"DEST={dest}"], cwd=repo, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (dest / "solutions").exists() and (dest / "notebooks" / "01_x" / "x.ipynb").is_file()
    assert (dest / "README.md").read_text() == (ROOT / "STUDENTS.md").read_text()
    assert not (dest / "STUDENTS.md").exists()
    log = subprocess.run(["git", "log", "--oneline"], cwd=dest, capture_output=True, text=True).stdout
    assert len(log.splitlines()) == 1, log
    assert subprocess.run(["git", "status", "--porcelain"], cwd=dest, capture_output=True, text=True).stdout == ""
    for target in ("validate", "release", "formgrader"):
        r = subprocess.run(["make", target], cwd=dest, capture_output=True, text=True, timeout=60)
        assert r.returncode != 0 and "no solutions/" in r.stdout, (target, r.stdout, r.stderr)


def test_validate_without_solutions_does_not_say_all_valid(tmp_path):
    r = subprocess.run([sys.executable, "-m", "grader", "validate", "--course", str(tmp_path)], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "all notebooks valid" not in r.stdout and "nothing to validate" in r.stderr
