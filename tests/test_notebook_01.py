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

import nbformat
import numpy as np
import pytest
from notebook_cells import SOLUTIONS, check_metadata, load_cells, namespace, stub

import nnlab.activations as A

SOURCE = SOLUTIONS / "01_activations" / "activations.ipynb"
pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="no solutions/ here (a student copy of the course)")

EXERCISES = {  # test cell -> the exercise cell it grades
    "test_gradcheck": "gradcheck_impl", "test_sigmoid": "sigmoid_impl", "test_tanh": "tanh_impl", "test_relu": "relu_impl",
    "test_leaky_relu": "leaky_relu_impl", "test_prelu": "prelu_impl", "test_elu": "elu_impl",
    "test_selu": "selu_impl", "test_saturation": "saturation_impl", "test_maxout": "maxout_impl",
}
# Each exercise depends on earlier ones only through selu -> elu.
NEEDS = {"selu_impl": ("elu_impl",)}


@pytest.fixture(scope="module")
def cells():
    return load_cells(SOURCE)


def test_metadata_points_and_ids(cells):
    check_metadata(cells, EXERCISES, (26, 2))


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
    ns = namespace(cells, [cells[EXERCISES[t]].source for t in sorted(EXERCISES, key=lambda t: t != "test_elu")
                           if t != "test_gradcheck"])
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
     r"relu_forward changed its argument x in place"),
    ("test_relu", "def relu_backward(dout, cache):\n    dx = dout\n    dx[cache <= 0] = 0\n    return dx\n",
     r"relu_backward changed its argument dout in place(.|\n)*dx = dout makes dx another name"),
    ("test_relu", "def relu_backward(dout, cache):\n    return dout * (cache >= 0)\n",
     r"the convention here is gradient 0 at x = 0"),
    ("test_relu", "def relu_backward(dout, cache):\n    return dout * (cache > 0).astype(float)\n",
     r"dtype float64, expected float32(.|\n)*mask\.astype\(float\)"),
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
    ("test_sigmoid", "def sigmoid_backward(dout, cache):\n    cache *= 1 - cache\n    return dout * cache\n",
     r"sigmoid_backward changed its argument cache in place"),
    ("test_elu", "def elu_forward(x, alpha=1.0):\n    out = np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))\n"
                 "    return out * np.float64(1.0), (x, out, alpha)\n",
     r"np\.sqrt\(n\) or np\.float64\(c\)"),
    ("test_gradcheck", "def centred_difference(f_plus, f_minus, h):\n    return (f_plus - f_minus) / h\n",
     r"the two points are 2h apart"),
    ("test_gradcheck", "def relative_error(analytic, numeric):\n"
                       "    return float(np.mean(np.abs(analytic - numeric) / np.maximum(1e-8, np.abs(analytic) + np.abs(numeric))))\n",
     r"report the largest"),
    ("test_gradcheck", "def relative_error(analytic, numeric):\n"
                       "    with np.errstate(invalid='ignore'):\n"
                       "        return float(np.max(np.abs(analytic - numeric) / (np.abs(analytic) + np.abs(numeric))))\n",
     r"avoids 0 / 0"),
    ("test_gradcheck", "def perturbed_inputs(x, h):\n    n = x.size\n    xp = np.repeat(x[None], n, axis=0)\n"
                       "    xm = xp.copy()\n    xp += h\n    xm -= h\n    return xp, xm\n",
     r"every entry was moved at once"),
    ("test_gradcheck", "def perturbed_inputs(x, h):\n    n = x.size\n    steps = (h * np.eye(n)).reshape((n,) + x.shape)\n"
                       "    return x[None] + steps, x[None] - steps\n",
     r"x_plus for a float32 x has dtype float64"),
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


# Fair grades: a wrong exercise leaves the others their points; SELU is defined as reusing ELU and says so.
WRONG_ELU = ("def elu_backward(dout, cache):\n"             # forgets alpha on the negative side
             "    x, out, alpha = cache\n"
             "    return np.where(x > 0, dout, dout * np.exp(np.minimum(x, 0)))\n")
OWN_SELU = ("def selu_forward(x):\n"
            "    return SELU_LAMBDA * np.where(x > 0, x, SELU_ALPHA * np.expm1(np.minimum(x, 0))), x\n"
            "def selu_backward(dout, cache):\n"
            "    x = cache\n"
            "    return dout * SELU_LAMBDA * np.where(x > 0, 1.0, SELU_ALPHA * np.exp(np.minimum(x, 0)))\n")


def test_selu_built_on_a_wrong_elu_names_the_elu(cells):
    ns = namespace(cells, [cells["elu_impl"].source, WRONG_ELU, cells["selu_impl"].source])
    with pytest.raises(AssertionError):
        exec(cells["test_elu"].source, dict(ns))
    with pytest.raises(AssertionError, match=r"your elu_forward / elu_backward are not right yet"):
        exec(cells["test_selu"].source, ns)


def test_a_selu_of_its_own_keeps_its_points_when_elu_is_wrong(cells):
    for elu in (WRONG_ELU, stub(cells["elu_impl"].source)):
        ns = namespace(cells, [cells["elu_impl"].source, elu, cells["selu_impl"].source, OWN_SELU])
        exec(cells["test_selu"].source, ns)


def test_every_test_passes_with_all_other_exercises_stubbed(cells):
    order = list(EXERCISES.values())
    for test_id, own in EXERCISES.items():
        keep = {own, *NEEDS.get(own, ())}
        srcs = [cells[g].source if g in keep else stub(cells[g].source) for g in order]
        exec(cells[test_id].source, namespace(cells, srcs))


def test_the_stderr_sentence_is_true(cells):
    """The grader does not score stderr output; the notebook must not claim that it does."""
    nb = nbformat.read(SOURCE, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "treats any stderr output in a test as a failure" not in text
    assert "does not take points for a warning" in text


@pytest.mark.parametrize("name", ["01_activations/activations", "02_preprocessing/preprocessing",
                                  "03_weight_init/weight_init", "04_batchnorm/batchnorm"])
def test_introductions_share_the_rules_and_the_check_command(name):
    """Notebooks 01-04: the dtype box (with the NumPy-scalar cause), the in-place rule, points and time, and one
    way to run the checker."""
    path = SOLUTIONS / f"{name}.ipynb"
    nb = nbformat.read(path, as_version=4)
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert "np.sqrt(" in text and re.search(r"NumPy 2\s+promotion", text), "the dtype box names the NumPy-scalar cause"
    assert "in place" in text, "the introduction states that inputs must not be changed in place"
    intro = nb.cells[0].source
    assert "**Time:**" in intro and re.search(r"\*\*(Points|Graded):\*\*", intro), "time and points in the introduction"
    for m in re.finditer(r"(\S*)python -m grader check", text):
        assert m.group(1).endswith(".venv/bin/"), f"use `.venv/bin/python -m grader check`, found {m.group(0)!r}"


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_every_exercise_that_receives_arrays_checks_them_for_in_place_changes(cells, test_id):
    assert "assert_no_mutation(" in cells[test_id].source
