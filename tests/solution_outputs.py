"""The outputs committed in solutions/: what nbval compares the printed numbers with.

    .venv/bin/python tests/solution_outputs.py                 # every solution notebook
    .venv/bin/python tests/solution_outputs.py 05_optimizers   # some of them

(`make solutions-outputs [NOTEBOOKS="05_optimizers ..."]` runs this.) Each notebook runs top to bottom
in a fresh kernel in the environment that tests/test_nbval.py gives nbval: the notebook's folder as
the working directory, one BLAS thread, matplotlib's inline backend. Then only the code cells' outputs
and execution counts are written back into the solution notebook; its sources, metadata and
formatting stay as they were. A cell that raises stops the run and writes nothing.

Cells whose printed numbers the prose states carry the cell tag `nbval-check-output`; `make test` reruns the
notebooks and fails when such a cell prints something else (after tests/nbval_sanitize.cfg).
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = ROOT / "solutions"
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
INLINE = "module://matplotlib_inline.backend_inline"


def kernel_env() -> dict:
    """The environment of the kernel that executes a solution, here and under nbval: one BLAS thread
    (the numbers must not depend on threading), plots as inline PNGs (make test sets Agg)."""
    env = {**os.environ, "MPLBACKEND": INLINE, "PYTHONHASHSEED": "0"}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[var] = "1"
    return env


def solution_notebooks(names=None) -> list[Path]:
    """solutions/NN_topic/*.ipynb, all of them or those of the assignments (or paths) named."""
    if not names:
        return sorted(p for p in SOLUTIONS.glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    found = []
    for name in names:
        p = Path(name)
        if p.suffix == ".ipynb":
            found.append(p.resolve())
            continue
        folder = SOLUTIONS / p.name
        nbs = sorted(folder.glob("*.ipynb"))
        if not nbs:
            raise SystemExit(f"no notebook in {folder}")
        found += nbs
    return found


def has_outputs(nb) -> bool:
    """Whether a notebook holds executed outputs (a freshly written solution has none)."""
    return any(c.get("outputs") for c in nb.cells if c.cell_type == "code")


def checked_cells(nb) -> list[int]:
    """Indexes (among code cells, as nbval counts them) of the cells tagged nbval-check-output (a cell
    tag, not a comment, so that students do not see it in the released notebook)."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    return [i for i, c in enumerate(code) if "nbval-check-output" in c.metadata.get("tags", [])]


def execute(path: Path, timeout: int = 600):
    """The notebook at `path` executed in a fresh kernel (kernel_env, cwd = its folder)."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    saved = dict(os.environ)
    os.environ.update(kernel_env())  # the kernel inherits this process's environment
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return nb


def write_outputs(path: Path, executed) -> None:
    """Copy the executed cells' outputs and execution counts into the notebook at `path`, and nothing else."""
    nb = nbformat.read(path, as_version=4)
    if [c.source for c in nb.cells] != [c.source for c in executed.cells]:
        raise RuntimeError(f"{path} changed while it ran: run this again")
    for cell, done in zip(nb.cells, executed.cells):
        if cell.cell_type == "code":
            cell.outputs = done.outputs
            cell.execution_count = done.execution_count
    text = nbformat.writes(nb, version=4)
    path.write_text(text if text.endswith("\n") else text + "\n")


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    for path in solution_notebooks(argv):
        t = time.monotonic()
        write_outputs(path, execute(path))
        nb = nbformat.read(path, as_version=4)
        print(f"{path.relative_to(ROOT)}: outputs written in {time.monotonic() - t:.0f} s, "
              f"{len(checked_cells(nb))} cells checked by nbval (tag nbval-check-output)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
