"""The numerical gradient tools are themselves checked against known derivatives."""

import numpy as np

from nnlab.gradcheck import grad_check_sparse, numerical_gradient, numerical_gradient_array, rel_error


def test_numerical_gradient_of_quadratic(rng):
    x = rng.standard_normal((3, 2))
    g = numerical_gradient(lambda v: np.sum(v ** 2), x)
    assert rel_error(g, 2 * x) < 1e-8


def test_numerical_gradient_array_of_elementwise(rng):
    x = rng.standard_normal(5)
    dout = rng.standard_normal(5)
    g = numerical_gradient_array(np.sin, x, dout)
    assert rel_error(g, np.cos(x) * dout) < 1e-8


def test_grad_check_sparse_flags_a_wrong_gradient(rng):
    x = rng.standard_normal((20, 20))
    assert grad_check_sparse(lambda v: np.sum(v ** 3), x, 3 * x ** 2, rng=rng) < 1e-7
    assert grad_check_sparse(lambda v: np.sum(v ** 3), x, 2 * x ** 2, rng=rng) > 1e-2


def test_rel_error_is_zero_for_equal_arrays():
    assert rel_error(np.ones(3), np.ones(3)) == 0.0
