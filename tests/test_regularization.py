"""Dropout, weight penalties and ensembles: conventions, statistics, gradients, errors."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnlab.checks import assert_close, assert_dtype, assert_grad_close
from nnlab.gradcheck import numerical_gradient, numerical_gradient_array
from nnlab.regularization import (
    dropout_backward, dropout_forward, elastic_net_penalty, ensemble_predict, ensemble_probabilities,
    l1_penalty, l2_penalty)


# ----------------------------------------------------------------------------- dropout
@pytest.mark.parametrize("p", [0.25, 0.5, 0.8])
def test_inverted_dropout_keeps_the_mean_and_drops_fraction_p(p):
    x = np.full((500, 400), 2.0)
    out, _ = dropout_forward(x, {"p": p, "mode": "train", "rng": np.random.default_rng(0)})
    zero_fraction = np.mean(out == 0)
    assert abs(zero_fraction - p) < 0.01, (
        f"with p={p} about {p:.0%} of the units should be zero, got {zero_fraction:.1%}: "
        "p is the probability of DROPPING a unit (not of keeping it)")
    assert abs(out.mean() - 2.0) < 0.03, (
        f"inverted dropout must keep the mean (2.0), got {out.mean():.3f}: scale kept units by 1/(1-p)")
    assert_close(out[out != 0], np.full(np.count_nonzero(out), 2.0 / (1 - p)), name="kept units",
                 mistakes={"scaled by 1/p instead of 1/(1-p)": np.full(np.count_nonzero(out), 2.0 / p),
                           "forgot to scale the kept units": np.full(np.count_nonzero(out), 2.0)})
    test_out, _ = dropout_forward(x, {"p": p, "mode": "test"})
    assert_close(test_out, x, name="inverted dropout in test mode", hint="inverted dropout is the identity at test")


def test_scale_at_test_variant_matches_expectation():
    p = 0.3
    x = np.full((400, 500), 1.5)
    train_out, _ = dropout_forward(x, {"p": p, "mode": "train", "rng": np.random.default_rng(1),
                                       "variant": "scale_at_test"})
    assert set(np.unique(train_out)) <= {0.0, 1.5}, "scale_at_test: the training pass only masks, no rescaling"
    test_out, cache = dropout_forward(x, {"p": p, "mode": "test", "variant": "scale_at_test"})
    assert_close(test_out, x * (1 - p), name="scale_at_test output in test mode",
                 hint="multiply by the keep probability 1 - p at test time")
    assert abs(train_out.mean() - test_out.mean()) < 0.01, "test output must equal the expected train output"
    assert_close(dropout_backward(np.ones_like(x), cache), np.full(x.shape, 1 - p), name="test-mode dx")


@pytest.mark.parametrize("variant", ["inverted", "scale_at_test"])
def test_dropout_is_deterministic_given_the_rng(rng, variant):
    x = rng.standard_normal((20, 30))
    param = lambda seed: {"p": 0.5, "mode": "train", "rng": np.random.default_rng(seed), "variant": variant}  # noqa: E731
    a, _ = dropout_forward(x, param(7))
    b, _ = dropout_forward(x, param(7))
    c, _ = dropout_forward(x, param(8))
    assert_close(a, b, name="dropout with the same seed")
    assert not np.array_equal(a, c), "different seeds should give different masks"
    a32, _ = dropout_forward(x.astype(np.float32), param(7))
    assert np.array_equal(a32 == 0, a == 0), "the mask should not depend on the dtype"
    rng_shared = np.random.default_rng(7)
    first, _ = dropout_forward(x, {"p": 0.5, "mode": "train", "rng": rng_shared, "variant": variant})
    second, _ = dropout_forward(x, {"p": 0.5, "mode": "train", "rng": rng_shared, "variant": variant})
    assert not np.array_equal(first, second), "each call must draw a fresh mask from the generator"


@settings(max_examples=20, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), p=st.sampled_from([0.0, 0.2, 0.5, 0.9]),
       variant=st.sampled_from(["inverted", "scale_at_test"]), mode=st.sampled_from(["train", "test"]),
       seed=st.integers(0, 2**16))
def test_dropout_backward_matches_numerical_gradient(shape, p, variant, mode, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    param = lambda: {"p": p, "mode": mode, "variant": variant, "rng": np.random.default_rng(seed)}  # noqa: E731
    out, cache = dropout_forward(x, param())
    dout = rng.standard_normal(out.shape)
    num = numerical_gradient_array(lambda v: dropout_forward(v, param())[0], x, dout)
    assert_grad_close(dropout_backward(dout, cache), num, f"dropout dx ({variant}, {mode})")


def test_dropout_with_p_zero_is_identity(rng):
    x = rng.standard_normal((5, 6))
    out, cache = dropout_forward(x, {"p": 0.0, "mode": "train", "rng": rng})
    assert_close(out, x, name="dropout with p=0")
    assert_close(dropout_backward(np.ones_like(x), cache), np.ones_like(x), name="dx with p=0")


@pytest.mark.parametrize("variant", ["inverted", "scale_at_test"])
@pytest.mark.parametrize("mode", ["train", "test"])
def test_dropout_keeps_float32(rng, variant, mode):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    out, cache = dropout_forward(x, {"p": 0.3, "mode": mode, "rng": rng, "variant": variant})
    assert_dtype(out, np.float32)
    assert_dtype(dropout_backward(np.ones_like(out), cache), np.float32, name="dx")


def test_dropout_rejects_bad_inputs(rng):
    x = rng.standard_normal((3, 3))
    for bad_p in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"dropout_param\['p'\] .*must be in \[0, 1\)"):
            dropout_forward(x, {"p": bad_p, "mode": "train", "rng": rng})
    with pytest.raises(ValueError, match=r"dropout_param\['p'\] .* is required"):
        dropout_forward(x, {"mode": "train", "rng": rng})
    with pytest.raises(ValueError, match=r"dropout_param\['mode'\] must be 'train' or 'test', got 'eval'"):
        dropout_forward(x, {"p": 0.5, "mode": "eval", "rng": rng})
    with pytest.raises(ValueError, match=r"dropout_param\['rng'\] must be a numpy.random.Generator in train mode"):
        dropout_forward(x, {"p": 0.5, "mode": "train"})
    with pytest.raises(ValueError, match=r"dropout_param\['rng'\] must be a numpy.random.Generator"):
        dropout_forward(x, {"p": 0.5, "mode": "train", "rng": 0})
    with pytest.raises(ValueError, match=r"variant'\] must be 'inverted' or 'scale_at_test'"):
        dropout_forward(x, {"p": 0.5, "mode": "train", "rng": rng, "variant": "gaussian"})
    # test mode needs no generator
    dropout_forward(x, {"p": 0.5, "mode": "test"})


# ----------------------------------------------------------------------------- penalties
def test_l2_penalty_value_and_gradient(rng):
    W = rng.standard_normal((4, 3))
    loss, dW = l2_penalty(W, 0.1)
    assert_close(loss, 0.05 * np.sum(W ** 2), name="l2 loss", hint="the L2 penalty is lam/2 * sum(W^2)",
                 mistakes={"forgot the 1/2": 0.1 * np.sum(W ** 2)})
    assert isinstance(loss, float)
    assert_close(dW, 0.1 * W, name="l2 dW", hint="the gradient of lam/2 * sum(W^2) is lam * W")
    assert_grad_close(dW, numerical_gradient(lambda v: l2_penalty(v, 0.1)[0], W), "l2 dW")


def test_l1_penalty_value_and_subgradient(rng):
    W = rng.standard_normal((4, 3))
    loss, dW = l1_penalty(W, 0.2)
    assert_close(loss, 0.2 * np.abs(W).sum(), name="l1 loss")
    assert_grad_close(dW, numerical_gradient(lambda v: l1_penalty(v, 0.2)[0], W), "l1 dW")
    _, d0 = l1_penalty(np.array([-1.0, 0.0, 2.0]), 0.5)
    assert_close(d0, [-0.5, 0.0, 0.5], name="l1 subgradient", hint="the subgradient at 0 is taken to be 0")


@pytest.mark.parametrize("ratio", [0.0, 0.3, 1.0])
def test_elastic_net_penalty(rng, ratio):
    W = rng.standard_normal((3, 5))
    lam = 0.4
    loss, dW = elastic_net_penalty(W, lam, l1_ratio=ratio)
    expected = lam * (ratio * np.abs(W).sum() + (1 - ratio) / 2 * (W ** 2).sum())
    assert_close(loss, expected, name="elastic net loss",
                 hint="lam * (l1_ratio * |W|_1 + (1 - l1_ratio)/2 * |W|^2)")
    assert_grad_close(dW, numerical_gradient(lambda v: elastic_net_penalty(v, lam, ratio)[0], W), "elastic net dW")
    if ratio == 0.0:
        assert_close(loss, l2_penalty(W, lam)[0], name="elastic net with l1_ratio=0 (= L2)")
    if ratio == 1.0:
        assert_close(loss, l1_penalty(W, lam)[0], name="elastic net with l1_ratio=1 (= L1)")


@pytest.mark.parametrize("penalty", [l2_penalty, l1_penalty, elastic_net_penalty])
def test_penalties_accept_a_list_and_keep_dtype(rng, penalty):
    Ws = [rng.standard_normal((3, 4)).astype(np.float32), rng.standard_normal((4, 2)).astype(np.float32)]
    loss, grads = penalty(Ws, 0.3)
    parts = [penalty(w, 0.3) for w in Ws]
    assert_close(loss, sum(p[0] for p in parts), name=f"{penalty.__name__} of a list", rtol=1e-6)
    assert isinstance(grads, list) and len(grads) == 2
    for g, (_, g1), w in zip(grads, parts, Ws):
        assert_dtype(g, np.float32, name=f"{penalty.__name__} gradient")
        assert g.shape == w.shape
        assert_close(g, g1, name=f"{penalty.__name__} gradient in a list")


def test_penalties_reject_bad_arguments(rng):
    W = rng.standard_normal((2, 2))
    with pytest.raises(ValueError, match="lam .* must be a number >= 0, got -1"):
        l2_penalty(W, -1)
    with pytest.raises(ValueError, match=r"l1_ratio must be in \[0, 1\], got 2"):
        elastic_net_penalty(W, 0.1, l1_ratio=2)
    with pytest.raises(ValueError, match="non-empty list"):
        l1_penalty([], 0.1)
    with pytest.raises(ValueError, match="floating-point"):
        l2_penalty(np.ones((2, 2), dtype=int), 0.1)


# ----------------------------------------------------------------------------- ensembles
def test_ensemble_averages_probabilities_then_takes_argmax():
    a = np.array([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5]])
    b = np.array([[0.0, 0.6, 0.4], [0.1, 0.6, 0.3]])
    c = np.array([[0.0, 0.6, 0.4], [0.1, 0.1, 0.8]])
    mean = (a + b + c) / 3
    assert_close(ensemble_probabilities([a, b, c]), mean, name="ensemble_probabilities")
    labels = ensemble_predict([a, b, c])
    assert labels.dtype == np.int64
    assert_close(labels, np.argmax(mean, axis=1), name="ensemble_predict")
    assert_close(ensemble_predict(np.stack([a, b, c])), labels, name="ensemble_predict of a (K, N, C) array")


def test_ensemble_uses_probabilities_not_votes():
    # two models mildly prefer class 0, one is very confident about class 1: averaging gives class 1.
    p1 = np.array([[0.55, 0.45]])
    p2 = np.array([[0.55, 0.45]])
    p3 = np.array([[0.0, 1.0]])
    assert ensemble_predict([p1, p2, p3])[0] == 1, \
        "average the probabilities, then take the argmax (a majority vote would say 0)"


def test_ensemble_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"prob_list\[1\] has shape \(3, 2\), but prob_list\[0\] has shape \(2, 2\)"):
        ensemble_predict([np.ones((2, 2)), np.ones((3, 2))])
    with pytest.raises(ValueError, match="non-empty list"):
        ensemble_predict([])
