"""Run a solution notebook's cells without a kernel, for fast tests of its exercises.

Cells are found by their nbgrader grade_id; `stub` turns a solution into what the released notebook
holds, so a test can check that the stub fails and the solution passes.
"""

import re
from pathlib import Path

import nbformat

SOLUTIONS = Path(__file__).resolve().parents[1] / "solutions"
SOLUTION = re.compile(r"^([ \t]*)### BEGIN SOLUTION\n.*?^[ \t]*### END SOLUTION\n?", re.S | re.M)


def load_cells(path):
    """grade_id -> cell for every nbgrader cell of the notebook at `path`."""
    nb = nbformat.read(path, as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}


def stub(src):
    """What nbgrader's release turns a solution region into."""
    return SOLUTION.sub(lambda m: f"{m.group(1)}# YOUR CODE HERE\n{m.group(1)}raise NotImplementedError()\n", src)


def namespace(cells, sources):
    """A fresh namespace holding the setup cell and then `sources` executed in order (named __main__,
    as a kernel's user namespace is)."""
    ns = {"__name__": "__main__"}
    exec(cells["setup"].source.replace("%matplotlib inline", ""), ns)
    for src in sources:
        exec(src, ns)
    return ns


def exercise_sources(cells, needs, own, test_id, replace=None, helpers=()):
    """Sources for running test cell `test_id`: the helper cells, then the exercise cells it needs
    (`needs[test_id]`); `replace(grade_id, src)` may alter the one it grades (`own[test_id]`)."""
    out = [cells[h].source for h in helpers]
    for gid in needs[test_id]:
        src = cells[gid].source
        out.append(replace(gid, src) if replace and gid == own[test_id] else src)
    return out


def check_metadata(cells, exercises, points):
    """nbgrader metadata every course notebook must have: schema 3, snake_case ids, solution markers in
    answer cells, locked test cells with hidden tests that use forbid_calls, and the expected
    (autograded, hand-graded) points."""
    graded = {gid: c for gid, c in cells.items() if c.metadata["nbgrader"]["grade"]}
    assert set(exercises) <= set(graded)
    auto = sum(c.metadata["nbgrader"]["points"] for c in graded.values() if c.cell_type == "code")
    manual = sum(c.metadata["nbgrader"]["points"] for c in graded.values() if c.cell_type == "markdown")
    assert (auto, manual) == points
    for gid, c in cells.items():
        md = c.metadata["nbgrader"]
        assert md["schema_version"] == 3 and re.fullmatch(r"[a-z0-9_]+", gid)
        if md["solution"] and c.cell_type == "code":
            assert "### BEGIN SOLUTION" in c.source, gid
        if md["grade"] and c.cell_type == "code":
            assert md["locked"] and "### BEGIN HIDDEN TESTS" in c.source and "forbid_calls" in c.source, gid
