"""autograde: grade a class in parallel, repairing what students broke, resumable.

Per submission (student x assignment), in a worker process:
  read the notebook (never through a symlink), repair it against the instructor's source
  (grader/repair.py), read the student's code for answers that are not their own work
  (grader/integrity.py), execute it with the student's cells in a sandboxed kernel and the tests in
  the trusted judge (grader/execute.py), score it (grader/scoring.py), write
  OUT/autograded/STUDENT/ASSIGNMENT/NOTEBOOK.ipynb and OUT/feedback/STUDENT/ASSIGNMENT/NOTEBOOK.html,
  and return the scores. The sandbox is gone before the worker returns.
The parent process alone writes the gradebook, OUT/results/ (what makes a rerun resumable),
OUT/grades.csv, OUT/report.txt and the log (OUT/autograde.log, one line per submission); every file
it writes is written whole or not at all, so a grader killed mid-batch resumes with nothing lost or
doubled. A worker that dies is replaced and its jobs are graded again (twice at most).
With --scheduler ADDRESS the jobs run on a Dask cluster instead (grader/cluster.py: the same
grade_job on each worker, the files carried by value); the parent's part stays as it is.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import re
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from .course import Course, read_notebook
from .execute import DEFAULT_TIMEOUT, run_notebook
from .sandbox import Limits, bwrap_path, sandbox_status

RESULTS = "results"
MAX_NOTEBOOK_BYTES = 50 * 2 ** 20
ATTEMPTS = 2            # a job whose worker died is graded once more, then reported
_SAFE_NAME = re.compile(r"^[A-Za-z0-9@+][A-Za-z0-9 ._@+-]{0,99}$")


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` whole or not at all (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_submission(path):
    """A student's notebook: a valid one, or one whose JSON has a cell list (repair then drops what is
    malformed in it: a cell that is not a dict, a source that is a number). ValueError otherwise."""
    try:
        return read_notebook(path)
    except ValueError as first:
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (ValueError, OSError, UnicodeDecodeError):
            raise first from None
        if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
            raise first from None
        return raw


def unsafe_submission(sub, root: Path) -> str | None:
    """Why this submission must not be graded, or None: a student name that could become a path
    outside OUT, or a notebook that is a symlink or lies outside the submissions folder."""
    if not isinstance(sub.student, str) or not _SAFE_NAME.match(sub.student) or ".." in sub.student:
        return f"student name {sub.student!r} is not safe as a folder name"
    for p in sub.notebooks.values():
        p = Path(p)
        if p.is_symlink() or any(q.is_symlink() for q in p.parents if root in q.parents or q == root):
            return f"{p.name} is a symbolic link (refused, never followed)"
        try:
            p.resolve().relative_to(root.resolve())
        except ValueError:
            return f"{p} is outside the submissions folder"
        if not p.is_file():
            return f"{p.name} is not a regular file"
        if p.stat().st_size > MAX_NOTEBOOK_BYTES:
            return f"{p.name} is larger than {MAX_NOTEBOOK_BYTES // 2 ** 20} MB"
    return None


def _sha(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(map(str, paths)):
        h.update(p.encode() + b"\0")
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def grade_job(job: dict) -> dict:
    """Worker: grade one student's assignment. Never raises: problems go into the result."""
    from . import integrity, scoring
    from .feedback import feedback_notebook, render_html
    from .repair import hidden_starts, repair

    import nbformat

    if os.environ.get("GRADER_TEST_CRASH_WORKER_FOR") == job["student"]:  # the test of a dying worker
        os._exit(70)
    res = {"student": job["student"], "assignment": job["assignment"], "notebooks": {}, "problems": [],
           "notes": list(job.get("notes", [])), "sha": job["sha"], "skipped": False, "flags": [],
           "answers": {}, "sandboxed": None}
    out = Path(job["out"])
    for name, src_path in job["sources"].items():
        sub_path = job["notebooks"].get(name)
        source = read_notebook(src_path)
        if sub_path is None:
            res["problems"].append(f"{name} missing")
            res["notebooks"][name] = [dict(s.as_dict(), points=0.0 if s.kind == "auto" else None, passed=False if s.kind == "auto" else None,
                                           message="notebook not submitted")
                                      for s in scoring.score_notebook(source, set())]
            continue
        try:
            if Path(sub_path).is_symlink():
                raise ValueError(f"{Path(sub_path).name} is a symbolic link")
            student_nb = read_submission(sub_path)
            nb, notes = repair(student_nb, source)
        except (ValueError, OSError, TypeError, AttributeError, KeyError) as e:
            res["problems"].append(f"corrupt notebook: {e}")
            res["skipped"] = True
            return res
        res["notes"] += notes
        tainted, flags, answers = integrity.review(nb, source)
        res["flags"] += flags
        res["answers"][name] = answers
        starts = hidden_starts(nb)
        with tempfile.TemporaryDirectory(prefix="grader-sub-") as tmp:
            data_dir = Path(job["data_dir"]) if job.get("data_dir") else None
            if data_dir and data_dir.is_dir():
                for f in data_dir.rglob("*"):
                    if f.is_file() and f.suffix != ".ipynb" and ".ipynb_checkpoints" not in f.parts:
                        target = Path(tmp) / f.relative_to(data_dir)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(f, target)
            run = run_notebook(nb, cwd=tmp, timeout=job["timeout"], limits=Limits(**job["limits"]),
                               sandbox=job["sandbox"])
        res["sandboxed"] = run.sandboxed
        if run.problems:
            res["problems"] += run.problems
        scores = scoring.score_notebook(nb, run.executed, starts)
        res["notes"] += integrity.withhold(scores, nb, tainted)
        res["notebooks"][name] = [s.as_dict() for s in scores]
        dest = out / "autograded" / job["student"] / job["assignment"] / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(dest))
        got, maxp = scoring.totals(scores)
        header = (f"{job['student']}, {job['assignment']}/{name}: {got:g}/{maxp:g} autograded points"
                  + (f"; {'; '.join(run.problems)}" if run.problems else ""))
        fb = out / "feedback" / job["student"] / job["assignment"] / (Path(name).stem + ".html")
        fb.parent.mkdir(parents=True, exist_ok=True)
        try:
            fb.write_text(render_html(feedback_notebook(nb, scores, header)), encoding="utf-8")
        except Exception as e:  # feedback is a courtesy: a rendering problem must not lose the grade
            res["problems"].append(f"feedback not written ({type(e).__name__}: {e})")
    return res


def _worker_init(threads: int):
    """Each kernel inherits this environment. With several jobs on few cores, one BLAS/OpenMP
    thread per job avoids oversubscription (an explicit setting in the environment wins)."""
    os.environ["MPLBACKEND"] = "Agg"
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, str(threads))


def summarise(res: dict) -> str:
    """'alice 00_fixture 7/9 ok' / 'bob 00_fixture 0/5 timeout in cell test_x [restored deleted test_cube]'"""
    if res.get("skipped"):
        return f"{res['student']} {res['assignment']} skipped: {'; '.join(res['problems'])}"
    got = sum(s["points"] or 0 for scores in res["notebooks"].values() for s in scores if s["kind"] == "auto")
    maxp = sum(s["max_points"] for scores in res["notebooks"].values() for s in scores if s["kind"] == "auto")
    outcome = "; ".join(res["problems"]) or "ok"
    notes = f" [{'; '.join(res['notes'])}]" if res["notes"] else ""
    flagged = " FLAGGED" if any(": note:" not in f for f in res.get("flags", [])) else ""  # notes: report only
    return f"{res['student']} {res['assignment']} {got:g}/{maxp:g} {outcome}{flagged}{notes}"


def autograde(course: Course, submissions: Path, out: Path, jobs: int | None = None,
              timeout: float = DEFAULT_TIMEOUT, force: bool = False, log=print, roster=None,
              limits: Limits | None = None, require_sandbox: bool = False, scheduler=None) -> int:
    """Grade everything under `submissions` (folder or .zip) into `out`. Returns the number of
    submissions that could not be graded (corrupt, unmatched, refused). With `scheduler` (a Dask
    scheduler's address), the submissions are graded on that cluster (grader/cluster.py)."""
    from . import gradebook
    from .submissions import SubmissionsError, discover, extract_zip

    out = Path(out).resolve()
    for protected in (course.source_dir, course.release_dir):
        if out == protected.resolve() or protected.resolve() in out.parents:
            raise SystemExit(f"--out {out} is inside {protected}: grading never writes there")
    if require_sandbox and not bwrap_path():
        raise SystemExit("--require-sandbox: bwrap is not available on this machine (install the bubblewrap "
                         "package); nothing was graded")
    out.mkdir(parents=True, exist_ok=True)
    limits = limits or Limits(cell_timeout=timeout)
    jobs = max(1, jobs or os.cpu_count() or 1)
    logfile = open(out / "autograde.log", "a", encoding="utf-8")

    def say(line):
        line = " ".join(str(line).splitlines())  # one line per event: nothing from a submission can forge another
        log(line)
        logfile.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")
        logfile.flush()

    say(sandbox_status())
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grader-in-") as unzipped:
        submissions = Path(submissions)
        if submissions.is_file() and submissions.suffix == ".zip":
            root = extract_zip(submissions, Path(unzipped))
        elif submissions.is_dir():
            root = submissions
        else:
            raise SystemExit(f"{submissions}: not a folder or a .zip")
        try:
            subs, problems = discover(course, root, roster=roster) if roster else discover(course, root)
        except SubmissionsError:
            raise
        except Exception as e:  # a malformed folder must never abort with a traceback
            subs, problems = [], [f"the submissions could not be read ({type(e).__name__}: {e}): skipped"]
        failures = 0
        for p in problems:
            say(f"problem: {p}")
            failures += p.endswith("skipped")
        safe = []
        for sub in subs:
            why = unsafe_submission(sub, root)
            if why:
                say(f"{sub.student!r} {sub.assignment} skipped: refused: {why}")
                failures += 1
            else:
                safe.append(sub)
        subs = safe
        if not subs:
            say("nothing to grade")
        else:
            gradebook.ensure_assignments(course, out, {s.assignment for s in subs}, log=say)
        todo, skipped = [], 0
        for s in subs:
            sha = _sha(s.notebooks.values())
            done = out / RESULTS / s.student / f"{s.assignment}.json"
            if not force and _finished(done, sha):
                skipped += 1
                continue
            sources = {p.name: str(p) for p in course.source_notebooks(s.assignment)}
            todo.append({"student": s.student, "assignment": s.assignment, "sha": sha, "notes": s.notes,
                         "notebooks": {n: str(p) for n, p in s.notebooks.items()}, "sources": sources,
                         "data_dir": str(course.release_dir / s.assignment), "out": str(out), "timeout": timeout,
                         "limits": limits.as_dict(), "sandbox": True if require_sandbox else None})
        if skipped:
            say(f"{skipped} submission(s) already graded, skipped (use --force to regrade)")
        gb = gradebook.open_gradebook(out) if subs else None
        t1 = time.monotonic()
        graded, lost = _grade_all(todo, jobs, gb, out, say, scheduler=scheduler)
        failures += lost
        if gb is not None:
            tmp_csv = out / ".grades.csv.tmp"
            n = gradebook.export_csv(gb, tmp_csv, course)
            os.replace(tmp_csv, out / "grades.csv")
            gb.close()
            say(f"wrote {out / 'grades.csv'} ({n} rows), gradebook {out / 'gradebook.db'}, feedback in {out / 'feedback'}")
            write_report(out, say)
        elapsed = time.monotonic() - t1
        rate = graded / elapsed * 60 if graded and elapsed > 0 else 0.0
        where = f"on {scheduler}" if scheduler else f"with {jobs} job(s)"
        say(f"graded {graded} submission(s) in {elapsed:.1f}s {where}: {rate:.1f} submissions/minute"
            f" (total {time.monotonic() - t0:.1f}s)")
    logfile.close()
    return failures


def _finished(done: Path, sha: str) -> bool:
    try:
        return json.loads(done.read_text(encoding="utf-8")).get("sha") == sha
    except (OSError, ValueError, AttributeError):
        return False


def record_result(res: dict, gb, out: Path, say) -> int:
    """Parent: log one result and record it in the gradebook and OUT/results/. 1 if graded, else 0."""
    from . import gradebook

    say(summarise(res))
    if res["skipped"]:
        return 0
    gradebook.record(gb, res["student"], res["assignment"], res["notebooks"])
    write_atomic(out / RESULTS / res["student"] / f"{res['assignment']}.json",
                 json.dumps(res, indent=1, sort_keys=True) + "\n")
    return 1


def _grade_all(todo: list, jobs: int, gb, out: Path, say, scheduler=None) -> tuple[int, int]:
    """Run the jobs in a pool of workers (or on the Dask cluster at `scheduler`); record each result
    as it arrives. When a worker dies, every unfinished job of that pool fails with it, guilty or not:
    those jobs are graded again one at a time, each in a pool of its own, so that only a job that kills
    its own worker counts; it gets ATTEMPTS tries. Returns (graded, could not be graded)."""
    if scheduler:
        from .cluster import grade_on_cluster

        return grade_on_cluster(todo, scheduler, gb, out, say)
    graded, lost, broken = _run_pool(todo, jobs, gb, out, say)
    if broken:
        say(f"a grading worker died: grading {len(broken)} submission(s) again, one at a time")
    for job in broken:
        for _ in range(ATTEMPTS):
            g, l, again = _run_pool([job], 1, gb, out, say)
            if not again:
                graded, lost = graded + g, lost + l
                break
        else:
            say(f"{job['student']} {job['assignment']} skipped: its grading worker died {ATTEMPTS} times")
            lost += 1
    return graded, lost


def _run_pool(jobs_todo: list, jobs: int, gb, out: Path, say) -> tuple[int, int, list]:
    """One pool over `jobs_todo`: (graded, could not be graded, jobs whose pool broke under them)."""
    graded, lost, broken = 0, 0, []
    workers = min(jobs, len(jobs_todo))
    threads = max(1, (os.cpu_count() or 1) // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_worker_init, initargs=(threads,)) as ex:
        futures = {ex.submit(grade_job, job): job for job in jobs_todo}
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                res = fut.result()
            except BrokenProcessPool:
                broken.append(job)
                continue
            except Exception as e:  # noqa: BLE001 - report, go on
                say(f"{job['student']} {job['assignment']} skipped: internal error {type(e).__name__}: {e}")
                lost += 1
                continue
            ok = record_result(res, gb, out, say)
            graded += ok
            lost += 1 - ok
    return graded, lost, broken


def write_report(out: Path, say) -> None:
    """OUT/report.txt, for the instructor: every submission flagged or in trouble, and answer cells
    near-identical between students. Read from results/, which only this process writes."""
    from .integrity import similar_pairs

    flagged, answers = [], {}
    for f in sorted((out / RESULTS).glob("*/*.json")):
        try:
            res = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        who = f"{res.get('student')} {res.get('assignment')}"
        for line in res.get("flags", []):
            flagged.append(f"{who}: {line}")
        for p in res.get("problems", []):
            flagged.append(f"{who}: {p}")
        for n in res.get("notes", []):
            if "withheld" in n:
                flagged.append(f"{who}: {n}")
        for nb_answers in res.get("answers", {}).values():
            answers.setdefault(res.get("assignment"), {})[res.get("student")] = nb_answers
    pairs = [(a, *p) for a, by_student in sorted(answers.items()) for p in similar_pairs(by_student)]
    lines = ["Submissions to look at (flagged by the grader):", *(f"  {x}" for x in flagged or ["none"]), "",
             "Answer cells near-identical between two students (similarity of their code):",
             *(f"  {a} {gid}: {s1} ~ {s2} ({sim:.0%})" for a, gid, s1, s2, sim in pairs or []), ]
    if not pairs:
        lines.append("  none")
    write_atomic(out / "report.txt", "\n".join(lines) + "\n")
    say(f"report: {len(flagged)} flag(s), {len(pairs)} similar pair(s) in {out / 'report.txt'}")
