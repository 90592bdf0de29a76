"""Notebook 02 (preprocessing): fast checks of the solution notebook without executing its experiments.

The exercise cells are executed in a plain namespace; then every graded test cell (visible AND hidden part)
is run against (a) the solution, which must pass, (b) the stubs nbgrader makes, which must fail, (c) answers
that only delegate to nnlab.preprocessing, which must fail with the "not nnlab's" message, and (d) typical
mistakes, whose failure message must name the mistake. The solution is also cross-checked against
nnlab.preprocessing on random data: two independent implementations agreeing.
`python -m grader validate 02_preprocessing` executes the whole notebook; this file takes a few seconds.
"""

import re

import numpy as np
import pytest
from notebook_cells import SOLUTIONS, check_metadata, load_cells, namespace, stub

import nnlab.preprocessing as P

SOURCE = SOLUTIONS / "02_preprocessing" / "preprocessing.ipynb"
pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="no solutions/ here (a student copy of the course)")

EXERCISES = {  # test cell -> the exercise cell it grades (the exercises are independent of each other)
    "test_standardizer": "standardizer_impl",
    "test_mean_image": "image_stats_impl", "test_per_channel": "image_stats_impl",
    "test_pca_fit": "pca_impl", "test_pca_transform": "pca_impl",
    "test_pca_whitening": "whitening_impl", "test_zca_whitening": "whitening_impl",
}


@pytest.fixture(scope="module")
def cells():
    return load_cells(SOURCE)


def test_metadata_points_and_ids(cells):
    check_metadata(cells, EXERCISES, (15, 3))


def test_notebook_imports_the_colour_fallback(cells):
    """The colour experiment needs load_colour_patches when CIFAR-10 is absent (the usual case)."""
    import nnlab.data
    assert "load_colour_patches" in cells["setup"].source
    d = nnlab.data.load_colour_patches()
    assert d["X_train"].shape[1:] == (3, 32, 32) and d["X_train"].dtype == np.float32


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_solution_passes_visible_and_hidden_tests(cells, test_id, capsys):
    ns = namespace(cells, [cells[EXERCISES[test_id]].source])
    exec(cells[test_id].source, ns)
    assert "visible tests passed" in capsys.readouterr().out


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_stub_fails(cells, test_id):
    ns = namespace(cells, [stub(cells[EXERCISES[test_id]].source)])
    with pytest.raises(NotImplementedError):
        exec(cells[test_id].source, ns)


WRAPPERS = {
    "standardizer_impl": """
def fit_standardizer(X_train, scale=True, eps=1e-8):
    s = P.Standardizer(scale=scale, eps=eps).fit(X_train)
    return s.mean_.astype(X_train.dtype), s.std_.astype(X_train.dtype)
def standardize(X, mean, std):
    return (X - mean) / std
""",
    "image_stats_impl": """
def mean_image(X_train):
    return P.MeanImage().fit(X_train).mean_.astype(X_train.dtype)
def per_channel_mean(X_train):
    return P.PerChannelNormalizer(std=False).fit(X_train).mean_.astype(X_train.dtype)
def per_channel_mean_std(X_train, eps=1e-8):
    p = P.PerChannelNormalizer(eps=eps).fit(X_train)
    return p.mean_.astype(X_train.dtype), p.std_.astype(X_train.dtype)
def normalize_images(X, mean, std=None):
    mean = np.asarray(mean)
    out = X - (mean.reshape(1, -1, 1, 1) if mean.ndim == 1 else mean)
    return out if std is None else out / np.asarray(std).reshape(1, -1, 1, 1)
""",
    "pca_impl": """
def pca_fit(X_train, k):
    n = len(X_train)
    p = P.PCA(k).fit(X_train)
    return {"mean": p.mean_.astype(X_train.dtype), "components": p.components_.astype(X_train.dtype),
            "explained_variance": (p.explained_variance_ * (n - 1) / n).astype(X_train.dtype),
            "explained_variance_ratio": p.explained_variance_ratio_.astype(X_train.dtype)}
def pca_transform(X, pca):
    p = P.PCA(pca["components"].shape[1])
    p.mean_, p.components_, p.feature_shape_ = pca["mean"], pca["components"], pca["mean"].shape
    return p.transform(X)
def pca_reconstruct(Z, pca):
    return Z @ pca["components"].T + pca["mean"]
""",
    "whitening_impl": """
def fit_whitening(X_train, kind="zca", eps=1e-5):
    w = P.Whitening(kind=kind, eps=eps).fit(X_train)
    return w.mean_.astype(X_train.dtype), w.W_.astype(X_train.dtype)
def whiten(X, mean, W):
    return (X - mean) @ W
""",
}


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_answer_that_wraps_nnlab_earns_nothing(cells, test_id):
    ns = namespace(cells, [])
    ns["P"] = P
    exec(WRAPPERS[EXERCISES[test_id]], ns)
    with pytest.raises(AssertionError, match="not nnlab's"):
        exec(cells[test_id].source, ns)


MISTAKES = [  # (test cell, exercise source with one typical mistake, words the failure message must contain)
    ("test_standardizer", """
def fit_standardizer(X_train, scale=True, eps=1e-8):
    m = X_train.mean(axis=0); s = X_train.std(axis=0) if scale else np.ones_like(m)
    return m, np.where(s < eps, 1, s).astype(X_train.dtype)
def standardize(X, mean, std):
    s = X.std(axis=0)
    return (X - X.mean(axis=0)) / np.where(s < 1e-8, 1, s)
""", "TRAINING mean and std"),
    ("test_standardizer", """
def fit_standardizer(X_train, scale=True, eps=1e-8):
    m = X_train.mean(axis=0); s = X_train.std(axis=0, ddof=1) if scale else np.ones_like(m)
    return m, np.where(s < eps, 1, s).astype(X_train.dtype)
def standardize(X, mean, std):
    return (X - mean) / std
""", "ddof=1"),
    ("test_per_channel", """
def per_channel_mean(X_train):
    return X_train.mean(axis=(0, 2, 3))
def per_channel_mean_std(X_train, eps=1e-8):
    s = X_train.std(axis=(0, 2, 3))
    return X_train.mean(axis=(0, 2, 3)), np.where(s < eps, 1, s)
def normalize_images(X, mean, std=None):
    return X - mean if std is None else (X - mean) / std
""", "LAST axis"),
    ("test_pca_fit", """
def pca_fit(X_train, k):
    mean = X_train.mean(axis=0); Xc = X_train - mean
    lam, U = np.linalg.eigh(Xc.T @ Xc / len(Xc))
    return {"mean": mean, "components": U[:, :k], "explained_variance": lam[:k],
            "explained_variance_ratio": lam[:k] / lam.sum()}
""", "INCREASING order"),
    ("test_pca_whitening", """
def fit_whitening(X_train, kind="zca", eps=1e-5):
    mean = X_train.mean(axis=0); Xc = X_train - mean
    lam, U = np.linalg.eigh(Xc.T @ Xc / len(Xc)); lam, U = np.clip(lam[::-1], 0, None), U[:, ::-1]
    W = U / (np.sqrt(lam) + eps)
    return mean, (W @ U.T if kind == "zca" else W)
def whiten(X, mean, W):
    return (X - mean) @ W
""", "OUTSIDE the square root"),
    ("test_zca_whitening", """
def fit_whitening(X_train, kind="zca", eps=1e-5):
    mean = X_train.mean(axis=0); Xc = X_train - mean
    lam, U = np.linalg.eigh(Xc.T @ Xc / len(Xc)); lam, U = np.clip(lam[::-1], 0, None), U[:, ::-1]
    return mean, U / np.sqrt(lam + eps)
def whiten(X, mean, W):
    return (X - mean) @ W
""", "ZCA rotates back"),
    ("test_mean_image", """
def mean_image(X_train):
    return X_train.mean(axis=0)
def normalize_images(X, mean, std=None):
    out = X - np.asarray(mean).reshape(1, -1, 1, 1)
    return out if std is None else out / np.asarray(std).reshape(1, -1, 1, 1)
""", "only a (C,) vector is reshaped"),
    ("test_pca_fit", """
def pca_fit(X_train, k):
    mean = X_train.mean(axis=0); Xc = X_train - mean
    _, s, Vt = np.linalg.svd(Xc, full_matrices=False)
    lam = s ** 2 / len(Xc)
    return {"mean": mean, "components": Vt[:k].T, "explained_variance": s[:k],
            "explained_variance_ratio": lam[:k] / lam.sum()}
""", "singular values"),
    ("test_pca_whitening", """
def fit_whitening(X_train, kind="zca", eps=1e-5):
    mean = X_train.mean(axis=0); Xc = X_train - mean
    lam, U = np.linalg.eigh(Xc.T @ Xc / len(Xc)); lam, U = np.clip(lam[::-1], 0, None), U[:, ::-1]
    W = U / (lam + eps)
    return mean, (W @ U.T if kind == "zca" else W)
def whiten(X, mean, W):
    return (X - mean) @ W
""", "divided by lambda instead of sqrt"),
]


@pytest.mark.parametrize("test_id,source,words", MISTAKES, ids=[f"{m[0]}-{i}" for i, m in enumerate(MISTAKES)])
def test_typical_mistake_is_named(cells, test_id, source, words):
    ns = namespace(cells, [source])
    with pytest.raises(AssertionError, match=re.escape(words)):
        exec(cells[test_id].source, ns)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_solution_agrees_with_nnlab(cells, rng, dtype):
    ns = namespace(cells, [cells[ex].source for ex in sorted(set(EXERCISES.values()))])
    tol = dict(rtol=2e-3, atol=2e-4) if dtype == np.float32 else dict(rtol=1e-8, atol=1e-10)
    X = (rng.standard_normal((300, 6)) @ (rng.standard_normal((6, 6)) * np.logspace(-1, 0.5, 6))
         + rng.uniform(-3, 3, 6)).astype(dtype)
    mean, std = ns["fit_standardizer"](X)
    s = P.Standardizer().fit(X)
    np.testing.assert_allclose(ns["standardize"](X, mean, std), s.transform(X), **tol)

    imgs = rng.uniform(0, 1, (20, 3, 5, 4)).astype(dtype)
    np.testing.assert_allclose(ns["mean_image"](imgs), P.MeanImage().fit(imgs).mean_, **tol)
    m, sd = ns["per_channel_mean_std"](imgs)
    np.testing.assert_allclose(ns["normalize_images"](imgs, m, sd), P.PerChannelNormalizer().fit(imgs).transform(imgs), **tol)

    k, n = 3, len(X)
    pca, ref = ns["pca_fit"](X, k), P.PCA(k).fit(X)
    np.testing.assert_allclose(np.abs(pca["components"].T @ ref.components_), np.eye(k), **tol)
    np.testing.assert_allclose(pca["explained_variance"], ref.explained_variance_ * (n - 1) / n, **tol)
    np.testing.assert_allclose(pca["explained_variance_ratio"], ref.explained_variance_ratio_, **tol)

    for kind in ("pca", "zca"):
        mean_w, W = ns["fit_whitening"](X, kind=kind, eps=1e-6)
        ref_w = P.Whitening(kind=kind, eps=1e-6).fit(X)
        if kind == "zca":
            np.testing.assert_allclose(W, ref_w.W_, **tol)
        else:   # columns are defined up to sign
            np.testing.assert_allclose(np.abs(W), np.abs(ref_w.W_), **tol)
        Z = ns["whiten"](X, mean_w, W)
        np.testing.assert_allclose(np.cov(Z.T.astype(np.float64), bias=True), np.eye(6), atol=5e-3)


# fair grades: a wrong function leaves the tests of the others their points
WRONG_ELSEWHERE = [  # (exercise cell, solution text, wrong text, test cells that must still pass)
    ("pca_impl", "cov = Xc.T @ Xc / n", "cov = X_train.T @ X_train / n", ["test_pca_transform"]),
    ("pca_impl", "    n = X_train.shape[0]\n", "    raise NotImplementedError()\n", ["test_pca_transform"]),
    ("image_stats_impl", "return X_train.mean(axis=0)\n", "return X_train.mean(axis=1)\n", ["test_per_channel"]),
    ("image_stats_impl", "return X_train.mean(axis=(0, 2, 3))\n", "return X_train.mean(axis=(0, 1, 2))\n",
     ["test_mean_image"]),
    ("whitening_impl", "        W = W @ U.T\n", "        W = W @ U\n", ["test_pca_whitening"]),
    ("whitening_impl", "    if kind not in", "    if kind == 'pca':\n        raise NotImplementedError()\n    if kind not in",
     ["test_zca_whitening"]),
]


@pytest.mark.parametrize("exercise, old, new, passing", WRONG_ELSEWHERE, ids=[f"{w[0]}-{i}" for i, w in enumerate(WRONG_ELSEWHERE)])
def test_a_wrong_function_leaves_the_other_tests_their_points(cells, exercise, old, new, passing):
    src = cells[exercise].source
    assert old in src
    ns = namespace(cells, [src.replace(old, new)])
    failing = [t for t, e in EXERCISES.items() if e == exercise and t not in passing]
    for test_id in failing:
        with pytest.raises((AssertionError, NotImplementedError)):
            exec(cells[test_id].source, dict(ns))
    for test_id in passing:
        exec(cells[test_id].source, dict(ns))


def test_standardize_is_graded_with_given_statistics(cells):
    """A fit_standardizer with the ddof=1 mistake fails its check; standardize itself is never fed its output."""
    src = cells["standardizer_impl"].source.replace("std = X_train.std(axis=0)", "std = X_train.std(axis=0, ddof=1)")
    ns = namespace(cells, [src])
    with pytest.raises(AssertionError, match="sample std"):
        exec(cells["test_standardizer"].source, ns)
    test = cells["test_standardizer"].source
    assert "standardize, X_fix, mean_ok, std_ok" in test and "standardize(X_test_fix, mean_ok, std_ok)" in test


IN_PLACE = [
    ("test_standardizer", "standardizer_impl", "    return (X - mean) / std\n", "    X -= mean\n    X /= std\n    return X\n",
     "standardize changed its argument X in place"),
    ("test_pca_fit", "pca_impl", "    Xc = X_train - mean\n    cov", "    Xc = X_train\n    Xc -= mean\n    cov",
     "pca_fit changed its argument X_train in place"),
    ("test_pca_whitening", "whitening_impl", "    Xc = X_train - mean\n", "    Xc = X_train\n    Xc -= mean\n",
     "fit_whitening changed its argument X_train in place"),
]


@pytest.mark.parametrize("test_id, exercise, old, new, words", IN_PLACE, ids=[m[0] for m in IN_PLACE])
def test_in_place_changes_are_named(cells, test_id, exercise, old, new, words):
    src = cells[exercise].source
    assert old in src
    ns = namespace(cells, [src.replace(old, new)])
    with pytest.raises(AssertionError, match=re.escape(words)):
        exec(cells[test_id].source, ns)


def test_float64_scalar_in_whitening_names_the_cause(cells):
    src = cells["whitening_impl"].source.replace("cov = Xc.T @ Xc / n", "cov = Xc.T @ Xc / np.float64(n)")
    ns = namespace(cells, [src])
    with pytest.raises(AssertionError, match=r"np\.sqrt\(n\) or np\.float64\(c\)"):
        exec(cells["test_pca_whitening"].source, ns)


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_every_exercise_that_receives_arrays_checks_them_for_in_place_changes(cells, test_id):
    assert "assert_no_mutation(" in cells[test_id].source
