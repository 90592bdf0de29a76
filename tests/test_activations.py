"""Activations: gradient checks of every backward, dtypes, numerical stability, known values."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnlab.activations import (
    ACTIVATIONS, SELU_ALPHA, SELU_LAMBDA, elu_forward, gelu_backward, gelu_forward,
    leaky_relu_forward, maxout_backward, maxout_forward, prelu_backward, prelu_forward,
    relu_backward, relu_forward, selu_forward, sigmoid_backward, sigmoid_forward, tanh_forward)
from nnlab.checks import assert_close, assert_dtype, assert_grad_close
from nnlab.gradcheck import numerical_gradient_array

NAMES = ["sigmoid", "tanh", "relu", "leaky_relu", "elu", "selu", "gelu"]


def away_from_kinks(x):
    """Push entries away from 0, where relu-like functions have a kink and centred
    differences straddle it."""
    return np.where(np.abs(x) < 1e-3, 0.1, x)


def test_activations_dict_holds_every_name():
    assert sorted(ACTIVATIONS) == sorted(NAMES)
    for name, pair in ACTIVATIONS.items():
        assert len(pair) == 2 and all(callable(f) for f in pair), name


@settings(max_examples=20, deadline=None)
@given(name=st.sampled_from(NAMES), shape=st.lists(st.integers(1, 4), min_size=1, max_size=3),
       seed=st.integers(0, 2**16))
def test_every_activation_backward_matches_numerical_gradient(name, shape, seed):
    rng = np.random.default_rng(seed)
    forward, backward = ACTIVATIONS[name]
    x = away_from_kinks(2 * rng.standard_normal(shape))
    out, cache = forward(x)
    dout = rng.standard_normal(out.shape)
    num = numerical_gradient_array(lambda v: forward(v)[0], x, dout)
    assert_grad_close(backward(dout, cache), num, name=f"{name}_backward dx")


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_backward_both_variants(rng, approximate):
    x = 3 * rng.standard_normal((3, 5))
    out, cache = gelu_forward(x, approximate=approximate)
    dout = rng.standard_normal(out.shape)
    num = numerical_gradient_array(lambda v: gelu_forward(v, approximate=approximate)[0], x, dout)
    assert_grad_close(gelu_backward(dout, cache), num, name=f"gelu({approximate!r}) dx")


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activations_keep_dtype(rng, name, dtype):
    forward, backward = ACTIVATIONS[name]
    x = rng.standard_normal((3, 4)).astype(dtype)
    out, cache = forward(x)
    assert_dtype(out, dtype, name=f"{name}_forward output")
    assert_dtype(backward(np.ones_like(out), cache), dtype, name=f"{name}_backward dx")
    assert out.shape == x.shape


def test_known_values():
    x = np.array([-2.0, -0.5, 0.0, 0.5, 2.0])
    assert_close(sigmoid_forward(x)[0], 1 / (1 + np.exp(-x)), name="sigmoid")
    assert_close(tanh_forward(x)[0], np.tanh(x), name="tanh")
    assert_close(relu_forward(x)[0], np.maximum(x, 0), name="relu")
    assert_close(leaky_relu_forward(x)[0], np.where(x > 0, x, 0.01 * x), name="leaky_relu",
                 hint="the default slope is alpha = 0.01")
    assert_close(leaky_relu_forward(x, alpha=0.1)[0], np.maximum(0.1 * x, x), name="leaky_relu(alpha=0.1)")
    assert_close(elu_forward(x)[0], np.where(x > 0, x, np.exp(x) - 1), name="elu")
    assert_close(elu_forward(x, alpha=0.5)[0], np.where(x > 0, x, 0.5 * (np.exp(x) - 1)), name="elu(alpha=0.5)")
    assert_close(selu_forward(x)[0], SELU_LAMBDA * np.where(x > 0, x, SELU_ALPHA * (np.exp(x) - 1)), name="selu")


def test_selu_constants_at_full_precision():
    assert SELU_LAMBDA == 1.0507009873554804934193349852946
    assert SELU_ALPHA == 1.6732632423543772848170429916717


def test_relu_backward_uses_zero_subgradient_at_zero():
    out, cache = relu_forward(np.array([-1.0, 0.0, 1.0]))
    assert_close(relu_backward(np.ones(3), cache), [0.0, 0.0, 1.0], name="relu_backward")


def test_gelu_matches_direct_formula(rng):
    x = 4 * rng.standard_normal(50)
    exact = np.array([v * 0.5 * (1 + math.erf(v / math.sqrt(2))) for v in x])
    assert_close(gelu_forward(x)[0], exact, name="gelu(x)", rtol=1e-12, atol=1e-12,
                 hint="exact GELU is x * Phi(x), Phi(x) = (1 + erf(x / sqrt(2))) / 2",
                 mistakes={"used the tanh approximation": gelu_forward(x, approximate="tanh")[0]})
    tanh_approx = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    assert_close(gelu_forward(x, approximate="tanh")[0], tanh_approx, name="gelu(x, approximate='tanh')")
    assert np.max(np.abs(tanh_approx - exact)) < 1e-3


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="approximate must be 'none' or 'tanh', got 'erf'"):
        gelu_forward(np.zeros(3), approximate="erf")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_is_stable_for_huge_inputs(dtype):
    x = np.array([-1e4, -800.0, -100.0, 0.0, 100.0, 800.0, 1e4], dtype=dtype)
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        out, cache = sigmoid_forward(x)
        dx = sigmoid_backward(np.ones_like(x), cache)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))
    assert out[0] == 0.0 and out[-1] == 1.0 and out[3] == 0.5
    assert_dtype(out, dtype, name="sigmoid output")


@pytest.mark.parametrize("name", ["elu", "selu", "gelu", "tanh"])
def test_exponential_activations_do_not_overflow(name):
    x = np.array([-1e4, -100.0, 100.0, 1e4], dtype=np.float32)
    forward, backward = ACTIVATIONS[name]
    with np.errstate(over="raise", invalid="raise"):
        out, cache = forward(x)
        dx = backward(np.ones_like(out), cache)
    assert np.all(np.isfinite(out)) and np.all(np.isfinite(dx))


def test_selu_preserves_zero_mean_unit_variance(rng):
    x = rng.standard_normal(1_000_000)
    out, _ = selu_forward(x)
    assert abs(out.mean()) < 5e-3, f"SELU of N(0,1) should have mean ~0, got {out.mean():.4f}"
    assert abs(out.var() - 1) < 5e-3, f"SELU of N(0,1) should have variance ~1, got {out.var():.4f}"


def test_activations_reject_integer_input():
    for name, (forward, _) in ACTIVATIONS.items():
        with pytest.raises(ValueError, match="floating-point"):
            forward(np.arange(3))


def test_leaky_relu_rejects_non_numeric_alpha():
    with pytest.raises(ValueError, match="alpha must be a real number"):
        leaky_relu_forward(np.zeros(3), alpha="0.1")


# ----------------------------------------------------------------------------- PReLU
@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 5), d=st.integers(1, 5), per_feature=st.booleans(), seed=st.integers(0, 2**16))
def test_prelu_backward_matches_numerical_gradient(n, d, per_feature, seed):
    rng = np.random.default_rng(seed)
    x = away_from_kinks(rng.standard_normal((n, d)))
    alpha = rng.uniform(0, 0.5, size=d if per_feature else ())
    out, cache = prelu_forward(x, alpha)
    dout = rng.standard_normal(out.shape)
    dx, dalpha = prelu_backward(dout, cache)
    assert isinstance(dalpha, np.ndarray) and dalpha.shape == alpha.shape, \
        f"dalpha must be an array shaped like alpha {alpha.shape}, got {dalpha!r}"
    assert_grad_close(dx, numerical_gradient_array(lambda v: prelu_forward(v, alpha)[0], x, dout), "dx")
    assert_grad_close(dalpha, numerical_gradient_array(lambda a: prelu_forward(x, a)[0], alpha, dout), "dalpha")


def test_prelu_on_feature_maps_uses_axis_1(rng):
    x = away_from_kinks(rng.standard_normal((2, 3, 2, 2)))
    alpha = np.array([0.1, 0.2, 0.3])
    out, cache = prelu_forward(x, alpha)
    assert_close(out, np.where(x > 0, x, alpha[None, :, None, None] * x), name="prelu on (N, C, H, W)")
    dout = rng.standard_normal(out.shape)
    _, dalpha = prelu_backward(dout, cache)
    assert_grad_close(dalpha, numerical_gradient_array(lambda a: prelu_forward(x, a)[0], alpha, dout), "dalpha")


def test_prelu_scalar_alpha_shape_1_and_float32(rng):
    x = rng.standard_normal((4, 3)).astype(np.float32)
    alpha = np.array([0.25], dtype=np.float32)
    out, cache = prelu_forward(x, alpha)
    dx, dalpha = prelu_backward(np.ones_like(out), cache)
    assert_dtype(out, np.float32)
    assert_dtype(dx, np.float32, name="dx")
    assert_dtype(dalpha, np.float32, name="dalpha")
    assert dalpha.shape == (1,)
    assert_close(out, np.where(x > 0, x, 0.25 * x), name="prelu", rtol=1e-6)


def test_prelu_rejects_wrong_alpha_shape(rng):
    with pytest.raises(ValueError, match=r"alpha must be a scalar array .* or have shape \(3,\)"):
        prelu_forward(rng.standard_normal((4, 3)), np.ones(4))
    with pytest.raises(ValueError, match="share one dtype"):
        prelu_forward(rng.standard_normal((4, 3)), np.ones(3, dtype=np.float32))


# ----------------------------------------------------------------------------- Maxout
def maxout_reference(x, w, b):
    k = w.shape[1]
    return np.max(np.stack([x @ w[:, j, :] + b[j] for j in range(k)]), axis=0)


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 4), d=st.integers(1, 4), k=st.integers(1, 3), m=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_maxout_forward_and_backward(n, d, k, m, seed):
    rng = np.random.default_rng(seed)
    x, w, b = rng.standard_normal((n, d)), rng.standard_normal((d, k, m)), rng.standard_normal((k, m))
    out, cache = maxout_forward(x, w, b)
    assert_close(out, maxout_reference(x, w, b), name="maxout_forward")
    z = np.einsum("nd,dkm->nkm", x, w) + b
    top2 = np.sort(z, axis=1)[:, -2:, :] if k > 1 else None
    if top2 is not None and np.min(top2[:, 1] - top2[:, 0]) < 1e-4:
        return  # a near tie: the max is not differentiable there
    dout = rng.standard_normal(out.shape)
    dx, dw, db = maxout_backward(dout, cache)
    assert_grad_close(dx, numerical_gradient_array(lambda v: maxout_forward(v, w, b)[0], x, dout), "dx")
    assert_grad_close(dw, numerical_gradient_array(lambda v: maxout_forward(x, v, b)[0], w, dout), "dw")
    assert_grad_close(db, numerical_gradient_array(lambda v: maxout_forward(x, w, v)[0], b, dout), "db")


def test_maxout_tie_sends_gradient_to_first_piece():
    x = np.ones((1, 1))
    w = np.ones((1, 2, 1))          # two identical pieces: an exact tie
    b = np.zeros((2, 1))
    out, cache = maxout_forward(x, w, b)
    _, dw, db = maxout_backward(np.ones((1, 1)), cache)
    assert_close(db, [[1.0], [0.0]], name="db on a tie", hint="ties go to the first maximum (np.argmax)")
    assert_close(dw, [[[1.0], [0.0]]], name="dw on a tie")


def test_maxout_generalises_relu(rng):
    x = rng.standard_normal((5, 3))
    v = rng.standard_normal((3, 4))
    w = np.stack([v, np.zeros_like(v)], axis=1)   # pieces x@v and 0
    out, _ = maxout_forward(x, w, np.zeros((2, 4)))
    assert_close(out, np.maximum(x @ v, 0), name="maxout with a zero piece")


def test_maxout_keeps_float32_and_rejects_bad_shapes(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    w = rng.standard_normal((3, 2, 4)).astype(np.float32)
    b = np.zeros((2, 4), np.float32)
    out, cache = maxout_forward(x, w, b)
    assert_dtype(out, np.float32)
    assert all(g.dtype == np.float32 for g in maxout_backward(np.ones_like(out), cache))
    with pytest.raises(ValueError, match=r"w must have shape \(3, \?, \?\)"):
        maxout_forward(x, w[:2], b)
    with pytest.raises(ValueError, match=r"b must have shape \(2, 4\)"):
        maxout_forward(x, w, np.zeros((3, 4), np.float32))
