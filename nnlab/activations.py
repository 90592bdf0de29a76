"""Activation functions as forward/backward pairs in the cache pattern.

    out, cache = NAME_forward(x)
    dx         = NAME_backward(dout, cache)

The elementwise activations (sigmoid, tanh, relu, leaky_relu, elu, selu, gelu) accept any
shape and keep the dtype of x: float32 in, float32 out. Scalar hyperparameters (alpha, the
SELU constants) are cast to x.dtype before use, because under NumPy 2 a float64 scalar would
promote a float32 array.

Two activations have learned parameters and their own signatures:

    out, cache   = prelu_forward(x, alpha)      dx, dalpha   = prelu_backward(dout, cache)
    out, cache   = maxout_forward(x, w, b)      dx, dw, db   = maxout_backward(dout, cache)

ACTIVATIONS maps a name to its (forward, backward) pair, for building networks by name.

A note on Leaky ReLU: some lecture slides draw it as max(0.1x, x); the default slope here is
alpha = 0.01 (Maas et al. 2013, and PyTorch's default).
"""

import math

import numpy as np
from scipy.special import erfc

from ._validate import as_float_array, check_same_dtype, check_shape

__all__ = [
    "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward",
    "relu_forward", "relu_backward", "leaky_relu_forward", "leaky_relu_backward",
    "elu_forward", "elu_backward", "selu_forward", "selu_backward",
    "gelu_forward", "gelu_backward", "prelu_forward", "prelu_backward",
    "maxout_forward", "maxout_backward", "ACTIVATIONS", "SELU_LAMBDA", "SELU_ALPHA",
]

# Klambauer et al., "Self-Normalizing Neural Networks" (2017): the constants that make
# mean 0 / variance 1 a fixed point of a SELU layer with N(0, 1/D_in) weights.
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717

_SQRT_HALF = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_GELU_CUBIC = 0.044715


def _scalar(name, value, dtype):
    """A python/numpy real number as a scalar of `dtype` (so float32 stays float32)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    return np.dtype(dtype).type(value)


def _check_dout(dout, like):
    dout = as_float_array("dout", dout)
    if dout.shape != like.shape:
        raise ValueError(f"dout must have the shape of the forward output {like.shape}, got {dout.shape}")
    return dout


# ----------------------------------------------------------------------------- sigmoid
def sigmoid_forward(x):
    """Logistic sigmoid: out = 1 / (1 + exp(-x)), in (0, 1).

    Computed without overflow for any |x|: with e = exp(-|x|) <= 1,
    out = 1 / (1 + e) for x >= 0 and out = e / (1 + e) for x < 0 (and exactly 0 or 1 once
    |x| is so large that exp(-|x|) would underflow: no floating-point warnings at all).

    Args:
        x: array of any shape.
    Returns:
        out: same shape and dtype as x.
        cache: out (the derivative is a function of the output).
    """
    x = as_float_array("x", x)
    # Beyond |x| = -log(tiny) the exact answer is within `tiny` of 0 or 1: clamp |x| there so
    # exp never underflows (np.errstate(all="raise") stays quiet), then snap those entries.
    cap = x.dtype.type(math.floor(-math.log(np.finfo(x.dtype).tiny)))
    ax = np.abs(x)
    e = np.exp(-np.minimum(ax, cap))
    out = np.where(x >= 0, 1 / (1 + e), e / (1 + e))
    far = ax >= cap
    if far.any():
        out[far] = (x[far] > 0)
    return out, out


def sigmoid_backward(dout, cache):
    """d sigmoid(x)/dx = out * (1 - out), at most 1/4 (at x = 0); tends to 0 as |x| grows.

    Args:
        dout: upstream gradient, shape of out.
        cache: out from sigmoid_forward.
    Returns:
        dx: dout * out * (1 - out).
    """
    out = cache
    dout = _check_dout(dout, out)
    return dout * out * (1 - out)


# ----------------------------------------------------------------------------- tanh
def tanh_forward(x):
    """Hyperbolic tangent: out = tanh(x) = 2 sigmoid(2x) - 1, in (-1, 1), zero-centred.

    Args:
        x: array of any shape.
    Returns:
        out: same shape and dtype as x.
        cache: out.
    """
    x = as_float_array("x", x)
    out = np.tanh(x)
    return out, out


def tanh_backward(dout, cache):
    """d tanh(x)/dx = 1 - tanh(x)^2 = 1 - out^2 (1 at x = 0).

    Returns:
        dx: dout * (1 - out^2), shape of out.
    """
    out = cache
    dout = _check_dout(dout, out)
    return dout * (1 - out * out)


# ----------------------------------------------------------------------------- relu
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
    dout = _check_dout(dout, out)
    return dout * (out > 0)  # a boolean mask multiplies ~10x faster than np.where(..., 0)


# ----------------------------------------------------------------------------- leaky relu
def leaky_relu_forward(x, alpha=0.01):
    """Leaky ReLU: out = x if x > 0 else alpha * x  (= max(alpha x, x) for 0 <= alpha <= 1).

    Args:
        x: array of any shape.
        alpha: slope for x <= 0 (default 0.01).
    Returns:
        out: same shape and dtype as x.
        cache: (x, alpha).
    """
    x = as_float_array("x", x)
    a = _scalar("alpha", alpha, x.dtype)
    out = np.where(x > 0, x, a * x)
    return out, (x, a)


def leaky_relu_backward(dout, cache):
    """d/dx = 1 for x > 0, alpha for x <= 0 (the value at 0 is taken to be alpha).

    Returns:
        dx: shape of x.
    """
    x, a = cache
    dout = _check_dout(dout, x)
    return np.where(x > 0, dout, a * dout)


# ----------------------------------------------------------------------------- elu
def elu_forward(x, alpha=1.0):
    """ELU (Clevert et al. 2015): out = x if x > 0 else alpha * (exp(x) - 1).

    Saturates to -alpha for very negative x; outputs are closer to zero mean than ReLU's.

    Args:
        x: array of any shape.
        alpha: the negative saturation level (default 1.0).
    Returns:
        out: same shape and dtype as x.
        cache: (x, out, alpha).
    """
    x = as_float_array("x", x)
    a = _scalar("alpha", alpha, x.dtype)
    # expm1 of min(x, 0): accurate near 0 and never overflows for large positive x.
    out = np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))
    return out, (x, out, a)


def elu_backward(dout, cache):
    """d/dx = 1 for x > 0, alpha * exp(x) = out + alpha for x <= 0.

    Returns:
        dx: shape of x.
    """
    x, out, a = cache
    dout = _check_dout(dout, x)
    return np.where(x > 0, dout, dout * (out + a))


# ----------------------------------------------------------------------------- selu
def selu_forward(x):
    """SELU (Klambauer et al. 2017): out = lambda * (x if x > 0 else alpha * (exp(x) - 1)).

    lambda = 1.0507009873554804934193349852946 and alpha = 1.6732632423543772848170429916717
    (SELU_LAMBDA, SELU_ALPHA): for x ~ N(0, 1), out has mean 0 and variance 1 again.

    Args:
        x: array of any shape.
    Returns:
        out: same shape and dtype as x.
        cache: (x, out).
    """
    x = as_float_array("x", x)
    lam = x.dtype.type(SELU_LAMBDA)
    la = x.dtype.type(SELU_LAMBDA * SELU_ALPHA)
    out = np.where(x > 0, lam * x, la * np.expm1(np.minimum(x, 0)))
    return out, (x, out)


def selu_backward(dout, cache):
    """d/dx = lambda for x > 0, lambda * alpha * exp(x) = out + lambda * alpha for x <= 0.

    Returns:
        dx: shape of x.
    """
    x, out = cache
    dout = _check_dout(dout, x)
    lam = x.dtype.type(SELU_LAMBDA)
    la = x.dtype.type(SELU_LAMBDA * SELU_ALPHA)
    return np.where(x > 0, lam * dout, dout * (out + la))


# ----------------------------------------------------------------------------- gelu
def gelu_forward(x, approximate="none"):
    """GELU (Hendrycks & Gimpel 2016): out = x * Phi(x), Phi the standard normal CDF.

    approximate="none" (default, exact):  Phi(x) = (1 + erf(x / sqrt 2)) / 2 = erfc(-x / sqrt 2) / 2.
    approximate="tanh":  out = x/2 * (1 + tanh(u)) = x * sigmoid(2u),  u = sqrt(2/pi) * (x + 0.044715 x^3)
                         (the approximation of the paper, and PyTorch's approximate="tanh";
                         it differs from the exact GELU by less than about 1e-3).

    Args:
        x: array of any shape.
        approximate: "none" or "tanh".
    Returns:
        out: same shape and dtype as x.
        cache: (x, approximate, Phi(x) or sigmoid(2u)).

    Both forms are computed without cancellation for x << 0 (erfc, and a stable sigmoid rather than
    1 + erf or 1 + tanh), so tiny negative outputs keep their relative precision in float32.
    """
    x = as_float_array("x", x)
    if approximate == "none":
        cdf = erfc(-x * x.dtype.type(_SQRT_HALF)) / 2
        return x * cdf, (x, approximate, cdf)
    if approximate == "tanh":
        u = x.dtype.type(_SQRT_2_OVER_PI) * (x + x.dtype.type(_GELU_CUBIC) * x ** 3)
        s, _ = sigmoid_forward(2 * u)
        return x * s, (x, approximate, s)
    raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")


def gelu_backward(dout, cache):
    """Derivative of GELU.

    exact:  d/dx [x Phi(x)] = Phi(x) + x phi(x),  phi(x) = exp(-x^2/2) / sqrt(2 pi).
    tanh:   s + x * 2 s (1 - s) * sqrt(2/pi) * (1 + 3 * 0.044715 x^2),  s = sigmoid(2u) = (1 + tanh u) / 2.

    Returns:
        dx: shape of x.
    """
    x, approximate, s = cache
    dout = _check_dout(dout, x)
    f = x.dtype.type
    if approximate == "none":
        pdf = np.exp(-x * x / 2) * f(_INV_SQRT_2PI)
        return dout * (s + x * pdf)
    du = f(_SQRT_2_OVER_PI) * (1 + f(3 * _GELU_CUBIC) * x * x)
    return dout * (s + x * (2 * s * (1 - s)) * du)


# ----------------------------------------------------------------------------- prelu
def _alpha_view(alpha, x):
    """alpha reshaped to broadcast against x: a scalar, or one slope per feature on axis 1."""
    if alpha.size == 1 and alpha.ndim <= 1:
        return alpha.reshape(())
    if alpha.ndim != 1 or x.ndim < 2 or alpha.shape[0] != x.shape[1]:
        d = x.shape[1] if x.ndim >= 2 else "D"
        raise ValueError(f"alpha must be a scalar array (shape () or (1,)) or have shape ({d},), "
                         f"one slope per feature on axis 1 of x; got alpha shape {alpha.shape} "
                         f"for x shape {x.shape}")
    return alpha.reshape((1, -1) + (1,) * (x.ndim - 2))


def prelu_forward(x, alpha):
    """Parametric ReLU (He et al. 2015): out = x if x > 0 else alpha * x, alpha learned.

    Args:
        x: (N, D) (or (N, D, ...): the features are axis 1).
        alpha: the negative slope, an array of the dtype of x: shape () or (1,) for one shared
            slope, or (D,) for one slope per feature.
    Returns:
        out: shape and dtype of x.
        cache: (x, alpha).
    """
    x = as_float_array("x", x)
    alpha = as_float_array("alpha", alpha)
    check_same_dtype(x=x, alpha=alpha)
    a = _alpha_view(alpha, x)
    out = np.where(x > 0, x, a * x)
    return out, (x, alpha)


def prelu_backward(dout, cache):
    """Backward pass of prelu_forward.

        dx     = dout where x > 0, alpha * dout where x <= 0
        dalpha = sum of dout * x over the entries with x <= 0 (per feature: summed over every
                 axis but 1), shaped like alpha.

    Returns:
        dx: shape of x.  dalpha: shape of alpha.
    """
    x, alpha = cache
    dout = _check_dout(dout, x)
    a = _alpha_view(alpha, x)
    neg = x <= 0
    dx = np.where(neg, a * dout, dout)
    contrib = np.where(neg, dout * x, 0).astype(x.dtype, copy=False)
    if alpha.size == 1 and alpha.ndim <= 1:
        dalpha = np.asarray(contrib.sum()).reshape(alpha.shape)
    else:
        axes = (0,) + tuple(range(2, x.ndim))
        dalpha = contrib.sum(axis=axes)
    return dx, dalpha


# ----------------------------------------------------------------------------- maxout
def maxout_forward(x, w, b):
    """Maxout (Goodfellow et al. 2013): each output is the max of k affine pieces.

        z[n, j, m] = (x @ w[:, j, :])[n, m] + b[j, m]
        out[n, m]  = max_j z[n, j, m]

    ReLU is the special case k = 2 with one piece fixed at 0.

    Args:
        x: (N, D) inputs.
        w: (D, k, M) weights, k pieces for each of the M outputs.
        b: (k, M) biases.
    Returns:
        out: (N, M), dtype of x.
        cache: (x, w, b, idx) with idx (N, M) the winning piece of each output
            (np.argmax: on a tie the FIRST maximal piece wins and gets the whole gradient).
    """
    x = as_float_array("x", x, ndim=2)
    w = as_float_array("w", w, ndim=3)
    b = as_float_array("b", b, ndim=2)
    d, k, m = w.shape
    check_shape("w", w, (x.shape[1], None, None))
    check_shape("b", b, (k, m))
    check_same_dtype(x=x, w=w, b=b)
    z = (x @ w.reshape(d, k * m)).reshape(-1, k, m) + b
    idx = np.argmax(z, axis=1)
    out = np.take_along_axis(z, idx[:, None, :], axis=1)[:, 0, :]
    return out, (x, w, b, idx)


def maxout_backward(dout, cache):
    """Backward pass of maxout_forward: the gradient flows only through the winning piece.

        dz[n, j, m] = dout[n, m] if j == idx[n, m] else 0
        dx = sum_j dz[:, j, :] @ w[:, j, :].T      dw[:, j, :] = x.T @ dz[:, j, :]      db = sum_n dz[n]

    Args:
        dout: (N, M).
    Returns:
        dx: (N, D), dw: (D, k, M), db: (k, M).
    """
    x, w, b, idx = cache
    dout = as_float_array("dout", dout, ndim=2)
    check_shape("dout", dout, idx.shape)
    n = x.shape[0]
    d, k, m = w.shape
    dz = np.zeros((n, k, m), dtype=x.dtype)
    np.put_along_axis(dz, idx[:, None, :], dout[:, None, :], axis=1)
    dz2 = dz.reshape(n, k * m)
    dx = dz2 @ w.reshape(d, k * m).T
    dw = (x.T @ dz2).reshape(d, k, m)
    db = dz.sum(axis=0)
    return dx, dw, db


ACTIVATIONS = {
    "sigmoid": (sigmoid_forward, sigmoid_backward),
    "tanh": (tanh_forward, tanh_backward),
    "relu": (relu_forward, relu_backward),
    "leaky_relu": (leaky_relu_forward, leaky_relu_backward),
    "elu": (elu_forward, elu_backward),
    "selu": (selu_forward, selu_backward),
    "gelu": (gelu_forward, gelu_backward),
}
