"""autograde --scheduler: the fixture class graded on a dask.distributed.LocalCluster of two worker
processes (one thread each), as an instructor's cluster would grade it.

- the same grades.csv as the local pool (the class of tests/test_grader_e2e.py, graded once for both);
- a worker SIGKILLed while it grades: that submission is graded once more elsewhere, every
  submission exactly once, nothing lost;
- the client itself SIGKILLed mid-batch: the rerun resumes, nothing doubled;
- a task that kills every worker it runs on, or whose grading process dies: graded twice at most,
  then reported;
- a worker whose nbgrader, nbclient or numpy differs is refused, by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from test_grader_e2e import (ASSIGNMENT, NOTEBOOK, REPO, answer, graded, make_class, read_csv,  # noqa: F401
                             released, write_class)

from grader import cluster

pytestmark = [pytest.mark.grading, pytest.mark.slow]

QUICK = ("full", "empty", "partial", "hiddenfail", "renamed")


@pytest.fixture(scope="module")
def local_cluster():
    from distributed import Client, LocalCluster

    # the workers (and their grading processes) inherit it: grade_job's test hook exits for "crasher"
    # (no other test here has a student of that name)
    os.environ["GRADER_TEST_CRASH_WORKER_FOR"] = "crasher"
    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=":0",
                      silence_logs=50) as lc, Client(lc) as client:
        try:
            yield lc, client  # a worker restarted by its nanny inherits it again
        finally:
            del os.environ["GRADER_TEST_CRASH_WORKER_FOR"]


def autograde_cli(subs, out, scheduler, course, *extra):
    return [sys.executable, "-m", "grader", "autograde", str(subs), "--out", str(out), "--scheduler", scheduler,
            "--course", str(course), "--timeout", "4", *map(str, extra)]


def run(cmd, timeout=300):
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def summaries(log: str, students) -> dict:
    """student -> the result lines the run logged for it."""
    out = {s: [] for s in students}
    for line in log.splitlines():
        who = line.split(" ", 1)[0]
        if who in out and f" {ASSIGNMENT} " in line and ("/" in line.split(ASSIGNMENT, 1)[1][:12] or "skipped" in line):
            out[who].append(line)
    return out


def healthy(client, n=2):
    client.wait_for_workers(n, timeout=60)


def test_same_grades_as_the_local_pool(graded, local_cluster, tmp_path):
    lc, client = local_cluster
    out = tmp_path / "out"
    r = run(autograde_cli(graded["subs"], out, lc.scheduler_address, graded["course"]))
    assert r.returncode == graded["run"].returncode == 1, r.stdout + r.stderr  # the corrupt one in both
    assert (out / "grades.csv").read_text() == (graded["out"] / "grades.csv").read_text()
    local = summaries(graded["log"], make_class())
    remote = summaries(r.stdout, make_class())
    for student, lines in local.items():  # the same line per student: score, problems, notes
        if any("timeout" in x for x in lines + remote[student]):  # how a stuck kernel was stopped may vary with load
            assert [x.split()[:3] for x in remote[student]] == [x.split()[:3] for x in lines]
        else:
            assert remote[student] == lines
    for student in make_class():
        if student != "corrupt":
            assert (out / "feedback" / student / ASSIGNMENT / "fixture.html").is_file()
            assert (out / "autograded" / student / ASSIGNMENT / NOTEBOOK).is_file()
            res = json.loads((out / "results" / student / f"{ASSIGNMENT}.json").read_text())
            assert "files" not in res
    assert "accepted (nbgrader" in r.stdout
    assert f"on {lc.scheduler_address}" in r.stdout


def slow_answer(seconds):
    return answer(released(), square=f"import time\ntime.sleep({seconds})\ndef square(x):\n    return x * x")


def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(graded, local_cluster, tmp_path):
    lc, client = local_cluster
    healthy(client)
    klass = {s: make_class()[s] for s in ("full", "empty", "hiddenfail")}
    klass["slow"] = (slow_answer(5), NOTEBOOK)
    klass["crasher"] = make_class()["full"]  # its grading process exits at once, twice
    subs = write_class(tmp_path / "subs", klass)
    out = tmp_path / "out"
    p = subprocess.Popen(autograde_cli(subs, out, lc.scheduler_address, graded["course"], "--timeout", 30), cwd=REPO,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    victim, deadline = None, time.monotonic() + 120
    while victim is None and time.monotonic() < deadline and p.poll() is None:
        for worker, keys in client.processing().items():
            if any(str(k).startswith("grade slow/") for k in keys):
                victim = worker
        time.sleep(0.2)
    assert victim, "the slow submission never started"
    time.sleep(1.5)  # well inside its sleep
    pid = client.run(os.getpid, workers=[victim])[victim]
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = p.communicate(timeout=300)
    assert p.returncode == 1, stdout + stderr  # the crasher
    assert f"worker {victim} died while grading grade slow/" in stdout
    assert f"slow 00_fixture: its worker {victim} died: graded once more on another worker" in stdout
    assert ("crasher 00_fixture: its grading process died (the grading process ended with exit status 70): "
            "graded once more on another worker") in stdout
    assert "crasher 00_fixture skipped: its grading worker died 2 times" in stdout
    lines = summaries(stdout, klass)
    assert all(len(v) == 1 for v in lines.values()), lines  # each graded (or reported) exactly once
    rows = read_csv(out / "grades.csv")
    assert sorted(s for s, _ in rows) == sorted(set(klass) - {"crasher"})
    for s in ("full", "empty", "hiddenfail"):
        assert rows[(s, ASSIGNMENT)] == graded["rows"][(s, ASSIGNMENT)]
    assert rows[("slow", ASSIGNMENT)]["score"] == "5"
    assert len(list((out / "results").glob("*/*.json"))) == len(klass) - 1


def test_a_rerun_after_the_client_was_killed_resumes(graded, local_cluster, tmp_path):
    lc, client = local_cluster
    healthy(client)
    klass = {s: make_class()[s] for s in QUICK}
    subs = write_class(tmp_path / "subs", klass)
    out = tmp_path / "out"
    p = subprocess.Popen(autograde_cli(subs, out, lc.scheduler_address, graded["course"]), cwd=REPO,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    while len(list((out / "results").glob("*/*.json"))) < 2 and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL)
    p.wait()
    done = len(list((out / "results").glob("*/*.json")))
    assert 2 <= done < len(klass), "the client was not killed mid-batch"
    r = run(autograde_cli(subs, out, lc.scheduler_address, graded["course"]))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{done} submission(s) already graded, skipped" in r.stdout
    lines = summaries(r.stdout, klass)
    assert sum(len(v) for v in lines.values()) == len(klass) - done  # only the rest graded again
    rows = read_csv(out / "grades.csv")
    assert sorted(s for s, _ in rows) == sorted(klass)
    with open(out / "grades.csv") as f:
        assert len(f.read().splitlines()) == 1 + len(klass)
    for s in klass:
        assert rows[(s, ASSIGNMENT)] == graded["rows"][(s, ASSIGNMENT)]


def test_a_task_that_kills_its_worker_is_retried_once_then_reported(graded, local_cluster, tmp_path, monkeypatch):
    lc, client = local_cluster
    healthy(client)
    subs = write_class(tmp_path / "subs", {"full": make_class()["full"]})
    nb = subs / "full" / ASSIGNMENT / NOTEBOOK
    job = {"student": "full", "assignment": ASSIGNMENT, "sha": "x", "notes": [], "notebooks": {NOTEBOOK: str(nb)},
           "sources": {NOTEBOOK: str(graded["course"] / "solutions" / ASSIGNMENT / NOTEBOOK)},
           "data_dir": str(graded["course"] / "notebooks" / ASSIGNMENT), "out": str(tmp_path / "out"),
           "timeout": 4, "limits": {}, "sandbox": None}
    ran = tmp_path / "ran"
    ran.mkdir()

    def kill_my_worker(task):  # nested: pickled by value
        import os
        import signal
        from pathlib import Path

        Path(task["ran"], str(os.getpid())).touch()
        os.kill(os.getpid(), signal.SIGKILL)

    said = []
    payload = cluster.payload
    monkeypatch.setattr(cluster, "payload", lambda j: dict(payload(j), ran=str(ran)))
    graded_n, lost = cluster.grade_on_cluster([job], client, None, tmp_path / "out", said.append, task=kill_my_worker)
    assert (graded_n, lost) == (0, 1)
    assert len(list(ran.iterdir())) == 2  # two workers died for it, no third
    assert said[-1] == "full 00_fixture skipped: its grading worker died 2 times"
    assert any("graded once more on another worker" in s for s in said)
    healthy(client)


def test_a_worker_with_other_versions_is_refused():
    ours = cluster.versions()
    assert cluster.mismatch(dict(ours), ours) is None
    theirs = dict(ours, numpy="1.26.4", nbclient=None)
    why = cluster.mismatch(theirs, ours)
    assert f"numpy 1.26.4 (client: {ours['numpy']})" in why and "nbclient missing" in why
    assert "nbgrader" not in why

    class FakeClient:
        def scheduler_info(self, n_workers=-1):
            return {"workers": {"tcp://a:1": {"nthreads": 1}, "tcp://b:1": {"nthreads": 1},
                                "tcp://c:1": {"nthreads": 4}, "tcp://d:1": {"nthreads": 1}}}

        def run(self, fn, workers, on_error):
            got = fn()  # the check itself, run here
            return {"tcp://a:1": got, "tcp://b:1": dict(got, numpy="1.26.4"), "tcp://c:1": got,
                    "tcp://d:1": dict(got, grader=False)}

    said = []
    pool = cluster.Workers(FakeClient(), said.append)
    pool.refresh(force=True)
    assert list(pool.good) == ["tcp://a:1"]
    assert len(said) == 4 and said[0].startswith("worker tcp://a:1 accepted (nbgrader")
    assert pool.restriction() == ["tcp://a:1"]
    assert any(s.startswith("worker tcp://b:1 refused: different versions: numpy 1.26.4") for s in said)
    assert any(s.startswith("worker tcp://c:1 refused: 4 threads") for s in said)
    assert any(s.startswith("worker tcp://d:1 refused: cannot import the grader") for s in said)
