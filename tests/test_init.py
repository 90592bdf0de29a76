"""nnlab.init: fans, the std each initialiser promises (lecture "Xavier" = 1/sqrt(D_in), Glorot & Bengio,
He), orthogonality, dtypes, determinism and the registry."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnlab import init
from nnlab.checks import assert_close


def test_fan_in_out_dense_and_conv():
    assert init.fan_in_out((300, 100)) == (300, 100)
    assert init.fan_in_out((64, 3, 5, 5)) == (75, 1600), "conv (C_out, C_in, k, k): fan_in = C_in*k*k"
    assert init.fan_in_out((7,)) == (7, 7)
    with pytest.raises(ValueError, match="shape"):
        init.fan_in_out(())
    with pytest.raises(ValueError, match="shape"):
        init.fan_in_out((3, 0))


@pytest.mark.parametrize("name, shape, expected_std", [
    ("small_random", (400, 500), 0.01),
    ("xavier", (400, 500), 1 / np.sqrt(400)),
    ("xavier", (32, 16, 3, 3), 1 / np.sqrt(16 * 9)),
    ("he", (400, 500), np.sqrt(2 / 400)),
    ("he", (32, 16, 3, 3), np.sqrt(2 / (16 * 9))),
    ("glorot_normal", (400, 600), np.sqrt(2 / 1000)),
    ("glorot_uniform", (400, 600), np.sqrt(2 / 1000)),
    ("glorot_uniform", (32, 16, 3, 3), np.sqrt(2 / (16 * 9 + 32 * 9))),
])
def test_empirical_std_matches_the_formula(name, shape, expected_std):
    w = init.get(name)(shape, rng=np.random.default_rng(0), dtype=np.float64)
    assert w.shape == shape
    assert abs(w.mean()) < 0.05 * expected_std
    assert abs(w.std() / expected_std - 1) < 0.03, (
        f"{name}{shape}: std {w.std():.5f}, expected {expected_std:.5f} "
        f"(lecture Xavier: 1/sqrt(D_in); He: sqrt(2/D_in); Glorot: sqrt(2/(fan_in+fan_out)); conv D_in = C_in*k*k)")


def test_glorot_uniform_bound():
    w = init.glorot_uniform((50, 70), rng=np.random.default_rng(1), dtype=np.float64)
    a = np.sqrt(6 / 120)
    assert np.abs(w).max() <= a and np.abs(w).max() > 0.95 * a


@pytest.mark.parametrize("shape", [(64, 16), (16, 64), (32, 32), (8, 4, 3, 3), (64, 4, 3, 3)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal(shape, gain):
    w = init.orthogonal(shape, rng=np.random.default_rng(2), dtype=np.float64, gain=gain)
    assert w.shape == shape
    m = w.reshape(shape[0], -1)
    rows, cols = m.shape
    if rows >= cols:
        assert_close(m.T @ m, gain ** 2 * np.eye(cols), name="W^T W (tall: orthonormal columns)", atol=1e-10)
    if rows <= cols:
        assert_close(m @ m.T, gain ** 2 * np.eye(rows), name="W W^T (wide: orthonormal rows)", atol=1e-10)


def test_orthogonal_is_not_biased_by_the_qr_sign_convention():
    # without the sign fix, diag(R) > 0 conventions make Q's diagonal skewed; with it, the mean diagonal ~ 0
    diag = [np.diag(init.orthogonal((8, 8), rng=np.random.default_rng(s), dtype=np.float64)).mean()
            for s in range(200)]
    assert abs(np.mean(diag)) < 0.05


@pytest.mark.parametrize("name", sorted(init.INITIALIZERS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_shape_and_determinism(name, dtype):
    fn = init.get(name)
    a = fn((6, 5), rng=np.random.default_rng(3), dtype=dtype)
    b = fn((6, 5), rng=np.random.default_rng(3), dtype=dtype)
    assert a.dtype == dtype and a.shape == (6, 5)
    np.testing.assert_array_equal(a, b)
    assert init.get(name)((6, 5), rng=np.random.default_rng(0)).dtype == np.float32, "default dtype is float32"


def test_float32_and_float64_agree_for_the_same_seed():
    a = init.he((10, 10), rng=np.random.default_rng(4), dtype=np.float32)
    b = init.he((10, 10), rng=np.random.default_rng(4), dtype=np.float64)
    assert_close(a.astype(np.float64), b, rtol=1e-6, atol=1e-7)


def test_constant_breaks_no_symmetry():
    w = init.constant((3, 4), value=0.5)
    assert np.all(w == 0.5) and w.dtype == np.float32
    assert np.all(init.zeros((2, 2), dtype=np.float64) == 0)


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 6), min_size=2, max_size=4))
def test_every_random_initialiser_returns_the_shape(shape):
    rng = np.random.default_rng(sum(shape))
    for name in ("small_random", "xavier", "glorot_normal", "glorot_uniform", "he", "orthogonal"):
        w = init.get(name)(tuple(shape), rng=rng)
        assert w.shape == tuple(shape) and np.all(np.isfinite(w))


def test_bad_arguments():
    with pytest.raises(ValueError, match="rng"):
        init.he((3, 3))
    with pytest.raises(ValueError, match="rng"):
        init.xavier((3, 3), rng=0)
    with pytest.raises(ValueError, match="dtype"):
        init.he((3, 3), rng=np.random.default_rng(0), dtype=np.int32)
    with pytest.raises(ValueError, match="unknown initialiser 'lecun'.*he"):
        init.get("lecun")
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        init.orthogonal((5,), rng=np.random.default_rng(0))
    assert init.get(init.he) is init.he
    assert init.get("HE") is init.he and init.get("kaiming") is init.he
