"""Normalisation layers: gradient checks, train/test behaviour, running averages, folding, errors."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnlab.checks import assert_close, assert_dtype, assert_grad_close
from nnlab.gradcheck import numerical_gradient_array
from nnlab.normalization import (
    batchnorm_backward, batchnorm_backward_alt, batchnorm_forward, fold_batchnorm, groupnorm_backward,
    groupnorm_forward, layernorm_backward, layernorm_forward, spatial_batchnorm_backward,
    spatial_batchnorm_forward)


def well_spread(rng, shape, axis, scale=2.0, shift=1.0):
    """Random values whose every normalisation group has std > 0.5: a group of nearly equal
    values makes 1/std huge and centred differences inaccurate (a flaky gradient check)."""
    while True:
        x = scale * rng.standard_normal(shape) + shift
        if x.std(axis=axis).min() > 0.5:
            return x


def bn_out(x, gamma, beta, mode="train", **extra):
    return batchnorm_forward(x, gamma, beta, {"mode": mode, **extra})[0]


# ----------------------------------------------------------------------------- batchnorm
@settings(max_examples=20, deadline=None)
@given(n=st.integers(2, 6), d=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_batchnorm_backward_matches_numerical_gradient(n, d, seed):
    rng = np.random.default_rng(seed)
    x = well_spread(rng, (n, d), axis=0, scale=3.0, shift=5.0)
    gamma, beta = rng.standard_normal(d), rng.standard_normal(d)
    out, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dout = rng.standard_normal(out.shape)
    for backward in (batchnorm_backward, batchnorm_backward_alt):
        dx, dgamma, dbeta = backward(dout, cache)
        label = backward.__name__
        assert_grad_close(dx, numerical_gradient_array(lambda v: bn_out(v, gamma, beta), x, dout), f"{label} dx")
        assert_grad_close(dgamma, numerical_gradient_array(lambda g: bn_out(x, g, beta), gamma, dout),
                          f"{label} dgamma")
        assert_grad_close(dbeta, numerical_gradient_array(lambda b: bn_out(x, gamma, b), beta, dout),
                          f"{label} dbeta")


def test_both_batchnorm_backwards_agree(rng):
    x = rng.standard_normal((50, 7))
    gamma, beta = rng.standard_normal(7), rng.standard_normal(7)
    out, cache = batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dout = rng.standard_normal(out.shape)
    for a, b, name in zip(batchnorm_backward(dout, cache), batchnorm_backward_alt(dout, cache),
                          ["dx", "dgamma", "dbeta"]):
        assert_close(b, a, name=f"batchnorm_backward_alt {name}", rtol=1e-9, atol=1e-12,
                     hint="the closed form must equal the staged backward")


def test_batchnorm_test_mode_backward(rng):
    x = rng.standard_normal((4, 3))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    param = {"mode": "test", "running_mean": rng.standard_normal(3), "running_var": rng.uniform(0.5, 2, 3)}
    out, cache = batchnorm_forward(x, gamma, beta, dict(param))
    dout = rng.standard_normal(out.shape)
    f = lambda v: batchnorm_forward(v, gamma, beta, dict(param))[0]  # noqa: E731
    for backward in (batchnorm_backward, batchnorm_backward_alt):
        assert_grad_close(backward(dout, cache)[0], numerical_gradient_array(f, x, dout), "test-mode dx")


def test_batchnorm_train_output_has_mean_beta_and_std_gamma(rng):
    x = 4 * rng.standard_normal((200, 3)) + 10
    gamma, beta = np.array([1.0, 2.0, 3.0]), np.array([0.0, -1.0, 5.0])
    out = bn_out(x, gamma, beta)
    assert_close(out.mean(axis=0), beta, name="per-feature mean of the output", atol=1e-7)
    assert_close(out.std(axis=0), gamma, name="per-feature std of the output", rtol=1e-4,
                 hint="normalise with the biased batch variance and eps = 1e-5")


def test_batchnorm_first_call_creates_running_stats(rng):
    x = rng.standard_normal((8, 4)).astype(np.float32)
    param = {"mode": "train"}
    batchnorm_forward(x, np.ones(4, np.float32), np.zeros(4, np.float32), param)
    assert "running_mean" in param and "running_var" in param, "running stats must be stored in bn_param"
    assert_dtype(param["running_mean"], np.float32, name="running_mean")
    assert_dtype(param["running_var"], np.float32, name="running_var")
    # started from zeros / ones, so one step of momentum 0.9 gives 0.1 * batch stats (+ 0.9 for var)
    assert_close(param["running_mean"], 0.1 * x.mean(0), name="running_mean after one step", rtol=1e-5)
    assert_close(param["running_var"], 0.9 + 0.1 * x.var(0), name="running_var after one step", rtol=1e-5)


def test_batchnorm_momentum_weights_the_old_average(rng):
    x = rng.standard_normal((10, 3)) + 2
    rm, rv = np.full(3, 5.0), np.full(3, 3.0)
    param = {"mode": "train", "momentum": 0.9, "running_mean": rm.copy(), "running_var": rv.copy()}
    batchnorm_forward(x, np.ones(3), np.zeros(3), param)
    convention = ("the convention here is CS231n's: running = momentum * running + (1 - momentum) * batch, "
                  "so momentum = 0.9 keeps 90% of the OLD average (PyTorch's momentum = 0.1 weights the new "
                  "batch; torch_momentum = 1 - ours)")
    assert_close(param["running_mean"], 0.9 * rm + 0.1 * x.mean(0), name="running_mean", hint=convention,
                 mistakes={"moved the running mean towards the batch mean by 0.9 (PyTorch's direction)":
                           0.1 * rm + 0.9 * x.mean(0)})
    assert_close(param["running_var"], 0.9 * rv + 0.1 * x.var(0), name="running_var", hint=convention,
                 mistakes={"moved the running var towards the batch var by 0.9 (PyTorch's direction)":
                           0.1 * rv + 0.9 * x.var(0),
                           "used the unbiased batch variance": 0.9 * rv + 0.1 * x.var(0, ddof=1)})
    assert_close(rm, np.full(3, 5.0), name="the running_mean array passed in",
                 hint="new arrays are stored in bn_param; the caller's arrays are not modified")


def test_batchnorm_unbiased_running_var_option(rng):
    x = rng.standard_normal((5, 2))
    param = {"mode": "train", "momentum": 0.0, "unbiased_running_var": True}
    out = batchnorm_forward(x, np.ones(2), np.zeros(2), param)[0]
    assert_close(param["running_var"], x.var(0, ddof=1), name="running_var with unbiased_running_var=True")
    assert_close(out, (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5), name="output",
                 hint="the output is always normalised with the biased variance")


def test_batchnorm_test_mode_uses_running_stats(rng):
    x = rng.standard_normal((6, 3))
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2.0, 3)
    param = {"mode": "test", "running_mean": rm.copy(), "running_var": rv.copy(), "eps": 1e-5}
    out, _ = batchnorm_forward(x, gamma, beta, param)
    expected = gamma * (x - rm) / np.sqrt(rv + 1e-5) + beta
    batch = gamma * (x - x.mean(0)) / np.sqrt(x.var(0) + 1e-5) + beta
    assert_close(out, expected, name="test-mode batchnorm",
                 mistakes={"used the batch statistics in test mode": batch})
    assert_close(param["running_mean"], rm, name="running_mean after a test-mode call",
                 hint="test mode must not update the running averages")
    assert_close(param["running_var"], rv, name="running_var after a test-mode call")


def test_batchnorm_running_stats_converge_to_data_stats(rng):
    param = {"mode": "train"}
    for _ in range(200):
        x = 2 * rng.standard_normal((64, 2)) + np.array([3.0, -1.0])
        batchnorm_forward(x, np.ones(2), np.zeros(2), param)
    assert_close(param["running_mean"], [3.0, -1.0], name="running_mean", atol=0.3)
    assert_close(param["running_var"], [4.0, 4.0], name="running_var", atol=0.8)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalizations_keep_dtype(rng, dtype):
    g, b = np.ones(4, dtype), np.zeros(4, dtype)
    x2 = rng.standard_normal((5, 4)).astype(dtype)
    x4 = rng.standard_normal((2, 4, 3, 3)).astype(dtype)
    cases = [
        (lambda: batchnorm_forward(x2, g, b, {"mode": "train"}), batchnorm_backward, x2),
        (lambda: batchnorm_forward(x2, g, b, {"mode": "train"}), batchnorm_backward_alt, x2),
        (lambda: batchnorm_forward(x2, g, b, {"mode": "test"}), batchnorm_backward, x2),
        (lambda: layernorm_forward(x2, g, b, {}), layernorm_backward, x2),
        (lambda: spatial_batchnorm_forward(x4, g, b, {"mode": "train"}), spatial_batchnorm_backward, x4),
        (lambda: groupnorm_forward(x4, g, b, 2, {}), groupnorm_backward, x4),
    ]
    for forward, backward, x in cases:
        out, cache = forward()
        assert_dtype(out, dtype, name=f"{backward.__name__} forward output")
        for name, grad in zip(["dx", "dgamma", "dbeta"], backward(np.ones_like(out), cache)):
            assert_dtype(grad, dtype, name=f"{backward.__name__} {name}")


def test_batchnorm_rejects_bad_inputs(rng):
    x = rng.standard_normal((4, 3))
    with pytest.raises(ValueError, match=r"gamma must have shape \(3,\), got \(4,\)"):
        batchnorm_forward(x, np.ones(4), np.zeros(3), {"mode": "train"})
    with pytest.raises(ValueError, match=r"bn_param\['mode'\] must be 'train' or 'test', got 'eval'"):
        batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "eval"})
    with pytest.raises(ValueError, match=r"bn_param\['mode'\] must be 'train' or 'test', got None"):
        batchnorm_forward(x, np.ones(3), np.zeros(3), {})
    with pytest.raises(ValueError, match="momentum.* must be in \\[0, 1\\]"):
        batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "train", "momentum": 1.5})
    with pytest.raises(ValueError, match=r"running_mean'\] must have shape \(3,\)"):
        batchnorm_forward(x, np.ones(3), np.zeros(3), {"mode": "test", "running_mean": np.zeros(2)})
    with pytest.raises(ValueError, match="at least 2 examples"):
        batchnorm_forward(x[:1], np.ones(3), np.zeros(3), {"mode": "train"})
    with pytest.raises(ValueError, match="share one dtype"):
        batchnorm_forward(x.astype(np.float32), np.ones(3), np.zeros(3), {"mode": "train"})


# ----------------------------------------------------------------------------- layernorm
@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 5), d=st.integers(2, 6), seed=st.integers(0, 2**16))
def test_layernorm_backward_matches_numerical_gradient(n, d, seed):
    rng = np.random.default_rng(seed)
    x = well_spread(rng, (n, d), axis=1, shift=-1.0)
    gamma, beta = rng.standard_normal(d), rng.standard_normal(d)
    out, cache = layernorm_forward(x, gamma, beta, {})
    dout = rng.standard_normal(out.shape)
    dx, dgamma, dbeta = layernorm_backward(dout, cache)
    ln = lambda v, g, b: layernorm_forward(v, g, b, {})[0]  # noqa: E731
    assert_grad_close(dx, numerical_gradient_array(lambda v: ln(v, gamma, beta), x, dout), "layernorm dx")
    assert_grad_close(dgamma, numerical_gradient_array(lambda g: ln(x, g, beta), gamma, dout), "layernorm dgamma")
    assert_grad_close(dbeta, numerical_gradient_array(lambda b: ln(x, gamma, b), beta, dout), "layernorm dbeta")


def test_layernorm_normalises_each_example_and_ignores_mode(rng):
    x = 3 * rng.standard_normal((4, 50)) + 7
    out, _ = layernorm_forward(x, np.ones(50), np.zeros(50), {"mode": "train"})
    assert_close(out.mean(axis=1), np.zeros(4), name="per-example mean", atol=1e-7,
                 hint="layernorm averages over the features of each example, not over the batch")
    assert_close(out.std(axis=1), np.ones(4), name="per-example std", rtol=1e-4)
    out_test, _ = layernorm_forward(x, np.ones(50), np.zeros(50), {"mode": "test"})
    assert_close(out_test, out, name="layernorm in test mode", hint="layernorm is the same in train and test")
    out_none, _ = layernorm_forward(x, np.ones(50), np.zeros(50))
    assert_close(out_none, out, name="layernorm with ln_param=None")


# ----------------------------------------------------------------------------- spatial batchnorm
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3), c=st.integers(1, 3), h=st.integers(1, 3), w=st.integers(2, 3),
       seed=st.integers(0, 2**16))
def test_spatial_batchnorm_backward_matches_numerical_gradient(n, c, h, w, seed):
    rng = np.random.default_rng(seed)
    x = well_spread(rng, (n, c, h, w), axis=(0, 2, 3))
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    sbn = lambda v, g, b: spatial_batchnorm_forward(v, g, b, {"mode": "train"})[0]  # noqa: E731
    out, cache = spatial_batchnorm_forward(x, gamma, beta, {"mode": "train"})
    dout = rng.standard_normal(out.shape)
    dx, dgamma, dbeta = spatial_batchnorm_backward(dout, cache)
    assert_grad_close(dx, numerical_gradient_array(lambda v: sbn(v, gamma, beta), x, dout), "spatial bn dx")
    assert_grad_close(dgamma, numerical_gradient_array(lambda g: sbn(x, g, beta), gamma, dout), "spatial bn dgamma")
    assert_grad_close(dbeta, numerical_gradient_array(lambda b: sbn(x, gamma, b), beta, dout), "spatial bn dbeta")


def test_spatial_batchnorm_statistics_per_channel(rng):
    x = rng.standard_normal((4, 3, 5, 5)) * np.array([1.0, 2.0, 3.0])[:, None, None] + 4
    param = {"mode": "train"}
    out, _ = spatial_batchnorm_forward(x, np.ones(3), np.zeros(3), param)
    assert_close(out.mean(axis=(0, 2, 3)), np.zeros(3), name="per-channel mean", atol=1e-7,
                 hint="statistics are per channel, over N, H and W")
    assert_close(out.std(axis=(0, 2, 3)), np.ones(3), name="per-channel std", rtol=1e-4)
    assert param["running_mean"].shape == (3,)
    assert_close(param["running_mean"], 0.1 * x.mean(axis=(0, 2, 3)), name="running_mean")


# ----------------------------------------------------------------------------- groupnorm
@settings(max_examples=15, deadline=None)
@given(n=st.integers(1, 3), groups=st.integers(1, 3), per_group=st.integers(1, 2), hw=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_groupnorm_backward_matches_numerical_gradient(n, groups, per_group, hw, seed):
    rng = np.random.default_rng(seed)
    c = groups * per_group
    if per_group * hw * hw < 2:
        hw = 2  # a group of one value has zero variance: every output is beta
    x = well_spread(rng, (n, groups, per_group * hw * hw), axis=2).reshape(n, c, hw, hw)
    gamma, beta = rng.standard_normal(c), rng.standard_normal(c)
    gn = lambda v, g, b: groupnorm_forward(v, g, b, groups, {})[0]  # noqa: E731
    out, cache = groupnorm_forward(x, gamma, beta, groups, {})
    dout = rng.standard_normal(out.shape)
    dx, dgamma, dbeta = groupnorm_backward(dout, cache)
    assert_grad_close(dx, numerical_gradient_array(lambda v: gn(v, gamma, beta), x, dout), "groupnorm dx")
    assert_grad_close(dgamma, numerical_gradient_array(lambda g: gn(x, g, beta), gamma, dout), "groupnorm dgamma")
    assert_grad_close(dbeta, numerical_gradient_array(lambda b: gn(x, gamma, b), beta, dout), "groupnorm dbeta")


def test_groupnorm_statistics_per_example_and_group(rng):
    x = 3 * rng.standard_normal((2, 6, 4, 4)) + 2
    out, _ = groupnorm_forward(x, np.ones(6), np.zeros(6), 3, {})
    grouped = out.reshape(2, 3, -1)
    assert_close(grouped.mean(axis=2), np.zeros((2, 3)), name="per-(example, group) mean", atol=1e-7)
    assert_close(grouped.std(axis=2), np.ones((2, 3)), name="per-(example, group) std", rtol=1e-4)
    # G = 1 is layernorm over (C, H, W)
    g1, _ = groupnorm_forward(x, np.ones(6), np.zeros(6), 1, {})
    ln, _ = layernorm_forward(x.reshape(2, -1), np.ones(96), np.zeros(96), {})
    assert_close(g1, ln.reshape(x.shape), name="groupnorm with G=1")


def test_groupnorm_accepts_cs231n_gamma_shape(rng):
    x = rng.standard_normal((2, 4, 3, 3))
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    out_a, cache_a = groupnorm_forward(x, gamma, beta, 2, {})
    out_b, cache_b = groupnorm_forward(x, gamma.reshape(1, 4, 1, 1), beta.reshape(1, 4, 1, 1), 2, {})
    assert_close(out_b, out_a, name="groupnorm with gamma (1, C, 1, 1)")
    dout = rng.standard_normal(x.shape)
    _, dgamma, dbeta = groupnorm_backward(dout, cache_b)
    assert dgamma.shape == (1, 4, 1, 1) and dbeta.shape == (1, 4, 1, 1), "dgamma/dbeta are shaped like gamma"


def test_groupnorm_rejects_bad_inputs(rng):
    x = rng.standard_normal((2, 6, 2, 2))
    with pytest.raises(ValueError, match="G must be a positive integer that divides the 6 channels, got 4"):
        groupnorm_forward(x, np.ones(6), np.zeros(6), 4, {})
    with pytest.raises(ValueError, match=r"gamma must have shape \(6,\), got \(3,\)"):
        groupnorm_forward(x, np.ones(3), np.zeros(6), 3, {})


# ----------------------------------------------------------------------------- folding
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fold_batchnorm_equals_batchnorm_in_test_mode(rng, dtype):
    d, m = 5, 4
    x = rng.standard_normal((7, d)).astype(dtype)
    w, b = rng.standard_normal((d, m)).astype(dtype), rng.standard_normal(m).astype(dtype)
    gamma, beta = rng.standard_normal(m).astype(dtype), rng.standard_normal(m).astype(dtype)
    rm, rv = rng.standard_normal(m).astype(dtype), rng.uniform(0.5, 2.0, m).astype(dtype)
    param = {"mode": "test", "running_mean": rm, "running_var": rv, "eps": 1e-3}
    expected, _ = batchnorm_forward(x @ w + b, gamma, beta, param)
    w_f, b_f = fold_batchnorm(w, b, gamma, beta, rm, rv, eps=1e-3)
    assert_dtype(w_f, dtype, name="w_folded")
    assert_dtype(b_f, dtype, name="b_folded")
    tol = 1e-5 if dtype == np.float32 else 1e-12
    assert_close(x @ w_f + b_f, expected, name="affine(x, w_folded, b_folded)", rtol=tol, atol=tol,
                 hint="w_folded = w * s, b_folded = (b - running_mean) * s + beta, s = gamma / sqrt(running_var + eps)")


def test_fold_batchnorm_rejects_wrong_shapes(rng):
    with pytest.raises(ValueError, match=r"gamma must have shape \(4,\), got \(3,\)"):
        fold_batchnorm(np.ones((5, 4)), np.ones(4), np.ones(3), np.ones(4), np.ones(4), np.ones(4))
