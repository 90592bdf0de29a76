"""Learning-rate schedules: values at chosen steps (step 0 is the first update), errors, pickling."""

import math
import pickle

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnlab.schedules import (constant, cosine, exponential, inverse_time, linear_warmup, step_decay, values,
                             warmup_then)


def approx(x):
    return pytest.approx(x, rel=1e-12, abs=1e-15)


def test_constant():
    s = constant(0.3)
    assert [s(0), s(10), s(10 ** 6)] == [0.3, 0.3, 0.3]


def test_step_decay_drops_every_n_steps():
    s = step_decay(1.0, drop=0.5, every=10)
    assert [s(0), s(9), s(10), s(19), s(20), s(35)] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.125]


def test_exponential_and_inverse_time():
    e = exponential(0.1, k=0.01)
    assert e(0) == approx(0.1) and e(100) == approx(0.1 * math.exp(-1))
    i = inverse_time(0.1, k=0.5)
    assert i(0) == approx(0.1) and i(2) == approx(0.05) and i(18) == approx(0.01)


def test_cosine_values_and_clamp():
    s = cosine(1.0, total_steps=100, lr_min=0.1)
    assert s(0) == approx(1.0)
    assert s(50) == approx(0.55), "halfway the cosine schedule is (lr + lr_min) / 2"
    assert s(25) == approx(0.1 + 0.45 * (1 + math.cos(math.pi / 4)))
    assert s(100) == approx(0.1) and s(1000) == approx(0.1), "after total_steps the lr stays at lr_min"


def test_linear_warmup_starts_at_lr_over_warmup():
    s = linear_warmup(1.0, warmup_steps=4)
    assert [s(0), s(1), s(2), s(3), s(4), s(100)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0], \
        "convention: lr(t) = lr*(t+1)/warmup_steps, so step 0 uses lr/warmup_steps and never 0"


def test_warmup_then_shifts_the_inner_schedule():
    inner = step_decay(0.8, drop=0.5, every=3)
    s = warmup_then(4, inner)
    assert [s(t) for t in range(4)] == [approx(0.2), approx(0.4), approx(0.6), approx(0.8)]
    assert [s(t) for t in range(4, 11)] == [inner(t - 4) for t in range(4, 11)] == [0.8] * 3 + [0.4] * 3 + [0.2]
    c = warmup_then(10, cosine(0.1, total_steps=90))
    assert c(10) == approx(0.1) and c(55) == approx(0.05) and c(100) == approx(0.0)


def test_warmup_then_accepts_a_plain_function():
    s = warmup_then(2, lambda t: 1.0 / (t + 1))
    assert [s(0), s(1), s(2), s(3)] == [0.5, 1.0, 1.0, 0.5]


@settings(max_examples=25, deadline=None)
@given(lr=st.floats(1e-5, 1.0), total=st.integers(1, 500), t=st.integers(0, 1000))
def test_decaying_schedules_are_bounded_and_non_increasing(lr, total, t):
    for s in [cosine(lr, total), exponential(lr, 1e-3), inverse_time(lr, 1e-2), step_decay(lr, 0.5, 7)]:
        assert 0.0 <= s(t + 1) <= s(t) <= lr * (1 + 1e-12), f"{s!r} at step {t}"
        assert isinstance(s(t), float)


def test_values_helper_and_numpy_steps():
    v = values(linear_warmup(1.0, 2), 4)
    assert v.dtype == np.float64 and v.tolist() == [0.5, 1.0, 1.0, 1.0]
    assert cosine(1.0, 10)(np.int64(10)) == approx(0.0)


def test_schedules_pickle_and_repr():
    s = warmup_then(5, cosine(0.1, total_steps=50, lr_min=0.001))
    s2 = pickle.loads(pickle.dumps(s))
    assert [s2(t) for t in range(60)] == [s(t) for t in range(60)]
    assert "cosine" in repr(s) and "total_steps=50" in repr(s)


def test_schedules_reject_bad_arguments():
    with pytest.raises(ValueError, match=r"lr must be > 0, got -0.1"):
        constant(-0.1)
    with pytest.raises(ValueError, match="every must be a positive integer"):
        step_decay(0.1, every=0)
    with pytest.raises(ValueError, match="total_steps must be a positive integer"):
        cosine(0.1, total_steps=2.5)
    with pytest.raises(ValueError, match=r"lr_min must be <= lr"):
        cosine(0.1, 10, lr_min=1.0)
    with pytest.raises(ValueError, match="schedule must be a callable"):
        warmup_then(3, 0.1)
    with pytest.raises(ValueError, match=r"step must be a non-negative integer .* got -1"):
        constant(0.1)(-1)
