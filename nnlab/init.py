"""Weight initialisers. Every one is ``init(shape, rng=, dtype=np.float32, ...) -> ndarray of `shape```.

Shapes and fans (``fan_in_out``):
  * dense weight (D_in, D_out) (the course multiplies x @ W): fan_in = D_in, fan_out = D_out;
  * convolution weight (C_out, C_in, kH, kW): fan_in = C_in*kH*kW, fan_out = C_out*kH*kW;
  * a vector (D,): fan_in = fan_out = D.

Conventions (they differ between papers and libraries, so the names say which one):
  * ``xavier``: the LECTURE's "Xavier", std = 1/sqrt(fan_in), i.e. Var(W) = 1/D_in (keeps the variance of a
    linear/tanh layer's output equal to its input's; the form used in CS231n).
  * ``glorot_normal`` / ``glorot_uniform``: Glorot & Bengio (2010), Var(W) = 2/(fan_in + fan_out) (the
    average of the forward and backward conditions); uniform on [-a, a] with a = sqrt(6/(fan_in + fan_out)).
  * ``he``: He et al. (2015), std = sqrt(2/fan_in): the factor 2 makes up for ReLU zeroing half its inputs.
  * ``orthogonal``: Saxe et al. (2014), gain * Q with Q from the QR decomposition of a Gaussian matrix.

Randomness only from the Generator passed as ``rng`` (required for the random initialisers). Values are
drawn in float64 and cast to ``dtype``, so float32 and float64 runs with the same seed agree.
"""

import numpy as np

__all__ = ["fan_in_out", "constant", "zeros", "small_random", "xavier", "glorot_uniform", "glorot_normal",
           "he", "orthogonal", "get", "INITIALIZERS"]


def _shape(shape):
    if isinstance(shape, (int, np.integer)):
        shape = (shape,)
    try:
        shape = tuple(int(s) for s in shape)
    except TypeError:
        raise ValueError(f"shape must be a tuple of positive ints, got {shape!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"shape must be a non-empty tuple of positive ints, got {shape}")
    return shape


def _dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type (float32 or float64), got {dtype}")
    return dtype


def _gen(rng):
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator, e.g. rng=np.random.default_rng(0), "
                         f"got {type(rng).__name__}")
    return rng


def fan_in_out(shape):
    """(fan_in, fan_out) of a weight: (D_in, D_out) dense -> (D_in, D_out);
    (C_out, C_in, k, k) conv -> (C_in*k*k, C_out*k*k); (D,) -> (D, D)."""
    shape = _shape(shape)
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = int(np.prod(shape[2:]))
    return shape[1] * receptive, shape[0] * receptive


def constant(shape, rng=None, dtype=np.float32, value=0.0):
    """Every weight equal to `value` (rng ignored). With value 0 every hidden unit of a layer computes
    the same function and receives the same gradient: symmetry is never broken."""
    return np.full(_shape(shape), value, dtype=_dtype(dtype))


def zeros(shape, rng=None, dtype=np.float32):
    """constant(shape, value=0): fine for biases, useless for weights (see ``constant``)."""
    return constant(shape, rng=rng, dtype=dtype, value=0.0)


def _gaussian(shape, rng, std, dtype):
    shape, dtype = _shape(shape), _dtype(dtype)
    return (std * _gen(rng).standard_normal(shape)).astype(dtype)


def small_random(shape, rng=None, dtype=np.float32, std=0.01):
    """N(0, std^2), default std 0.01: works for shallow nets; in deep nets activations shrink to zero."""
    if not std > 0:
        raise ValueError(f"std must be > 0, got {std}")
    return _gaussian(shape, rng, std, dtype)


def xavier(shape, rng=None, dtype=np.float32, gain=1.0):
    """Lecture "Xavier": N(0, std^2) with std = gain / sqrt(fan_in) (fan_in = D_in, or C_in*k*k for a conv)."""
    return _gaussian(shape, rng, gain / np.sqrt(fan_in_out(shape)[0]), dtype)


def glorot_normal(shape, rng=None, dtype=np.float32, gain=1.0):
    """Glorot & Bengio (2010), normal: std = gain * sqrt(2 / (fan_in + fan_out))."""
    fi, fo = fan_in_out(shape)
    return _gaussian(shape, rng, gain * np.sqrt(2.0 / (fi + fo)), dtype)


def glorot_uniform(shape, rng=None, dtype=np.float32, gain=1.0):
    """Glorot & Bengio (2010), uniform on [-a, a], a = gain * sqrt(6 / (fan_in + fan_out)),
    so that Var(W) = a^2/3 = gain^2 * 2 / (fan_in + fan_out)."""
    shape, dtype = _shape(shape), _dtype(dtype)
    fi, fo = fan_in_out(shape)
    a = gain * np.sqrt(6.0 / (fi + fo))
    return _gen(rng).uniform(-a, a, size=shape).astype(dtype)


def he(shape, rng=None, dtype=np.float32, gain=np.sqrt(2.0)):
    """He et al. (2015) for ReLU: N(0, std^2) with std = sqrt(2 / fan_in) (gain sqrt(2) over 1/sqrt(fan_in))."""
    return _gaussian(shape, rng, gain / np.sqrt(fan_in_out(shape)[0]), dtype)


def orthogonal(shape, rng=None, dtype=np.float32, gain=1.0):
    """gain * (a random matrix with orthonormal columns or rows), Saxe et al. (2014).

    The weight is viewed as a matrix (shape[0], prod(shape[1:])). A Gaussian matrix G of shape
    (max, min) is factored G = QR; Q's columns are multiplied by sign(diag(R)) so that Q is uniformly
    (Haar) distributed rather than biased by the QR convention. Tall weights (rows >= cols) get
    W^T W = gain^2 I; wide ones get W W^T = gain^2 I.
    """
    shape, dtype = _shape(shape), _dtype(dtype)
    rng = _gen(rng)
    if len(shape) < 2:
        raise ValueError(f"orthogonal needs a weight with at least 2 dimensions, got shape {shape}")
    rows, cols = shape[0], int(np.prod(shape[1:]))
    g = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(g)
    d = np.sign(np.diag(r))
    d[d == 0] = 1.0
    q = q * d
    if rows < cols:
        q = q.T
    return (gain * q).reshape(shape).astype(dtype)


INITIALIZERS = {
    "constant": constant, "zeros": zeros, "zero": zeros,
    "small_random": small_random, "small": small_random,
    "xavier": xavier, "glorot_normal": glorot_normal, "glorot_uniform": glorot_uniform,
    "he": he, "kaiming": he, "orthogonal": orthogonal,
}


def get(name):
    """The initialiser called `name` (see INITIALIZERS for the names and aliases); callables pass through."""
    if callable(name):
        return name
    try:
        return INITIALIZERS[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown initialiser {name!r}; choose one of {sorted(INITIALIZERS)}") from None
