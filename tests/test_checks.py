"""The assertion helpers that notebooks rely on: they must fail, and say why."""

import numpy as np
import pytest

from nnlab import activations
from nnlab.checks import (DTYPE_ARGUMENT_CAUSE, assert_close, assert_dtype, assert_grad_close, assert_no_mutation,
                          assert_shape, forbid_calls)


def test_assert_close_passes_and_reports_worst_entry():
    assert_close(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9]))
    with pytest.raises(AssertionError, match=r"wrong at 1 of 3 entries; e.g. at index \(2,\): expected 3.0, got 4.0"):
        assert_close(np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.0, 3.0]), name="out")


def test_assert_close_names_known_mistake_and_hint():
    x = np.linspace(-2, 2, 5)
    wrong = 1 / (1 + np.exp(x))
    with pytest.raises(AssertionError, match="known mistake: exp\\(x\\) instead of exp\\(-x\\)(.|\n)*Hint: sig"):
        assert_close(wrong, 1 / (1 + np.exp(-x)), name="sigmoid",
                     mistakes={"exp(x) instead of exp(-x)": wrong}, hint="sigmoid is 1/(1+e^-x)")


def test_assert_close_shape_and_none():
    with pytest.raises(AssertionError, match=r"shape \(2,\), expected \(3,\)"):
        assert_close(np.zeros(2), np.zeros(3))
    with pytest.raises(AssertionError, match="forget to return"):
        assert_close(None, np.zeros(3))
    with pytest.raises(AssertionError, match="expected 1.0"):
        assert_close(2.0, 1.0, name="loss")


def test_assert_close_flags_nan():
    with pytest.raises(AssertionError, match="1 of 2"):
        assert_close(np.array([1.0, np.nan]), np.array([1.0, 2.0]))


def test_shape_and_dtype():
    assert_shape(np.zeros((2, 3)), (2, 3))
    with pytest.raises(AssertionError, match=r"\(3, 2\), expected \(2, 3\)"):
        assert_shape(np.zeros((3, 2)), (2, 3), name="dx")
    with pytest.raises(AssertionError, match="float64, expected float32"):
        assert_dtype(np.zeros(2), np.float32)


def test_assert_grad_close():
    assert_grad_close(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-9]))
    with pytest.raises(AssertionError, match="gradient check failed for dw"):
        assert_grad_close(np.array([1.0, 2.0]), np.array([1.0, 2.1]), name="dw")


def test_forbid_calls_catches_wrapping_nnlab():
    x = np.linspace(-1, 1, 4)

    def own(v):
        return np.maximum(v, 0)

    def wrapper(v):
        return activations.relu_forward(v)[0]

    assert_close(forbid_calls(own, x), np.maximum(x, 0))
    with pytest.raises(AssertionError, match="calls nnlab.activations.relu_forward"):
        forbid_calls(wrapper, x)
    # allowed helpers may be used freely
    forbid_calls(lambda v: assert_close(v, v), x)


def test_dtype_message_names_the_likely_cause():
    x = np.ones(3, dtype=np.float32)
    with pytest.raises(AssertionError, match=r"np\.sqrt\(n\) or np\.float64\(c\)"):
        assert_dtype(x / np.sqrt(3), np.float32, name="out")          # a NumPy float64 scalar promotes float32
    with pytest.raises(AssertionError, match="dtype argument"):
        assert_dtype(np.zeros(2), np.float32, name="W", cause=DTYPE_ARGUMENT_CAUSE)
    with pytest.raises(AssertionError, match="keep the dtype of the input"):
        assert_dtype(x, np.float64)
    with pytest.raises(AssertionError, match="numpy array"):
        assert_dtype(1.0, np.float32)
    assert_dtype(x / 3.0, np.float32)                                   # a Python float keeps float32


def test_assert_no_mutation_names_the_argument():
    def centre_in_place(x, mean):
        x -= mean
        return x

    def centre(x, mean):
        return x - mean

    x, m = np.arange(4.0), np.ones(4)
    assert_close(assert_no_mutation(centre, x, m), x - 1)
    with pytest.raises(AssertionError, match=r"centre_in_place changed its argument x in place \(4 of 4"):
        assert_no_mutation(centre_in_place, x.copy(), m)

    def update(x, param):
        param["running"] *= 0.5            # allowed: a documented in-place update
        param["other"][0] = 7.0            # not allowed
        return x

    p = {"running": np.ones(2), "other": np.zeros(2)}
    with pytest.raises(AssertionError, match=r"param\['other'\] in place"):
        assert_no_mutation(update, x, p, may_change=("running",))
    p = {"running": np.ones(2), "other": np.zeros(2)}
    with pytest.raises(AssertionError, match=r"param\['running'\]"):
        assert_no_mutation(lambda x, param: update(x, {"running": param["running"], "other": np.zeros(2)}), x, p)
    # positional names are used even for functions with *args, and tuples are looked into
    with pytest.raises(AssertionError, match=r"changed its argument cache\[1\]"):
        assert_no_mutation(lambda dout, cache: cache[1].fill(0), np.ones(2), (np.ones(2), np.ones(2)))
