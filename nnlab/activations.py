"""Activation functions as forward/backward pairs in the cache pattern.

    out, cache = NAME_forward(x)
    dx         = NAME_backward(dout, cache)

All functions are elementwise, accept any shape, and keep the dtype of x.
"""

import numpy as np

from ._validate import as_float_array


def relu_forward(x):
    """ReLU: out = max(0, x).

    Args:
        x: array of any shape.
    Returns:
        out: same shape as x.
        cache: out (the mask out > 0 is all the backward needs).
    """
    x = as_float_array("x", x)
    out = np.maximum(x, 0)
    return out, out


def relu_backward(dout, cache):
    """dx = dout where x > 0, else 0 (the subgradient at 0 is taken to be 0)."""
    out = cache
    return np.where(out > 0, dout, 0).astype(out.dtype, copy=False)
