"""Functional layers in the cache pattern.

    out, cache = <layer>_forward(x, ...)
    dx, ...    = <layer>_backward(dout, cache)

The backward pass receives nothing but the cache. Every function works in float32 and
float64 and returns arrays of the dtype it was given (no silent promotion).
"""

import numpy as np

from ._validate import as_float_array, check_labels, check_same_dtype, check_shape
from .activations import relu_backward, relu_forward  # noqa: F401  (re-exported, CS231n style)


def affine_forward(x, w, b):
    """Fully connected layer: out = x.reshape(N, D) @ w + b.

    Args:
        x: (N, d_1, ..., d_k) inputs; each row is flattened to D = d_1 * ... * d_k features.
        w: (D, M) weights.
        b: (M,) biases.
    Returns:
        out: (N, M).
        cache: (x, w, b) for affine_backward.
    """
    x = as_float_array("x", x, min_ndim=1)
    w = as_float_array("w", w, ndim=2)
    b = as_float_array("b", b, ndim=1)
    n = x.shape[0]
    d = int(np.prod(x.shape[1:]))
    check_shape("w", w, (d, None))
    check_shape("b", b, (w.shape[1],))
    check_same_dtype(x=x, w=w, b=b)
    out = x.reshape(n, d) @ w
    out += b
    return out, (x, w, b)


def affine_backward(dout, cache, need_dx=True):
    """Backward pass of affine_forward.

    Args:
        dout: (N, M) upstream gradient dL/dout.
        cache: (x, w, b) from affine_forward.
        need_dx: False skips dx (returned as None): the first layer of a network never needs the
            gradient with respect to the data, and it costs as much as dw.
    Returns:
        dx: (N, d_1, ..., d_k) = (dout @ w.T) reshaped like x, or None.
        dw: (D, M) = x_flat.T @ dout.
        db: (M,) = sum of dout over the batch.
    """
    x, w, b = cache
    dout = as_float_array("dout", dout, ndim=2)
    check_shape("dout", dout, (x.shape[0], w.shape[1]))
    x_flat = x.reshape(x.shape[0], -1)
    dx = (dout @ w.T).reshape(x.shape) if need_dx else None
    dw = x_flat.T @ dout
    db = dout.sum(axis=0)
    return dx, dw, db


def softmax_loss(scores, y):
    """Softmax cross-entropy, averaged over the batch.

        p_ij = exp(s_ij) / sum_k exp(s_ik)        (computed with the row max subtracted)
        loss = -(1/N) sum_i log p_{i, y_i}
        dscores = (p - onehot(y)) / N

    Args:
        scores: (N, C) unnormalised class scores.
        y: (N,) integer labels in [0, C).
    Returns:
        loss: Python float.
        dscores: (N, C), same dtype as scores.
    """
    scores = as_float_array("scores", scores, ndim=2)
    n, c = scores.shape
    check_labels("y", y, n, c)
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    sums = exp.sum(axis=1, keepdims=True)
    rows = np.arange(n)
    log_p_correct = shifted[rows, y] - np.log(sums[:, 0])
    loss = -float(log_p_correct.sum(dtype=np.float64)) / n
    dscores = exp / sums
    dscores[rows, y] -= 1
    dscores /= n
    return loss, dscores


def softmax(scores):
    """Row-wise softmax probabilities of (N, C) scores, computed stably."""
    scores = as_float_array("scores", scores, ndim=2)
    exp = np.exp(scores - scores.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)
