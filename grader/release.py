"""release: solutions/ -> notebooks/ with nbgrader's generate_assignment, then a normalisation
that makes the output byte-identical from one run to the next.

nbgrader does the real work (ClearSolutions, ClearHiddenTests, LockCells, ComputeChecksums, ...);
it runs in a throw-away course directory so that nothing but notebooks/ is ever written.
The same function registers an assignment in a gradebook (autograde passes its own db_url).
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
from pathlib import Path

import nbformat

from . import cells as C
from .course import Course, load_config, nbgrader_env, read_notebook

NBFORMAT_MINOR = 5
CELL_METADATA_KEEP = ("nbgrader", "deletable", "editable", "tags")


def normalise(nb) -> str:
    """A notebook as deterministic text: no outputs, no execution counts, only stable metadata,
    stable cell ids, sorted keys, nbformat 4.5, trailing newline."""
    nb = copy.deepcopy(nb)
    meta = nb.get("metadata", {})
    kernelspec = meta.get("kernelspec") or {"display_name": "Python 3 (ipykernel)", "language": "python",
                                            "name": "python3"}
    nb.metadata = nbformat.NotebookNode({"kernelspec": kernelspec,
                                         "language_info": {"name": meta.get("language_info", {}).get("name", "python")}})
    nb.nbformat, nb.nbformat_minor = 4, NBFORMAT_MINOR
    seen = set()
    for i, cell in enumerate(nb.cells):
        cell.metadata = nbformat.NotebookNode({k: cell.metadata[k] for k in CELL_METADATA_KEEP if k in cell.metadata})
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        cell.pop("attachments", None) if not cell.get("attachments") else None
        cid = cell.get("id")
        if not cid or cid in seen:
            cid = f"cell-{i:03d}"
        seen.add(cid)
        cell.id = cid
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def generate(course: Course, assignments: list[str], release_root: Path, db_url: str | None = None) -> None:
    """Run nbgrader generate_assignment for `assignments` in a temporary course directory and
    copy the raw release into release_root/ASSIGNMENT/. Raises RuntimeError with nbgrader's log."""
    nbgrader_env()
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory

    with tempfile.TemporaryDirectory(prefix="grader-release-") as tmp:
        tmp = Path(tmp)
        for a in assignments:
            shutil.copytree(course.source_dir / a, tmp / "source" / a,
                            ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        cfg = load_config(tmp)
        cfg.CourseDirectory.source_directory = "source"
        cfg.CourseDirectory.release_directory = "release"
        cfg.CourseDirectory.db_url = db_url or "sqlite:///" + str(tmp / "gradebook.db")
        cfg.GenerateAssignment.create_assignment = True
        cfg.Application.log_level = logging.WARNING
        api = NbGraderAPI(coursedir=CourseDirectory(config=cfg), config=cfg)
        for a in assignments:
            result = api.generate_assignment(a, force=True, create=True)
            if not result.get("success"):
                raise RuntimeError(f"nbgrader generate_assignment {a} failed:\n{result.get('error') or result.get('log')}")
            dest = release_root / a
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(tmp / "release" / a, dest)


def holds_answers(path: Path, fresh: Path) -> bool:
    """True when the notebook at `path` (in notebooks/) has an answer cell with fewer stubs than the
    same cell of the fresh release `fresh`: someone filled it in, and a release must not overwrite it."""
    def stubs(nb_path):
        try:
            nb = read_notebook(nb_path)
        except (ValueError, OSError):
            return {}
        return {C.grade_id(c): C.source(c).count("raise NotImplementedError()")
                for c in nb.cells if C.is_solution(c) and c.cell_type == "code"}
    new = stubs(fresh) if fresh.is_file() else {}
    return any(count < new.get(gid, 1) for gid, count in stubs(path).items())


class WorkWouldBeLost(RuntimeError):
    """release would overwrite or delete a notebook that holds answers."""


def release(course: Course, assignments: list[str] | None = None, dest: Path | None = None, log=print,
            force: bool = False) -> list[Path]:
    """Regenerate dest (default: the course's notebooks/) for the given assignments (default: all).
    Returns the notebook paths written. Other files of an assignment folder are copied as they are.
    Raises WorkWouldBeLost, writing nothing, when a notebook there holds answers, unless force=True."""
    assignments = course.select(assignments)
    dest = Path(dest) if dest else course.release_dir
    written = []
    if not assignments:
        log(f"no assignments in {course.source_dir}")
        return written
    with tempfile.TemporaryDirectory(prefix="grader-raw-") as raw:
        raw = Path(raw)
        generate(course, assignments, raw)
        at_risk = [p for a in assignments for p in sorted((dest / a).rglob("*.ipynb"))
                   if not force and holds_answers(p, raw / a / p.relative_to(dest / a))]
        if at_risk:
            raise WorkWouldBeLost(
                "these notebooks hold answers (someone's work) and release would overwrite them: "
                + ", ".join(str(p) for p in at_risk)
                + ". Copy them somewhere else first, or pass --force to overwrite them.")
        for a in assignments:
            out = dest / a
            out.mkdir(parents=True, exist_ok=True)
            new_names = set()
            for src in sorted((raw / a).rglob("*")):
                rel = src.relative_to(raw / a)
                target = out / rel
                if src.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                if src.suffix == ".ipynb":
                    new_names.add(rel)
                    text = normalise(read_notebook(src))
                    if not target.exists() or target.read_text(encoding="utf-8") != text:
                        target.write_text(text, encoding="utf-8", newline="\n")
                    written.append(target)
                else:
                    shutil.copyfile(src, target)
            for old in out.rglob("*.ipynb"):  # notebooks whose source was deleted or renamed
                if old.relative_to(out) not in new_names:
                    old.unlink()
            log(f"released {a}: " + ", ".join(str(p.relative_to(dest)) for p in written if p.parent == out))
    return written
