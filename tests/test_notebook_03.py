"""Notebook 03 (weight initialisation): fast checks of the solution notebook without running its experiments.

The exercise cells (and the locked helper cells the tests rely on) are executed in a plain namespace. Then
every graded test cell, visible and hidden part, is run against
  (a) the solution: it must pass;
  (b) the stub nbgrader makes of the exercise: it must fail;
  (c) an answer that only delegates to nnlab.init: it must fail with forbid_calls' "not nnlab's" message.
Finally the solution's initialisers are cross-checked against nnlab.init (two independent implementations
that must agree, draw for draw). `python -m grader validate 03_weight_init` executes the whole notebook
(experiments included); this file takes a few seconds.
"""

import re

import nbformat
import numpy as np
import pytest
from notebook_cells import SOLUTIONS, load_cells, namespace, stub
from hypothesis import given, settings
from hypothesis import strategies as st

import nnlab.init

SOURCE = SOLUTIONS / "03_weight_init" / "weight_init.ipynb"
pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="no solutions/ here (a student copy of the course)")

# test cell -> (the exercise it grades, other cells it needs, executed first in this order)
EXERCISES = {
    "test_constant_init": ("constant_init", ()),
    "test_unit_spread": ("unit_spread", ("toy_setup",)),
    "test_small_random_init": ("small_random_init", ("random_init_checks",)),
    "test_predict_output_variance": ("predict_output_variance", ()),
    "test_fan_in": ("fan_in", ()),
    "test_xavier_he_init": ("xavier_he_init", ("fan_in", "random_init_checks")),
    "test_deep_forward_backward": ("deep_forward_backward", ()),
    "test_orthogonal_init": ("orthogonal_init", ("random_init_checks",)),
}
POINTS = {"test_constant_init": 1, "test_unit_spread": 2, "test_small_random_init": 1,
          "test_predict_output_variance": 2, "test_fan_in": 1, "test_xavier_he_init": 3,
          "test_deep_forward_backward": 3, "test_orthogonal_init": 2, "q_relu_variance": 2}

# answers that only call nnlab's implementation (each replaces the whole exercise cell)
WRAPPERS = {
    "constant_init": "import nnlab.init\n"
                     "def constant_init(shape, rng=None, dtype=np.float32, value=0.0):\n"
                     "    return nnlab.init.constant(shape, dtype=dtype, value=value)\n",
    "small_random_init": "import nnlab.init\n"
                         "def small_random_init(shape, rng, dtype=np.float32, std=0.01):\n"
                         "    return nnlab.init.small_random(shape, rng=rng, dtype=dtype, std=std)\n",
    "fan_in": "import nnlab.init\n"
              "def fan_in(shape):\n"
              "    if len(shape) < 2:\n"
              "        raise ValueError('shape')\n"
              "    return nnlab.init.fan_in_out(shape)[0]\n",
    "xavier_he_init": "import nnlab.init\n"
                      "def xavier_init(shape, rng, dtype=np.float32):\n"
                      "    return nnlab.init.xavier(shape, rng=rng, dtype=dtype)\n"
                      "def he_init(shape, rng, dtype=np.float32):\n"
                      "    return nnlab.init.he(shape, rng=rng, dtype=dtype)\n",
    "orthogonal_init": "import nnlab.init\n"
                       "def orthogonal_init(shape, rng, dtype=np.float32, gain=1.0):\n"
                       "    if len(shape) != 2:\n"
                       "        raise ValueError('shape')\n"
                       "    return nnlab.init.orthogonal(shape, rng=rng, dtype=dtype, gain=gain)\n",
}


@pytest.fixture(scope="module")
def cells():
    return load_cells(SOURCE)


def run_test_cell(cells, test_id, exercise_source):
    exercise, needs = EXERCISES[test_id]
    ns = namespace(cells, [cells[n].source for n in needs] + [exercise_source])
    exec(cells[test_id].source, ns)


@pytest.fixture(scope="module")
def solution(cells):
    """A namespace holding every solved exercise of the notebook."""
    order = ["constant_init", "unit_spread", "small_random_init", "predict_output_variance", "fan_in",
             "xavier_he_init", "deep_forward_backward", "orthogonal_init"]
    return namespace(cells, [cells[gid].source for gid in order])


def test_metadata_points_and_ids(cells):
    graded = {gid: c.metadata["nbgrader"].get("points") for gid, c in cells.items() if c.metadata["nbgrader"]["grade"]}
    assert graded == POINTS
    for gid, c in cells.items():
        meta = c.metadata["nbgrader"]
        assert meta["schema_version"] == 3 and re.fullmatch(r"[a-z0-9_]+", gid), gid
        if meta["solution"] and c.cell_type == "code":
            assert "### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source, gid
        if meta["grade"] and c.cell_type == "code":
            assert meta["locked"] and not meta["solution"], gid
            assert "### BEGIN HIDDEN TESTS" in c.source and "### END HIDDEN TESTS" in c.source, gid
            assert "forbid_calls" in c.source, gid
    assert cells["q_relu_variance"].cell_type == "markdown" and cells["q_relu_variance"].metadata["nbgrader"]["solution"]


def test_kernel_and_format():
    nb = nbformat.read(SOURCE, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    # the source is committed with its outputs (nbval compares them); the release strips them


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_solution_passes_visible_and_hidden_tests(cells, test_id, capsys):
    run_test_cell(cells, test_id, cells[EXERCISES[test_id][0]].source)
    assert "visible tests passed" in capsys.readouterr().out


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_stub_fails(cells, test_id):
    with pytest.raises(NotImplementedError):
        run_test_cell(cells, test_id, stub(cells[EXERCISES[test_id][0]].source))


@pytest.mark.parametrize("exercise", sorted(WRAPPERS))
def test_wrapping_nnlab_earns_nothing(cells, exercise):
    test_id = next(t for t, (ex, _) in EXERCISES.items() if ex == exercise)
    ns = namespace(cells, [cells[n].source for n in EXERCISES[test_id][1]] + [WRAPPERS[exercise]])
    with pytest.raises(AssertionError, match="not nnlab's"):
        exec(cells[test_id].source, ns)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 9), min_size=2, max_size=5))
def test_fan_in_agrees_with_nnlab(solution, shape):
    assert solution["fan_in"](tuple(shape)) == nnlab.init.fan_in_out(tuple(shape))[0]


@settings(max_examples=25, deadline=None)
@given(rows=st.integers(1, 30), cols=st.integers(1, 30), seed=st.integers(0, 2**16),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_initialisers_agree_with_nnlab_draw_for_draw(solution, rows, cols, seed, dtype):
    shape = (rows, cols)
    pairs = [(solution["small_random_init"], nnlab.init.small_random), (solution["xavier_init"], nnlab.init.xavier),
             (solution["he_init"], nnlab.init.he), (solution["orthogonal_init"], nnlab.init.orthogonal)]
    for mine, theirs in pairs:
        a = mine(shape, rng=np.random.default_rng(seed), dtype=dtype)
        b = theirs(shape, rng=np.random.default_rng(seed), dtype=dtype)
        assert a.dtype == b.dtype == np.dtype(dtype)
        np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-7,
                                   err_msg=mine.__name__)


def test_orthogonal_gain_and_wide_shapes(solution, rng):
    for shape in [(5, 5), (12, 3), (3, 12)]:
        g = float(rng.uniform(0.5, 2))
        W = solution["orthogonal_init"](shape, rng=rng, dtype=np.float64, gain=g)
        P = W.T @ W if shape[0] >= shape[1] else W @ W.T
        np.testing.assert_allclose(P, g * g * np.eye(min(shape)), atol=1e-12)


def test_unit_spread_sees_units_not_inputs(solution):
    W1, W2 = np.ones((3, 4)), np.ones((4, 2))
    W1[1] += 5.0                       # one input's weights into every unit: units stay identical
    assert solution["unit_spread"](W1, W2) == 0.0
    W1[:, 2] += 0.25                   # unit 2's incoming weights
    assert solution["unit_spread"](W1, W2) == pytest.approx(0.25)


def test_deep_backward_matches_a_finite_difference_of_the_loss(solution, rng):
    from nnlab.gradcheck import numerical_gradient
    x = rng.standard_normal((3, 4))
    Ws = [rng.standard_normal((4, 5)) / 2, rng.standard_normal((5, 3)) / 2]
    dout = rng.standard_normal((3, 3))
    for act in ("tanh", "relu"):
        hs, cache = solution["deep_forward"](x, Ws, act)
        deltas = solution["deep_backward"](dout, cache)

        def loss(W0):
            return float(np.sum(solution["deep_forward"](x, [W0, Ws[1]], act)[0][-1] * dout))

        np.testing.assert_allclose(x.T @ deltas[0], numerical_gradient(loss, Ws[0].copy()), rtol=1e-5, atol=1e-8)


# typical wrong answers: each must fail the visible tests with a message that names what is wrong
MISTAKES = [
    ("test_unit_spread", "def unit_spread(W1, W2):\n"
                         "    return float(np.abs(W1 - W1[:, :1]).sum() + np.abs(W2 - W2[:1]).sum())\n",
     "differences were added up"),
    ("test_predict_output_variance", "def predict_output_variance(d_in, var_w, var_x, mean_x=0.0):\n"
                                     "    return d_in * var_w * (var_x + mean_x)\n",
     "mean_x was not squared"),
    # a conv weight scaled with shape[0]: the std is wrong, and the message must say so (not blame the mean)
    ("test_xavier_he_init", "def xavier_init(shape, rng, dtype=np.float32):\n"
                            "    return (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(dtype)\n"
                            "def he_init(shape, rng, dtype=np.float32):\n"
                            "    return (rng.standard_normal(shape) * np.sqrt(2 / shape[0])).astype(dtype)\n",
     r"xavier_init\(\(64, 32, 5, 5\)\).*standard deviation of the weights is"),
    ("test_small_random_init", "def small_random_init(shape, rng, dtype=np.float32, std=0.01):\n"
                               "    return (std * np.sqrt(3) * rng.uniform(-1, 1, shape)).astype(dtype)\n",
     "draw from a normal distribution"),
    ("test_orthogonal_init", "def orthogonal_init(shape, rng, dtype=np.float32, gain=1.0):\n"
                             "    if len(shape) != 2:\n"
                             "        raise ValueError('shape')\n"
                             "    Q, _ = np.linalg.qr(rng.standard_normal((max(shape), min(shape))))\n"
                             "    return (gain * (Q if shape[0] >= shape[1] else Q.T)).astype(dtype)\n",
     r"sign\(R\[j, j\]\)"),
]


@pytest.mark.parametrize("test_id, wrong, message", MISTAKES, ids=[m[0] + "-" + str(i) for i, m in enumerate(MISTAKES)])
def test_typical_mistakes_are_named(cells, test_id, wrong, message):
    with pytest.raises(AssertionError, match=message):
        run_test_cell(cells, test_id, wrong)


# fair grades: a wrong earlier exercise leaves a correct later one its points
WRONG_FAN_IN = ("def fan_in(shape):\n"                     # the classic bug: C_out instead of C_in for a conv
                "    return int(shape[0] * np.prod(shape[2:]))\n")


def test_a_wrong_fan_in_leaves_xavier_and_he_their_points(cells):
    ns = namespace(cells, [WRONG_FAN_IN, cells["random_init_checks"].source, cells["xavier_he_init"].source])
    with pytest.raises(AssertionError):
        exec(cells["test_fan_in"].source, ns)
    exec(cells["test_xavier_he_init"].source, ns)            # std from the fan-in the student's fan_in returns


def test_xavier_with_its_own_correct_fan_in_passes_whatever_fan_in_does(cells):
    own = ("def xavier_init(shape, rng, dtype=np.float32):\n"
           "    d_in = shape[0] if len(shape) == 2 else shape[1] * shape[2] * shape[3]\n"
           "    return (rng.standard_normal(shape) / d_in ** 0.5).astype(dtype)\n"
           "def he_init(shape, rng, dtype=np.float32):\n"
           "    d_in = shape[0] if len(shape) == 2 else shape[1] * shape[2] * shape[3]\n"
           "    return (rng.standard_normal(shape) * (2 / d_in) ** 0.5).astype(dtype)\n")
    for fan in (WRONG_FAN_IN, stub(cells["fan_in"].source)):
        exec(cells["test_xavier_he_init"].source, namespace(cells, [fan, cells["random_init_checks"].source, own]))


def test_a_wrong_constant_init_leaves_unit_spread_its_points(cells):
    for constant in ("def constant_init(shape, rng=None, dtype=np.float32, value=0.0):\n"
                     "    return np.zeros(shape, dtype=dtype)\n", stub(cells["constant_init"].source)):
        ns = namespace(cells, [constant, cells["toy_setup"].source, cells["unit_spread"].source])
        exec(cells["test_unit_spread"].source, ns)


def test_every_test_passes_with_all_other_exercises_stubbed(cells):
    order = ["constant_init", "unit_spread", "small_random_init", "predict_output_variance", "fan_in",
             "xavier_he_init", "deep_forward_backward", "orthogonal_init"]
    helpers = [cells[h].source for h in ("toy_setup", "random_init_checks")]
    for test_id, (own, _) in EXERCISES.items():
        keep = {own, "fan_in"} if own == "xavier_he_init" else {own}     # Xavier/He are defined to use fan_in
        srcs = [cells[g].source if g in keep else stub(cells[g].source) for g in order]
        exec(cells[test_id].source, namespace(cells, helpers + srcs))


def test_initialiser_dtype_message_points_at_the_dtype_argument(cells):
    wrong = ("def small_random_init(shape, rng, dtype=np.float32, std=0.01):\n"
             "    return std * rng.standard_normal(shape)\n")
    with pytest.raises(AssertionError, match="dtype argument"):
        run_test_cell(cells, "test_small_random_init", wrong)


def test_relu_mask_h_ge_0_is_named(cells):
    wrong = cells["deep_forward_backward"].source.replace("(hs[l] > 0)", "(hs[l] >= 0)")
    assert wrong != cells["deep_forward_backward"].source
    with pytest.raises(AssertionError, match=r"h >= 0, which holds for EVERY h"):
        run_test_cell(cells, "test_deep_forward_backward", wrong)


def test_in_place_change_of_the_input_is_named(cells):
    wrong = cells["deep_forward_backward"].source.replace("        z = h @ W\n", "        z = h @ W\n        W *= 1.0000001\n")
    assert wrong != cells["deep_forward_backward"].source
    with pytest.raises(AssertionError, match=r"deep_forward changed its argument weights\[0\] in place"):
        run_test_cell(cells, "test_deep_forward_backward", wrong)


@pytest.mark.parametrize("test_id", sorted(["test_unit_spread", "test_deep_forward_backward", "test_xavier_he_init", "test_orthogonal_init"]))
def test_every_exercise_that_receives_arrays_checks_them_for_in_place_changes(cells, test_id):
    assert "assert_no_mutation(" in cells[test_id].source
