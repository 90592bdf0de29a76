"""The judge's data-only boundary: what crosses, what comes back, and how test cells see it.

The wire format is tested on its own (no kernel); the boundary is tested through run_notebook on
small notebooks whose test cells check the same things the course's test cells rely on: in-place
changes, identity of dict entries, Generators, dtypes, exceptions, handles, forbid_calls.
"""

from __future__ import annotations

import numpy as np
import nbformat
import pytest

from grader import wire
from grader.execute import run_notebook
from grader.scoring import score_notebook

pytestmark = pytest.mark.grading

# --- the wire format ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [
    None, True, 3, -2 ** 80, 1.5, float("inf"), "héllo", [1, (2, 3)], {"a": [1.0], 3: "x", (1, 2): None},
    np.float32(1.5), np.int64(7), np.dtype("float32"), slice(1, None, 2), 1 + 2j,
])
def test_wire_round_trip(value):
    back = wire.decode(wire.encode(value))
    assert back == value and type(back) is type(value)


def test_wire_arrays_and_generators():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2]      # not contiguous
    back = wire.decode(wire.encode({"a": a, "b": np.array(True)}))
    assert back["a"].dtype == np.float32 and np.array_equal(back["a"], a) and back["b"].shape == ()
    assert wire.decode(wire.encode(np.float32)) is np.float32
    g = np.random.default_rng(5)
    g2 = wire.decode(wire.encode(g))
    assert g2.random() == np.random.default_rng(5).random()


@pytest.mark.parametrize("bad", [
    b"", b"GRW1", b"XXXX" + b"\0" * 20, wire.encode([1, 2])[:-1], wire.encode(np.zeros(3))[:-4],
    wire.MAGIC + (5).to_bytes(8, "little") + b'{"v":',
])
def test_wire_rejects_malformed_messages(bad):
    with pytest.raises(wire.WireError):
        wire.decode(bad)


def test_wire_never_unpickles():
    obj = np.array([object()], dtype=object)
    with pytest.raises(wire.WireError):
        wire.encode(obj)                       # object arrays are not data
    with pytest.raises(wire.WireError, match="cannot be sent"):
        wire.encode(lambda x: x)
    deep = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(wire.WireError):
        wire.encode(deep)


# --- the boundary, through a kernel -----------------------------------------------------------

def notebook(student: str, test: str, setup: str = "import numpy as np"):
    cells = [nbformat.v4.new_code_cell(setup), nbformat.v4.new_code_cell(student), nbformat.v4.new_code_cell(test)]
    cells[0].metadata["nbgrader"] = {"grade": False, "solution": False, "locked": True, "grade_id": "setup"}
    cells[1].metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False, "grade_id": "impl"}
    cells[2].metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True, "grade_id": "test",
                                     "points": 1}
    return nbformat.v4.new_notebook(cells=cells)


def judged(tmp_path, student, test, **kw):
    nb = notebook(student, test, **kw)
    result = run_notebook(nb, tmp_path, timeout=30)
    score = score_notebook(nb, result.executed)[0]
    return score, nb.cells[2].outputs


def test_in_place_changes_come_back_with_identity_kept(tmp_path):
    student = ("def step(w, dw, state):\n"
               "    state['v'] = 0.9 * state.get('v', 0) + dw   # a new array in the dict\n"
               "    state['t'] = state.get('t', 0) + 1\n"
               "    w -= 0.1 * state['v']                       # the caller's w, in place\n"
               "    return w\n")
    test = ("w, dw, state = np.ones(3), np.full(3, 2.0), {}\n"
            "out = step(w, dw, state)\n"
            "assert np.allclose(w, 0.8), w\n"
            "assert state['t'] == 1 and type(state['t']) is int and np.allclose(state['v'], 2.0)\n"
            "v = state['v']\n"
            "step(w, dw, state)\n"
            "assert state['t'] == 2 and np.allclose(v, 2.0), 'the old v array must not change: it was replaced'\n"
            "assert np.allclose(state['v'], 3.8)\n")
    score, outs = judged(tmp_path, student, test)
    assert score.passed, outs


def test_generators_dtypes_and_exceptions(tmp_path):
    student = ("def init(shape, rng, dtype=np.float32):\n"
               "    return rng.standard_normal(shape).astype(dtype)\n"
               "def picky(name):\n"
               "    if name != 'tanh':\n"
               "        raise ValueError(f'unknown {name}')\n"
               "    return name\n")
    test = ("r = np.random.default_rng(0)\n"
            "a = init((2, 3), rng=r)\n"
            "b = init((2, 3), rng=r, dtype=np.float64)\n"
            "assert a.dtype == np.float32 and b.dtype == np.float64\n"
            "assert not np.allclose(a, b), 'the generator must advance in the caller too'\n"
            "ref = np.random.default_rng(0); ref.standard_normal((2, 3))\n"
            "assert np.allclose(b, ref.standard_normal((2, 3)))\n"
            "try:\n    picky('relu')\nexcept ValueError as e:\n    assert 'unknown relu' in str(e)\n"
            "else:\n    raise AssertionError('ValueError expected')\n")
    score, outs = judged(tmp_path, student, test)
    assert score.passed, outs


def test_handles_stay_in_the_kernel(tmp_path):
    student = ("class Counter:\n"
               "    def __init__(self):\n        self.n = 0\n"
               "    def add(self, k):\n        self.n += k\n        return self.n\n"
               "def forward(x):\n    return x * 2, (x, lambda: 0)       # a cache that is not data\n"
               "def backward(d, cache):\n    x, f = cache\n    return d * 2 + f()\n")
    test = ("c = Counter()\nassert c.add(2) == 2 and c.add(3) == 5 and c.n == 5\n"
            "out, cache = forward(np.ones(2))\n"
            "assert np.allclose(backward(np.ones(2), cache), 2)\n"
            "assert out.dtype == np.float64\n")
    score, outs = judged(tmp_path, student, test)
    assert score.passed, outs


def test_a_value_that_lies_is_not_trusted(tmp_path):
    student = ("class Yes:\n    def __eq__(self, other):\n        return True\n"
               "def square(x):\n    return Yes()\n")
    score, outs = judged(tmp_path, student, "assert square(3) == 9, 'square(3) should be 9'")
    assert not score.passed and "square(3) should be 9" in score.message


def test_the_judge_uses_its_own_helpers(tmp_path):
    student = "import numpy as np\nnp.allclose = lambda *a, **k: True\nAssertionError = KeyboardInterrupt\n" \
              "def f(x):\n    return x + 1\n"
    score, outs = judged(tmp_path, student, "assert np.allclose(f(np.zeros(2)), 0), 'f must return x'")
    assert not score.passed and score.message.startswith("AssertionError")


def test_forbid_calls_runs_where_the_code_runs(tmp_path):
    student = ("def staged(x):\n    return x\n"
               "def closed(x):\n    return staged(x)\n"
               "def own(x):\n    return x\n")
    setup = "import numpy as np\nfrom nnlab.checks import forbid_calls"
    test = ("assert forbid_calls(own, 3, forbidden=('__main__.staged',)) == 3\n"
            "forbid_calls(closed, 3, forbidden=('__main__.staged',), reason='write it in closed form')\n")
    score, outs = judged(tmp_path, student, test, setup=setup)
    assert not score.passed and "closed calls staged: write it in closed form" in score.message, outs


def test_prints_of_the_student_reach_the_cell(tmp_path):
    score, outs = judged(tmp_path, "def f(x):\n    print('debug', x)\n    return x", "assert f(2) == 2\nprint('ok')")
    assert score.passed
    text = "".join(o.get("text", "") for o in outs)
    assert "debug 2" in text and "ok" in text


def test_a_stored_reference_sees_the_callers_change(tmp_path):
    """As in one kernel: an array the student keeps is the caller's array, so a snapshot that holds
    references (not copies) changes when the caller changes the array and calls again (the kernel's
    object is brought up to date whenever the judge sends that array again), and the test can tell."""
    student = ("class Keeper:\n"
               "    def keep(self, state):\n        self.kept = state['w']\n"
               "    def keep_copy(self, state):\n        self.copied = state['w'].copy()\n"
               "def same(a, b):\n    return a is b\n")
    test = ("k = Keeper()\nw = np.zeros(3)\nk.keep({'w': w}); k.keep_copy({'w': w})\n"
            "w[...] = 7\n"
            "assert same(w, w), 'one array sent twice in a call is one object there'\n"
            "assert np.allclose(k.kept, 7), 'the kept reference follows the caller'\n"
            "assert np.allclose(k.copied, 0), 'a copy does not'\n"
            "assert not same(w, w.copy())\n")
    score, outs = judged(tmp_path, student, test)
    assert score.passed, outs
