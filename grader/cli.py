"""`python -m grader`: release, validate, check, autograde, export. Every command has --help."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .course import DEFAULT_ROOT, Course
from .execute import DEFAULT_TIMEOUT


def _course_arg(p):
    p.add_argument("--course", type=Path, default=None, metavar="ROOT",
                   help=f"course root holding solutions/ and notebooks/ (default: {DEFAULT_ROOT})")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m grader", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="Layout: solutions/ASSIGNMENT/*.ipynb (instructor) -> notebooks/ASSIGNMENT/*.ipynb "
                                        "(students). See grader/nbgrader_config.py.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("release", help="regenerate notebooks/ from solutions/ (deterministic)",
                       description="Regenerate notebooks/ASSIGNMENT/ from solutions/ASSIGNMENT/ with nbgrader: "
                                   "solutions become stubs, hidden tests are removed, outputs cleared. "
                                   "A second run gives byte-identical files.")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="assignment folders (default: all)")
    p.add_argument("--force", action="store_true",
                   help="overwrite notebooks in notebooks/ even when they hold answers (someone's work)")
    _course_arg(p)

    p = sub.add_parser("validate", help="solutions pass every test; releases fail every graded test",
                       description="Execute each solution notebook (all graded tests must pass) and its "
                                   "untouched release with hidden tests put back (every graded test must fail). "
                                   "Exit status 1 if anything is wrong; each problem names the cell.")
    p.add_argument("assignments", nargs="*", metavar="ASSIGNMENT", help="assignment folders (default: all)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per cell (default %(default)s)")
    _course_arg(p)

    p = sub.add_parser("check", help="students: run your notebook as the autograder would and see your score",
                       description="Run NOTEBOOK in a fresh kernel as the autograder would (offline, no set-up), "
                                   "and print each exercise with its points and result, then what to do next. Hidden tests "
                                   "are not run (unless --hidden). Test cells are the instructor's: an edited one is "
                                   "restored or not counted; a notebook that is not the one its name says is refused. "
                                   "Exit status 0 when every test that ran passed, 1 otherwise, 2 when refused. "
                                   "Save the notebook first: the file on disk is what is checked.")
    p.add_argument("notebook", type=Path, metavar="NOTEBOOK")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per cell (default %(default)s)")
    p.add_argument("--hidden", action="store_true",
                   help="run the hidden tests too, as grading does (needs solutions/, i.e. the whole course: "
                        "for people learning alone; a students' copy says it cannot)")
    _course_arg(p)

    p = sub.add_parser("autograde", help="grade a class: gradebook, grades.csv, feedback",
                       description="Grade every submission in SUBMISSIONS, a folder or .zip in nbgrader's layout "
                                   "STUDENT/ASSIGNMENT/NOTEBOOK.ipynb or an LMS download of flat files "
                                   "STUDENT_<anything>_NOTEBOOK.ipynb (see grader/submissions.py). Writes "
                                   "OUT/grades.csv, OUT/gradebook.db, OUT/feedback/STUDENT/ASSIGNMENT/*.html, "
                                   "OUT/autograded/ and OUT/autograde.log. Already graded, unchanged submissions "
                                   "are skipped unless --force. Exit status 1 if some submission could not be graded "
                                   "(corrupt or unmatched notebook: reported, the batch goes on).")
    p.add_argument("submissions", type=Path, metavar="SUBMISSIONS")
    p.add_argument("--out", type=Path, required=True, metavar="OUT", help="output folder (e.g. grading/)")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                   help="submissions graded in parallel (default: number of cores, %(default)s)")
    p.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds per cell (default %(default)s)")
    p.add_argument("--force", action="store_true", help="regrade submissions that were already graded")
    p.add_argument("--require-sandbox", action="store_true",
                   help="refuse to grade unless bwrap (package bubblewrap) can sandbox the kernels")
    p.add_argument("--memory", type=float, default=2, metavar="GiB", help="memory per kernel (default %(default)s GiB)")
    p.add_argument("--processes", type=int, default=256, help="processes per kernel (default %(default)s)")
    p.add_argument("--max-output", type=float, default=100, metavar="MB",
                   help="output a notebook may print (default %(default)s MB)")
    p.add_argument("--notebook-timeout", type=float, default=3600, metavar="S",
                   help="seconds for a whole notebook (default %(default)s)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="grade on the Dask cluster whose scheduler is at ADDRESS (tcp://host:8786, or a scheduler "
                        "file); --jobs is then unused (see grader/cluster.py). Default: the local pool")
    p.add_argument("--roster", type=Path, default=None, metavar="CSV",
                   help="class roster (columns student_id, name, email, lms_id; see grader/lms.py): "
                        "students are graded under the roster's student_id, found by the LMS id in the file names")
    _course_arg(p)

    p = sub.add_parser("export", help="write the gradebook as CSV (same columns as grades.csv)",
                       description="Write the gradebook OUT/gradebook.db as CSV, one row per student and "
                                   "assignment: student, assignment, score, max_score (autograded points), "
                                   "manual_score, manual_max_score, total_score, total_max_score, then one "
                                   "column per graded cell.")
    p.add_argument("--out", type=Path, required=True, metavar="CSV", help="CSV file to write")
    p.add_argument("--gradebook", type=Path, default=None, metavar="DIR",
                   help="folder holding gradebook.db (default: <course>/grading)")
    p.add_argument("--format", choices=("csv", "canvas", "moodle"), default="csv",
                   help="csv (default): the columns of grades.csv; canvas: Student, ID, SIS User ID, SIS Login ID, "
                        "Section, one column per assignment (Canvas's gradebook import); moodle: ID number, "
                        "Email address, one column per assignment (Moodle's CSV grade import). "
                        "canvas and moodle need --roster")
    p.add_argument("--roster", type=Path, default=None, metavar="CSV",
                   help="class roster (student_id, name, email, lms_id[, login, section]; see grader/lms.py)")
    _course_arg(p)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    course = Course.at(args.course)
    if args.command == "release":
        from .release import WorkWouldBeLost, release

        try:
            release(course, args.assignments, force=args.force)
        except WorkWouldBeLost as e:
            print(f"error: {e}")
            return 1
        return 0
    if args.command == "validate":
        from .validate import validate

        if not course.assignments():
            print(f"nothing to validate: {course.source_dir} holds no assignment (validate checks the instructor's "
                  f"notebooks in solutions/, which a students' copy does not have)", file=sys.stderr)
            return 2
        n = validate(course, args.assignments, timeout=args.timeout)
        print(f"{n} problem(s)" if n else "all notebooks valid")
        return 1 if n else 0
    if args.command == "check":
        from .check import check

        return check(args.notebook, course, timeout=args.timeout, hidden=args.hidden)
    if args.command == "autograde":
        from .autograde import autograde

        from .lms import RosterError
        from .submissions import SubmissionsError

        try:
            from .sandbox import GiB, MB, Limits

            limits = Limits(memory=int(args.memory * GiB), processes=args.processes, output=int(args.max_output * MB),
                            cell_timeout=args.timeout, notebook_timeout=args.notebook_timeout)
            failures = autograde(course, args.submissions, args.out, jobs=args.jobs, timeout=args.timeout,
                                 force=args.force, roster=args.roster, limits=limits,
                                 require_sandbox=args.require_sandbox, scheduler=args.scheduler)
        except (SubmissionsError, RosterError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        return 1 if failures else 0
    if args.command == "export":
        from .gradebook import export_csv, open_gradebook

        folder = args.gradebook or course.root / "grading"
        if not (folder / "gradebook.db").is_file():
            print(f"no gradebook at {folder / 'gradebook.db'}", file=sys.stderr)
            return 1
        if args.format != "csv" and args.roster is None:
            print(f"--format {args.format} needs --roster CSV (the LMS ids and e-mails come from it)", file=sys.stderr)
            return 2
        gb = open_gradebook(folder)
        if args.format == "csv":
            n = export_csv(gb, args.out, course)
            warnings = []
        else:
            from .gradebook import rows
            from .lms import Roster, RosterError, write_lms_csv

            try:
                roster = Roster.read(args.roster)
            except (RosterError, OSError) as e:
                gb.close()
                print(f"error: {e}", file=sys.stderr)
                return 2
            n, warnings = write_lms_csv(args.out, args.format, *rows(gb, course), roster)
        gb.close()
        for w in warnings:
            print(f"warning: {w}")
        print(f"wrote {args.out} ({n} rows{', ' + args.format + ' format' if args.format != 'csv' else ''})")
        return 0
    return 2
