"""Assertions for tests and notebooks whose failure messages teach.

A failed check says what was compared, the expected and the received value at the worst
entry, the tolerance, and, when the answer matches a known mistake, which mistake it is:

    >>> assert_close(my_sigmoid(x), expected, name="sigmoid(x)",
    ...              mistakes={"used exp(x) instead of exp(-x)": 1 / (1 + np.exp(x))})

`forbid_calls` runs a student's function and fails if it delegated to nnlab's own version
of the exercise, so hidden tests can insist the work is the student's. `assert_no_mutation`
runs a function and fails if it changed one of its array arguments in place.
"""

import sys

import numpy as np

__all__ = ["assert_close", "assert_shape", "assert_dtype", "assert_grad_close", "forbid_calls",
           "assert_no_mutation"]

# What turns float32 into float64 in numpy code (NumPy 2 promotion rules): Python floats adapt to the
# array, NumPy float64 scalars and arrays do not.
FLOAT64_CAUSES = ("the likely cause is a NumPy float64 value mixed in: a NumPy scalar such as np.sqrt(n) or "
                  "np.float64(c) (a Python float such as 0.5 or math.sqrt(n) keeps float32), or a float64 "
                  "array such as np.zeros(shape) without dtype=, mask.astype(float) or np.where(mask, 1.0, alpha)")
DTYPE_ARGUMENT_CAUSE = ("the result must have the dtype passed in the dtype argument: end with .astype(dtype). "
                        "Drawing with dtype= is not enough if a NumPy float64 scalar such as np.sqrt(2 / n) "
                        "multiplies the result afterwards: that promotes float32 back to float64")


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


def assert_dtype(got, dtype, name="output", cause=None):
    """Fail unless got is an ndarray of the given dtype (float32 inputs must give float32 outputs).

    The message names the likely cause of a wrong dtype: by default, for float32 that became float64, a
    NumPy float64 scalar or array mixed into the computation (FLOAT64_CAUSES). Pass `cause` to name
    another one, e.g. DTYPE_ARGUMENT_CAUSE for a function whose dtype comes from a `dtype` argument.
    """
    if not isinstance(got, np.ndarray):
        raise AssertionError(f"{name} should be a numpy array, got {type(got).__name__}")
    want = np.dtype(dtype)
    if got.dtype != want:
        if cause is None:
            if want == np.float32 and got.dtype == np.float64:
                cause = "float32 input must give float32 output; " + FLOAT64_CAUSES
            elif want.kind == "f" and got.dtype.kind == "f":
                cause = f"keep the dtype of the input: nothing in the computation should convert to {got.dtype}"
            else:
                cause = f"expected a {want} array (a comparison gives bool, integer arithmetic gives int)"
        raise AssertionError(f"{name} has dtype {got.dtype}, expected {want}: {cause}")


def _arrays_in(value, path, may_change):
    """(path, array) for every ndarray in value, looking into lists, tuples and dicts."""
    if isinstance(value, np.ndarray):
        yield path, value
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            yield from _arrays_in(v, f"{path}[{i}]", may_change)
    elif isinstance(value, dict):
        for k, v in value.items():
            if k not in may_change:
                yield from _arrays_in(v, f"{path}[{k!r}]", may_change)


def assert_no_mutation(func, *args, name=None, may_change=(), hint=None, **kwargs):
    """Run func(*args, **kwargs) and fail if it changed any array argument in place; return its result.

    Arrays are looked for in the arguments and inside lists, tuples and dicts among them (dict entries
    whose key is in `may_change`, such as a running average the function is meant to update, are
    skipped). The message says which argument changed and how to avoid it; `hint` adds a sentence.
    """
    fname = name or getattr(func, "__name__", "your function")
    try:
        import inspect
        bound = inspect.signature(func).bind(*args, **kwargs)
        named = list(bound.arguments.items())
    except (TypeError, ValueError):
        named = [(f"argument {i + 1}", a) for i, a in enumerate(args)] + list(kwargs.items())
    before = [(path, arr, arr.copy()) for argname, value in named for path, arr in _arrays_in(value, argname, may_change)]
    result = func(*args, **kwargs)
    for path, arr, saved in before:
        if arr.shape != saved.shape or not np.array_equal(arr, saved, equal_nan=True):
            changed = int(np.sum(arr != saved)) if arr.shape == saved.shape else arr.size
            msg = (f"{fname} changed its argument {path} in place ({changed} of {saved.size} entries are no "
                   f"longer what the caller passed in): a function must not modify its inputs. Write the result "
                   f"into a new array: x = x - mu instead of x -= mu, np.maximum(x, 0) instead of x[x < 0] = 0, "
                   f"and call .copy() first when you must edit an array entry by entry")
            if hint:
                msg += f"\nHint: {hint}"
            raise AssertionError(msg)
    return result


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


NOT_NNLAB = "this exercise asks for your own implementation, not nnlab's"


def forbid_calls(func, *args, forbidden=("nnlab",), allowed=("nnlab._validate", "nnlab.checks",
                                                              "nnlab.gradcheck"), reason=NOT_NNLAB, **kwargs):
    """Run func(*args, **kwargs); fail if it called a Python function defined in a forbidden module.

    A module counts as forbidden when its name equals or starts with `name + "."` for a name
    in `forbidden`, unless it also matches a prefix in `allowed`; a name "module.function" (for
    example "__main__.batchnorm_backward", a function of the notebook) forbids that function only.
    The failure says `reason`. Returns func's result.

    A function that runs elsewhere (a grader's handle to a student's function) can provide
    `__forbid_calls__(forbidden, allowed, args, kwargs, reason)`: the check then runs where the code runs.
    """
    delegate = getattr(type(func), "__forbid_calls__", None)
    if delegate is not None:
        return delegate(func, tuple(forbidden), tuple(allowed), args, kwargs, reason)

    def hits(module, name, prefixes):
        return any(module == p or module.startswith(p + ".") or f"{module}.{name}" == p for p in prefixes)

    called = []

    def profiler(frame, event, arg):
        if event == "call":
            module, name = frame.f_globals.get("__name__", ""), frame.f_code.co_name
            if hits(module, name, forbidden) and not hits(module, name, allowed):
                called.append(name if module == "__main__" else f"{module}.{name}")

    previous = sys.getprofile()
    sys.setprofile(profiler)
    try:
        result = func(*args, **kwargs)
    finally:
        sys.setprofile(previous)
    if called:
        raise AssertionError(f"{getattr(func, '__name__', 'your function')} calls {called[0]}: {reason}")
    return result
