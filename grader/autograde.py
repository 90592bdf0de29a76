"""autograde: grade a class in parallel, repairing what students broke, resumable.

Per submission (student x assignment), in a worker process:
  copy each notebook into a fresh temporary folder (with the released assignment's data files),
  repair it against the instructor's source (grader/repair.py), execute it (grader/execute.py),
  score it (grader/scoring.py), write OUT/autograded/STUDENT/ASSIGNMENT/NOTEBOOK.ipynb and
  OUT/feedback/STUDENT/ASSIGNMENT/NOTEBOOK.html, and return the scores.
The parent process alone writes the gradebook, OUT/results/ (what makes a rerun resumable),
OUT/grades.csv and the log (OUT/autograde.log, one line per submission).
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import tempfile
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from .course import Course, read_notebook
from .execute import DEFAULT_TIMEOUT, run_notebook

RESULTS = "results"


def _sha(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(map(str, paths)):
        h.update(p.encode() + b"\0")
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def grade_job(job: dict) -> dict:
    """Worker: grade one student's assignment. Never raises: problems go into the result."""
    from . import scoring
    from .feedback import feedback_notebook, render_html
    from .repair import hidden_starts, repair

    import nbformat

    res = {"student": job["student"], "assignment": job["assignment"], "notebooks": {}, "problems": [],
           "notes": list(job.get("notes", [])), "sha": job["sha"], "skipped": False}
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
            student_nb = read_notebook(sub_path)
        except (ValueError, OSError) as e:
            res["problems"].append(f"corrupt notebook: {e}")
            res["skipped"] = True
            return res
        nb, notes = repair(student_nb, source)
        res["notes"] += notes
        starts = hidden_starts(nb)
        with tempfile.TemporaryDirectory(prefix="grader-sub-") as tmp:
            data_dir = Path(job["data_dir"]) if job.get("data_dir") else None
            if data_dir and data_dir.is_dir():
                for f in data_dir.rglob("*"):
                    if f.is_file() and f.suffix != ".ipynb" and ".ipynb_checkpoints" not in f.parts:
                        target = Path(tmp) / f.relative_to(data_dir)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(f, target)
            run = run_notebook(nb, cwd=tmp, timeout=job["timeout"])
        if run.problems:
            res["problems"] += run.problems
        scores = scoring.score_notebook(nb, run.executed, starts)
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
    return f"{res['student']} {res['assignment']} {got:g}/{maxp:g} {outcome}{notes}"


def autograde(course: Course, submissions: Path, out: Path, jobs: int | None = None,
              timeout: float = DEFAULT_TIMEOUT, force: bool = False, log=print) -> int:
    """Grade everything under `submissions` (folder or .zip) into `out`. Returns the number of
    submissions that could not be graded (corrupt, unmatched)."""
    from . import gradebook
    from .submissions import discover, extract_zip

    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    for protected in (course.source_dir, course.release_dir):
        if out == protected.resolve() or protected.resolve() in out.parents:
            raise SystemExit(f"--out {out} is inside {protected}: grading never writes there")
    jobs = max(1, jobs or os.cpu_count() or 1)
    logfile = open(out / "autograde.log", "a", encoding="utf-8")

    def say(line):
        log(line)
        logfile.write(time.strftime("%Y-%m-%d %H:%M:%S ") + line + "\n")
        logfile.flush()

    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="grader-in-") as unzipped:
        submissions = Path(submissions)
        if submissions.is_file() and submissions.suffix == ".zip":
            root = extract_zip(submissions, Path(unzipped))
        elif submissions.is_dir():
            root = submissions
        else:
            raise SystemExit(f"{submissions}: not a folder or a .zip")
        subs, problems = discover(course, root)
        failures = 0
        for p in problems:
            say(f"problem: {p}")
            failures += p.endswith("skipped")
        if not subs:
            say("nothing to grade")
        else:
            gradebook.ensure_assignments(course, out, {s.assignment for s in subs}, log=say)
        todo, skipped = [], 0
        for s in subs:
            sha = _sha(s.notebooks.values())
            done = out / RESULTS / s.student / f"{s.assignment}.json"
            if not force and done.exists() and json.loads(done.read_text()).get("sha") == sha:
                skipped += 1
                continue
            sources = {p.name: str(p) for p in course.source_notebooks(s.assignment)}
            todo.append({"student": s.student, "assignment": s.assignment, "sha": sha, "notes": s.notes,
                         "notebooks": {n: str(p) for n, p in s.notebooks.items()}, "sources": sources,
                         "data_dir": str(course.release_dir / s.assignment), "out": str(out), "timeout": timeout})
        if skipped:
            say(f"{skipped} submission(s) already graded, skipped (use --force to regrade)")
        gb = gradebook.open_gradebook(out) if subs else None
        graded = 0
        t1 = time.monotonic()
        if todo:
            ctx = multiprocessing.get_context("spawn")
            workers = min(jobs, len(todo))
            threads = max(1, (os.cpu_count() or 1) // workers)
            with ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,
                                     initargs=(threads,)) as ex:
                futures = {ex.submit(grade_job, job): job for job in todo}
                for fut in as_completed(futures):
                    job = futures[fut]
                    try:
                        res = fut.result()
                    except Exception as e:  # a worker crashed (BrokenProcessPool, ...): report, go on
                        say(f"{job['student']} {job['assignment']} skipped: internal error {type(e).__name__}: {e}")
                        traceback.print_exc()
                        failures += 1
                        continue
                    say(summarise(res))
                    if res["skipped"]:
                        failures += 1
                        continue
                    gradebook.record(gb, res["student"], res["assignment"], res["notebooks"])
                    done = out / RESULTS / res["student"] / f"{res['assignment']}.json"
                    done.parent.mkdir(parents=True, exist_ok=True)
                    done.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n", encoding="utf-8")
                    graded += 1
        if gb is not None:
            n = gradebook.export_csv(gb, out / "grades.csv", course)
            gb.close()
            say(f"wrote {out / 'grades.csv'} ({n} rows), gradebook {out / 'gradebook.db'}, feedback in {out / 'feedback'}")
        elapsed = time.monotonic() - t1
        rate = graded / elapsed * 60 if graded and elapsed > 0 else 0.0
        say(f"graded {graded} submission(s) in {elapsed:.1f}s with {jobs} job(s): {rate:.1f} submissions/minute"
            f" (total {time.monotonic() - t0:.1f}s)")
    logfile.close()
    return failures
