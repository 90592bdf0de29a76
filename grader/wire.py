"""The data-only wire format between the trusted judge and the student's kernel.

A message is `MAGIC + u64 header length + JSON header + npy blobs`. The JSON header holds a tree
of plain values; each array is an npy blob (numeric and boolean dtypes only, read with
allow_pickle=False). Nothing is unpickled and nothing is evaluated, so a message can carry data
but never code. No zip container either: what is read is exactly what was sent (no bombs).

Tree nodes, encoded / decoded:
    None, bool, int, float, str        as themselves (NaN and infinities included)
    {"L": [...]} / {"T": [...]}        list / tuple
    {"D": [[k, v], ...]}               dict (any encodable keys, in order)
    {"A": i} / {"S": i}                ndarray / NumPy scalar, blob i; {"A": i, "M": k}: the array
                                       the receiver knows as mirror k (see `mirror` below)
    {"C": [re, im]}                    complex
    {"dtype": "float32", "type": b}    np.dtype("float32"), or the type np.float32 when b
    {"rng": {...}}                     numpy Generator, by its bit generator's state
    {"slice": [start, stop, step]}     slice
    {"H": id, "t": name, "c": b}       anything else: an opaque handle (see `handle` below)

This file is executed inside the student's kernel as well (as source, stdlib and NumPy only),
so it imports nothing from the grader.
"""

import io
import json
import struct

import numpy as np

MAGIC = b"GRW1"
MAX_DEPTH = 64
MAX_ITEMS = 1_000_000
DEFAULT_MAX_BYTES = 512 * 2 ** 20
_NUMERIC_KINDS = "biufc"
_SCALARS = (bool, int, float, str, type(None))


class WireError(ValueError):
    """A message that is not well-formed, too large, or holds something that is not data."""


def encode(value, handle=None, mirror=None) -> bytes:
    """Encode `value`. `handle(obj) -> dict | None` turns a non-data object (or a subclass of list,
    tuple or dict) into a handle node; where it gives None, containers go as plain data and any
    other object raises WireError naming its type. `mirror(array) -> int | None` names the
    arrays the receiver should keep as one object across messages (so that an array the student
    stored and the caller changes later changes for the student too, as in one kernel)."""
    blobs: list[bytes] = []
    count = [0]

    def enc(v, depth):
        count[0] += 1
        if depth > MAX_DEPTH or count[0] > MAX_ITEMS:
            raise WireError("value too deeply nested or too large to send")
        if isinstance(v, _SCALARS) and type(v) in _SCALARS:
            return v
        if isinstance(v, np.ndarray) and v.dtype.kind in _NUMERIC_KINDS:
            kid = mirror(v) if mirror is not None else None
            return {"A": _blob(blobs, v)} if kid is None else {"A": _blob(blobs, v), "M": kid}
        if isinstance(v, np.generic) and v.dtype.kind in _NUMERIC_KINDS:
            return {"S": _blob(blobs, np.asarray(v))}
        if type(v) is complex:
            return {"C": [v.real, v.imag]}
        if isinstance(v, (list, tuple, dict)) and type(v) not in (list, tuple, dict) and handle is not None:
            node = handle(v)  # a named tuple or an OrderedDict keeps its type where it lives
            if node is not None:
                return node
        if isinstance(v, (list, tuple)):
            return {"L" if isinstance(v, list) else "T": [enc(x, depth + 1) for x in v]}
        if isinstance(v, dict):
            return {"D": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v.items()]}
        if isinstance(v, np.dtype):
            return {"dtype": v.str, "type": False}
        if isinstance(v, type) and issubclass(v, np.generic):
            return {"dtype": np.dtype(v).str, "type": True}
        if isinstance(v, np.random.Generator):
            return {"rng": _json_safe(v.bit_generator.state)}
        if type(v) is slice:
            return {"slice": [enc(v.start, depth + 1), enc(v.stop, depth + 1), enc(v.step, depth + 1)]}
        if isinstance(v, (bool, int, float, str)):  # subclasses (IntEnum, str subclasses): plain value
            return enc(_plain(v), depth)
        node = handle(v) if handle is not None else None
        if node is not None:
            return node
        raise WireError(f"a {type(v).__name__} cannot be sent to the student's code: only data (arrays, "
                        "numbers, strings, lists, tuples, dicts, dtypes, Generators) crosses")

    tree = enc(value, 0)
    header = json.dumps({"v": tree, "b": [len(b) for b in blobs]}, allow_nan=True).encode()
    return b"".join([MAGIC, struct.pack("<Q", len(header)), header, *blobs])


def decode(data: bytes, handle=None, max_bytes: int = DEFAULT_MAX_BYTES, mirror=None):
    """Decode a message. `handle(node) -> object` turns a handle node into an object; without it
    a handle node raises WireError. `mirror(k, array) -> array` returns the object to use for the
    array the sender calls mirror k (without it, mirrors are plain arrays)."""
    if not isinstance(data, (bytes, bytearray, memoryview)) or len(data) > max_bytes:
        raise WireError(f"message missing or larger than {max_bytes} bytes")
    data = bytes(data)
    if data[:4] != MAGIC or len(data) < 12:
        raise WireError("not a wire message")
    (hlen,) = struct.unpack("<Q", data[4:12])
    if 12 + hlen > len(data):
        raise WireError("truncated header")
    try:
        header = json.loads(data[12:12 + hlen])
        sizes = header["b"]
        tree = header["v"]
    except (ValueError, KeyError, TypeError):
        raise WireError("malformed header") from None
    if not isinstance(sizes, list) or not all(type(s) is int and s >= 0 for s in sizes) \
            or 12 + hlen + sum(sizes) != len(data):
        raise WireError("blob sizes do not match the message")
    offsets, pos = [], 12 + hlen
    for s in sizes:
        offsets.append((pos, pos + s))
        pos += s
    count = [0]

    used = set()

    def blob(i):
        if type(i) is not int or not 0 <= i < len(offsets) or i in used:
            raise WireError("bad blob index (each blob is used once, so nothing decodes larger than sent)")
        used.add(i)
        a, b = offsets[i]
        try:
            arr = np.lib.format.read_array(io.BytesIO(data[a:b]), allow_pickle=False)
        except Exception as e:
            raise WireError(f"bad array ({type(e).__name__})") from None
        if arr.dtype.kind not in _NUMERIC_KINDS or arr.dtype.fields is not None:
            raise WireError(f"arrays of dtype {arr.dtype} are not data here")
        return arr

    def dec(n, depth):
        count[0] += 1
        if depth > MAX_DEPTH or count[0] > MAX_ITEMS:
            raise WireError("value too deeply nested or too large")
        if n is None or type(n) in (bool, int, float, str):
            return n
        if type(n) is not dict or len(n) == 0:
            raise WireError("malformed node")
        if "A" in n:
            arr = blob(n["A"])
            kid = n.get("M")
            return mirror(kid, arr) if mirror is not None and type(kid) is int else arr
        if "S" in n:
            arr = blob(n["S"])
            if arr.ndim != 0:
                raise WireError("scalar blob is not 0-d")
            return arr[()]
        if "L" in n or "T" in n:
            items = n.get("L", n.get("T"))
            if type(items) is not list:
                raise WireError("malformed sequence")
            out = [dec(x, depth + 1) for x in items]
            return out if "L" in n else tuple(out)
        if "D" in n:
            pairs = n["D"]
            if type(pairs) is not list or not all(type(p) is list and len(p) == 2 for p in pairs):
                raise WireError("malformed dict")
            out = {}
            for k, v in pairs:
                key = dec(k, depth + 1)
                try:
                    out[key] = dec(v, depth + 1)
                except TypeError:
                    raise WireError("unhashable dict key") from None
            return out
        if "C" in n:
            re_, im = n["C"]
            return complex(float(re_), float(im))
        if "dtype" in n:
            try:
                dt = np.dtype(str(n["dtype"]))
            except TypeError:
                raise WireError("bad dtype") from None
            if dt.kind not in _NUMERIC_KINDS:
                raise WireError(f"dtype {dt} is not data here")
            return dt.type if n.get("type") else dt
        if "rng" in n:
            return _generator(n["rng"])
        if "slice" in n:
            parts = n["slice"]
            if type(parts) is not list or len(parts) != 3:
                raise WireError("malformed slice")
            return slice(*(dec(p, depth + 1) for p in parts))
        if "H" in n:
            if handle is None or type(n["H"]) is not int:
                raise WireError("unexpected handle")
            return handle(n)
        raise WireError("unknown node")

    return dec(tree, 0)


def _blob(blobs: list, arr) -> int:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr) if arr.ndim else arr, allow_pickle=False)
    blobs.append(buf.getvalue())
    return len(blobs) - 1


def _plain(v):
    for t in (bool, int, float, str):
        if isinstance(v, t):
            return t(v)
    return v


def _json_safe(state):
    """A bit generator's state: nested dicts of str -> int / str / dict (NumPy arrays for MT19937)."""
    if isinstance(state, dict):
        return {str(k): _json_safe(v) for k, v in state.items()}
    if isinstance(state, np.ndarray):
        return {"__array__": state.tolist(), "dtype": state.dtype.str}
    if isinstance(state, (np.integer,)):
        return int(state)
    return state


def _from_json_state(state):
    if isinstance(state, dict):
        if "__array__" in state:
            return np.array(state["__array__"], dtype=np.dtype(str(state["dtype"])))
        return {k: _from_json_state(v) for k, v in state.items()}
    return state


_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _generator(state):
    if type(state) is not dict or state.get("bit_generator") not in _BIT_GENERATORS:
        raise WireError("unknown random generator")
    bg = getattr(np.random, state["bit_generator"])()
    try:
        bg.state = _from_json_state(state)
    except Exception:
        raise WireError("bad random generator state") from None
    return np.random.Generator(bg)


def set_generator_state(gen, other) -> None:
    """Advance `gen` to where `other` (the same generator after the student's call) stands."""
    gen.bit_generator.state = other.bit_generator.state
