"""The kernel side of the judge's boundary: runs inside the student's (untrusted) kernel.

Executed there as source, after grader/wire.py, in a namespace of its own. It registers the comm
target "grader_agent"; the judge sends each request as a comm message {"q": base64 wire message}
and the reply comes back as a comm message {"r": base64 wire message}. Nothing here is trusted by
the judge: a student can replace or break this agent, and then only loses the calls that go
through it. The judge decides pass or fail from the data it receives, never from anything said here.

Requests (wire-encoded tuples):
    ("lookup", [names])                    -> {name: value} for the names the notebook defines
    ("call", h, args, kwargs, forbid)      -> ("ok", result, after) | ("error", mro, message, tb)
        after: the mutable arguments (arrays, lists, dicts, Generators) as they are after the call,
        so the judge can write back in-place changes; forbid: module prefixes whose Python
        functions must not run during the call (None, or [forbidden, allowed, reason])
    ("getattr", h, name) ("getitem", h, key) ("len", h) ("list", h) ("repr", h)
Non-data values are kept here and sent as handles {"H": id, "t": type name, "c": callable}.
"""

COMM_TARGET = "grader_agent"


class _Agent:
    MIRROR_BYTES = 256 * 2 ** 20

    def __init__(self, shell):
        import collections

        self.shell = shell
        self.objects = {}
        self.ids = {}
        self.mirrors = collections.OrderedDict()  # the judge's array k -> the one object standing for it here

    def mirror(self, kid, arr):
        """The judge sends its array k again: update the object it stood for before, in place, so
        that a reference the student kept sees the caller's change (as in one kernel)."""
        old = self.mirrors.get(kid)
        if old is not None and old.shape == arr.shape and old.dtype == arr.dtype and old.flags.writeable:
            old[...] = arr
            self.mirrors.move_to_end(kid)
            return old
        self.mirrors[kid] = arr
        while sum(a.nbytes for a in self.mirrors.values()) > self.MIRROR_BYTES and len(self.mirrors) > 1:
            self.mirrors.popitem(last=False)
        return arr

    # --- handles -------------------------------------------------------------------------------
    def handle(self, obj):
        key = id(obj)
        hid = self.ids.get(key)
        if hid is None or self.objects.get(hid) is not obj:
            hid = len(self.objects) + 1
            self.objects[hid] = obj
            self.ids[key] = hid
        name = getattr(obj, "__name__", None)
        return {"H": hid, "t": type(obj).__name__, "c": callable(obj), "n": name if isinstance(name, str) else None}

    def resolve(self, node):
        return self.objects[node["H"]]

    # --- the loop --------------------------------------------------------------------------------
    def answer(self, b64):
        """The base64 reply to one base64 request."""
        import base64

        try:
            request = decode(base64.b64decode(b64), handle=self.resolve, mirror=self.mirror)
            reply = self.dispatch(*request)
        except BaseException as e:  # noqa: BLE001 - everything goes back to the judge as data
            reply = self.error(e)
        try:
            data = encode(reply, handle=self.handle)
        except BaseException as e:  # noqa: BLE001
            data = encode(self.error(e))
        return base64.b64encode(data).decode("ascii")

    def error(self, e):
        import traceback

        tb = traceback.extract_tb(e.__traceback__)
        frames = [f for f in tb if "grader-agent" not in (f.filename or "")]
        text = "".join(traceback.format_list(frames[-8:]))
        return ("error", [c.__name__ for c in type(e).__mro__], str(e)[:4000], text[-6000:])

    def dispatch(self, op, *args):
        if op == "lookup":
            ns = self.shell.user_ns
            return {n: ns[n] for n in args[0] if isinstance(n, str) and n in ns}
        if op == "call":
            target, cargs, ckwargs, forbid = args
            run = (lambda: target(*cargs, **ckwargs)) if not forbid else \
                (lambda: _forbidding(*forbid, target, cargs, ckwargs))
            before = [_snapshot(a) for a in cargs], {k: _snapshot(v) for k, v in ckwargs.items()}
            try:
                result = run()
            except BaseException as e:  # noqa: BLE001
                return self.error(e)
            after = ([_after(a, s) for a, s in zip(cargs, before[0])],
                     {k: _after(v, before[1][k]) for k, v in ckwargs.items()})
            return ("ok", result, after)
        target = args[0]
        if op == "getattr":
            return getattr(target, args[1])
        if op == "getitem":
            return target[args[1]]
        if op == "len":
            return len(target)
        if op == "list":
            out = []
            for i, x in enumerate(target):
                if i >= 100_000:
                    raise ValueError("more than 100000 items")
                out.append(x)
            return out
        if op == "repr":
            return repr(target)[:2000]
        raise ValueError(f"unknown request {op!r}")


def _snapshot(v, depth=0):
    """What is needed to tell, after a call, what it changed in `v` and how."""
    import numpy as np

    if isinstance(v, np.ndarray):
        return v.copy()
    if depth < 4 and isinstance(v, dict):
        return {k: (id(x), _snapshot(x, depth + 1)) for k, x in v.items()}
    if depth < 4 and isinstance(v, list):
        return [(id(x), _snapshot(x, depth + 1)) for x in v]
    return None


def _after(v, snap, depth=0):
    """What the judge needs to make its copy of an argument look like `v` after the call:
    None (unchanged or immutable), an array changed in place, or for a dict / list, per entry,
    ("same", change of that same object) or ("new", the object that now stands there)."""
    import numpy as np

    if isinstance(v, np.ndarray):
        same = snap is not None and v.shape == snap.shape and v.tobytes() == snap.tobytes()
        return None if same else v
    if isinstance(v, np.random.Generator):
        return v
    if isinstance(v, dict) and isinstance(snap, dict):
        return {k: ("same", _after(x, snap[k][1], depth + 1)) if k in snap and snap[k][0] == id(x) else ("new", x)
                for k, x in v.items()}
    if isinstance(v, list) and isinstance(snap, list):
        return [("same", _after(x, snap[i][1], depth + 1)) if i < len(snap) and snap[i][0] == id(x) else ("new", x)
                for i, x in enumerate(v)]
    return v if isinstance(v, (dict, list)) else None


def _forbidding(forbidden, allowed, reason, target, args, kwargs):
    """target(*args, **kwargs), failing if it ran a Python function of a forbidden module, or a
    forbidden function of the notebook ("__main__.name": that function's code, under any name)."""
    import sys

    from IPython import get_ipython

    def hits(module, name, prefixes):
        return any(module == p or module.startswith(p + ".") or f"{module}.{name}" == p for p in prefixes)

    ns = get_ipython().user_ns
    codes = {getattr(ns.get(p.split(".", 1)[1]), "__code__", None): p.split(".", 1)[1]
             for p in forbidden if p.startswith("__main__.")}
    codes.pop(None, None)
    called = []

    def profiler(frame, event, arg):
        if event == "call":
            module, name = frame.f_globals.get("__name__", "") or "", frame.f_code.co_name
            if frame.f_code in codes:
                called.append(codes[frame.f_code])
            elif hits(module, name, forbidden) and not hits(module, name, allowed):
                called.append(name if module == "__main__" else f"{module}.{name}")

    previous = sys.getprofile()
    sys.setprofile(profiler)
    try:
        result = target(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    if called:
        name = getattr(target, "__name__", "your function")
        raise AssertionError(f"{name} calls {called[0]}: {reason}")
    return result


def _install():
    from IPython import get_ipython

    from comm import get_comm_manager

    agent = _Agent(get_ipython())

    def on_open(comm, open_msg):
        def on_msg(msg):
            data = msg["content"].get("data") or {}
            comm.send({"r": agent.answer(data.get("q", ""))})
        comm.on_msg(on_msg)

    get_comm_manager().register_target(COMM_TARGET, on_open)
