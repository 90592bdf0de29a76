"""nnlab.preprocessing: statistics come from the training data only, whitening gives identity covariance,
ZCA stays closest to the data, PCA reconstructs; errors when not fitted or when shapes differ."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnlab.checks import assert_close
from nnlab.preprocessing import PCA, MeanImage, NotFittedError, PerChannelNormalizer, Standardizer, Whitening


def correlated(rng, n=500, d=5, dtype=np.float64):
    """Correlated features with very different scales and non-zero means."""
    a = rng.standard_normal((d, d)) * np.logspace(-1, 1, d)
    return (rng.standard_normal((n, d)) @ a + rng.uniform(-5, 5, d)).astype(dtype)


# ------------------------------------------------------------------------------ Standardizer

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_standardizer_train_mean_zero_std_one_and_keeps_dtype(rng, dtype):
    X = correlated(rng, dtype=dtype)
    s = Standardizer()
    assert s.fit(X) is s, "fit must return self so that Standardizer().fit(X).transform(X) works"
    Z = s.transform(X)
    assert Z.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert_close(Z.mean(axis=0), np.zeros(5), atol=tol, name="mean of standardised train features")
    assert_close(Z.std(axis=0), np.ones(5), atol=tol, name="std of standardised train features")
    assert_close(s.inverse_transform(Z), X, rtol=10 * tol, atol=10 * tol, name="inverse_transform")


def test_standardizer_uses_train_statistics_on_test(rng):
    X_train, X_test = correlated(rng), correlated(rng, n=50) + 3.0
    s = Standardizer().fit(X_train)
    expected = (X_test - X_train.mean(0)) / X_train.std(0)
    assert_close(s.transform(X_test), expected, name="transform(X_test)", mistakes={
        "statistics recomputed on the test set": (X_test - X_test.mean(0)) / X_test.std(0)})
    assert np.abs(s.transform(X_test).mean(0)).min() > 0.1, "test data must NOT be re-centred on its own mean"


def test_standardizer_centre_only_and_zero_std_guard(rng):
    X = correlated(rng)
    X[:, 2] = 7.0  # a constant feature
    Z = Standardizer(scale=False).fit_transform(X)
    assert_close(Z, X - X.mean(0), name="scale=False only subtracts the mean")
    Z = Standardizer().fit_transform(X)
    assert np.all(np.isfinite(Z)), "a zero-std feature must not produce inf/NaN"
    assert_close(Z[:, 2], np.zeros(len(X)), name="constant feature after standardising")


def test_standardizer_on_images_is_per_pixel(rng):
    X = rng.standard_normal((40, 3, 4, 4)) * 3 + 1
    Z = Standardizer().fit_transform(X)
    assert Z.shape == X.shape
    assert_close(Z.std(axis=0), np.ones((3, 4, 4)), atol=1e-10)


# ------------------------------------------------------------------------------ errors shared by all

@pytest.mark.parametrize("make", [Standardizer, MeanImage, PerChannelNormalizer, lambda: PCA(2), Whitening])
def test_transform_before_fit_is_a_clear_error(make):
    with pytest.raises(NotFittedError, match=r"not fitted.*fit\(X_train\)"):
        make().transform(np.zeros((2, 3, 4, 4)))


@pytest.mark.parametrize("make, X_fit, X_bad", [
    (Standardizer, np.zeros((5, 4)), np.zeros((5, 3))),
    (MeanImage, np.zeros((5, 3, 8, 8)), np.zeros((5, 3, 8, 7))),
    (PerChannelNormalizer, np.ones((5, 3, 8, 8)), np.ones((5, 1, 8, 8))),
    (lambda: PCA(2), np.eye(5), np.zeros((5, 4))),
    (Whitening, np.eye(5), np.zeros((5, 6))),
])
def test_transform_with_another_feature_shape_is_a_clear_error(make, X_fit, X_bad):
    t = make().fit(X_fit)
    with pytest.raises(ValueError, match=r"feature shape .* fitted on feature shape"):
        t.transform(X_bad)


def test_integer_input_is_rejected_with_the_fix():
    with pytest.raises(ValueError, match="astype"):
        Standardizer().fit(np.zeros((3, 2), dtype=np.uint8))


# ------------------------------------------------------------------------------ mean image / per channel

def test_mean_image_subtracts_the_train_mean_image(rng):
    X, X_test = rng.random((30, 3, 5, 5)), rng.random((7, 3, 5, 5))
    m = MeanImage().fit(X)
    assert m.mean_.shape == (3, 5, 5)
    assert_close(m.transform(X_test), X_test - X.mean(0), name="MeanImage.transform(X_test)", mistakes={
        "subtracted the per-channel mean instead of the mean image": X_test - X.mean((0, 2, 3), keepdims=True)})
    assert MeanImage().fit(X.reshape(30, -1)).transform(X.reshape(30, -1)).shape == (30, 75)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_per_channel_normalizer(rng, dtype):
    X = (rng.random((20, 3, 6, 6)) * [[[2.0]], [[5.0]], [[0.5]]] + [[[1.0]], [[-2.0]], [[0.0]]]).astype(dtype)
    p = PerChannelNormalizer().fit(X)
    assert p.mean_.shape == (3,) and p.std_.shape == (3,)
    Z = p.transform(X)
    assert Z.dtype == dtype
    tol = 1e-5 if dtype == np.float32 else 1e-10
    assert_close(Z.mean((0, 2, 3)), np.zeros(3), atol=tol, name="per-channel mean after normalising")
    assert_close(Z.std((0, 2, 3)), np.ones(3), atol=tol, name="per-channel std after normalising")
    # other image sizes are fine: only the channels must match
    assert p.transform(X[:, :, :3, :4]).shape == (20, 3, 3, 4)
    centred = PerChannelNormalizer(std=False).fit_transform(X)
    assert_close(centred, X - X.mean((0, 2, 3), keepdims=True), rtol=1e-5, atol=tol)
    assert_close(p.inverse_transform(Z), X, rtol=1e-5, atol=1e-5)


def test_per_channel_normalizer_needs_nchw():
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        PerChannelNormalizer().fit(np.zeros((4, 3)))


# ------------------------------------------------------------------------------ PCA

def test_pca_components_variance_and_reconstruction(rng):
    X = correlated(rng, d=6)
    pca = PCA(6).fit(X)
    C = pca.components_
    assert C.shape == (6, 6)
    assert_close(C.T @ C, np.eye(6), atol=1e-10, name="components_ are orthonormal columns")
    cov = np.cov(X, rowvar=False)
    eig = np.sort(np.linalg.eigvalsh(cov))[::-1]
    assert_close(pca.explained_variance_, eig, rtol=1e-8, name="explained_variance_ (eigenvalues of the covariance)")
    assert_close(pca.explained_variance_ratio_.sum(), 1.0)
    assert np.all(np.diff(pca.explained_variance_) <= 0), "components must be sorted by decreasing variance"
    assert_close(pca.inverse_transform(pca.transform(X)), X, atol=1e-9, name="full-rank reconstruction")


def test_pca_truncated_reconstruction_error_equals_dropped_variance(rng):
    X = correlated(rng, n=400, d=6)
    full = PCA(6).fit(X)
    for k in (1, 3, 5):
        pca = PCA(k).fit(X)
        Z = pca.transform(X)
        assert Z.shape == (400, k)
        assert_close(np.cov(Z, rowvar=False).reshape(k, k), np.diag(full.explained_variance_[:k]), atol=1e-8,
                     name="covariance of the PCA scores (diagonal: uncorrelated)")
        err = ((pca.inverse_transform(Z) - X) ** 2).sum() / (len(X) - 1)
        assert_close(err, full.explained_variance_[k:].sum(), rtol=1e-8,
                     name=f"reconstruction error with k={k} (= variance of the dropped components)")


def test_pca_test_data_uses_train_mean(rng):
    X, X_test = correlated(rng), correlated(rng, n=20) + 10
    pca = PCA(2).fit(X)
    assert_close(pca.transform(X_test), (X_test - X.mean(0)) @ pca.components_)


def test_pca_bad_k():
    with pytest.raises(ValueError, match="k"):
        PCA(0)
    with pytest.raises(ValueError, match=r"at most min\(N, D\) = 3"):
        PCA(4).fit(np.random.default_rng(0).standard_normal((10, 3)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        PCA(2).fit(np.eye(4)).inverse_transform(np.zeros((3, 3)))


# ------------------------------------------------------------------------------ whitening

@pytest.mark.parametrize("kind", ["pca", "zca"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_whitened_train_covariance_is_identity(rng, kind, dtype):
    X = correlated(rng, n=2000, dtype=dtype)
    Z = Whitening(kind=kind, eps=1e-8).fit(X).transform(X)
    assert Z.dtype == dtype and Z.shape == X.shape
    cov = np.cov(Z.astype(np.float64), rowvar=False, bias=True)
    assert_close(cov, np.eye(5), atol=1e-3 if dtype == np.float32 else 1e-4, name=f"{kind}-whitened covariance")
    assert_close(Z.mean(0).astype(np.float64), np.zeros(5), atol=1e-4)


def test_zca_is_symmetric_and_the_closest_whitening(rng):
    X = correlated(rng, n=1000)
    zca, pcaw = Whitening("zca").fit(X), Whitening("pca").fit(X)
    assert_close(zca.W_, zca.W_.T, atol=1e-10, name="ZCA matrix is symmetric")
    Xc = X - X.mean(0)
    z = zca.transform(X)
    dist_zca = np.linalg.norm(z - Xc)
    assert dist_zca < np.linalg.norm(pcaw.transform(X) - Xc)
    # any other whitening is ZCA followed by a rotation R: none of them is closer to the data
    for s in range(20):
        q, _ = np.linalg.qr(np.random.default_rng(s).standard_normal((5, 5)))
        assert np.linalg.norm(z @ q - Xc) >= dist_zca - 1e-9


def test_whitening_test_data_uses_train_statistics(rng):
    X, X_test = correlated(rng), correlated(rng, n=30) * 2
    w = Whitening("zca").fit(X)
    assert_close(w.transform(X_test), (X_test - X.mean(0)) @ w.W_)
    assert not np.allclose(np.cov(w.transform(X_test), rowvar=False), np.eye(5), atol=0.2)


def test_whitening_eps_damps_zero_variance_directions(rng):
    X = correlated(rng, d=4)
    X = np.concatenate([X, X[:, :1] * 2], axis=1)  # a redundant feature: one zero eigenvalue
    Z = Whitening("pca", eps=1e-2).fit(X).transform(X)
    assert np.all(np.isfinite(Z))
    assert np.abs(Z[:, -1]).max() < 1e-5, "the zero-variance direction must stay ~0, not blow up"
    with pytest.raises(ValueError, match="kind"):
        Whitening(kind="svd")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 20), d=st.integers(1, 5), seed=st.integers(0, 1000))
def test_standardize_then_inverse_round_trips(n, d, seed):
    X = np.random.default_rng(seed).standard_normal((n, d)) * 4 + 2
    s = Standardizer().fit(X)
    assert_close(s.inverse_transform(s.transform(X)), X, rtol=1e-9, atol=1e-9)
