"""The assertion helpers that notebooks rely on: they must fail, and say why."""

import numpy as np
import pytest

from nnlab import activations
from nnlab.checks import assert_close, assert_dtype, assert_grad_close, assert_shape, forbid_calls


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
