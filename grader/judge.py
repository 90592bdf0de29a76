"""The trusted judge: runs the instructor's test cells outside the student's kernel.

The student's notebook runs in its kernel (sandboxed, untrusted). Its graded test cells do not: the
judge executes them in this process, with the instructor's own imports and helpers (the locked
cells, executed here too). A name a test uses that the instructor's cells do not define is looked
up in the student's kernel through a data-only boundary (grader/wire.py):
- data (arrays, numbers, strings, lists, tuples, dicts, dtypes, Generators) is copied by value;
- anything else (a function, a cache object) stays in the kernel behind a `Remote` handle. Calling
  it sends the arguments as data, runs the call in the kernel and brings back the result and the
  state of the mutable arguments after the call, which is written back into the judge's objects,
  so in-place checks see what happened;
- an array sent again is the same object in the kernel, brought up to date: a reference the
  student kept (a snapshot that is not a copy) sees the caller's changes, as in one kernel;
- nothing is unpickled, so no object of the student's ever runs code in this process.
The verdict is whatever the test code raises here. Student code can only change what its own
functions return.

A test may pass data and handles to the student's functions, never an instructor-side callable or
object (that raises a TypeError naming it): an instructor's function cannot run in the kernel.
"""

from __future__ import annotations

import ast
import base64
import builtins
import contextlib
import io
import itertools
import signal
import threading
import time
import traceback
import uuid
import weakref
from pathlib import Path

import numpy as np

from . import wire

AGENT_SOURCE = (Path(__file__).with_name("wire.py").read_text(encoding="utf-8") + "\n"
                + Path(__file__).with_name("agent.py").read_text(encoding="utf-8") + "\n_install()\n")
COMM_TARGET = "grader_agent"
MAX_REPLY_BYTES = 512 * 2 ** 20
MAX_CALL_OUTPUT = 100_000        # characters of the student's own prints kept per test cell
_BUILTINS = set(dir(builtins))


class JudgeAbort(BaseException):
    """The kernel stopped answering (timeout, death): not catchable by a test's `except Exception`."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind  # "timeout" (interrupted, answers again), "stuck", "dead" or "output"


class StudentCodeError(Exception):
    """An exception raised by the student's code whose class is not a built-in one."""


class BoundaryError(RuntimeError):
    """The kernel's answer was missing or not data."""


# --- the link to the kernel -------------------------------------------------------------------

class KernelLink:
    """Requests to the agent in the student's kernel, over a blocking client of its own."""

    def __init__(self, connection_info: dict, interrupt, is_alive):
        from jupyter_client import BlockingKernelClient

        self.kc = BlockingKernelClient()
        self.kc.load_connection_info(connection_info)
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=60)
        self.interrupt, self.is_alive = interrupt, is_alive
        self.deadline = float("inf")
        self.prints: list[str] = []   # the student's stdout/stderr during calls, for the cell's outputs
        self.calls = 0
        self.mirrors: dict = {}       # id(array) -> (weak reference, mirror number) of arrays sent
        self.mirror_numbers = itertools.count(1)
        self.output_left = float("inf")  # characters the student's code may still print (execute.py sets it)

    def mirror(self, arr):
        """The mirror number of an array sent to the kernel: the same object, the same number."""
        entry = self.mirrors.get(id(arr))
        if entry is not None and entry[0]() is arr:
            return entry[1]
        try:
            ref = weakref.ref(arr)
        except TypeError:
            return None
        self.mirrors[id(arr)] = (ref, next(self.mirror_numbers))
        if len(self.mirrors) > 100_000:  # forget arrays that are gone
            self.mirrors = {k: v for k, v in self.mirrors.items() if v[0]() is not None}
        return self.mirrors[id(arr)][1]

    def close(self):
        with contextlib.suppress(Exception):
            self.kc.stop_channels()

    def run(self, code: str) -> list[dict]:
        """Execute `code` in the kernel (no history); return the iopub messages it produced."""
        return self._wait(self.kc.execute(code, silent=False, store_history=False, allow_stdin=False,
                                          stop_on_error=False))

    def open_comm(self) -> None:
        """The channel of the requests: a comm to the agent's target (no cell execution per call,
        so a call costs about a millisecond, not several)."""
        self.comm_id = uuid.uuid4().hex
        self._wait(self._send("comm_open", {"comm_id": self.comm_id, "target_name": COMM_TARGET, "data": {}}))

    def _send(self, msg_type: str, content: dict) -> str:
        msg = self.kc.session.msg(msg_type, content)
        self.kc.shell_channel.send(msg)
        return msg["header"]["msg_id"]

    def _wait(self, msg_id: str) -> list[dict]:
        msgs, interrupted = [], False
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0 and not interrupted:
                self.interrupt()
                interrupted, self.deadline = True, time.monotonic() + 10
                continue
            if left <= 0:
                raise JudgeAbort("stuck", "the kernel ignored the interrupt")
            try:
                msg = self.kc.iopub_channel.get_msg(timeout=min(left, 2.0))
            except Exception:  # queue.Empty
                if not self.is_alive():
                    raise JudgeAbort("dead", "the kernel died") from None
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["msg_type"]
            if kind == "status" and msg["content"].get("execution_state") == "idle":
                if interrupted:
                    raise JudgeAbort("timeout", "timed out")
                return msgs
            if kind in ("stream", "display_data", "execute_result", "update_display_data"):
                # the student's own output during a call: counted, a little kept, never piled up
                content = msg["content"]
                self.output_left -= len(str(content))
                if self.output_left < 0:
                    self.interrupt()
                    raise JudgeAbort("output", "too much output while the tests called your code")
                if kind == "stream" and sum(map(len, self.prints)) < MAX_CALL_OUTPUT:
                    self.prints.append(content.get("text", ""))
                continue
            msgs.append(msg)

    def request(self, *req):
        self.calls += 1
        payload = base64.b64encode(wire.encode(req, handle=_send_handle, mirror=self.mirror)).decode("ascii")
        msgs = self._wait(self._send("comm_msg", {"comm_id": self.comm_id, "data": {"q": payload}}))
        for m in msgs:
            data = m["content"].get("data", {}) if m["msg_type"] == "comm_msg" else {}
            if isinstance(data, dict) and "r" in data:
                raw = data["r"]
                if not isinstance(raw, str) or len(raw) > MAX_REPLY_BYTES * 4 // 3 + 8:
                    raise BoundaryError("the kernel's answer is too large")
                try:
                    return wire.decode(base64.b64decode(raw), handle=lambda n: Remote(self, n))
                except (wire.WireError, ValueError) as e:
                    raise BoundaryError(f"the kernel's answer is not data: {e}") from None
        errors = [m["content"] for m in msgs if m["msg_type"] == "error"]
        why = f" ({errors[0].get('ename')}: {errors[0].get('evalue')})" if errors else ""
        raise BoundaryError("the notebook's kernel did not answer the grader" + why
                            + ": did your code break the kernel's comms or IPython?")

    # --- operations ---
    def lookup(self, names) -> dict:
        found = self.request("lookup", sorted(names))
        if not isinstance(found, dict):
            raise BoundaryError("the kernel's answer to a name lookup is not a dict")
        return {k: v for k, v in found.items() if isinstance(k, str) and k in names}

    def call(self, target, args, kwargs, forbid=None):
        reply = self.request("call", target, list(args), dict(kwargs), forbid)
        if not (isinstance(reply, tuple) and reply and reply[0] in ("ok", "error")):
            raise BoundaryError("malformed answer to a call")
        if reply[0] == "error":
            raise _student_exception(reply)
        _, result, after = reply
        try:
            after_args, after_kwargs = after
            for orig, new in zip(args, after_args):
                write_back(orig, new)
            for k, new in after_kwargs.items():
                if k in kwargs:
                    write_back(kwargs[k], new)
        except (TypeError, ValueError):
            raise BoundaryError("malformed state of the arguments after a call") from None
        return result

    def op(self, name, target, *args):
        reply = self.request(name, target, *args)
        if isinstance(reply, tuple) and reply and reply[0] == "error":
            raise _student_exception(reply)
        return reply


def _send_handle(obj):
    """Objects of the student's go back as their handle; anything else of the judge's is data or nothing."""
    return {"H": object.__getattribute__(obj, "_id")} if isinstance(obj, Remote) else None


def _student_exception(reply):
    """The exception to raise here for ("error", mro names, message, traceback) from the kernel."""
    try:
        _, mro, message, tb = reply
        mro, message, tb = [str(m) for m in mro][:50], str(message), str(tb)
    except (TypeError, ValueError):
        return BoundaryError("malformed error from the kernel")
    cls = StudentCodeError
    for name in mro:
        cand = getattr(builtins, name, None)
        if isinstance(cand, type) and issubclass(cand, Exception) and cand is not Exception:
            cls = cand
            break
    try:
        exc = cls(message)
    except Exception:  # an exception class that wants other arguments
        exc = StudentCodeError(f"{mro[0] if mro else 'Error'}: {message}")
    exc.student_traceback = tb
    exc.student_type = mro[0] if mro else "Exception"
    return exc


def write_back(orig, after) -> None:
    """Make `orig` (the judge's argument) look like the student's argument after the call. `after`
    comes from the agent (`_after`): an array changed in place, a Generator, or for a dict / list
    per entry ("same", its change) when the student changed that object and ("new", value) when
    the student put another object there, so identity is kept exactly as in the student's kernel."""
    if after is None:
        return
    if isinstance(orig, np.ndarray) and isinstance(after, np.ndarray):
        if orig.shape == after.shape and orig.flags.writeable:
            np.copyto(orig, after, casting="unsafe")
    elif isinstance(orig, np.random.Generator) and isinstance(after, np.random.Generator):
        wire.set_generator_state(orig, after)
    elif isinstance(orig, dict) and isinstance(after, dict):
        for k in [k for k in orig if k not in after]:
            del orig[k]
        for k, entry in after.items():
            kind, value = entry
            if kind == "same" and k in orig:
                write_back(orig[k], value)
            else:
                orig[k] = value
    elif isinstance(orig, list) and isinstance(after, list):
        new = []
        for i, (kind, value) in enumerate(after):
            if kind == "same" and i < len(orig):
                write_back(orig[i], value)
                new.append(orig[i])
            else:
                new.append(value)
        orig[:] = new


class Remote:
    """An object of the student's that stays in the kernel. Calls, attributes, items, len and
    iteration go to the kernel; everything comes back as data or as another handle."""

    __slots__ = ("_link", "_id", "_type", "_callable", "_name")

    def __init__(self, link, node):
        object.__setattr__(self, "_link", link)
        object.__setattr__(self, "_id", node["H"])
        object.__setattr__(self, "_type", str(node.get("t", "object"))[:80])
        object.__setattr__(self, "_callable", bool(node.get("c")))
        object.__setattr__(self, "_name", str(node.get("n") or "your function")[:80])

    @property
    def __name__(self):
        return self._name

    def __call__(self, *args, **kwargs):
        return self._link.call(self, args, kwargs)

    def __forbid_calls__(self, forbidden, allowed, args, kwargs, reason):
        """nnlab.checks.forbid_calls delegates here: the check runs where the function runs (a
        tampered kernel can switch it off: grader/integrity.py reads the code as well)."""
        return self._link.call(self, args, kwargs, forbid=[list(forbidden), list(allowed), str(reason)])

    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return self._link.op("getattr", self, name)

    def __setattr__(self, name, value):
        raise TypeError("objects of the student's notebook are read-only for the grader")

    def __getitem__(self, key):
        return self._link.op("getitem", self, key)

    def __len__(self):
        n = self._link.op("len", self)
        if type(n) is not int or n < 0:
            raise TypeError("len() of the student's object is not a non-negative int")
        return n

    def __iter__(self):
        items = self._link.op("list", self)
        return iter(items if isinstance(items, list) else [])

    def __repr__(self):
        return f"<{self._type} from your notebook>"


# --- the judge ----------------------------------------------------------------------------------

def python_source(src: str) -> str:
    """A cell's source without IPython's magics and shell escapes (the judge runs plain Python)."""
    if src.lstrip().startswith("%%"):
        return ""
    return "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in src.splitlines())


def names_of(tree) -> tuple[set, set]:
    """(names read, names bound) anywhere in the cell, nested functions included."""
    read, bound = set(), set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            (read if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, ast.alias):
            bound.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            bound.add(node.name)
    return read, bound


class Judge:
    """One submission's trusted namespace: the instructor's cells run here, in notebook order."""

    def __init__(self, link: KernelLink):
        self.link = link
        self.ns: dict = {"__name__": "__main__", "__builtins__": builtins}
        self.instructor_names: set = set()   # bound by locked cells: never taken from the kernel
        self.instructor_reads: set = set()   # read by locked cells' code (their functions run later)
        self.fetched: set = set()
        self.count = 0

    def run_cell(self, source: str, locked: bool, timeout: float | None):
        """Execute one instructor cell. Returns (outputs, error) where error is None or a dict
        with ename, evalue, traceback (the cell's own line numbers). Raises JudgeAbort."""
        self.count += 1
        filename = f"<test cell {self.count}>"
        stdout = io.StringIO()
        self.link.prints = []
        self.link.deadline = time.monotonic() + timeout if timeout else float("inf")
        try:
            tree = ast.parse(python_source(source), filename)
        except SyntaxError as e:
            return [], _error_output(e, filename)
        read, bound = names_of(tree)
        if locked:
            self.instructor_reads |= read - bound
        wanted = ((read - bound) | self.instructor_reads) - self.instructor_names - _BUILTINS
        before = {k: id(v) for k, v in self.ns.items()}
        error = None
        try:
            self._refresh(wanted)
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stdout), _alarm(timeout):
                exec(compile(tree, filename, "exec"), self.ns)  # noqa: S102 - instructor code, trusted
        except JudgeAbort:
            raise
        except BaseException as e:  # noqa: BLE001 - the test failed: that is the verdict
            error = _error_output(e, filename)
        finally:
            if locked:  # what the instructor's cell bound is the instructor's from now on
                self.instructor_names |= {k for k, v in self.ns.items() if before.get(k) != id(v)}
        outputs = []
        text = stdout.getvalue()
        prints = "".join(self.link.prints)
        if prints:
            outputs.append({"output_type": "stream", "name": "stdout",
                            "text": "[printed by your code during the tests]\n" + prints[:MAX_CALL_OUTPUT]})
        if text:
            outputs.append({"output_type": "stream", "name": "stdout", "text": text[:MAX_CALL_OUTPUT]})
        return outputs, error

    def _refresh(self, wanted: set):
        if not wanted:
            return
        found = self.link.lookup(wanted)
        for name in wanted:
            if name in found:
                value = found[name]
                if isinstance(value, Remote):
                    object.__setattr__(value, "_name", name)
                self.ns[name] = value
                self.fetched.add(name)
            elif name in self.fetched:
                self.ns.pop(name, None)
                self.fetched.discard(name)


@contextlib.contextmanager
def _alarm(timeout):
    """A guard for the judge's own time (an instructor loop over a slow student object): SIGALRM
    in the main thread raises JudgeAbort a few seconds after the cell's time is up."""
    if not timeout or threading.current_thread() is not threading.main_thread():
        yield
        return

    def ring(signum, frame):
        raise JudgeAbort("timeout", "the test ran out of time")

    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, timeout + 5)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _error_output(e: BaseException, filename: str) -> dict:
    line = None
    for frame in traceback.extract_tb(e.__traceback__):
        if frame.filename == filename:
            line = frame.lineno
    ename = getattr(e, "student_type", None) or type(e).__name__
    evalue = str(e)
    tb = [f"Cell In[1], line {line}" if line else "Cell In[1]"]
    student_tb = getattr(e, "student_traceback", "")
    if student_tb:
        tb.append("raised in your code:\n" + student_tb.rstrip())
    tb.append(f"{ename}: {evalue}")
    return {"output_type": "error", "ename": ename, "evalue": evalue, "traceback": tb}
