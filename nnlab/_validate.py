"""Argument checks shared by nnlab: each failure is a ValueError that names the argument,
what was expected and what was received, so a student sees their mistake, not numpy's."""

import numpy as np


def as_float_array(name, x, ndim=None, min_ndim=None):
    """Return `x` as a floating-point ndarray, or raise ValueError naming `name`.

    Integer and boolean inputs are rejected rather than silently converted: a layer that
    received integer pixels almost always has a preprocessing bug upstream.
    """
    if not isinstance(x, np.ndarray):
        raise ValueError(f"{name} must be a numpy array, got {type(x).__name__}")
    if x.dtype.kind != "f":
        raise ValueError(f"{name} must be a floating-point array (float32 or float64), "
                         f"got dtype {x.dtype}; convert it with {name}.astype(np.float32)")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {x.shape}")
    if min_ndim is not None and x.ndim < min_ndim:
        raise ValueError(f"{name} must have at least {min_ndim} dimension(s), got shape {x.shape}")
    return x


def check_shape(name, x, expected):
    """Raise ValueError unless x.shape matches `expected`; None in `expected` matches any size."""
    ok = len(x.shape) == len(expected) and all(
        e is None or e == s for e, s in zip(expected, x.shape))
    if not ok:
        shown = "(" + ", ".join("?" if e is None else str(e) for e in expected) + (",)" if len(expected) == 1 else ")")
        raise ValueError(f"{name} must have shape {shown}, got {x.shape}")
    return x


def check_same_dtype(**arrays):
    """Raise ValueError when floating arrays mix dtypes (float32 must stay float32)."""
    dtypes = {name: a.dtype for name, a in arrays.items()}
    if len(set(dtypes.values())) > 1:
        shown = ", ".join(f"{n} is {d}" for n, d in dtypes.items())
        raise ValueError(f"all arrays must share one dtype, but {shown}; "
                         "convert them with .astype(...) so float32 stays float32")


def check_labels(name, y, n, num_classes):
    """Check integer class labels y of shape (n,) with values in [0, num_classes)."""
    if not isinstance(y, np.ndarray) or y.dtype.kind not in "iu":
        got = y.dtype if isinstance(y, np.ndarray) else type(y).__name__
        raise ValueError(f"{name} must be an integer numpy array of class labels, got {got}")
    check_shape(name, y, (n,))
    if n and (y.min() < 0 or y.max() >= num_classes):
        bad = y[(y < 0) | (y >= num_classes)][0]
        raise ValueError(f"{name} must hold labels in [0, {num_classes}), found {bad}")
    return y


def check_probability(name, p):
    """Check 0 <= p < 1 (a probability of dropping, for instance)."""
    if not (0.0 <= p < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {p}")
    return p
