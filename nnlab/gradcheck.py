"""Numerical gradients by centred differences, for checking backward passes.

Use float64: with h = 1e-5 the centred difference has error O(h^2) ~ 1e-10, so a correct
backward agrees to a relative error around 1e-7 or better. In float32 expect only ~1e-2.
"""

import numpy as np


def rel_error(x, y):
    """Largest elementwise relative error max |x - y| / max(1e-8, |x| + |y|)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"rel_error needs arrays of one shape, got {x.shape} and {y.shape}")
    return float(np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))) if x.size else 0.0


def numerical_gradient(f, x, h=1e-5):
    """Gradient of a scalar function f at x: df/dx_i ~ (f(x + h e_i) - f(x - h e_i)) / 2h.

    `x` is perturbed in place and restored, so f may close over it.
    Returns an array shaped like x.
    """
    return numerical_gradient_array(f, x, 1.0, h)


def numerical_gradient_array(f, x, dout, h=1e-5):
    """Gradient of sum(f(x) * dout) with respect to x, for an array-valued f.

    This is what a backward pass computes when it receives the upstream gradient `dout`.
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + h
        plus = np.array(f(x), copy=True)
        x[i] = old - h
        minus = np.array(f(x), copy=True)
        x[i] = old
        grad[i] = np.sum((plus - minus) * dout) / (2 * h)
    return grad


def grad_check_sparse(f, x, analytic_grad, num_checks=10, h=1e-5, rng=None):
    """Compare `analytic_grad` with centred differences at `num_checks` random entries of x.

    For tensors too large to check every entry. Returns the largest relative error found.
    """
    rng = np.random.default_rng(0) if rng is None else rng
    worst = 0.0
    for _ in range(num_checks):
        i = tuple(int(rng.integers(s)) for s in x.shape)
        old = x[i]
        x[i] = old + h
        f_plus = float(f(x))
        x[i] = old - h
        f_minus = float(f(x))
        x[i] = old
        numeric = (f_plus - f_minus) / (2 * h)
        worst = max(worst, rel_error(numeric, analytic_grad[i]))
    return worst
