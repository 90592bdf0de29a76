"""What `make lab` shows students (no nbgrader extensions, one server per folder) and what
`make formgrader` gives instructors (hand-grading on the grading workspace, into export and the total)."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "course"
TOKEN = "course-lab-test-token"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url, method="GET", body=None):
    req = urllib.request.Request(url, method=method, data=body,
                                 headers={"Authorization": f"token {TOKEN}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


class Make:
    """`make TARGET ...` in its own process group, with a known token and runtime folder."""

    def __init__(self, runtime, *args):
        self.env = {**os.environ, "JUPYTER_TOKEN": TOKEN, "JUPYTER_RUNTIME_DIR": str(runtime)}
        self.proc = subprocess.Popen(["make", "-s", *args], cwd=REPO, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, start_new_session=True)

    def wait_for(self, url, seconds=90):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"make ended: {self.proc.stdout.read()}")
            try:
                if _get(url)[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"{url} did not answer within {seconds} s")

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def test_lab_config_hides_nbgrader_from_students():
    page = json.loads((REPO / "jupyter" / "student" / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"] == {"@jupyter/nbgrader": True}
    server = json.loads((REPO / "jupyter" / "student" / "jupyter_server_config.json").read_text())
    exts = server["ServerApp"]["jpserver_extensions"]
    assert exts and not any(exts.values()) and all(k.startswith("nbgrader.") for k in exts)
    dry = subprocess.run(["make", "-n", "lab"], cwd=REPO, capture_output=True, text=True).stdout
    assert "JUPYTER_CONFIG_PATH" in dry and "jupyter/student" in dry and "already_running.py" in dry


@pytest.mark.slow
def test_make_lab_shows_no_nbgrader_and_runs_once(tmp_path):
    port = _free_port()
    lab = Make(tmp_path, "lab", f"PORT={port}")
    base = f"http://127.0.0.1:{port}"
    try:
        lab.wait_for(f"{base}/api/status")
        status, page = _get(f"{base}/lab")
        assert status == 200 and '"disabledExtensions": ["@jupyter/nbgrader"]' in page
        for path in ("formgrader", "assignments", "courses", "formgrader/api/status"):
            assert _get(f"{base}/{path}")[0] == 404, f"nbgrader's /{path} is served to students"
        t = time.monotonic()
        again = subprocess.run(["make", "-s", "lab", f"PORT={_free_port()}"], cwd=REPO, env=lab.env,
                               capture_output=True, text=True, timeout=60)
        assert again.returncode == 0 and time.monotonic() - t < 30
        assert "already running" in again.stdout and f":{port}/lab?token={TOKEN}" in again.stdout, again.stdout
    finally:
        lab.stop()


def test_make_formgrader_needs_a_gradebook(tmp_path):
    r = subprocess.run(["make", "-s", "formgrader", f"GRADING={tmp_path}"], cwd=REPO, capture_output=True, text=True)
    assert r.returncode != 0 and "no gradebook" in r.stdout and "autograde" in r.stdout


@pytest.mark.slow
def test_hand_grading_in_the_formgrader_reaches_export_and_the_total(tmp_path):
    subs = tmp_path / "subs" / "alice" / "00_fixture"
    subs.mkdir(parents=True)
    shutil.copy(FIXTURE / "solutions" / "00_fixture" / "fixture.ipynb", subs / "fixture.ipynb")
    grading = tmp_path / "grading"
    r = subprocess.run([sys.executable, "-m", "grader", "autograde", tmp_path / "subs", "--out", grading,
                        "--course", FIXTURE, "--jobs", "1"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr

    def export():
        out = tmp_path / "export.csv"
        r = subprocess.run([sys.executable, "-m", "grader", "export", "--gradebook", grading, "--out", out,
                            "--course", FIXTURE], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        with open(out, newline="") as f:
            return next(csv.DictReader(f))

    before = export()
    assert (before["score"], before["manual_score"], before["total_score"]) == ("5", "", "")

    port = _free_port()
    fg = Make(tmp_path / "runtime", "formgrader", f"GRADING={grading}", f"PORT={port}")
    base = f"http://127.0.0.1:{port}/formgrader"
    try:
        fg.wait_for(f"{base}/api/status")
        status, body = _get(f"{base}/api/submitted_notebooks/00_fixture/fixture")
        assert status == 200, "the formgrader does not see the autograded submissions"
        (sub,) = json.loads(body)
        assert sub["student"] == "alice" and sub["needs_manual_grade"]
        status, page = _get(f"{base}/submissions/{sub['id']}/?index=0")  # the hand-grading page
        assert status == 200 and "q_parity" in page
        grades = {g["name"]: g for g in json.loads(_get(f"{base}/api/grades?submission_id={sub['id']}")[1])}
        status, _ = _get(f"{base}/api/grade/{grades['q_parity']['id']}", "PUT", json.dumps({"manual_score": 1}).encode())
        assert status == 200
    finally:
        fg.stop()
    after = export()
    assert (after["score"], after["manual_score"], after["total_score"], after["q_parity"]) == ("5", "1", "6", "1")

    # a regrade (--force) keeps the hand-grading
    r = subprocess.run([sys.executable, "-m", "grader", "autograde", tmp_path / "subs", "--out", grading,
                        "--course", FIXTURE, "--jobs", "1", "--force"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert export()["total_score"] == "6", "a regrade lost the hand-graded points"
