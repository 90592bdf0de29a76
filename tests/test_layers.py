"""Affine layer and softmax loss: gradient checks, dtypes, and the errors a user sees."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnlab.checks import assert_close, assert_grad_close
from nnlab.gradcheck import numerical_gradient, numerical_gradient_array
from nnlab.layers import affine_backward, affine_forward, softmax, softmax_loss


def test_affine_forward_flattens_each_example(rng):
    x = rng.standard_normal((2, 3, 4))
    w = rng.standard_normal((12, 5))
    b = rng.standard_normal(5)
    out, _ = affine_forward(x, w, b)
    assert_close(out, x.reshape(2, 12) @ w + b, name="affine_forward(x, w, b)")


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 4), dims=st.lists(st.integers(1, 3), min_size=1, max_size=3), m=st.integers(1, 4))
def test_affine_backward_matches_numerical_gradient(n, dims, m):
    rng = np.random.default_rng(n * 100 + m)
    x = rng.standard_normal((n, *dims))
    w = rng.standard_normal((int(np.prod(dims)), m))
    b = rng.standard_normal(m)
    dout = rng.standard_normal((n, m))
    _, cache = affine_forward(x, w, b)
    dx, dw, db = affine_backward(dout, cache)
    assert_grad_close(dx, numerical_gradient_array(lambda v: affine_forward(v, w, b)[0], x, dout), "dx")
    assert_grad_close(dw, numerical_gradient_array(lambda v: affine_forward(x, v, b)[0], w, dout), "dw")
    assert_grad_close(db, numerical_gradient_array(lambda v: affine_forward(x, w, v)[0], b, dout), "db")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_affine_keeps_dtype(rng, dtype):
    x, w, b = (rng.standard_normal(s).astype(dtype) for s in [(4, 3), (3, 2), (2,)])
    out, cache = affine_forward(x, w, b)
    assert out.dtype == dtype
    assert all(g.dtype == dtype for g in affine_backward(np.ones_like(out), cache))


def test_affine_rejects_wrong_shapes_with_clear_message(rng):
    x = rng.standard_normal((4, 3))
    with pytest.raises(ValueError, match=r"w must have shape \(3, \?\), got \(4, 2\)"):
        affine_forward(x, rng.standard_normal((4, 2)), np.zeros(2))
    with pytest.raises(ValueError, match=r"b must have shape \(2,\)"):
        affine_forward(x, rng.standard_normal((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="same dtype|share one dtype"):
        affine_forward(x.astype(np.float32), rng.standard_normal((3, 2)), np.zeros(2))
    with pytest.raises(ValueError, match="floating-point"):
        affine_forward(np.ones((4, 3), dtype=int), rng.standard_normal((3, 2)), np.zeros(2))


def test_softmax_loss_of_uniform_scores_is_log_c():
    loss, _ = softmax_loss(np.zeros((5, 10)), np.arange(5))
    assert abs(loss - np.log(10)) < 1e-12, f"expected log(10) = {np.log(10)}, got {loss}"


def test_softmax_loss_gradient(rng):
    scores = rng.standard_normal((6, 4))
    y = rng.integers(0, 4, size=6)
    _, dscores = softmax_loss(scores, y)
    assert_grad_close(dscores, numerical_gradient(lambda s: softmax_loss(s, y)[0], scores), "dscores")


def test_softmax_is_stable_for_huge_scores():
    p = softmax(np.array([[1000.0, 0.0], [-1000.0, 0.0]]))
    assert np.all(np.isfinite(p))
    assert_close(p, [[1.0, 0.0], [0.0, 1.0]], name="softmax")


def test_softmax_loss_rejects_bad_labels():
    with pytest.raises(ValueError, match=r"labels in \[0, 3\), found 3"):
        softmax_loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match="integer"):
        softmax_loss(np.zeros((2, 3)), np.array([0.0, 1.0]))
