"""Run a notebook in a fresh kernel, cell by cell, and say what happened.

- kernel "python3", started with this interpreter (jupyter_client swaps the kernelspec's
  "python" for sys.executable), cwd = the notebook's folder, MPLBACKEND=Agg;
- stdin is disabled: input() raises StdinNotImplementedError (reported as "input() called in cell X");
- per-cell timeout: the kernel is interrupted, the cell fails with "timeout in cell X" and the
  rest of the notebook still runs; a kernel that ignores the interrupt is shut down;
- a dying kernel (os._exit, segfault, out of memory) stops the run: "kernel died in cell X".
Errors are recorded in the cells' outputs (allow_errors), never raised.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError

DEFAULT_TIMEOUT = 120


class _Client(NotebookClient):
    """NotebookClient that remembers timeouts, and gives up on a kernel that ignores SIGINT."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.timeouts: dict[int, int] = {}  # id(cell) -> number of timeouts

    async def _async_handle_timeout(self, timeout, cell=None):
        key = id(cell)
        self.timeouts[key] = self.timeouts.get(key, 0) + 1
        if self.timeouts[key] > 1:  # interrupted once, still no reply: give up on this kernel
            raise CellTimeoutError.error_from_timeout_and_cell("Cell execution timed out", timeout, cell)
        return await super()._async_handle_timeout(timeout, cell)


@dataclass
class RunResult:
    nb: object
    outcome: str = "ok"                 # "ok", "timeout in cell X", "kernel died in cell X", ...
    problems: list[str] = field(default_factory=list)
    executed: set = field(default_factory=set)   # indices of cells that ran (code cells)
    timed_out: set = field(default_factory=set)  # indices of cells that timed out


def cell_label(cell, index: int) -> str:
    gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
    return gid if gid else f"#{index + 1}"


def run_notebook(nb, cwd: str | os.PathLike, timeout: float | None = DEFAULT_TIMEOUT,
                 startup_timeout: float = 120) -> RunResult:
    """Execute `nb` in place (outputs are written into its cells)."""
    os.environ["MPLBACKEND"] = "Agg"
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    # The course multiplies small matrices: one BLAS thread is faster than threads competing for the
    # cores (several times faster on a busy machine). A value set in the environment wins.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    client = _Client(nb, timeout=int(timeout) if timeout else None, kernel_name="python3",
                     allow_errors=True, interrupt_on_timeout=True, record_timing=False,
                     startup_timeout=startup_timeout, resources={"metadata": {"path": str(cwd)}})
    result = RunResult(nb)
    index = -1
    try:
        with client.setup_kernel(cwd=str(Path(cwd)), stderr=subprocess.DEVNULL):
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                client.execute_cell(cell, index)
                result.executed.add(index)
                if client.timeouts.get(id(cell)):
                    result.timed_out.add(index)
                    result.problems.append(f"timeout in cell {cell_label(cell, index)}")
                elif any(o.get("output_type") == "error" and o.get("ename") == "StdinNotImplementedError"
                         for o in cell.get("outputs", [])):
                    result.problems.append(f"input() called in cell {cell_label(cell, index)}")
    except CellTimeoutError:
        cell = nb.cells[index]
        result.timed_out.add(index)
        _add_error(cell, "TimeoutError", f"cell still running after {timeout}s and ignored the interrupt")
        result.problems.append(f"timeout in cell {cell_label(cell, index)} (kernel stopped)")
    except DeadKernelError:
        cell = nb.cells[index]
        _add_error(cell, "DeadKernelError", "the kernel died while running this cell")
        result.problems.append(f"kernel died in cell {cell_label(cell, index)}")
    except Exception as e:  # kernel failed to start, zmq trouble, ...: report, never crash the batch
        where = f" in cell {cell_label(nb.cells[index], index)}" if index >= 0 else " (kernel start)"
        result.problems.append(f"execution error{where}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    if result.problems:
        result.outcome = "; ".join(result.problems)
    return result


def _add_error(cell, ename: str, evalue: str) -> None:
    from nbformat.v4 import new_output
    cell.setdefault("outputs", []).append(new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]))
