"""Data preprocessing as fit/transform objects: statistics come from the TRAINING data only.

    prep = Standardizer().fit(X_train)        # fit returns self
    X_train, X_val = prep.transform(X_train), prep.transform(X_val)   # val/test use TRAIN statistics

Computing the mean or the scale on the test set (or on train+test) leaks information about the test data
into the model; every class here raises if ``transform`` is called before ``fit`` and if the data's feature
shape differs from the one seen by ``fit``.

Statistics are accumulated in float64 and applied in the input's dtype: float32 in, float32 out.

Classes: Standardizer (zero-centre, optionally unit variance, per feature), MeanImage (subtract the mean
image, AlexNet style), PerChannelNormalizer (one mean/std per colour channel, VGG/ResNet style), PCA
(project on the top-k principal directions; reconstruct), Whitening (PCA or ZCA whitening).
"""

import numpy as np

from ._validate import as_float_array

__all__ = ["NotFittedError", "Standardizer", "MeanImage", "PerChannelNormalizer", "PCA", "Whitening"]


class NotFittedError(ValueError, AttributeError):
    """transform / inverse_transform called before fit."""


class _Transform:
    """Shared plumbing: fitted check, feature-shape check, fit_transform."""

    min_ndim = 2

    def _check_fit_input(self, X):
        X = as_float_array("X", X, min_ndim=self.min_ndim)
        if len(X) < 1:
            raise ValueError(f"X must hold at least one example to fit {type(self).__name__}, got shape {X.shape}")
        return X

    def _check_transform_input(self, X, name="X"):
        if not hasattr(self, "feature_shape_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet: call .fit(X_train) first "
                                 f"(statistics must come from the training data), then .transform(X)")
        X = as_float_array(name, X, min_ndim=self.min_ndim)
        if not self._compatible(X.shape[1:]):
            raise ValueError(f"{name} has feature shape {X.shape[1:]} (shape {X.shape}), but this "
                             f"{type(self).__name__} was fitted on feature shape {self.feature_shape_}")
        return X

    def _compatible(self, feature_shape):
        return tuple(feature_shape) == tuple(self.feature_shape_)

    def fit_transform(self, X):
        """fit(X) then transform(X). Use it on the training set only."""
        return self.fit(X).transform(X)


def _safe_scale(std, eps):
    """std with entries below eps replaced by 1, so a constant feature is centred, not divided by 0."""
    std = np.asarray(std, dtype=np.float64).copy()
    std[std < eps] = 1.0
    return std


class Standardizer(_Transform):
    """Per-feature standardisation x' = (x - mean) / std, statistics over axis 0 of the training set.

    X: (N, ...) - every entry of X[0] is one feature with its own mean and std (population std, ddof=0).
    scale=False only subtracts the mean (zero-centring). Features whose std is below `eps` are centred and
    left unscaled (divided by 1), instead of blowing up to inf/NaN.
    Attributes after fit: mean_, std_ (the scale actually used; ones when scale=False), feature_shape_.
    """

    def __init__(self, scale=True, eps=1e-8):
        self.scale, self.eps = bool(scale), float(eps)

    def fit(self, X):
        X = self._check_fit_input(X)
        self.mean_ = X.mean(axis=0, dtype=np.float64)
        self.std_ = (_safe_scale(X.std(axis=0, dtype=np.float64), self.eps) if self.scale
                     else np.ones_like(self.mean_))
        self.feature_shape_ = X.shape[1:]
        return self

    def transform(self, X):
        X = self._check_transform_input(X)
        out = X - self.mean_.astype(X.dtype)
        return out / self.std_.astype(X.dtype) if self.scale else out

    def inverse_transform(self, Z):
        Z = self._check_transform_input(Z, "Z")
        return Z * self.std_.astype(Z.dtype) + self.mean_.astype(Z.dtype)


class MeanImage(_Transform):
    """Subtract the mean training image: x' = x - mean_n(x_n), one mean per pixel AND channel.

    X: (N, C, H, W) or (N, D); mean_ has shape X.shape[1:]. Test images must have the same shape.
    """

    def fit(self, X):
        X = self._check_fit_input(X)
        self.mean_ = X.mean(axis=0, dtype=np.float64)
        self.feature_shape_ = X.shape[1:]
        return self

    def transform(self, X):
        X = self._check_transform_input(X)
        return X - self.mean_.astype(X.dtype)

    def inverse_transform(self, Z):
        Z = self._check_transform_input(Z, "Z")
        return Z + self.mean_.astype(Z.dtype)


class PerChannelNormalizer(_Transform):
    """One mean (and std) per channel: x'[:, c] = (x[:, c] - mean_c) / std_c, stats over N, H and W.

    X: (N, C, H, W). mean_, std_: (C,). std=False only subtracts the per-channel mean. Only C must
    match at transform time, so images of another size can be normalised with the same statistics.
    Channels with std below `eps` are only centred.
    """

    def __init__(self, std=True, eps=1e-8):
        self.std, self.eps = bool(std), float(eps)

    def _check_fit_input(self, X):
        X = super()._check_fit_input(X)
        if X.ndim != 4:
            raise ValueError(f"X must have shape (N, C, H, W), got {X.shape}")
        return X

    def _compatible(self, feature_shape):
        return len(feature_shape) == 3 and feature_shape[0] == self.feature_shape_[0]

    def fit(self, X):
        X = self._check_fit_input(X)
        self.mean_ = X.mean(axis=(0, 2, 3), dtype=np.float64)
        self.std_ = (_safe_scale(X.std(axis=(0, 2, 3), dtype=np.float64), self.eps) if self.std
                     else np.ones_like(self.mean_))
        self.feature_shape_ = X.shape[1:]
        return self

    def transform(self, X):
        X = self._check_transform_input(X)
        shape = (1, -1, 1, 1)
        out = X - self.mean_.astype(X.dtype).reshape(shape)
        return out / self.std_.astype(X.dtype).reshape(shape) if self.std else out

    def inverse_transform(self, Z):
        Z = self._check_transform_input(Z, "Z")
        shape = (1, -1, 1, 1)
        return Z * self.std_.astype(Z.dtype).reshape(shape) + self.mean_.astype(Z.dtype).reshape(shape)


def _sign_fix(vectors):
    """Flip each column so that its largest-magnitude entry is positive (a deterministic sign)."""
    idx = np.argmax(np.abs(vectors), axis=0)
    signs = np.sign(vectors[idx, np.arange(vectors.shape[1])])
    signs[signs == 0] = 1.0
    return vectors * signs


class PCA(_Transform):
    """Principal component analysis by SVD of the centred training data.

    X: (N, D). With Xc = X - mean = U S V^T:
      components_ (D, k): the first k right singular vectors (columns, unit norm, sign fixed so the
                          largest entry of each is positive), in order of decreasing variance;
      explained_variance_ (k,): S_i^2 / (N - 1), the variance of the data along each component;
      explained_variance_ratio_ (k,): that variance / the total variance (sums to 1 when k = rank).
    transform(X) = (X - mean) @ components_ -> (N, k);
    inverse_transform(Z) = Z @ components_.T + mean -> (N, D), the best rank-k reconstruction.
    """

    def __init__(self, k):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k (number of components) must be a positive int, got {k!r}")
        self.k = int(k)

    def fit(self, X):
        X = self._check_fit_input(X)
        if X.ndim != 2:
            raise ValueError(f"X must have shape (N, D) (flatten images first), got {X.shape}")
        n, d = X.shape
        if self.k > min(n, d):
            raise ValueError(f"k must be at most min(N, D) = {min(n, d)} for X of shape {X.shape}, got {self.k}")
        self.mean_ = X.mean(axis=0, dtype=np.float64)
        xc = X.astype(np.float64) - self.mean_
        _, s, vt = np.linalg.svd(xc, full_matrices=False)
        var = s ** 2 / max(n - 1, 1)
        self.components_ = _sign_fix(vt[:self.k].T)
        self.explained_variance_ = var[:self.k]
        total = var.sum()
        self.explained_variance_ratio_ = var[:self.k] / total if total > 0 else np.zeros(self.k)
        self.feature_shape_ = X.shape[1:]
        return self

    def transform(self, X):
        X = self._check_transform_input(X)
        return (X - self.mean_.astype(X.dtype)) @ self.components_.astype(X.dtype)

    def inverse_transform(self, Z):
        if not hasattr(self, "feature_shape_"):
            raise NotFittedError("this PCA is not fitted yet: call .fit(X_train) first")
        Z = as_float_array("Z", Z, ndim=2)
        if Z.shape[1] != self.k:
            raise ValueError(f"Z must have shape (N, {self.k}) (the PCA's k), got {Z.shape}")
        return Z @ self.components_.T.astype(Z.dtype) + self.mean_.astype(Z.dtype)


class Whitening(_Transform):
    """Decorrelate the features and give each unit variance: the whitened training data has covariance ~ I.

    X: (N, D). With the covariance Sigma = Xc^T Xc / N = U diag(lam) U^T (eigenvalues in decreasing order):
      kind="pca": W = U diag(1 / sqrt(lam + eps))          -> rotate into the eigenbasis, then rescale;
      kind="zca": W = U diag(1 / sqrt(lam + eps)) U^T      -> the same, rotated back. Of all whitening
                  transforms (W R for any rotation R) ZCA changes the data least: the result stays closest to
                  the centred input, which is why ZCA-whitened images still look like images.
    transform(X) = (X - mean) @ W. eps regularises directions of (near) zero variance: their variance
    ends up lam/(lam + eps) < 1 instead of dividing by ~0. Attributes: mean_, W_ (D, D), eigvals_, eigvecs_.
    """

    def __init__(self, kind="zca", eps=1e-5):
        if kind not in ("pca", "zca"):
            raise ValueError(f"kind must be 'pca' or 'zca', got {kind!r}")
        if not eps >= 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.kind, self.eps = kind, float(eps)

    def fit(self, X):
        X = self._check_fit_input(X)
        if X.ndim != 2:
            raise ValueError(f"X must have shape (N, D) (flatten images first), got {X.shape}")
        self.mean_ = X.mean(axis=0, dtype=np.float64)
        xc = X.astype(np.float64) - self.mean_
        cov = xc.T @ xc / len(X)
        lam, u = np.linalg.eigh(cov)
        order = np.argsort(lam)[::-1]
        lam, u = np.clip(lam[order], 0.0, None), _sign_fix(u[:, order])
        self.eigvals_, self.eigvecs_ = lam, u
        w = u / np.sqrt(lam + self.eps)
        self.W_ = w @ u.T if self.kind == "zca" else w
        self.feature_shape_ = X.shape[1:]
        return self

    def transform(self, X):
        X = self._check_transform_input(X)
        return (X - self.mean_.astype(X.dtype)) @ self.W_.astype(X.dtype)
