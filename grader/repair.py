"""Repair a student's notebook against the instructor's version before it is graded.

Students delete, copy, move and rename cells; plain nbgrader then grades nothing, or aborts the
batch on a duplicated grade_id. Here, every cell with a grade_id known to the template is matched by
that id, and:
- instructor cells (graded tests, locked cells) are replaced by the template's version: this puts
  hidden tests back, undoes edits to tests, and restores a deleted test cell at its position;
- answer cells keep the student's content under the template's metadata; a deleted answer cell
  comes back empty (so the answer scores nothing, but the tests after it still run);
- a duplicated grade_id keeps one copy: the first one the student edited (else the first); the
  other copies are dropped, so a stub copied below an answer cannot overwrite it;
- the known cells are put back in the template's order; a cell the student added travels with
  the known cell it followed; a grade_id the template does not know loses its nbgrader metadata.
"""

from __future__ import annotations

import copy

import nbformat

from . import cells as C


def _is_stub(cell) -> bool:
    src = C.source(cell)
    return ("YOUR CODE HERE" in src and "raise NotImplementedError" in src) or src.strip() in ("", "YOUR ANSWER HERE")


def _plain(cell):
    cell = copy.deepcopy(cell)
    cell.metadata.pop("nbgrader", None)
    return cell


def _blank_like(tcell):
    cell = copy.deepcopy(tcell)
    cell.source = ""
    if cell.cell_type == "code":
        cell.outputs, cell.execution_count = [], None
    return cell


def _clean_cells(student, notes: list[str]) -> list:
    """The student's cells as well-formed cells: anything that is not a cell dict with a known type is
    dropped, sources become strings, outputs and attachments are dropped (everything is re-run)."""
    out = []
    cells = student.get("cells") if isinstance(student, dict) else None
    for cell in cells if isinstance(cells, list) else []:
        if not isinstance(cell, dict) or cell.get("cell_type") not in ("code", "markdown", "raw"):
            notes.append("a malformed cell was dropped")
            continue
        meta = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        clean = {"cell_type": cell["cell_type"], "metadata": copy.deepcopy(meta), "source": C.source(cell)}
        if isinstance(cell.get("id"), str):
            clean["id"] = cell["id"]
        if clean["cell_type"] == "code":
            clean.update(outputs=[], execution_count=None)
        out.append(nbformat.from_dict(clean))
    return out


def repair(student, template) -> tuple[object, list[str]]:
    """Return (repaired copy of `student`, notes on what was repaired)."""
    notes: list[str] = []
    student_cells = _clean_cells(student, notes)
    tmpl: dict[str, object] = {}
    for cell in template.cells:
        gid = C.grade_id(cell)
        if gid and gid not in tmpl:
            tmpl[gid] = cell
    lead: list = []
    segments: dict[str, list] = {}
    student_order: list[str] = []
    current = lead
    for cell in student_cells:
        gid = C.grade_id(cell)
        if gid in tmpl:
            if gid in segments:
                kept = segments[gid][0]
                if not C.is_instructor(tmpl[gid]) and _is_stub(kept) and not _is_stub(cell):
                    segments[gid][0] = cell  # the copy holds the answer, the original is the stub
                notes.append(f"duplicate {gid} dropped")
                continue
            segments[gid] = [cell]
            student_order.append(gid)
            current = segments[gid]
        else:
            if gid:
                notes.append(f"unknown grade_id {gid[:40]!r} treated as a plain cell")
            if "nbgrader" in cell.metadata:  # only the instructor's cells are graded, with the source's points
                cell = _plain(cell)
            current.append(cell)

    cells = list(lead)
    for gid, tcell in tmpl.items():
        if gid not in segments:
            if C.is_instructor(tcell):
                cells.append(copy.deepcopy(tcell))
                notes.append(f"restored deleted {gid}")
            else:
                cells.append(_blank_like(tcell))
                notes.append(f"answer cell {gid} missing")
            continue
        head, *followers = segments[gid]
        if C.is_instructor(tcell):
            new = copy.deepcopy(tcell)
        else:
            new = copy.deepcopy(tcell)
            new.source = C.source(head)
            if new.cell_type != head.get("cell_type"):
                notes.append(f"{gid} was turned into a {head.get('cell_type')} cell")
        if new.cell_type == "code":
            new.outputs, new.execution_count = [], None
        cells.append(new)
        cells.extend(followers)
    tmpl_order = [g for g in tmpl if g in segments]
    if student_order != tmpl_order:
        notes.append("cells reordered")

    out = nbformat.v4.new_notebook()
    out.metadata = copy.deepcopy(template.metadata)  # the student's notebook metadata decides nothing
    out.metadata.setdefault("kernelspec", {"name": "python3", "display_name": "Python 3", "language": "python"})
    seen = set()
    for i, cell in enumerate(cells):
        cell = copy.deepcopy(cell)
        cid = cell.get("id")
        if not cid or cid in seen:
            cid = f"graded-{i:03d}"
        seen.add(cid)
        cell["id"] = cid
        cells[i] = cell
    out.cells = cells
    return out, notes


def hidden_starts(nb) -> dict[str, int]:
    """grade_id -> line of its BEGIN HIDDEN TESTS marker, for the autograded cells that have one."""
    out = {}
    for cell in nb.cells:
        if C.is_autograded(cell):
            line = C.hidden_start_line(C.source(cell))
            if line:
                out[C.grade_id(cell)] = line
    return out


def without_hidden(nb):
    """A copy with every hidden-test block removed from the autograded cells (what `check` runs)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if C.is_autograded(cell) and C.has_hidden(cell):
            cell.source = C.strip_hidden(C.source(cell))
    return nb
