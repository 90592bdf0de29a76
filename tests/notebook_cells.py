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
    """A fresh namespace holding the setup cell and then `sources` executed in order."""
    ns = {}
    exec(cells["setup"].source.replace("%matplotlib inline", ""), ns)
    for src in sources:
        exec(src, ns)
    return ns
