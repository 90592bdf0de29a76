"""Run a notebook for grading: the student's cells in a sandboxed kernel, the tests in the judge.

- The kernel ("python3", this interpreter) runs every code cell except the graded test cells, in
  order, inside grader/sandbox.py's sandbox: cwd = a folder holding the notebook's data files,
  MPLBACKEND=Agg, no stdin (input() raises StdinNotImplementedError: "input() called in cell X"),
  Unix sockets instead of TCP (the sandbox has no network).
- The graded test cells, and the instructor's locked cells as well, run in the trusted judge
  (grader/judge.py), which reaches the student's names through the data-only boundary. Their
  outputs and errors are written into the cells, so scoring and feedback read them as before.
- Per-cell timeout: the kernel is interrupted, the cell fails with "timeout in cell X" and the rest
  still runs; a kernel that ignores the interrupt is shut down. A whole-notebook time limit too.
- Output beyond the limit is dropped and the run stops: "too much output in cell X".
- A dying kernel (os._exit, segfault, out of memory) stops the run: "kernel died in cell X".
Errors are recorded in the cells' outputs, never raised.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbclient.util import run_sync
from nbformat import from_dict
from traitlets import Any

from . import cells as C
from .judge import AGENT_SOURCE, Judge, JudgeAbort, KernelLink
from .sandbox import Limits, Sandbox

DEFAULT_TIMEOUT = 120


class TooMuchOutput(Exception):
    pass


class _SandboxedKernelManager(AsyncKernelManager):
    """Starts the kernel through Sandbox.wrap, talking over Unix sockets in the sandbox's socket folder."""

    sandbox = Any()

    def format_kernel_cmd(self, extra_arguments=None):
        # SIGINT to the process group would stop bwrap itself: interrupt over the control channel
        self.kernel_spec.interrupt_mode = "message"
        self.sandbox.give(self.connection_file)  # written by now, readable by the owner only
        return self.sandbox.wrap(super().format_kernel_cmd(extra_arguments))


class _Client(NotebookClient):
    """NotebookClient that remembers timeouts, gives up on a kernel that ignores SIGINT, and counts output."""

    def __init__(self, *args, output_limit: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.timeouts: dict[int, int] = {}  # id(cell) -> number of timeouts
        self.output_left = output_limit

    async def _async_handle_timeout(self, timeout, cell=None):
        key = id(cell)
        self.timeouts[key] = self.timeouts.get(key, 0) + 1
        if self.timeouts[key] > 1:  # interrupted once, still no reply: give up on this kernel
            raise CellTimeoutError.error_from_timeout_and_cell("Cell execution timed out", timeout, cell)
        return await super()._async_handle_timeout(timeout, cell)

    def output(self, outs, msg, display_id, cell_index):
        self.output_left -= len(str(msg.get("content", {})))  # text, data, metadata, transient: all of it
        if self.output_left < 0:
            raise TooMuchOutput()
        return super().output(outs, msg, display_id, cell_index)


@dataclass
class RunResult:
    nb: object
    outcome: str = "ok"                 # "ok", "timeout in cell X", "kernel died in cell X", ...
    problems: list[str] = field(default_factory=list)
    executed: set = field(default_factory=set)   # indices of cells that ran (code cells)
    timed_out: set = field(default_factory=set)  # indices of cells that timed out
    sandboxed: bool = False
    calls: int = 0                      # calls the judge made into the kernel


def cell_label(cell, index: int) -> str:
    gid = C.grade_id(cell)
    return gid if gid else f"#{index + 1}"


def run_notebook(nb, cwd: str | os.PathLike, timeout: float | None = DEFAULT_TIMEOUT,
                 startup_timeout: float = 120, limits: Limits | None = None,
                 sandbox: bool | None = None) -> RunResult:
    """Execute `nb` in place (outputs are written into its cells). `sandbox`: None = bwrap when the
    machine has it, True = required, False = limits only."""
    limits = limits or Limits()
    if timeout:
        limits.cell_timeout = timeout
    with tempfile.TemporaryDirectory(prefix="grader-sock-") as sock:
        box = Sandbox(Path(cwd), Path(sock), limits, use_bwrap=sandbox)
        km = _SandboxedKernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sock) / "k"),
                                     connection_file=str(Path(sock) / "kernel.json"), sandbox=box)
        client = _Client(nb, km=km, timeout=int(limits.cell_timeout) if limits.cell_timeout else None,
                         kernel_name="python3", allow_errors=True, interrupt_on_timeout=True, record_timing=False,
                         startup_timeout=startup_timeout, resources={"metadata": {"path": str(cwd)}},
                         output_limit=limits.output)
        result = RunResult(nb, sandboxed=box.active)
        _run(client, km, nb, result, limits)
    if result.problems:
        result.outcome = "; ".join(result.problems)
    return result


def _run(client, km, nb, result: RunResult, limits: Limits) -> None:
    index, link = -1, None
    started = time.monotonic()
    try:
        with client.setup_kernel(cwd=str(km.sandbox.workdir), env=km.sandbox.env(),
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
            link = KernelLink(km.get_connection_info(), interrupt=run_sync(km.interrupt_kernel),
                              is_alive=run_sync(km.is_alive))
            link.deadline = time.monotonic() + 60
            link.output_left = limits.output
            link.run(f"exec(compile({AGENT_SOURCE!r}, 'grader-agent', 'exec'), {{'__name__': 'grader_agent'}})")
            link.open_comm()
            judge = Judge(link)
            for index, cell in enumerate(nb.cells):
                if cell.cell_type != "code":
                    continue
                left = limits.notebook_timeout - (time.monotonic() - started)
                if left <= 0:
                    result.problems.append(f"notebook time limit ({limits.notebook_timeout:g}s) reached at cell "
                                           f"{cell_label(cell, index)}")
                    break
                cell_timeout = min(limits.cell_timeout or left, left)
                if C.is_autograded(cell):
                    if not _judge_cell(judge, cell, cell_timeout):
                        result.timed_out.add(index)
                        result.problems.append(f"timeout in cell {cell_label(cell, index)}")
                else:
                    client.execute_cell(cell, index)
                    if client.timeouts.get(id(cell)):
                        result.timed_out.add(index)
                        result.problems.append(f"timeout in cell {cell_label(cell, index)}")
                    elif any(o.get("output_type") == "error" and o.get("ename") == "StdinNotImplementedError"
                             for o in cell.get("outputs", [])):
                        result.problems.append(f"input() called in cell {cell_label(cell, index)}")
                    if C.is_locked(cell) and not C.is_solution(cell):  # the instructor's helpers, for the judge
                        judge.run_cell(C.source(cell), locked=True, timeout=cell_timeout)
                result.executed.add(index)
    except JudgeAbort as e:
        cell = nb.cells[index]
        if e.kind == "dead":
            _add_error(cell, "DeadKernelError", "the kernel died while the tests called your code")
            result.problems.append(f"kernel died in cell {cell_label(cell, index)}")
        elif e.kind == "output":
            _add_error(cell, "OutputLimit", f"your code printed more than {limits.output:,} characters")
            result.problems.append(f"too much output in cell {cell_label(cell, index)}")
        else:
            result.timed_out.add(index)
            _add_error(cell, "TimeoutError", "the kernel ignored the interrupt after its time was up")
            result.problems.append(f"timeout in cell {cell_label(cell, index)} (kernel stopped)")
    except CellTimeoutError:
        cell = nb.cells[index]
        result.timed_out.add(index)
        _add_error(cell, "TimeoutError", "cell still running after its time limit and ignored the interrupt")
        result.problems.append(f"timeout in cell {cell_label(cell, index)} (kernel stopped)")
    except DeadKernelError:
        cell = nb.cells[index]
        _add_error(cell, "DeadKernelError", "the kernel died while running this cell")
        result.problems.append(f"kernel died in cell {cell_label(cell, index)}")
    except TooMuchOutput:
        cell = nb.cells[index]
        _add_error(cell, "OutputLimit", f"the notebook printed more than {limits.output:,} characters")
        result.problems.append(f"too much output in cell {cell_label(cell, index)}")
    except Exception as e:  # kernel failed to start, zmq trouble, ...: report, never crash the batch
        where = f" in cell {cell_label(nb.cells[index], index)}" if index >= 0 else " (kernel start)"
        result.problems.append(f"execution error{where}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
    finally:
        if link is not None:
            result.calls = link.calls
            link.close()
        try:  # the client does not own the kernel manager: stopping the kernel ends its sandbox
            run_sync(km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - already gone
            pass


def _judge_cell(judge: Judge, cell, timeout: float) -> bool:
    """Run a test cell in the judge; False when it timed out (the kernel was interrupted and answers
    again, so the notebook goes on). A kernel that died or ignored the interrupt raises JudgeAbort."""
    cell.execution_count = None
    try:
        outputs, error = judge.run_cell(C.source(cell), locked=False, timeout=timeout)
    except JudgeAbort as e:
        if e.kind != "timeout":
            raise
        cell.outputs = []
        _add_error(cell, "TimeoutError", f"the test cell ran out of time ({timeout:g}s) while calling your code")
        return False
    cell.outputs = [from_dict(o) for o in outputs + ([error] if error else [])]
    return True


def _add_error(cell, ename: str, evalue: str) -> None:
    from nbformat.v4 import new_output
    cell.setdefault("outputs", []).append(new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"]))
