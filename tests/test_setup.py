"""The set-up a user meets first: pinned requirements, the Makefile's two commands, JupyterLab serving the course."""

import json
import os
import re
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
