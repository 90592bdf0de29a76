"""nnlab.data: the shipped datasets, their fixed splits, the error messages for missing or corrupt files,
the CIFAR-10 reader (on tiny batches written here in the official format), toy problems, minibatches."""

import hashlib
import os
import pickle
import re
import shutil

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnlab.data import (DatasetError, DatasetNotFoundError, iterate_minibatches, load_cifar10,
                        load_colour_patches, load_digits, load_mnist, make_circles, make_moons, make_spirals)

DATASETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "datasets")
SPLITS = {"mnist": (load_mnist, "mnist_5k.npz", 28, (4000, 500, 500)),
          "digits": (load_digits, "digits_8x8.npz", 8, (1197, 300, 300))}


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    monkeypatch.delenv("NNLAB_DATA_DIR", raising=False)
    monkeypatch.delenv("NNLAB_CIFAR10", raising=False)


# ------------------------------------------------------------------------------------------ shipped data

@pytest.mark.parametrize("name", SPLITS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_shipped_dataset_shapes_dtypes_ranges(name, dtype):
    loader, _, side, sizes = SPLITS[name]
    d = loader(dtype=dtype)
    assert set(d) == {"X_train", "y_train", "X_val", "y_val", "X_test", "y_test"}
    for split, n in zip(("train", "val", "test"), sizes):
        X, y = d[f"X_{split}"], d[f"y_{split}"]
        assert X.shape == (n, side * side), f"{name} X_{split}: expected ({n}, {side * side}), got {X.shape}"
        assert X.dtype == dtype and y.dtype == np.int64 and y.shape == (n,)
        assert X.min() >= 0.0 and X.max() <= 1.0, f"{name} pixels must be scaled to [0, 1]"
        assert X.max() == 1.0, f"{name}: the brightest pixel should map to exactly 1.0"
        counts = np.bincount(y, minlength=10)
        assert len(counts) == 10 and counts.min() >= 0.8 * n / 10, f"{name} {split} labels unbalanced: {counts}"
    nchw = loader(dtype=dtype, flatten=False)
    assert nchw["X_train"].shape == (sizes[0], 1, side, side)
    np.testing.assert_array_equal(nchw["X_train"].reshape(sizes[0], -1), d["X_train"])


def test_mnist_val_and_test_are_stratified():
    d = load_mnist()
    np.testing.assert_array_equal(np.bincount(d["y_val"]), np.full(10, 50))
    np.testing.assert_array_equal(np.bincount(d["y_test"]), np.full(10, 50))
    assert not np.all(np.diff(d["y_train"]) >= 0), "training labels should not be sorted by class"


@pytest.mark.parametrize("name", SPLITS)
def test_splits_are_disjoint_and_cover_the_file(name):
    loader, fname, side, sizes = SPLITS[name]
    with np.load(os.path.join(DATASETS, fname)) as f:
        images, labels = f["images"], f["labels"]
        assert images.dtype == np.uint8 and images.shape == (sum(sizes), side, side)
        idx = np.concatenate([f["train_idx"], f["val_idx"], f["test_idx"]])
    np.testing.assert_array_equal(np.sort(idx), np.arange(sum(sizes)))
    d = loader(dtype=np.float64, flatten=False)
    top = 255 if name == "mnist" else 16
    with np.load(os.path.join(DATASETS, fname)) as f:
        val_idx, test_idx = f["val_idx"], f["test_idx"]
    np.testing.assert_array_equal(np.rint(d["X_val"][:, 0] * top).astype(np.uint8), images[val_idx])
    np.testing.assert_array_equal(d["y_test"], labels[test_idx])


def test_shipped_files_match_the_checksums_in_the_readme():
    with open(os.path.join(DATASETS, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for fname in ("mnist_5k.npz", "digits_8x8.npz"):
        with open(os.path.join(DATASETS, fname), "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        assert re.search(rf"{re.escape(fname)}.*{digest}", readme, re.S), \
            f"datasets/README.md does not list sha256 {digest} for {fname}"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_colour_patches(dtype):
    d = load_colour_patches(dtype=dtype)
    for split, n in zip(("train", "val", "test"), (1400, 300, 300)):
        X, y = d[f"X_{split}"], d[f"y_{split}"]
        assert X.shape == (n, 3, 32, 32) and X.dtype == dtype and y.dtype == np.int64
        assert 0.0 <= X.min() and X.max() <= 1.0
        np.testing.assert_array_equal(np.bincount(y), [n // 2, n // 2])
    # real photographs: the three channels have different statistics (that is what per-channel stats are for)
    means = d["X_train"].mean(axis=(0, 2, 3))
    assert np.ptp(means) > 0.02, f"channel means {means} look identical"
    assert load_colour_patches(flatten=True)["X_val"].shape == (300, 3072)


def test_colour_patches_corrupt_and_missing_name_their_build_script(tmp_path):
    path = tmp_path / "colour_patches.npz"
    with pytest.raises(DatasetNotFoundError, match="build_colour_patches.py"):
        load_colour_patches(path=path)
    np.savez_compressed(path, images=np.zeros((4, 1, 8, 8), np.uint8), labels=np.zeros(4, np.uint8),
                        train_idx=np.arange(2), val_idx=np.arange(2, 3), test_idx=np.arange(3, 4))
    with pytest.raises(DatasetError, match=r"corrupt.*\(4, 3, 32, 32\).*git checkout -- datasets/colour_patches"):
        load_colour_patches(path=path)


def test_loading_is_deterministic_and_returns_fresh_copies():
    a = load_mnist()
    a["X_train"][:] = -1.0
    a["y_train"][:] = 99
    b, c = load_mnist(), load_mnist()
    assert b["X_train"].min() >= 0 and b["y_train"].max() <= 9, "a returned array shared memory with the cache"
    for k in b:
        np.testing.assert_array_equal(b[k], c[k])
    assert b["X_train"].flags.writeable


def test_mnist_pixels_look_like_digits():
    X = load_mnist(flatten=False)["X_train"]
    # a digit is drawn in the middle: the border is blank, the centre is inked on average
    assert X[:, :, 0, :].max() < 0.5 and X[:, :, 12:16, 12:16].mean() > 0.2


def test_missing_file_says_how_to_restore_it(tmp_path):
    path = tmp_path / "mnist_5k.npz"
    with pytest.raises(DatasetNotFoundError, match=r"missing.*git checkout -- datasets/mnist_5k\.npz.*build_datasets"):
        load_mnist(path=path)
    with pytest.raises(FileNotFoundError):  # also catchable as the builtin
        load_digits(path=tmp_path / "digits_8x8.npz")


def test_env_override_points_the_loaders_elsewhere(tmp_path, monkeypatch):
    monkeypatch.setenv("NNLAB_DATA_DIR", str(tmp_path))
    with pytest.raises(DatasetNotFoundError, match=re.escape(str(tmp_path))):
        load_digits()
    shutil.copy(os.path.join(DATASETS, "digits_8x8.npz"), tmp_path / "digits_8x8.npz")
    assert load_digits()["X_train"].shape == (1197, 64)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "wrong_arrays", "bad_labels", "npy"])
def test_corrupt_file_raises_dataset_error_with_the_fix(tmp_path, damage):
    src = os.path.join(DATASETS, "digits_8x8.npz")
    path = tmp_path / "digits_8x8.npz"
    with open(src, "rb") as f:
        raw = f.read()
    if damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros((3, 8, 8), np.uint8))
    elif damage == "wrong_arrays":
        np.savez_compressed(path, images=np.zeros((3, 8, 8), np.uint8))
    else:
        with np.load(src) as f:
            arrays = dict(f)
        arrays["labels"] = arrays["labels"] + 20
        np.savez_compressed(path, **arrays)
    with pytest.raises(DatasetError, match=r"corrupt.*git checkout -- datasets/digits_8x8\.npz"):
        load_digits(path=str(path))


def test_a_repaired_file_is_read_again(tmp_path):
    path = tmp_path / "digits_8x8.npz"
    path.write_bytes(b"not a zip file at all")
    with pytest.raises(DatasetError):
        load_digits(path=path)
    shutil.copy(os.path.join(DATASETS, "digits_8x8.npz"), path)
    assert load_digits(path=path)["y_val"].shape == (300,)


def test_loader_rejects_integer_dtype():
    with pytest.raises(ValueError, match="dtype"):
        load_digits(dtype=np.uint8)


# ------------------------------------------------------------------------------------------ CIFAR-10

def _write_cifar(root, n_per_batch=6, n_test=4, seed=0):
    """Tiny CIFAR-10 in the official python format: pickled dicts with bytes keys, uint8 (n, 3072)."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    batches = {}
    for name, n in [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        d = {b"batch_label": name.encode(), b"labels": [int(v) for v in rng.integers(0, 10, n)],
             b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
             b"filenames": [f"img_{k}.png".encode() for k in range(n)]}
        with open(root / name, "wb") as f:
            pickle.dump(d, f, protocol=2)
        batches[name] = d
    return batches


def test_cifar10_reads_the_official_format(tmp_path):
    batches = _write_cifar(tmp_path / "cifar-10-batches-py")
    d = load_cifar10(tmp_path / "cifar-10-batches-py", num_val=10)
    train_x = np.concatenate([batches[f"data_batch_{i}"][b"data"] for i in range(1, 6)])
    train_y = np.concatenate([batches[f"data_batch_{i}"][b"labels"] for i in range(1, 6)])
    assert d["X_train"].shape == (20, 3, 32, 32) and d["X_val"].shape == (10, 3, 32, 32)
    assert d["X_test"].shape == (4, 3, 32, 32) and d["X_train"].dtype == np.float32
    assert d["y_train"].dtype == np.int64
    # row layout: 1024 red, 1024 green, 1024 blue, each 32x32 row-major; val = the LAST train images
    np.testing.assert_allclose(d["X_train"][3, 1, 2, 5], train_x[3, 1024 + 2 * 32 + 5] / 255, rtol=1e-6)
    np.testing.assert_array_equal(d["y_val"], train_y[20:])
    np.testing.assert_allclose(d["X_val"].reshape(10, -1) * 255, train_x[20:], atol=1e-3)
    np.testing.assert_array_equal(d["y_test"], batches["test_batch"][b"labels"])
    small = load_cifar10(tmp_path / "cifar-10-batches-py", num_train=5, num_val=10, dtype=np.float64)
    assert small["X_train"].shape == (5, 3, 32, 32) and small["X_train"].dtype == np.float64
    np.testing.assert_allclose(small["X_val"], d["X_val"], rtol=1e-6)


def test_cifar10_reads_pickles_naming_numpy_core(tmp_path):
    """The official batches were pickled by Python 2 with old numpy: they name numpy.core.multiarray,
    which numpy 2 only reaches through a deprecation shim; loading must not warn (stderr fails nbgrader)."""
    root = tmp_path / "c"
    batches = _write_cifar(root)
    for name in batches:
        raw = (root / name).read_bytes()
        (root / name).write_bytes(raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray"))
        assert b"numpy.core.multiarray" in (root / name).read_bytes()
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = load_cifar10(root, num_val=3)
    np.testing.assert_array_equal(d["y_test"], batches["test_batch"][b"labels"])


def test_cifar10_root_from_environment(tmp_path, monkeypatch):
    _write_cifar(tmp_path / "c10")
    monkeypatch.setenv("NNLAB_CIFAR10", str(tmp_path / "c10"))
    assert load_cifar10(num_val=3)["X_val"].shape == (3, 3, 32, 32)


def test_cifar10_missing_says_where_to_get_it(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=r"cifar-10-python\.tar\.gz.*NNLAB_CIFAR10"):
        load_cifar10(tmp_path / "nowhere")
    _write_cifar(tmp_path / "partial")
    os.remove(tmp_path / "partial" / "test_batch")
    with pytest.raises(DatasetNotFoundError, match="test_batch"):
        load_cifar10(tmp_path / "partial")


def test_cifar10_corrupt_batch_and_unsafe_pickle(tmp_path):
    root = tmp_path / "c"
    _write_cifar(root)
    (root / "data_batch_3").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DatasetError, match="data_batch_3.*corrupt"):
        load_cifar10(root, num_val=3)
    with open(root / "data_batch_3", "wb") as f:
        pickle.dump({b"data": os.system, b"labels": []}, f, protocol=2)  # must not be executed or even loaded
    with pytest.raises(DatasetError, match="refusing"):
        load_cifar10(root, num_val=3)


# ------------------------------------------------------------------------------------------ toy problems

@pytest.mark.parametrize("make, kwargs, n, k", [
    (make_spirals, dict(n_per_class=50, n_classes=4), 200, 4),
    (make_moons, dict(n=101), 101, 2),
    (make_circles, dict(n=80), 80, 2),
])
def test_toy_problems_shapes_dtypes_determinism(make, kwargs, n, k):
    X, y = make(**kwargs, rng=np.random.default_rng(5))
    assert X.shape == (n, 2) and X.dtype == np.float64 and y.shape == (n,) and y.dtype == np.int64
    assert set(np.unique(y)) == set(range(k))
    assert abs(np.sum(y == 0) - n / k) <= 1
    X2, y2 = make(**kwargs, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    X3, _ = make(**kwargs, rng=np.random.default_rng(6))
    assert not np.array_equal(X, X3), "a different seed must give different noise"
    Xd, _ = make(**kwargs)
    np.testing.assert_array_equal(Xd, make(**kwargs)[0])  # rng=None: a fixed default seed


def test_toy_problems_geometry_without_noise():
    X, y = make_circles(n=100, noise=0.0, factor=0.3)
    r = np.linalg.norm(X, axis=1)
    np.testing.assert_allclose(r[y == 0], 1.0)
    np.testing.assert_allclose(r[y == 1], 0.3)
    X, y = make_spirals(n_per_class=30, n_classes=2, noise=0.0)
    np.testing.assert_allclose(np.linalg.norm(X[y == 0], axis=1), np.linspace(0, 1, 30), atol=1e-12)
    X, y = make_moons(n=40, noise=0.0)
    np.testing.assert_allclose(np.linalg.norm(X[y == 0], axis=1), 1.0)
    np.testing.assert_allclose(np.linalg.norm(X[y == 1] - [1.0, 0.5], axis=1), 1.0)


def test_toy_problems_reject_bad_arguments():
    with pytest.raises(ValueError, match="factor"):
        make_circles(factor=1.5)
    with pytest.raises(ValueError, match="noise"):
        make_moons(noise=-0.1)
    with pytest.raises(ValueError, match="n_per_class"):
        make_spirals(n_per_class=0)
    with pytest.raises(ValueError, match="rng"):
        make_spirals(rng=42)


# ------------------------------------------------------------------------------------------ minibatches

@pytest.mark.parametrize("n, bs, drop_last", [(10, 3, False), (10, 3, True), (12, 4, False), (5, 8, False), (5, 8, True)])
def test_minibatches_cover_every_example_once_per_epoch(n, bs, drop_last):
    rng = np.random.default_rng(1)
    X, y = np.arange(n * 2, dtype=np.float32).reshape(n, 2), np.arange(n)
    batches = list(iterate_minibatches(X, y, bs, rng=rng, drop_last=drop_last))
    sizes = [len(b[1]) for b in batches]
    expected_batches = n // bs if drop_last else -(-n // bs)
    assert len(batches) == expected_batches
    assert all(s == bs for s in sizes[:-1]) and (not batches or sizes[-1] == (bs if drop_last else n - bs * (len(sizes) - 1)))
    seen = np.concatenate([b[1] for b in batches]) if batches else np.array([], int)
    assert len(np.unique(seen)) == len(seen), "an example appeared twice in one epoch"
    if not drop_last:
        np.testing.assert_array_equal(np.sort(seen), y)
    for xb, yb in batches:
        np.testing.assert_array_equal(xb, X[yb], err_msg="X and y batches must stay aligned")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), bs=st.integers(1, 12), drop_last=st.booleans(), shuffle=st.booleans(),
       seed=st.integers(0, 100))
def test_minibatches_property(n, bs, drop_last, shuffle, seed):
    X, y = np.arange(n * 3.0).reshape(n, 3), np.arange(n)
    batches = list(iterate_minibatches(X, y, bs, rng=np.random.default_rng(seed), shuffle=shuffle,
                                       drop_last=drop_last))
    seen = np.concatenate([b for _, b in batches]) if batches else np.zeros(0, int)
    assert len(seen) == (n - n % bs if drop_last else n)
    assert len(np.unique(seen)) == len(seen)
    assert all(len(b) == bs for _, b in batches[:-1])
    if drop_last:
        assert all(len(b) == bs for _, b in batches)
    if not shuffle:
        np.testing.assert_array_equal(seen, np.arange(len(seen)))


def test_minibatches_reshuffle_between_epochs_and_follow_the_rng():
    X, y = np.zeros((50, 1)), np.arange(50)
    rng = np.random.default_rng(2)
    e1 = np.concatenate([b for _, b in iterate_minibatches(X, y, 7, rng=rng)])
    e2 = np.concatenate([b for _, b in iterate_minibatches(X, y, 7, rng=rng)])
    assert not np.array_equal(e1, e2), "the second epoch used the same order: reshuffle every epoch"
    again = np.random.default_rng(2)
    np.testing.assert_array_equal(e1, np.concatenate([b for _, b in iterate_minibatches(X, y, 7, rng=again)]))
    ordered = np.concatenate([b for _, b in iterate_minibatches(X, y, 7, shuffle=False)])
    np.testing.assert_array_equal(ordered, y)


def test_minibatches_validate_arguments_eagerly():
    X, y = np.zeros((10, 2)), np.zeros(9, int)
    with pytest.raises(ValueError, match=r"same number of examples.*\(10, 2\).*\(9,\)"):
        iterate_minibatches(X, y, 2, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="batch_size"):
        iterate_minibatches(X, np.zeros(10), 0, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng"):
        iterate_minibatches(X, np.zeros(10), 2)

