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
import sys
import tempfile
from pathlib import Path

import nbformat

from . import cells as C
from .course import Course, load_config, nbgrader_env, read_notebook

NBFORMAT_MINOR = 5
CELL_METADATA_KEEP = ("nbgrader", "deletable", "editable", "tags")
DEFAULT_KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def kernel_language_info() -> dict:
    """The language_info that this environment's Python kernel (ipykernel) reports, and that JupyterLab
    writes into a notebook's metadata as soon as the kernel starts."""
    return {"codemirror_mode": {"name": "ipython", "version": sys.version_info[0]}, "file_extension": ".py",
            "mimetype": "text/x-python", "name": "python", "nbconvert_exporter": "python",
            "pygments_lexer": "ipython3", "version": sys.version.split()[0]}


def _integral_floats_to_int(x):
    """JSON as a browser writes it back: JavaScript has one number type, so 3.0 comes back as 3."""
    if isinstance(x, float) and x.is_integer():
        return int(x)
    if isinstance(x, dict):
        return type(x)({k: _integral_floats_to_int(v) for k, v in x.items()})
    if isinstance(x, list):
        return [_integral_floats_to_int(v) for v in x]
    return x


def normalise(nb, language_info: dict | None = None) -> str:
    """A notebook as deterministic text, written as JupyterLab writes an unchanged notebook back (so
    that opening it and saving changes nothing): no outputs, no execution counts, only stable metadata,
    stable cell ids, integral numbers as integers ("points": 3, not 3.0), the kernel's full
    language_info, sorted keys, one-space indentation, nbformat 4.5, trailing newline."""
    nb = copy.deepcopy(nb)
    meta = nb.get("metadata", {})
    kernelspec = meta.get("kernelspec") or DEFAULT_KERNELSPEC
    nb.metadata = nbformat.NotebookNode({"kernelspec": kernelspec,
                                         "language_info": language_info or kernel_language_info()})
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
    nb = nbformat.from_dict(_integral_floats_to_int(nb))
    text = nbformat.writes(nb, version=4)
    return text if text.endswith("\n") else text + "\n"


def essentials(nb) -> dict:
    """What makes two releases the same release: cell types, sources and the kept cell metadata
    (nbgrader's as values, so 3 == 3.0), the kernelspec and the nbformat version. Not language_info
    (it depends on the local Python), cell ids, outputs or execution counts."""
    def src(cell):
        s = cell.get("source", "")
        return "".join(s) if isinstance(s, list) else s

    return {"nbformat": (nb.get("nbformat"), nb.get("nbformat_minor")),
            "kernelspec": dict(nb.get("metadata", {}).get("kernelspec") or DEFAULT_KERNELSPEC),
            "cells": [(c.get("cell_type"), src(c),
                       {k: c.get("metadata", {})[k] for k in CELL_METADATA_KEEP if k in c.get("metadata", {})})
                      for c in nb.get("cells", [])]}


def differences(committed, fresh) -> list[str]:
    """Human-readable differences between two releases' essentials (empty: not stale)."""
    a, b = essentials(committed), essentials(fresh)
    out = [f"{k}: {a[k]} instead of {b[k]}" for k in ("nbformat", "kernelspec") if a[k] != b[k]]
    if len(a["cells"]) != len(b["cells"]):
        out.append(f"{len(a['cells'])} cells instead of {len(b['cells'])}")
    for i, (x, y) in enumerate(zip(a["cells"], b["cells"])):
        for part, name in ((0, "cell type"), (1, "source"), (2, "metadata")):
            if x[part] != y[part]:
                gid = (y[2].get("nbgrader") or {}).get("grade_id")
                out.append(f"cell {i}{' (' + gid + ')' if gid else ''}: its {name} differs")
    return out if len(out) <= 12 else out[:12] + [f"... and {len(out) - 12} more"]


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


def _stub_counts(nb) -> dict:
    """grade_id -> number of `raise NotImplementedError()` stubs in each code answer cell of a notebook."""
    return {C.grade_id(c): C.source(c).count("raise NotImplementedError()")
            for c in nb.cells if C.is_solution(c) and c.cell_type == "code"}


def expected_stubs(source_nb) -> dict:
    """grade_id -> the number of stubs nbgrader's ClearSolutions leaves in each code answer cell of the
    source: one per BEGIN/END SOLUTION region (one for a cell without markers), plus any stub already
    written outside the regions. Read from the source alone, so release can check in a second what the
    30-second nbgrader run would tell."""
    out = {}
    for c in source_nb.cells:
        if not (C.is_solution(c) and c.cell_type == "code"):
            continue
        src = C.source(c)
        regions = sum("BEGIN SOLUTION" in ln for ln in src.splitlines())
        outside, inside = [], False
        for ln in src.splitlines():
            if "BEGIN SOLUTION" in ln:
                inside = True
            elif "END SOLUTION" in ln:
                inside = False
            elif not inside:
                outside.append(ln)
        out[C.grade_id(c)] = (regions + "\n".join(outside).count("raise NotImplementedError()")) if regions else 1
    return out


def holds_answers(path: Path, fresh) -> bool:
    """True when the notebook at `path` (in notebooks/) has an answer cell with fewer stubs than the
    same cell of the fresh release: someone filled it in, and a release must not overwrite it.
    `fresh` is the fresh release's path, or a dict grade_id -> stub count (expected_stubs)."""
    try:
        stubs = _stub_counts(read_notebook(path))
    except (ValueError, OSError):
        return False
    if isinstance(fresh, dict):
        new = fresh
    else:
        try:
            new = _stub_counts(read_notebook(fresh)) if Path(fresh).is_file() else {}
        except (ValueError, OSError):
            new = {}
    return any(count < new.get(gid, 1) for gid, count in stubs.items())


def _notebooks(folder: Path) -> list[Path]:
    """The notebooks of a release folder, never JupyterLab's .ipynb_checkpoints backups."""
    return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.relative_to(folder).parts)


class WorkWouldBeLost(RuntimeError):
    """release would overwrite or delete a notebook that holds answers."""


def _refuse(at_risk):
    raise WorkWouldBeLost(
        "these notebooks hold answers (someone's work) and release would overwrite them: "
        + ", ".join(str(p) for p in at_risk)
        + ". Copy them somewhere else first, or pass --force to overwrite them.")


def release(course: Course, assignments: list[str] | None = None, dest: Path | None = None, log=print,
            force: bool = False) -> list[Path]:
    """Regenerate dest (default: the course's notebooks/) for the given assignments (default: all).
    Returns the notebook paths written. Other files of an assignment folder are copied as they are.
    Raises WorkWouldBeLost, writing nothing, when a notebook there holds answers, unless force=True;
    this is checked first, from the sources, before nbgrader runs. JupyterLab's .ipynb_checkpoints
    folders are neither read nor touched. A notebook whose only difference from the fresh release is
    its language_info (the Python version of whoever released or opened it) is left as it is."""
    assignments = course.select(assignments)
    dest = Path(dest) if dest else course.release_dir
    written = []
    if not assignments:
        log(f"no assignments in {course.source_dir}")
        return written
    if not force:  # fail fast: before the nbgrader run
        at_risk = []
        for a in assignments:
            for p in _notebooks(dest / a):
                src = course.source_dir / a / p.relative_to(dest / a)
                try:
                    expected = expected_stubs(read_notebook(src)) if src.is_file() else {}
                except ValueError:
                    expected = {}
                if holds_answers(p, expected):
                    at_risk.append(p)
        if at_risk:
            _refuse(at_risk)
    with tempfile.TemporaryDirectory(prefix="grader-raw-") as raw:
        raw = Path(raw)
        generate(course, assignments, raw)
        at_risk = [p for a in assignments for p in _notebooks(dest / a)
                   if not force and holds_answers(p, raw / a / p.relative_to(dest / a))]
        if at_risk:
            _refuse(at_risk)
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
                    if not _same_release(target, text):
                        target.write_text(text, encoding="utf-8", newline="\n")
                    written.append(target)
                else:
                    shutil.copyfile(src, target)
            for old in _notebooks(out):  # notebooks whose source was deleted or renamed
                if old.relative_to(out) not in new_names:
                    old.unlink()
            log(f"released {a}: " + ", ".join(str(p.relative_to(dest)) for p in written if p.parent == out))
    return written


def _same_release(target: Path, text: str) -> bool:
    """The file at target is `text`, or differs from it only in language_info."""
    if not target.is_file():
        return False
    old = target.read_text(encoding="utf-8")
    if old == text:
        return True
    try:
        old_nb = nbformat.reads(old, as_version=4)
    except Exception:
        return False
    info = old_nb.metadata.get("language_info")
    full = kernel_language_info()
    same_kind = isinstance(info, dict) and set(info) == set(full) and \
        all(info[k] == full[k] for k in full if k != "version")   # a full kernel language_info, another Python
    return same_kind and normalise(old_nb, info) == old \
        and normalise(nbformat.reads(text, as_version=4), info) == old
