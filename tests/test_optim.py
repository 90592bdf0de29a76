"""Update rules: the state contract, exact values against the lecture formulas, dtypes,
convergence, the Nesterov change of variables, Newton and L-BFGS."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnlab import optim
from nnlab.checks import assert_close, assert_dtype
from nnlab.optim import (RULES, adagrad, adam, adamw, lbfgs, nesterov, nesterov_lookahead, newton_step,
                         rmsprop, sgd, sgd_momentum)

W = np.array([[0.5, -1.0, 2.0], [0.0, 1.5, -0.25]])
DW = np.array([[0.1, -0.2, 0.3], [-0.4, 0.0, 2.0]])

STATE_KEYS = {
    "sgd": set(), "sgd_momentum": {"velocity"}, "nesterov": {"velocity"}, "adagrad": {"cache"},
    "rmsprop": {"cache"}, "adam": {"m", "v", "t"}, "adamw": {"m", "v", "t"},
}


def test_rules_table_lists_every_rule():
    assert set(RULES) >= {"sgd", "sgd_momentum", "nesterov", "adagrad", "rmsprop", "adam"}
    assert RULES["sgd"] is sgd and RULES["adam"] is adam


@pytest.mark.parametrize("name", sorted(STATE_KEYS))
def test_state_created_on_first_use_and_updated_in_place(name):
    rule = RULES[name]
    state = {}
    w0 = W.copy()
    w1 = rule(W, DW, state)
    assert set(state) == STATE_KEYS[name], f"{name} created state keys {set(state)}"
    assert_close(W, w0, name=f"{name}: w after the update", hint="the rule must not modify w in place")
    assert w1.shape == W.shape and w1 is not W
    snapshot = {k: np.copy(v) for k, v in state.items()}
    same_dict = state
    rule(w1, DW, state)
    assert state is same_dict
    for k in STATE_KEYS[name]:
        assert not np.array_equal(np.asarray(state[k]), snapshot[k]), f"{name}: state[{k!r}] did not change"


@pytest.mark.parametrize("name", sorted(STATE_KEYS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_rules_keep_dtype(name, dtype):
    rule = RULES[name]
    state = {}
    w, dw = W.astype(dtype), DW.astype(dtype)
    for _ in range(3):
        w = rule(w, dw, state, lr=np.float64(1e-3))  # numpy float64 hyperparameter must not promote
        assert_dtype(w, dtype, name=f"{name}(w)")
    for k, v in state.items():
        if isinstance(v, np.ndarray):
            assert_dtype(v, dtype, name=f"{name} state[{k!r}]")


def test_sgd_momentum_exact_values_and_accumulation():
    state = {}
    w1 = sgd_momentum(W, DW, state, lr=0.1, momentum=0.9)
    assert_close(w1, W - 0.1 * DW, name="first momentum step", hint="v starts at 0, so step 1 is plain SGD")
    w2 = sgd_momentum(w1, DW, state, lr=0.1, momentum=0.9)
    v2 = 0.9 * DW + DW
    assert_close(state["velocity"], v2, name="velocity after 2 steps",
                 hint="convention: v <- momentum*v + dw (raw gradients, no lr inside v)",
                 mistakes={"v <- momentum*v - lr*dw": 0.9 * (-0.1 * DW) - 0.1 * DW})
    assert_close(w2, w1 - 0.1 * v2, name="second momentum step")
    # with a constant gradient the velocity tends to dw / (1 - rho)
    for _ in range(300):
        sgd_momentum(w2, DW, state, lr=0.1, momentum=0.9)
    assert_close(state["velocity"], DW / 0.1, name="velocity limit", rtol=1e-6)


def test_sgd_momentum_equals_the_lr_inside_form_for_constant_lr(rng):
    A = np.diag([1.0, 10.0])
    w, u, x, state = np.array([1.0, 1.0]), np.zeros(2), np.array([1.0, 1.0]), {}
    for _ in range(20):
        w = sgd_momentum(w, A @ w, state, lr=0.05, momentum=0.8)
        u = 0.8 * u - 0.05 * (A @ x)
        x = x + u
    assert_close(w, x, name="momentum trajectory", rtol=1e-10)


def test_nesterov_exact_values():
    state = {"velocity": np.full_like(W, 0.5)}
    w1 = nesterov(W, DW, state, lr=0.1, momentum=0.9)
    v_new = 0.9 * 0.5 - 0.1 * DW
    assert_close(state["velocity"], v_new, name="nesterov velocity",
                 hint="convention: v <- rho*v - lr*dw (v includes -lr, unlike sgd_momentum)")
    assert_close(w1, W - 0.9 * 0.5 + 1.9 * v_new, name="nesterov step",
                 hint="w <- w - rho*v_old + (1+rho)*v_new")


def _quadratic_grad(w):
    A = np.array([[3.0, 0.5], [0.5, 0.2]])
    return A @ w


def _rosenbrock_grad(w):
    x, y = w
    return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])


@pytest.mark.parametrize("grad_fn, lr", [(_quadratic_grad, 0.1), (_rosenbrock_grad, 1e-4)])
def test_nesterov_matches_lookahead_form_after_change_of_variables(grad_fn, lr):
    rho = 0.9
    x, s_look = np.array([-1.2, 1.0]), {}
    w, s_cur = x.copy(), {}   # w_tilde = x + rho*v, equal to x while v = 0
    for t in range(200):
        x = nesterov_lookahead(x, grad_fn, s_look, lr=lr, momentum=rho)
        w = nesterov(w, grad_fn(w), s_cur, lr=lr, momentum=rho)
        assert_close(s_cur["velocity"], s_look["velocity"], name=f"velocity at step {t}", rtol=1e-9, atol=1e-12)
        assert_close(w, x + rho * s_look["velocity"], name=f"w_tilde at step {t}", rtol=1e-9, atol=1e-12,
                     hint="nesterov's iterate is the look-ahead point x + rho*v of the lecture's form")


def test_adagrad_exact_values():
    state = {}
    w1 = adagrad(W, DW, state, lr=0.1, eps=1e-3)
    assert_close(w1, W - 0.1 * DW / (np.abs(DW) + 1e-3), name="adagrad step 1",
                 mistakes={"eps inside the sqrt": W - 0.1 * DW / np.sqrt(DW ** 2 + 1e-3)})
    w2 = adagrad(w1, DW, state, lr=0.1, eps=1e-3)
    assert_close(state["cache"], 2 * DW ** 2, name="adagrad cache")
    assert_close(w2, w1 - 0.1 * DW / (np.sqrt(2 * DW ** 2) + 1e-3), name="adagrad step 2")


def test_rmsprop_exact_values():
    state = {}
    w1 = rmsprop(W, DW, state, lr=0.1, decay_rate=0.9, eps=1e-3)
    cache = 0.1 * DW ** 2
    assert_close(state["cache"], cache, name="rmsprop cache",
                 hint="cache <- decay_rate*cache + (1-decay_rate)*dw^2",
                 mistakes={"decay_rate and 1-decay_rate swapped": 0.9 * DW ** 2})
    assert_close(w1, W - 0.1 * DW / (np.sqrt(cache) + 1e-3), name="rmsprop step",
                 mistakes={"eps inside the sqrt": W - 0.1 * DW / np.sqrt(cache + 1e-3)})


def test_adam_exact_values_over_two_steps():
    b1, b2, lr, eps = 0.9, 0.999, 1e-2, 1e-8
    state = {}
    w, m, v = W.copy(), np.zeros_like(W), np.zeros_like(W)
    grads = [DW, -0.5 * DW + 0.1]
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        expected = w - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        w_got = adam(w, g, state, lr=lr, beta1=b1, beta2=b2, eps=eps)
        assert state["t"] == t, f"state['t'] is {state['t']} after {t} update(s): the first update uses t=1"
        assert_close(w_got, expected, name=f"adam step {t}", rtol=1e-10)
        w = expected


def test_adam_first_step_is_lr_times_sign_with_bias_correction():
    state = {}
    w1 = adam(W, DW, state, lr=1e-3)
    mask = DW != 0
    assert_close((W - w1)[mask], 1e-3 * np.sign(DW)[mask], name="first Adam step", rtol=1e-5,
                 hint="with bias correction m_hat = dw and v_hat = dw^2 at t=1",
                 mistakes={"no bias correction": (1e-3 * 0.1 * DW / (np.sqrt(0.001 * DW ** 2) + 1e-8))[mask]})
    assert_close(w1[~mask], W[~mask], name="Adam step where dw = 0")


def test_adam_without_bias_correction_takes_larger_first_step():
    w1 = adam(W, DW, {}, lr=1e-3, bias_correction=False)
    mask = DW != 0
    assert_close(np.abs(W - w1)[mask], np.full(mask.sum(), 1e-3 * 0.1 / np.sqrt(0.001)), name="|step|", rtol=1e-5)


def test_adamw_decays_weights_independently_of_gradient():
    w1 = adamw(W, np.zeros_like(W), {}, lr=0.1, weight_decay=0.5)
    assert_close(w1, W * (1 - 0.1 * 0.5), name="adamw with zero gradient")
    w_adam = adam(W, DW, {}, lr=0.1)
    w_adamw = adamw(W, DW, {}, lr=0.1, weight_decay=0.5)
    assert_close(w_adamw, w_adam - 0.1 * 0.5 * W, name="adamw step")


@pytest.mark.parametrize("name, hyper, steps", [
    ("sgd", {"lr": 0.1}, 400), ("sgd_momentum", {"lr": 0.05}, 400), ("nesterov", {"lr": 0.05}, 400),
    ("adagrad", {"lr": 0.5}, 800), ("rmsprop", {"lr": 0.03}, 800), ("adam", {"lr": 0.05}, 800),
    ("adamw", {"lr": 0.05, "weight_decay": 0.0}, 800),
])
def test_rules_converge_on_a_quadratic(name, hyper, steps):
    A = np.array([[2.0, 0.3], [0.3, 0.5]])
    b = np.array([1.0, -2.0])
    w_star = np.linalg.solve(A, b)
    w, state = np.array([3.0, 3.0]), {}
    for _ in range(steps):
        w = RULES[name](w, A @ w - b, state, **hyper)
    assert np.linalg.norm(w - w_star) < 1e-2, f"{name} ended at {w}, minimum is {w_star}"


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=3), name=st.sampled_from(sorted(STATE_KEYS)))
def test_rules_keep_shape_and_finite(shape, name):
    rng = np.random.default_rng(len(shape))
    w, dw = rng.standard_normal(shape), rng.standard_normal(shape)
    out = RULES[name](w, dw, {})
    assert out.shape == w.shape and np.all(np.isfinite(out))


def test_rules_reject_bad_input():
    with pytest.raises(ValueError, match=r"dw must have the shape of w"):
        adam(W, DW[:1], {})
    with pytest.raises(ValueError, match="dtype"):
        sgd_momentum(W.astype(np.float32), DW, {})
    with pytest.raises(ValueError, match=r"momentum must be in \[0.0, 1.0\), got 1.5"):
        sgd_momentum(W, DW, {}, momentum=1.5)
    with pytest.raises(ValueError, match="decay_rate"):
        rmsprop(W, DW, {}, decay_rate=-0.1)
    with pytest.raises(ValueError, match="state must be a dict"):
        adagrad(W, DW, None)
    with pytest.raises(ValueError, match=r"state\['m'\] has shape"):
        adam(W, DW, {"m": np.zeros(3), "v": np.zeros(3), "t": 0})


# ----------------------------------------------------------------------------- second order
def test_newton_solves_a_quadratic_in_one_step(rng):
    M = rng.standard_normal((4, 4))
    A = M @ M.T + 4 * np.eye(4)
    b = rng.standard_normal(4)
    w0 = rng.standard_normal(4)
    w1 = newton_step(w0, A @ w0 - b, A)
    assert_close(w1, np.linalg.solve(A, b), name="Newton step on a quadratic", rtol=1e-10)


def test_newton_keeps_shape_and_rejects_singular_hessian():
    w = np.ones((2, 1), dtype=np.float32)
    out = newton_step(w, np.ones((2, 1), np.float32), np.eye(2, dtype=np.float32) * 2)
    assert out.shape == (2, 1) and out.dtype == np.float32
    assert_close(out, np.full((2, 1), 0.5), name="newton_step")
    with pytest.raises(ValueError, match="singular"):
        newton_step(np.ones(2), np.ones(2), np.array([[1.0, 2.0], [2.0, 4.0]]))
    with pytest.raises(ValueError, match=r"hessian must have shape \(2, 2\)"):
        newton_step(np.ones(2), np.ones(2), np.eye(3))


def _rosenbrock(w):
    x, y = w
    return (1 - x) ** 2 + 100 * (y - x * x) ** 2, _rosenbrock_grad(w)


def test_lbfgs_minimises_rosenbrock():
    w, hist = lbfgs(_rosenbrock, np.array([-1.2, 1.0]), max_iter=200, tol=1e-8)
    assert hist["converged"], hist["message"]
    assert_close(w, np.ones(2), name="L-BFGS minimum of Rosenbrock", rtol=1e-6, atol=1e-6)
    assert len(hist["f"]) == len(hist["grad_norm"]) == hist["n_iter"] + 1
    assert all(b <= a for a, b in zip(hist["f"], hist["f"][1:])), "f must never increase (Armijo)"


def test_lbfgs_minimises_logistic_regression(rng):
    X = np.hstack([rng.standard_normal((200, 3)), np.ones((200, 1))])
    y = (X[:, 0] - 2 * X[:, 1] + 0.5 * rng.standard_normal(200) > 0).astype(float)
    lam = 1e-2

    def f_and_grad(w):
        z = X @ w
        loss = np.mean(np.logaddexp(0, z) - y * z) + lam / 2 * w @ w
        p = 1 / (1 + np.exp(-z))
        return loss, X.T @ (p - y) / len(y) + lam * w

    w, hist = lbfgs(f_and_grad, np.zeros(4), memory=5, tol=1e-9)
    assert hist["converged"], hist["message"]
    # reference: Newton's method on the same strictly convex problem
    w_ref = np.zeros(4)
    for _ in range(30):
        p = 1 / (1 + np.exp(-X @ w_ref))
        H = (X.T * (p * (1 - p))) @ X / len(y) + lam * np.eye(4)
        w_ref = newton_step(w_ref, f_and_grad(w_ref)[1], H)
    assert_close(w, w_ref, name="L-BFGS logistic regression weights", rtol=1e-6, atol=1e-7)


def test_lbfgs_bad_input():
    with pytest.raises(ValueError, match="memory"):
        lbfgs(_rosenbrock, np.zeros(2), memory=0)
    with pytest.raises(ValueError, match=r"gradient of shape \(2,\)"):
        lbfgs(lambda w: (0.0, np.zeros(3)), np.ones(2))


def test_sgd_unchanged():
    assert_close(sgd(W, DW, {}), W - 1e-2 * DW, name="sgd")
    assert optim.sgd.__code__.co_varnames[:4] == ("w", "dw", "state", "lr")
