"""autograde on a Dask cluster: `python -m grader autograde SUBMISSIONS --out OUT --scheduler ADDRESS`.

The grading does not change: each task runs autograde.grade_job, on a worker, in a fresh grading
process of its own (main thread, so the judge keeps its time guard; the kernel in the same sandbox
with the same limits as a local run). What changes is only where it runs and how its files travel:

- A task carries by value what grade_job reads: the instructor's source notebooks, the assignment's
  data files and the student's notebooks, as bytes (`payload`). The worker writes them into a
  temporary folder, grades there, and sends back the result dict of grade_job with the autograded
  notebooks and feedback pages as text. A worker needs the course's environment (the pinned
  requirements and the course package: grader, nnlab and its datasets), nothing of the course folder.
- The parent (this client) stays the only writer of OUT: it writes the returned files, then records
  each result through autograde.record_result, the local pool's own code path, as it completes. An
  interrupted run resumes as a local one does.
- Retries: the scheduler is told to retry nothing itself (allowed-failures 0, task retries 0); the
  client grades a submission whose worker (or grading process) died once more on another worker,
  and reports it when that one dies too (autograde.ATTEMPTS). No more tasks are in flight than the
  workers have threads, so a worker that dies takes only the submission it was grading with it.
- Workers are checked before they get work: one whose nbgrader, nbclient or numpy version differs
  from the client's, or that cannot import the grader, or that runs more than one thread (the sandbox
  gives each grading process its own user id), or that has no bwrap under --require-sandbox, is
  refused, by name and reason.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from pathlib import Path

CHECKED = ("nbgrader", "nbclient", "numpy")
REFRESH_SECONDS = 5.0        # how often the client looks for workers that joined
WAIT_FOR_WORKERS = 60.0      # seconds to wait for a first worker
MAX_REFUSALS = 5             # a task refused by this many mismatched workers is reported


class GraderDied(RuntimeError):
    """The grading process on a worker died (killed, out of memory) or ran past every time limit."""


class VersionMismatch(RuntimeError):
    """The worker's nbgrader, nbclient or numpy version is not the client's."""

    def __init__(self, worker: str, why: str):
        super().__init__(worker, why)
        self.worker, self.why = worker, why

    def __str__(self):
        return f"worker {self.worker}: {self.why}"


def versions() -> dict:
    """The versions this process has of the packages a worker must share with the client."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in CHECKED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def mismatch(theirs: dict, ours: dict) -> str | None:
    """'numpy 2.3.0 (client: 2.4.6); nbclient missing (client: 0.11.0)', or None when they agree."""
    diffs = [f"{name} {theirs.get(name) or 'missing'} (client: {ours.get(name)})"
             for name in CHECKED if theirs.get(name) != ours.get(name)]
    return "; ".join(diffs) or None


# ----------------------------------------------------------------------------- on the client

def payload(job: dict) -> dict:
    """The job of autograde.py with every file it names read into the task (by value)."""
    data_dir = Path(job["data_dir"]) if job.get("data_dir") else None
    data = {}
    if data_dir and data_dir.is_dir():  # the same files grade_job copies next to the notebook
        for f in sorted(data_dir.rglob("*")):
            if f.is_file() and f.suffix != ".ipynb" and ".ipynb_checkpoints" not in f.parts:
                data[f.relative_to(data_dir).as_posix()] = f.read_bytes()
    task = {k: v for k, v in job.items() if k not in ("sources", "notebooks", "data_dir", "out")}
    task["sources"] = {name: Path(p).read_bytes() for name, p in job["sources"].items()}
    task["notebooks"] = {name: Path(p).read_bytes() for name, p in job["notebooks"].items()}
    task["paths"] = {name: str(p) for name, p in job["notebooks"].items()}  # names in messages
    task["data"] = data
    return task


def write_files(res: dict, job: dict, out: Path) -> None:
    """Write the autograded notebooks and feedback pages a worker sent back, under names the client
    derives itself (only notebooks of this assignment, in this student's folders)."""
    from .autograde import write_atomic

    files = res.pop("files", {}) or {}
    for name in job["sources"]:
        if name in files.get("autograded", {}):
            write_atomic(out / "autograded" / job["student"] / job["assignment"] / name, files["autograded"][name])
        page = Path(name).stem + ".html"
        if page in files.get("feedback", {}):
            write_atomic(out / "feedback" / job["student"] / job["assignment"] / page, files["feedback"][page])


def connect(address: str):
    from distributed import Client

    if Path(address).is_file():  # a scheduler file (dask-jobqueue, `dask scheduler --scheduler-file`)
        return Client(scheduler_file=address, timeout=30)
    return Client(address, timeout=30)


def configure_scheduler(client) -> int:
    """Let the scheduler retry nothing on its own: the client counts the attempts. Returns the value
    the scheduler had (Dask's default is 3: one memory bomb could then kill three workers)."""
    def no_retries(dask_scheduler):  # nested: pickled by value, the scheduler needs no grader
        old = dask_scheduler.allowed_failures
        dask_scheduler.allowed_failures = 0
        return old

    try:
        return client.run_on_scheduler(no_retries)
    except Exception as e:  # noqa: BLE001
        raise SystemExit(f"the scheduler refused to set allowed-failures to 0 ({type(e).__name__}: {e}); start it with "
                         f"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES=0 and "
                         f"DASK_DISTRIBUTED__SCHEDULER__PICKLE=True") from None


class Workers:
    """The workers the client grades on: checked once each, refused with a reason when they differ."""

    def __init__(self, client, say, need_bwrap: bool = False):
        self.client, self.say, self.need_bwrap = client, say, need_bwrap
        self.ours = versions()
        self.good: dict[str, int] = {}    # address -> threads
        self.refused: dict[str, str] = {}
        self.checked_at = 0.0

    def refuse(self, address: str, why: str) -> None:
        if address not in self.refused:
            self.say(f"worker {address} refused: {why}")
        self.refused[address] = why
        self.good.pop(address, None)

    def refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.checked_at < REFRESH_SECONDS:
            return
        self.checked_at = now
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        for gone in set(self.good) - set(info):
            del self.good[gone]
        new = [a for a in info if a not in self.good and a not in self.refused]
        if not new:
            return
        ours = self.ours

        def check(names=CHECKED):  # nested: pickled by value, runs even where the grader is missing
            from importlib.metadata import PackageNotFoundError, version
            from importlib.util import find_spec
            from shutil import which

            found = {"grader": find_spec("grader.cluster") is not None, "bwrap": which("bwrap") is not None}
            for name in names:
                try:
                    found[name] = version(name)
                except PackageNotFoundError:
                    found[name] = None
            return found

        answers = self.client.run(check, workers=new, on_error="return")
        for address in new:
            got = answers.get(address)
            if got is None:  # left meanwhile
                continue
            if isinstance(got, BaseException):
                self.refuse(address, f"could not be asked for its versions ({type(got).__name__}: {got})")
            elif not got.get("grader"):
                self.refuse(address, "cannot import the grader: start it from the course's .venv, "
                                     "with the course installed (make setup)")
            elif mismatch(got, ours):
                self.refuse(address, f"different versions: {mismatch(got, ours)}")
            elif self.need_bwrap and not got.get("bwrap"):
                self.refuse(address, "no bwrap (--require-sandbox): install the bubblewrap package there")
            elif info[address].get("nthreads", 1) != 1:
                self.refuse(address, f"{info[address].get('nthreads')} threads: start workers with --nthreads 1 "
                                     f"(each grading process gets its own sandbox user)")
            else:
                self.good[address] = 1
                self.say(f"worker {address} accepted (nbgrader {got['nbgrader']}, nbclient {got['nbclient']}, "
                         f"numpy {got['numpy']}; {'bwrap sandbox' if got.get('bwrap') else 'no bwrap: limits only'})")

    def slots(self) -> int:
        return sum(self.good.values())

    def restriction(self) -> list[str] | None:
        """None (any worker) until some worker was refused; then the accepted ones."""
        return sorted(self.good) if self.refused else None


def grade_on_cluster(todo: list, scheduler, gb, out: Path, say, task=None) -> tuple[int, int]:
    """Grade the jobs on the Dask cluster at `scheduler` (an address, a scheduler file, or a
    distributed.Client); record each result as it arrives. Returns (graded, could not be graded).
    `task` replaces grade_task (tests)."""
    from concurrent.futures import CancelledError

    from distributed import as_completed
    from distributed.scheduler import KilledWorker

    from .autograde import ATTEMPTS, record_result

    task = task or grade_task
    own = isinstance(scheduler, (str, os.PathLike))
    client = connect(str(scheduler)) if own else scheduler
    graded = lost = 0
    events = deque()
    try:
        old = configure_scheduler(client)
        if old:
            say(f"scheduler {client.scheduler.address}: allowed-failures {old} -> 0 (the client retries, once)")
        try:
            client.wait_for_workers(1, timeout=WAIT_FOR_WORKERS)
        except Exception:  # noqa: BLE001 - TimeoutError under several names
            raise SystemExit(f"no worker joined {client.scheduler.address} within {WAIT_FOR_WORKERS:g}s; nothing was graded")
        pool = Workers(client, say, need_bwrap=any(j.get("sandbox") for j in todo))
        pool.refresh(force=True)
        if not pool.slots():
            raise SystemExit(f"no usable worker at {client.scheduler.address} ({len(pool.refused)} refused); "
                             f"nothing was graded")
        client.subscribe_topic("all", events.append)

        queue = deque(todo)
        attempts = {id(j): 0 for j in todo}
        refusals = {id(j): 0 for j in todo}
        inflight = {}
        ac = as_completed()

        def top_up():
            pool.refresh()
            while queue and len(inflight) < max(1, pool.slots()):
                job = queue.popleft()
                attempts[id(job)] += 1
                key = f"grade {job['student']}/{job['assignment']} #{attempts[id(job)]} {uuid.uuid4().hex[:8]}"
                carried = payload(job)
                carried["versions"] = pool.ours
                fut = client.submit(task, carried, key=key, pure=False, retries=0,
                                    workers=pool.restriction(), allow_other_workers=False)
                inflight[fut.key] = (fut, job)
                ac.add(fut)

        def report_events():
            while events:
                _, msg = events.popleft()
                if isinstance(msg, dict) and msg.get("action") == "remove-worker" and not msg.get("expected"):
                    say(f"worker {msg.get('worker')} died" + (
                        f" while grading {', '.join(sorted(map(str, msg['processing-tasks'])))}"
                        if msg.get("processing-tasks") else ""))

        top_up()
        for fut in ac:
            fut_, job = inflight.pop(fut.key)
            who = f"{job['student']} {job['assignment']}"
            try:
                res = fut.result()
            except (KilledWorker, GraderDied, CancelledError) as e:
                report_events()
                if client.status != "running":
                    raise SystemExit(f"lost the scheduler {client.scheduler.address} ({client.status}): {graded} "
                                     f"submission(s) recorded; run the same command again to grade the rest") from None
                if attempts[id(job)] >= ATTEMPTS:
                    say(f"{who} skipped: its grading worker died {ATTEMPTS} times")
                    lost += 1
                else:
                    if isinstance(e, KilledWorker):
                        why = f"its worker {getattr(e.last_worker, 'address', '?')} died"
                    elif isinstance(e, GraderDied):
                        why = f"its grading process died ({e})"
                    else:
                        why = "the scheduler dropped its task"
                    say(f"{who}: {why}: graded once more on another worker")
                    queue.appendleft(job)
            except VersionMismatch as e:  # a worker that changed under us: not the submission's fault
                pool.refuse(e.worker, e.why)
                attempts[id(job)] -= 1
                refusals[id(job)] += 1
                if refusals[id(job)] >= MAX_REFUSALS:
                    say(f"{who} skipped: refused by {MAX_REFUSALS} workers ({e})")
                    lost += 1
                else:
                    queue.appendleft(job)
            except Exception as e:  # noqa: BLE001 - report, go on
                say(f"{who} skipped: internal error {type(e).__name__}: {e}")
                lost += 1
            else:
                write_files(res, job, out)
                ok = record_result(res, gb, out, say)
                graded += ok
                lost += 1 - ok
            fut.release()  # forget the result on the cluster: a worker that dies later must not regrade it
            del fut, fut_
            report_events()
            top_up()
    finally:
        try:
            client.unsubscribe_topic("all")
        except Exception:  # noqa: BLE001 - never subscribed, or the scheduler is gone
            pass
        if own:
            client.close()
    return graded, lost


# ----------------------------------------------------------------------------- on a worker

def grade_task(task: dict) -> dict:
    """Dask task: grade one student's assignment from the files it carries. Materialises them in a
    temporary folder, runs grade_job on paths there in a grading process of its own, and returns
    grade_job's result with "files": {"autograded": {NOTEBOOK: text}, "feedback": {PAGE: text}}."""
    here = versions()
    if task.get("versions") and mismatch(here, task["versions"]):
        from distributed import get_worker

        raise VersionMismatch(get_worker().address, f"different versions: {mismatch(here, task['versions'])}")
    with tempfile.TemporaryDirectory(prefix="grader-task-") as tmp:
        tmp = Path(tmp)
        job = {k: v for k, v in task.items() if k not in ("sources", "notebooks", "data", "paths")}
        job["out"] = str(tmp / "out")
        job["sources"] = _materialise(tmp / "source", task["sources"])
        job["notebooks"] = {}
        for i, (name, content) in enumerate(task["notebooks"].items()):  # the student's file name, kept
            rel = f"{i}/{Path(task['paths'][name]).name}"
            job["notebooks"][name] = _materialise(tmp / "submitted", {rel: content})[rel]
        data = tmp / "data"
        _materialise(data, task["data"])
        job["data_dir"] = str(data)
        res = _run_grading_process(job, tmp)
        remote = {job["notebooks"][n]: task["paths"][n] for n in job["notebooks"]}
        for field in ("problems", "notes"):
            res[field] = [_replace_all(s, remote) for s in res.get(field, [])]
        files = {"autograded": {}, "feedback": {}}
        for name in task["sources"]:
            nb = tmp / "out" / "autograded" / task["student"] / task["assignment"] / name
            page = tmp / "out" / "feedback" / task["student"] / task["assignment"] / (Path(name).stem + ".html")
            if nb.is_file():
                files["autograded"][name] = nb.read_text(encoding="utf-8")
            if page.is_file():
                files["feedback"][page.name] = page.read_text(encoding="utf-8")
        res["files"] = files
    return res


def _replace_all(text, mapping):
    if not isinstance(text, str):
        return text
    for a, b in mapping.items():
        text = text.replace(a, b)
    return text


def _materialise(folder: Path, files: dict) -> dict:
    """Write {relative name: bytes} under folder; names that would leave it are dropped."""
    paths = {}
    for rel, content in files.items():
        target = (folder / rel).resolve()
        if folder.resolve() not in target.parents:
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        paths[rel] = str(target)
    return paths


class _GradingProcess:
    """A Python process on the worker that runs grade_job in its main thread, as the local pool's
    worker process does (the judge's time guard needs the main thread), kept warm between tasks and
    renewed every MAX_JOBS jobs. It dies with the worker (PR_SET_PDEATHSIG). The worker sends it the
    path of a job file on its stdin and reads "done" on a private pipe when the result file is written."""

    MAX_JOBS = 50
    _current = None
    _lock = threading.Lock()

    def __init__(self):
        env = dict(os.environ, MPLBACKEND="Agg")
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env.setdefault(var, "1")
        _drop_nanny_malloc_settings(env)
        self.cwd = tempfile.mkdtemp(prefix="grader-process-")  # empty: nothing to import from
        flags = ["-P"] if sys.version_info >= (3, 11) else []
        self.reply, w = os.pipe()
        cmd = [sys.executable, *flags, "-c", "import sys; from grader.cluster import _serve; _serve(*sys.argv[1:])",
               str(os.getpid()), str(w)]
        self.stderr = Path(self.cwd) / "stderr.txt"  # a file: a full pipe would stop the process
        with open(self.stderr, "wb") as err:
            self.proc = subprocess.Popen(cmd, cwd=self.cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=err, pass_fds=(w,))
        os.close(w)
        self.jobs = 0

    @classmethod
    def get(cls) -> "_GradingProcess":
        gp = cls._current
        if gp is None or gp.proc.poll() is not None or gp.jobs >= cls.MAX_JOBS:
            if gp is not None:
                gp.close()
            gp = cls._current = cls()
        return gp

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        os.close(self.reply)
        shutil.rmtree(self.cwd, ignore_errors=True)
        if _GradingProcess._current is self:
            _GradingProcess._current = None

    def run(self, job_file: Path, result_file: Path, deadline: float) -> None:
        self.jobs += 1
        try:
            self.proc.stdin.write(f"{job_file}\t{result_file}\n".encode())
            self.proc.stdin.flush()
        except OSError:
            pass  # it died: reported below
        ready, _, _ = select.select([self.reply], [], [], deadline)
        line = os.read(self.reply, 64) if ready else b""
        if line.startswith(b"done") and result_file.is_file():
            return
        if not ready:
            self.close()
            raise GraderDied(f"the grading process ran past {deadline:g}s")
        self.proc.wait()
        try:
            err = self.stderr.read_bytes()[-2000:].decode(errors="replace").strip().splitlines()[-1:]
        except OSError:
            err = []
        code = self.proc.returncode
        self.close()
        how = f"signal {-code}" if code < 0 else f"exit status {code}"
        raise GraderDied(f"the grading process ended with {how}" + (f": {err[0][:200]}" if err else ""))


def _drop_nanny_malloc_settings(env: dict) -> None:
    """The kernel gets the environment of a local run: Dask's nanny sets MALLOC_TRIM_THRESHOLD_ for
    its workers (pre-spawn-environ), which can make numpy-heavy student code slower."""
    try:
        import dask
        import distributed  # noqa: F401 - loads its configuration

        pre = dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}
    except Exception:  # noqa: BLE001
        pre = {}
    for key, value in pre.items():
        if key.startswith("MALLOC_") and env.get(key) == str(value):
            del env[key]


def _run_grading_process(job: dict, tmp: Path) -> dict:
    """grade_job(job) in this worker's grading process. Raises GraderDied if that process dies or
    outlives every time limit of the job (grade_job keeps to its limits: this is a backstop)."""
    (tmp / "job.json").write_text(json.dumps(job), encoding="utf-8")
    limit = job["limits"].get("notebook_timeout") or 3600
    deadline = limit * max(1, len(job["sources"])) + 300
    with _GradingProcess._lock:
        _GradingProcess.get().run(tmp / "job.json", tmp / "result.json", deadline)
    return json.loads((tmp / "result.json").read_text(encoding="utf-8"))


def _serve(parent: str, reply_fd: str) -> None:
    """The grading process: dies with the worker, then grades the jobs named on its stdin."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != int(parent):
            os._exit(1)
    except (OSError, AttributeError):
        pass
    from .autograde import _worker_init, grade_job

    _worker_init(1)
    reply = int(reply_fd)
    for line in sys.stdin:
        job_file, result_file = line.rstrip("\n").split("\t")
        res = grade_job(json.loads(Path(job_file).read_text(encoding="utf-8")))
        tmp = Path(result_file).with_suffix(".tmp")
        tmp.write_text(json.dumps(res), encoding="utf-8")
        os.replace(tmp, result_file)
        os.write(reply, b"done\n")
