"""Assertions for tests and notebooks whose failure messages teach.

A failed check says what was compared, the expected and the received value at the worst
entry, the tolerance, and, when the answer matches a known mistake, which mistake it is:

    >>> assert_close(my_sigmoid(x), expected, name="sigmoid(x)",
    ...              mistakes={"used exp(x) instead of exp(-x)": 1 / (1 + np.exp(x))})

`forbid_calls` runs a student's function and fails if it delegated to nnlab's own version
of the exercise, so hidden tests can insist the work is the student's.
"""

import sys

import numpy as np

__all__ = ["assert_close", "assert_shape", "assert_dtype", "assert_grad_close", "forbid_calls"]


def _describe(x):
    x = np.asarray(x)
    return f"array of shape {x.shape}, dtype {x.dtype}"


def _matches(got, candidate, rtol, atol):
    candidate = np.asarray(candidate)
    return (got.shape == candidate.shape
            and bool(np.allclose(got, candidate, rtol=rtol, atol=atol, equal_nan=True)))


def assert_shape(got, expected_shape, name="output"):
    """Fail unless np.shape(got) == expected_shape."""
    got_shape = np.shape(got)
    if tuple(got_shape) != tuple(expected_shape):
        raise AssertionError(f"{name} has shape {tuple(got_shape)}, expected {tuple(expected_shape)}")


def assert_dtype(got, dtype, name="output"):
    """Fail unless got is an ndarray of the given dtype (float32 inputs must give float32 outputs)."""
    if not isinstance(got, np.ndarray):
        raise AssertionError(f"{name} should be a numpy array, got {type(got).__name__}")
    if got.dtype != np.dtype(dtype):
        raise AssertionError(f"{name} has dtype {got.dtype}, expected {np.dtype(dtype)}: "
                             "keep the dtype of the input (mixing in float64 arrays promotes float32)")


def assert_close(got, expected, *, name="output", rtol=1e-6, atol=1e-8, hint=None, mistakes=None):
    """Fail unless |got - expected| <= atol + rtol * |expected| everywhere (np.allclose).

    Args:
        got: the value to check (array or scalar).
        expected: the reference value.
        name: what `got` is, for the message ("dx", "running_mean", ...).
        rtol, atol: tolerances as in np.allclose.
        hint: a sentence appended to any failure (the convention being checked, say).
        mistakes: {"description": value_that_mistake_produces}; if `got` matches one of them,
            the message names it.
    """
    if got is None:
        raise AssertionError(f"{name} is None: did the function forget to return it?")
    got_arr = np.asarray(got)
    exp_arr = np.asarray(expected)
    if got_arr.dtype == object or (got_arr.dtype.kind not in "fciub"):
        raise AssertionError(f"{name} should be numeric, got {type(got).__name__}")
    if got_arr.shape != exp_arr.shape:
        msg = f"{name} has shape {got_arr.shape}, expected {exp_arr.shape}"
    elif np.allclose(got_arr, exp_arr, rtol=rtol, atol=atol, equal_nan=True):
        return
    else:
        diff = np.abs(got_arr.astype(np.float64) - exp_arr.astype(np.float64))
        bad = ~(diff <= atol + rtol * np.abs(exp_arr.astype(np.float64)))
        bad |= np.isnan(got_arr) & ~np.isnan(exp_arr)
        count = int(bad.sum())
        if got_arr.ndim == 0:
            msg = f"{name} is {got_arr.item()!r}, expected {exp_arr.item()!r}"
        else:
            score = np.where(np.isnan(diff), np.inf, diff)
            idx = np.unravel_index(int(np.argmax(np.where(bad, score, -1))), got_arr.shape)
            msg = (f"{name} is wrong at {count} of {got_arr.size} entries; "
                   f"e.g. at index {tuple(int(i) for i in idx)}: expected {exp_arr[idx].item()!r}, got {got_arr[idx].item()!r}")
        msg += f" (tolerance rtol={rtol:g}, atol={atol:g})"
    for description, value in (mistakes or {}).items():
        if _matches(got_arr, value, rtol, atol):
            msg += f"\nThis looks like a known mistake: {description}."
            break
    if hint:
        msg += f"\nHint: {hint}"
    raise AssertionError(msg)


def assert_grad_close(analytic, numeric, name="dx", tol=1e-7, atol=1e-9):
    """Gradient check: fail unless the relative error |a-n| / max(1e-8, |a|+|n|) is below tol everywhere.

    Use float64 and centred differences (nnlab.gradcheck); a correct backward pass gives ~1e-7 or less.
    Entries that differ by less than `atol` pass: centred differences carry a rounding error of about
    1e-11, which is a large *relative* error where the true gradient is zero (a bias before BatchNorm).
    """
    analytic = np.asarray(analytic, dtype=np.float64)
    numeric = np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise AssertionError(f"{name} has shape {analytic.shape}, but the numerical gradient has shape "
                             f"{numeric.shape}: a gradient has the shape of what it differentiates")
    if analytic.size == 0:
        return
    diff = np.abs(analytic - numeric)
    err = np.where(diff <= atol, 0.0, diff / np.maximum(1e-8, np.abs(analytic) + np.abs(numeric)))
    worst = float(np.max(err))
    if not worst <= tol:
        idx = np.unravel_index(int(np.nanargmax(np.where(np.isnan(err), np.inf, err))), err.shape)
        raise AssertionError(
            f"gradient check failed for {name}: relative error {worst:.2e} > {tol:.0e}; "
            f"e.g. at index {tuple(int(i) for i in idx)}: your backward gives {analytic[idx]:.8g}, "
            f"the numerical gradient is {numeric[idx]:.8g}")


def forbid_calls(func, *args, forbidden=("nnlab",), allowed=("nnlab._validate", "nnlab.checks",
                                                              "nnlab.gradcheck"), **kwargs):
    """Run func(*args, **kwargs); fail if it called a Python function defined in a forbidden module.

    A module counts as forbidden when its name equals or starts with `name + "."` for a name
    in `forbidden`, unless it also matches a prefix in `allowed`. Returns func's result.
    """
    def hits(module, prefixes):
        return any(module == p or module.startswith(p + ".") for p in prefixes)

    called = []

    def profiler(frame, event, arg):
        if event == "call":
            module = frame.f_globals.get("__name__", "")
            if hits(module, forbidden) and not hits(module, allowed):
                called.append(f"{module}.{frame.f_code.co_name}")

    previous = sys.getprofile()
    sys.setprofile(profiler)
    try:
        result = func(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    if called:
        raise AssertionError(f"{getattr(func, '__name__', 'your function')} calls {called[0]}: "
                             "this exercise asks for your own implementation, not nnlab's")
    return result
