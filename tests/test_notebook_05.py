"""Notebook 05 (optimizers): fast checks of the solution notebook without executing its experiments.

The exercise cells are executed in a plain namespace (after the setup cell and the locked test-helper cell); then every
graded test cell (visible AND hidden part) is run against (a) the solution, which must pass, (b) the stubs nbgrader
makes, which must fail, (c) answers that only delegate to nnlab, which must fail with the "not nnlab's" message, and
(d) answers with a classic optimizer mistake, whose failure message must name that mistake. The solution is also
cross-checked against nnlab.optim and nnlab.schedules on random inputs: two independent implementations agreeing.
`python -m grader validate 05_optimizers` executes the whole notebook; this file takes a second or two.
"""

import re

import numpy as np
import pytest
from notebook_cells import SOLUTIONS, check_metadata, load_cells, namespace, stub

import nnlab.optim as O
import nnlab.schedules as S

SOURCE = SOLUTIONS / "05_optimizers" / "optimizers.ipynb"
pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="no solutions/ here (a student copy of the course)")

EXERCISES = {  # test cell -> the exercise it grades (each test needs only its own exercise: no cascades)
    "test_sgd_momentum": "sgd_momentum_impl",
    "test_nesterov_lookahead": "nesterov_lookahead_impl",
    "test_nesterov": "nesterov_impl",
    "test_adagrad": "adagrad_impl",
    "test_rmsprop": "rmsprop_impl",
    "test_adam": "adam_impl",
    "test_warmup_cosine": "warmup_cosine_impl",
    "test_newton_step": "newton_impl",
}
HELPERS = ("test_helpers",)


@pytest.fixture(scope="module")
def cells():
    return load_cells(SOURCE)


def run_test(cells, test_id, exercise_src):
    ns = namespace(cells, [cells[h].source for h in HELPERS] + [exercise_src])
    exec(cells[test_id].source, ns)
    return ns


def test_metadata_points_and_ids(cells):
    check_metadata(cells, EXERCISES, (16, 2))
    helper = cells["test_helpers"].metadata["nbgrader"]
    assert helper["locked"] and not helper["grade"] and not helper["solution"]


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_solution_passes_visible_and_hidden_tests(cells, test_id, capsys):
    run_test(cells, test_id, cells[EXERCISES[test_id]].source)
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_stub_fails(cells, test_id):
    with pytest.raises(NotImplementedError):
        run_test(cells, test_id, stub(cells[EXERCISES[test_id]].source))


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_each_test_needs_only_its_own_exercise(cells, test_id):
    # every other exercise left as the stub: this one still passes (no cascades)
    others = [stub(cells[gid].source) for t, gid in EXERCISES.items() if t != test_id]
    ns = namespace(cells, [cells[h].source for h in HELPERS] + others + [cells[EXERCISES[test_id]].source])
    exec(cells[test_id].source, ns)


WRAPPERS = {
    "sgd_momentum_impl": "from nnlab.optim import sgd_momentum",
    "nesterov_impl": "from nnlab.optim import nesterov",
    "adagrad_impl": "from nnlab.optim import adagrad",
    "rmsprop_impl": "from nnlab.optim import rmsprop",
    "adam_impl": "from nnlab.optim import adam",
    "newton_impl": "from nnlab.optim import newton_step",
    "nesterov_lookahead_impl": (
        "import nnlab.optim\n"
        "def nesterov_lookahead(x, grad_ahead, state, lr=1e-2, momentum=0.9):\n"
        "    # nnlab's look-ahead form wants a gradient function; hand it one that returns grad_ahead\n"
        "    return nnlab.optim.nesterov_lookahead(x, lambda _: grad_ahead, state, lr=lr, momentum=momentum)\n"),
    "warmup_cosine_impl": (
        "from nnlab.schedules import cosine, warmup_then\n"
        "def warmup_cosine(step, lr_max, warmup_steps, total_steps, lr_min=0.0):\n"
        "    sched = cosine(lr_max, total_steps - warmup_steps, lr_min=lr_min)\n"
        "    return warmup_then(warmup_steps, sched)(step) if warmup_steps else sched(step)\n"),
}


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_answer_that_wraps_nnlab_fails(cells, test_id):
    with pytest.raises(AssertionError, match="not nnlab's"):
        run_test(cells, test_id, WRAPPERS[EXERCISES[test_id]])


MISTAKES = [  # (test cell, [(solution text, wrong text)], words the failure must contain)
    ("test_sgd_momentum", [("v = momentum * v + dw", "v = momentum * v - dw")], "momentum sign is flipped"),
    ("test_sgd_momentum", [("v = momentum * v + dw", "v = momentum * v + lr * dw")], "lr applied twice"),
    ("test_sgd_momentum", [("v = momentum * v + dw", "v = momentum * v + (1 - momentum) * dw")], "exponential average"),
    ("test_sgd_momentum", [('state["velocity"] = v', "pass")], "not kept between calls"),
    ("test_sgd_momentum", [("v = momentum * v + dw\n", "next_w = w - lr * v\n    v = momentum * v + dw\n"),
                           ("next_w = w - lr * v\n    ### END", "### END")], "OLD velocity"),
    ("test_sgd_momentum", [("next_w = w - lr * v", "w -= lr * v\n    next_w = w")], "changed its argument w in place"),
    ("test_sgd_momentum", [("v = np.zeros_like(w)", "v = np.zeros(w.shape)")], "float32"),
    ("test_sgd_momentum", [("v = momentum * v + dw", "v = np.float64(momentum) * v + dw")], "NumPy float64 scalar"),
    ("test_sgd_momentum", [("v = momentum * v + dw", "v = momentum * v - lr * dw"), ("next_w = w - lr * v", "next_w = w + v")],
     "the other form"),
    ("test_nesterov", [("v = momentum * v_old - lr * dw", "v = momentum * v_old + dw"),
                       ("next_w = w - momentum * v_old + (1 + momentum) * v", "next_w = w - lr * (dw + momentum * v)")],
     "as in PyTorch"),
    ("test_nesterov_lookahead", [("v = momentum * v - lr * grad_ahead", "v = momentum * v + lr * grad_ahead")],
     "INCLUDES -lr"),
    ("test_nesterov_lookahead", [("next_x = x + v", "next_x = x - v")], "step is x + v"),
    ("test_nesterov", [("next_w = w - momentum * v_old + (1 + momentum) * v", "next_w = w + v")], "plain momentum"),
    ("test_nesterov", [("(1 + momentum) * v", "(1 - momentum) * v")], "(1 - momentum)"),
    ("test_nesterov", [("next_w = w - momentum * v_old + (1 + momentum) * v", "next_w = w + momentum * v_old + (1 + momentum) * v")],
     "sign of the momentum * v_old term"),
    ("test_adagrad", [("np.sqrt(cache) + eps", "np.sqrt(cache + eps)")], "eps INSIDE the square root"),
    ("test_adagrad", [("cache = cache + dw * dw", "cache = 0.99 * cache + 0.01 * dw * dw")], "that is RMSProp"),
    ("test_adagrad", [('state["cache"] = cache', "pass")], "not kept between calls"),
    ("test_rmsprop", [("cache = decay_rate * cache + (1 - decay_rate) * (dw * dw)", "cache = decay_rate * cache + dw * dw")],
     "(1 - decay_rate) factor is missing"),
    ("test_rmsprop", [("np.sqrt(cache) + eps", "np.sqrt(cache + eps)")], "eps INSIDE the square root"),
    ("test_rmsprop", [("cache = decay_rate * cache + (1 - decay_rate) * (dw * dw)",
                       "cache = (1 - decay_rate) * cache + decay_rate * (dw * dw)")], "wrong way round"),
    ("test_adam", [("m_hat = m / (1 - beta1 ** t)", "m_hat = m"), ("v_hat = v / (1 - beta2 ** t)", "v_hat = v")],
     "no bias correction"),
    ("test_adam", [('t = int(state.get("t", 0)) + 1', 't = int(state.get("t", 0))'),
                   ('state["t"], state["m"], state["v"] = t, m, v', 'state["t"], state["m"], state["v"] = t + 1, m, v')],
     "step counter starts at 0"),
    ("test_adam", [("m = beta1 * m + (1 - beta1) * dw", "m = beta2 * m + (1 - beta2) * dw"),
                   ("v = beta2 * v + (1 - beta2) * (dw * dw)", "v = beta1 * v + (1 - beta1) * (dw * dw)"),
                   ("m_hat = m / (1 - beta1 ** t)", "m_hat = m / (1 - beta2 ** t)"),
                   ("v_hat = v / (1 - beta2 ** t)", "v_hat = v / (1 - beta1 ** t)")], "beta1 and beta2 swapped"),
    ("test_adam", [("v = beta2 * v + (1 - beta2) * (dw * dw)", "v = beta2 * v + (1 - beta2) * dw")], "dw instead of dw * dw"),
    ("test_adam", [("np.sqrt(v_hat) + eps", "np.sqrt(v_hat + eps)")], "eps INSIDE the square root"),
    ("test_adam", [("t = int(state.get(\"t\", 0)) + 1", "t = 1")], "not kept between calls"),
    ("test_adam", [("m_hat = m / (1 - beta1 ** t)", "m_hat = m / (np.float64(1) - beta1 ** t)")], "NumPy float64 scalar"),
    ("test_warmup_cosine", [("lr_max * (step + 1) / warmup_steps", "lr_max * step / warmup_steps")], "warm-up starts at 0"),
    ("test_warmup_cosine", [("min(step - warmup_steps, total_steps - warmup_steps) / (total_steps - warmup_steps)",
                             "min(step, total_steps) / total_steps")], "not shifted by the warm-up"),
    ("test_warmup_cosine", [("lr_min + 0.5 * (lr_max - lr_min)", "0.5 * lr_max")], "lr_min is ignored"),
    ("test_warmup_cosine", [("min(step - warmup_steps, total_steps - warmup_steps)", "(step - warmup_steps)")],
     "climbs back up"),
    ("test_newton_step", [("w - np.linalg.solve(hessian, grad)", "w - hessian @ grad")], "instead of solving"),
    ("test_newton_step", [("w - np.linalg.solve(hessian, grad)", "w - grad / np.diag(hessian)")], "diagonal"),
    ("test_newton_step", [("w - np.linalg.solve(hessian, grad)", "w + np.linalg.solve(hessian, grad)")], "wrong sign"),
]


@pytest.mark.parametrize("test_id, edits, words", MISTAKES,
                         ids=[f"{m[0]}-{i}-{m[2].split()[0]}" for i, m in enumerate(MISTAKES)])
def test_classic_mistake_is_named(cells, test_id, edits, words):
    src = cells[EXERCISES[test_id]].source
    for old, new in edits:
        assert old in src, f"{EXERCISES[test_id]} no longer contains {old!r}: update this test"
        src = src.replace(old, new)
    with np.errstate(all="ignore"), pytest.raises(AssertionError, match=re.escape(words)):
        run_test(cells, test_id, src)


def test_mutating_dw_is_caught(cells):
    # storing dw itself as the velocity and then updating it in place changes the caller's gradient
    src = cells["sgd_momentum_impl"].source.replace(
        '    v = state.get("velocity")\n    if v is None:\n        v = np.zeros_like(w)\n    v = momentum * v + dw\n',
        '    if "velocity" not in state:\n        state["velocity"] = dw\n        v = dw\n    else:\n'
        '        v = state["velocity"]\n        v *= momentum\n        v += dw\n')
    assert src != cells["sgd_momentum_impl"].source
    with pytest.raises(AssertionError, match="changed its argument dw in place"):
        run_test(cells, "test_sgd_momentum", src)


def test_correct_variants_pass(cells):
    # other correct styles earn the points: state arrays updated in place, setdefault, a Cholesky solve
    variants = {
        "test_sgd_momentum": (
            "def sgd_momentum(w, dw, state, lr=1e-2, momentum=0.9):\n"
            "    v = state.setdefault('velocity', np.zeros_like(w))\n"
            "    v *= momentum\n    v += dw\n    return w - lr * v\n"),
        "test_adam": (
            "def adam(w, dw, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):\n"
            "    state['t'] = state.get('t', 0) + 1\n"
            "    m = state.setdefault('m', np.zeros_like(w)); v = state.setdefault('v', np.zeros_like(w))\n"
            "    m[...] = beta1 * m + (1 - beta1) * dw\n    v[...] = beta2 * v + (1 - beta2) * dw ** 2\n"
            "    t = state['t']\n"
            "    return w - lr * (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps)\n"),
        "test_newton_step": (
            "def newton_step(w, grad, hessian):\n"
            "    L = np.linalg.cholesky(hessian)\n"
            "    y = np.linalg.solve(L, grad)\n    return w - np.linalg.solve(L.T, y)\n"),
    }
    for test_id, src in variants.items():
        run_test(cells, test_id, src)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_solution_agrees_with_nnlab(cells, dtype):
    ns = namespace(cells, [cells[g].source for g in EXERCISES.values()])
    rng = np.random.default_rng(505)
    tol = dict(rtol=1e-4, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-12)
    pairs = [("sgd_momentum", O.sgd_momentum, {"lr": 0.1, "momentum": 0.8}),
             ("nesterov", O.nesterov, {"lr": 0.1, "momentum": 0.8}),
             ("adagrad", O.adagrad, {"lr": 0.1}),
             ("rmsprop", O.rmsprop, {"lr": 0.01, "decay_rate": 0.9}),
             ("adam", O.adam, {"lr": 0.01, "beta1": 0.8, "beta2": 0.99})]
    for name, ref, hyper in pairs:
        w = rng.normal(size=(4, 3)).astype(dtype)
        w_ref, s_mine, s_ref = w.copy(), {}, {}
        for _ in range(6):
            g = rng.normal(size=w.shape).astype(dtype)
            w = ns[name](w, g, s_mine, **hyper)
            w_ref = ref(w_ref, g, s_ref, **hyper)
            assert w.dtype == dtype, name
            np.testing.assert_allclose(w, w_ref, **tol, err_msg=name)
    # the look-ahead form against nnlab's, on a quadratic
    A = np.diag([1.0, 5.0, 20.0]).astype(dtype)
    x, x_ref, s_mine, s_ref = np.ones(3, dtype), np.ones(3, dtype), {}, {}
    for _ in range(5):
        v = s_mine.get("velocity", np.zeros(3, dtype))
        x = ns["nesterov_lookahead"](x, A @ (x + 0.9 * v), s_mine, lr=0.02, momentum=0.9)
        x_ref = O.nesterov_lookahead(x_ref, lambda z: A @ z, s_ref, lr=0.02, momentum=0.9)
        np.testing.assert_allclose(x, x_ref, **tol)
    # the schedule against nnlab's warmup_then + cosine
    sched = S.warmup_then(7, S.cosine(0.3, 93, lr_min=0.01))
    for t in range(0, 130, 3):
        assert ns["warmup_cosine"](t, 0.3, 7, 100, lr_min=0.01) == pytest.approx(sched(t), rel=1e-12)
    H = np.array([[2.0, 0.3], [0.3, 1.0]], dtype)
    w, g = np.array([1.0, -1.0], dtype), np.array([0.5, 0.2], dtype)
    np.testing.assert_allclose(ns["newton_step"](w, g, H), O.newton_step(w, g, H), **tol)
