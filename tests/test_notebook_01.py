"""Notebook 01 (activations): fast checks of the solution notebook without executing its experiments.

The exercise cells are executed in a plain namespace; then every graded test cell (visible AND hidden part)
is run against (a) the solution, which must pass, (b) the stubs nbgrader makes, which must fail, and
(c) answers that only delegate to nnlab, which must fail with the "not nnlab's" message. The solution is
also cross-checked against nnlab.activations on random inputs: two independent implementations agreeing.
Finally, typical wrong answers (overflow, in-place updates, wrong convention at 0, ...) must fail the VISIBLE
tests with a message that names the mistake.
`python -m grader validate 01_activations` executes the whole notebook; this file takes about a second.
"""

import re

import numpy as np
import pytest
from notebook_cells import SOLUTIONS, check_metadata, load_cells, namespace, stub

import nnlab.activations as A

SOURCE = SOLUTIONS / "01_activations" / "activations.ipynb"
pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="no solutions/ here (a student copy of the course)")

EXERCISES = {  # test cell -> the exercise cell it grades
    "test_sigmoid": "sigmoid_impl", "test_tanh": "tanh_impl", "test_relu": "relu_impl",
    "test_leaky_relu": "leaky_relu_impl", "test_prelu": "prelu_impl", "test_elu": "elu_impl",
    "test_selu": "selu_impl", "test_saturation": "saturation_impl", "test_maxout": "maxout_impl",
}
# Each exercise depends on earlier ones only through selu -> elu.
NEEDS = {"selu_impl": ("elu_impl",)}


@pytest.fixture(scope="module")
def cells():
    return load_cells(SOURCE)


def test_metadata_points_and_ids(cells):
    check_metadata(cells, EXERCISES, (23, 2))


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_solution_passes_visible_and_hidden_tests(cells, test_id, capsys):
    ex = EXERCISES[test_id]
    ns = namespace(cells, [cells[d].source for d in NEEDS.get(ex, ())] + [cells[ex].source])
    exec(cells[test_id].source, ns)
    assert "visible tests passed" in capsys.readouterr().out


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_stub_fails(cells, test_id):
    ex = EXERCISES[test_id]
    ns = namespace(cells, [stub(cells[d].source) for d in NEEDS.get(ex, ())] + [stub(cells[ex].source)])
    with pytest.raises(NotImplementedError):
        exec(cells[test_id].source, ns)


WRAPPERS = {
    "test_sigmoid": "def sigmoid_forward(x):\n    return A.sigmoid_forward(x)\n"
                    "def sigmoid_backward(dout, cache):\n    return A.sigmoid_backward(dout, cache)\n",
    "test_relu": "def relu_forward(x):\n    return A.relu_forward(x)\n"
                 "def relu_backward(dout, cache):\n    return A.relu_backward(dout, cache)\n",
    "test_prelu": "def prelu_forward(x, alpha):\n    return A.prelu_forward(x, alpha)\n"
                  "def prelu_backward(dout, cache):\n    return A.prelu_backward(dout, cache)\n",
    "test_maxout": "def maxout_forward(x, w, b):\n    return A.maxout_forward(x, w, b)\n"
                   "def maxout_backward(dout, cache):\n    return A.maxout_backward(dout, cache)\n",
}


@pytest.mark.parametrize("test_id", sorted(WRAPPERS))
def test_answer_that_wraps_nnlab_earns_nothing(cells, test_id):
    ns = namespace(cells, [])
    ns["A"] = A
    exec(WRAPPERS[test_id], ns)
    with pytest.raises(AssertionError, match="not nnlab's"):
        exec(cells[test_id].source, ns)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_solution_agrees_with_nnlab(cells, rng, dtype):
    ns = namespace(cells, [cells[EXERCISES[t]].source for t in sorted(EXERCISES, key=lambda t: t != "test_elu")])
    x = (rng.standard_normal((7, 5)) * 3).astype(dtype)
    dout = rng.standard_normal((7, 5)).astype(dtype)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for name, kw in [("sigmoid", {}), ("tanh", {}), ("relu", {}), ("leaky_relu", {"alpha": 0.2}),
                     ("elu", {"alpha": 1.5}), ("selu", {})]:
        mine, cache = ns[f"{name}_forward"](x, **kw)
        ref, ref_cache = getattr(A, f"{name}_forward")(x, **kw)
        np.testing.assert_allclose(mine, ref, **tol, err_msg=name)
        np.testing.assert_allclose(ns[f"{name}_backward"](dout, cache),
                                   getattr(A, f"{name}_backward")(dout, ref_cache), **tol, err_msg=name)
    alpha = rng.uniform(0, 0.5, 5).astype(dtype)
    got = ns["prelu_backward"](dout, ns["prelu_forward"](x, alpha)[1])
    ref = A.prelu_backward(dout, A.prelu_forward(x, alpha)[1])
    for g, r in zip(got, ref):
        np.testing.assert_allclose(g, r, **tol)
    w, b = rng.standard_normal((5, 3, 4)).astype(dtype), rng.standard_normal((3, 4)).astype(dtype)
    d4 = rng.standard_normal((7, 4)).astype(dtype)
    out, cache = ns["maxout_forward"](x, w, b)
    out_ref, cache_ref = A.maxout_forward(x, w, b)
    np.testing.assert_allclose(out, out_ref, **tol)
    for g, r in zip(ns["maxout_backward"](d4, cache), A.maxout_backward(d4, cache_ref)):
        np.testing.assert_allclose(g, r, **tol)


HIDDEN = re.compile(r"^[ \t]*### BEGIN HIDDEN TESTS\n.*?^[ \t]*### END HIDDEN TESTS\n?", re.S | re.M)

# Typical wrong answers: the VISIBLE tests alone must reject each one with a message that names the mistake.
MISTAKES = [
    ("test_sigmoid", "def sigmoid_forward(x):\n    out = 1 / (1 + np.exp(-x))\n    return out, out\n",
     r"np\.exp overflowed inside sigmoid_forward"),
    ("test_sigmoid", "def sigmoid_backward(dout, cache):\n    return cache * (1 - cache)\n",
     r"ignored dout"),
    ("test_tanh", "def tanh_backward(dout, cache):\n    return dout * (1 - cache)\n",
     r"1 - tanh\(x\) instead of 1 - tanh\(x\)\*\*2"),
    ("test_relu", "def relu_forward(x):\n    x[x < 0] = 0\n    return x, x\n",
     r"relu_forward changed its input x in place"),
    ("test_relu", "def relu_backward(dout, cache):\n    dx = dout\n    dx[cache <= 0] = 0\n    return dx\n",
     r"relu_backward changed dout in place"),
    ("test_relu", "def relu_backward(dout, cache):\n    return dout * (cache >= 0)\n",
     r"the convention here is gradient 0 at x = 0"),
    ("test_relu", "def relu_backward(dout, cache):\n    return dout * (cache > 0).astype(float)\n",
     r"dtype float64, expected float32"),
    ("test_leaky_relu", "def leaky_relu_backward(dout, cache):\n    x, a = cache\n    return np.where(x > 0, dout, 0.01 * dout)\n",
     r"keep alpha in the cache"),
    ("test_prelu", "def prelu_backward(dout, cache):\n    x, a = cache\n"
                   "    return np.where(x > 0, dout, a * dout), (dout * x).sum(0)\n",
     r"only entries with x <= 0 depend on alpha"),
    ("test_elu", "def elu_forward(x, alpha=1.0):\n    out = np.where(x > 0, x, alpha * (np.exp(x) - 1))\n"
                 "    return out, (x, out, alpha)\n",
     r"np\.exp overflowed in elu_forward"),
    ("test_elu", "def elu_backward(dout, cache):\n    x, out, a = cache\n    return np.where(x > 0, dout, dout * a * np.exp(x))\n",
     r"np\.exp overflowed in elu_backward"),
    ("test_elu", "def elu_backward(dout, cache):\n    x, out, a = cache\n    return np.where(x > 0, dout, dout * (out + 1))\n",
     r"out \+ 1"),
    ("test_saturation", "def saturation_fraction(local_grads, threshold=1e-2):\n"
                        "    return np.array([np.mean(np.abs(g) <= threshold) for g in local_grads])\n",
     r"strictly below"),
    ("test_maxout", "def maxout_backward(dout, cache):\n    x, w, idx = cache\n    N, D = x.shape\n    _, k, M = w.shape\n"
                    "    dz = np.repeat(dout[:, None, :], k, axis=1)\n"
                    "    return dz.reshape(N, -1) @ w.reshape(D, -1).T, (x.T @ dz.reshape(N, -1)).reshape(D, k, M), dz.sum(0)\n",
     r"only the winning piece receives gradient"),
]


@pytest.mark.parametrize("test_id, wrong, message", MISTAKES, ids=[f"{t}-{i}" for i, (t, _, _) in enumerate(MISTAKES)])
def test_visible_tests_name_typical_mistakes(cells, test_id, wrong, message):
    ex = EXERCISES[test_id]
    ns = namespace(cells, [cells[d].source for d in NEEDS.get(ex, ())] + [cells[ex].source])
    exec(wrong, ns)
    visible = HIDDEN.sub("", cells[test_id].source)
    assert visible != cells[test_id].source
    with pytest.raises(AssertionError, match=message):
        exec(visible, ns)
