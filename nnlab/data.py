"""Datasets for the course: the shipped MNIST-5k, 8x8 digits and colour patches, toy 2-D problems,
CIFAR-10 (optional), and a minibatch iterator.

Every loader returns a dict with keys X_train, y_train, X_val, y_val, X_test, y_test; X is floating point
scaled to [0, 1], y is int64 (0..9 for the digits, 0..1 for the colour patches).

Where the files are
-------------------
``datasets/mnist_5k.npz``, ``datasets/digits_8x8.npz`` and ``datasets/colour_patches.npz`` ship with the
repository (provenance, licences, checksums: datasets/README.md). Set the environment variable ``NNLAB_DATA_DIR`` to read them from another
folder, or pass ``path=`` to a loader. CIFAR-10 is never needed by the course; ``load_cifar10`` reads the
official python batches from ``root``, ``$NNLAB_CIFAR10`` or ``datasets/cifar-10-batches-py``.

Fixed splits
------------
The train/val/test split is stored in each .npz as index arrays, built once by datasets/build_datasets.py
with ``np.random.default_rng(0)`` (stratified: val and test hold the same number of images of each digit).
Loading therefore never draws random numbers and gives the same split on every machine and numpy version.
MNIST-5k: 4000 / 500 / 500. Digits: 1197 / 300 / 300. Colour patches (datasets/build_colour_patches.py):
1400 / 300 / 300, cut from disjoint strips of the two photographs.

Raw arrays are cached (functools.lru_cache keyed on the file's path, size and modification time); each call
returns fresh copies, so modifying a returned array never changes what the next call returns.
"""

import functools
import os
import pickle
import zipfile

import numpy as np

__all__ = ["DatasetError", "DatasetNotFoundError", "load_mnist", "load_digits", "load_colour_patches", "load_cifar10",
           "make_spirals", "make_moons", "make_circles", "iterate_minibatches", "datasets_dir"]

_REPO_DATASETS = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "datasets"))
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_DEFAULT_SEED = 0


class DatasetError(RuntimeError):
    """A dataset file exists but cannot be used (corrupt, truncated, unexpected content)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """A dataset file is missing; the message says how to get it back."""


def datasets_dir():
    """The folder holding the shipped .npz files: $NNLAB_DATA_DIR if set, else the repository's datasets/."""
    return os.environ.get("NNLAB_DATA_DIR") or _REPO_DATASETS


# ----------------------------------------------------------------------------------------------------------
# the shipped npz files

_SHIPPED = {
    # file name: (shape of one stored image, largest pixel value, number of classes, the script that builds it)
    "mnist_5k.npz": ((28, 28), 255, 10, "build_datasets.py"),
    "digits_8x8.npz": ((8, 8), 16, 10, "build_datasets.py"),
    "colour_patches.npz": ((3, 32, 32), 255, 2, "build_colour_patches.py"),
}


def _restore_hint(fname):
    return (f"restore the shipped copy with `git checkout -- datasets/{fname}`, or rebuild it with "
            f"`python datasets/{_SHIPPED[fname][3]}` (see datasets/README.md)")


@functools.lru_cache(maxsize=8)
def _read_npz(path, fname, _size, _mtime):
    """Read and validate a shipped npz (`fname` says which); cached on (path, size, mtime)."""
    image_shape, top, num_classes, _ = _SHIPPED[fname]
    keys = ("images", "labels", "train_idx", "val_idx", "test_idx")
    try:
        # open the file ourselves: np.load leaks its handle (a ResourceWarning on stderr) when the zip is bad
        with open(path, "rb") as fh:
            f = np.load(fh, allow_pickle=False)
            if not isinstance(f, np.lib.npyio.NpzFile):
                raise DatasetError(f"dataset file {path} is corrupt: it holds a single array, not an .npz "
                                   f"archive; {_restore_hint(fname)}")
            with f:
                missing = [k for k in keys if k not in f.files]
                if missing:
                    raise DatasetError(f"dataset file {path} is corrupt or not a course dataset: it lacks the "
                                       f"arrays {missing} (it has {f.files}); {_restore_hint(fname)}")
                arrays = {k: f[k] for k in keys}
    except DatasetError:
        raise
    except (OSError, ValueError, TypeError, EOFError, zipfile.BadZipFile, KeyError, pickle.UnpicklingError) as e:
        raise DatasetError(f"dataset file {path} is corrupt (truncated or overwritten: "
                           f"{type(e).__name__}: {e}); {_restore_hint(fname)}") from e
    images, labels = arrays["images"], arrays["labels"]
    n = len(labels)
    problems = []
    if images.dtype != np.uint8 or images.shape[1:] != image_shape or len(images) != n \
            or labels.dtype.kind not in "iu" or labels.ndim != 1:
        problems.append(f"images {images.dtype} {images.shape} with labels {labels.dtype} {labels.shape}, "
                        f"expected uint8 ({n}, {', '.join(map(str, image_shape))}) and integer labels ({n},)")
    elif n and (labels.min() < 0 or labels.max() >= num_classes):
        problems.append(f"labels outside 0..{num_classes - 1}")
    if images.size and images.max() > top:
        problems.append(f"pixel values above {top}")
    split = np.concatenate([arrays["train_idx"], arrays["val_idx"], arrays["test_idx"]])
    if split.dtype.kind not in "iu" or (split.size and (split.min() < 0 or split.max() >= n
                                                        or len(np.unique(split)) != len(split))):
        problems.append("split indices out of range or repeated")
    if problems:
        raise DatasetError(f"dataset file {path} is corrupt: {'; '.join(problems)}; {_restore_hint(fname)}")
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


def _float_dtype(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind != "f":
        raise ValueError(f"dtype must be a floating-point type (float32 or float64), got {dtype}")
    return dtype


def _load_shipped(fname, path, dtype, flatten):
    if path is None:
        path = os.path.join(datasets_dir(), fname)
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise DatasetNotFoundError(
            f"dataset file {path} is missing. It ships with the course repository: restore it with "
            f"`git checkout -- datasets/{fname}`, or rebuild it with `python datasets/{_SHIPPED[fname][3]}` "
            f"(instructions in that script and in datasets/README.md). If you keep the data elsewhere, "
            f"set NNLAB_DATA_DIR to that folder or pass path=...")
    dtype = _float_dtype(dtype)
    st = os.stat(path)
    raw = _read_npz(path, fname, st.st_size, st.st_mtime_ns)
    top = _SHIPPED[fname][1]
    images = raw["images"]
    out = {}
    for split in ("train", "val", "test"):
        idx = raw[f"{split}_idx"]
        x = images[idx].astype(dtype) / dtype.type(top)
        if flatten:
            x = x.reshape(len(idx), -1)
        elif x.ndim == 3:  # grey images (N, H, W) -> (N, 1, H, W)
            x = x[:, None, :, :]
        out[f"X_{split}"] = x
        out[f"y_{split}"] = raw["labels"][idx].astype(np.int64)
    return out


def load_mnist(dtype=np.float32, flatten=True, path=None):
    """MNIST-5k (5000 images of 28x28 handwritten digits, 500 per class), from datasets/mnist_5k.npz.

    Returns dict X_train (4000, 784), y_train (4000,), X_val (500, 784), y_val, X_test (500, 784), y_test.
    X: `dtype`, pixel / 255 in [0, 1]; shape (N, 1, 28, 28) when flatten=False. y: int64 in 0..9.
    The split is fixed (stored in the file; see the module docstring). `path` overrides the file location.
    Raises DatasetNotFoundError if the file is missing, DatasetError if it is corrupt.
    """
    return _load_shipped("mnist_5k.npz", path, dtype, flatten)


def load_digits(dtype=np.float32, flatten=True, path=None):
    """The UCI 8x8 optical digits (1797 images, pixel values 0..16), from datasets/digits_8x8.npz.

    Returns dict X_train (1197, 64), X_val (300, 64), X_test (300, 64) and int64 labels y_*.
    X: `dtype`, pixel / 16 in [0, 1]; shape (N, 1, 8, 8) when flatten=False. Fixed stratified split.
    """
    return _load_shipped("digits_8x8.npz", path, dtype, flatten)


def load_colour_patches(dtype=np.float32, flatten=False, path=None):
    """2000 colour patches of 32x32 pixels cut from two photographs (china.jpg, flower.jpg in scikit-learn),
    from datasets/colour_patches.npz (built by datasets/build_colour_patches.py).

    The offline stand-in for CIFAR-10: same image size and layout, real photographic colour statistics.
    Labels say which photo a patch comes from (0 = china.jpg, a temple; 1 = flower.jpg). Train, val and
    test patches come from disjoint vertical strips of each photo, so no pixel is shared between splits.

    Returns dict X_train (1400, 3, 32, 32), y_train (1400,), X_val (300, 3, 32, 32), y_val,
    X_test (300, 3, 32, 32), y_test. X: `dtype`, pixel / 255 in [0, 1], channels R, G, B
    ((N, 3072) when flatten=True). y: int64 in {0, 1}. Provenance, licence (CC BY 2.0): datasets/README.md.
    Raises DatasetNotFoundError if the file is missing, DatasetError if it is corrupt.
    """
    return _load_shipped("colour_patches.npz", path, dtype, flatten)


# ----------------------------------------------------------------------------------------------------------
# CIFAR-10 (optional, never shipped)

class _CifarUnpickler(pickle.Unpickler):
    """Unpickler for the CIFAR-10 python batches that only builds numpy arrays, lists, dicts and bytes.

    pickle can run arbitrary code; the official batches need nothing but ndarray reconstruction, so any
    other global is refused. Old pickles name ``numpy.core.multiarray``: mapped to ``numpy._core`` so
    numpy 2 emits no DeprecationWarning.
    """

    _ALLOWED = {"_reconstruct", "ndarray", "dtype", "scalar", "_frombuffer"}

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy.core.numeric", "numpy._core.multiarray",
                      "numpy._core.numeric", "numpy") and name in self._ALLOWED:
            module = module.replace("numpy.core", "numpy._core")
            return super().find_class(module, name)
        if (module, name) == ("_codecs", "encode"):  # how protocol-2 pickles written by Python 3 store bytes
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR-10 batch")


def _read_cifar_batch(path):
    try:
        with open(path, "rb") as f:
            d = _CifarUnpickler(f, encoding="bytes").load()
        data = np.asarray(d[b"data"])
        labels = np.asarray(d[b"labels"])
    except (OSError, EOFError, KeyError, TypeError, ValueError, IndexError, pickle.UnpicklingError) as e:
        raise DatasetError(f"CIFAR-10 batch {path} is corrupt or not in the official python format "
                           f"({type(e).__name__}: {e}); delete the folder and unpack {_CIFAR_URL} again") from e
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or labels.shape != (len(data),):
        raise DatasetError(f"CIFAR-10 batch {path} has data {data.dtype} {data.shape} and {labels.shape} labels; "
                           f"expected uint8 (n, 3072) and n labels; unpack {_CIFAR_URL} again")
    return data, labels


@functools.lru_cache(maxsize=2)
def _read_cifar(root, _stamp):
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    parts = [_read_cifar_batch(os.path.join(root, n)) for n in names]
    x_tr = np.concatenate([p[0] for p in parts[:5]])
    y_tr = np.concatenate([p[1] for p in parts[:5]])
    out = (x_tr, y_tr, parts[5][0], parts[5][1])
    for a in out:
        a.setflags(write=False)
    return out


def load_cifar10(root=None, dtype=np.float32, num_train=None, num_val=1000):
    """CIFAR-10 from the official python batches (data_batch_1..5, test_batch). Not needed by the course.

    Get https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz (163 MB) and unpack it so that the folder
    ``cifar-10-batches-py`` sits in datasets/ (or point ``root`` / $NNLAB_CIFAR10 at that folder).

    Each batch is a pickled dict with bytes keys: b"data" uint8 (n, 3072), each row the 1024 red, then
    1024 green, then 1024 blue values of a 32x32 image in row-major order; b"labels" a list of n ints.

    Returns dict X_train (N, 3, 32, 32) in [0, 1] of `dtype`, y_train int64, X_val, y_val, X_test, y_test.
    Validation = the LAST `num_val` (default 1000) images of the 50 000 training images (in batch order);
    training = the ones before, truncated to the first `num_train` if given. Test = test_batch.
    """
    if root is None:
        root = os.environ.get("NNLAB_CIFAR10") or os.path.join(_REPO_DATASETS, "cifar-10-batches-py")
    root = os.path.abspath(os.fspath(root))
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not os.path.isfile(os.path.join(root, n))]
    if missing:
        raise DatasetNotFoundError(
            f"CIFAR-10 not found: {root} lacks {missing}. The course never needs CIFAR-10; to use it, download "
            f"{_CIFAR_URL} and unpack it (tar xzf cifar-10-python.tar.gz) inside datasets/, which creates "
            f"datasets/cifar-10-batches-py, or set NNLAB_CIFAR10 to the folder holding data_batch_1..5 and "
            f"test_batch, or pass root=...")
    dtype = _float_dtype(dtype)
    stamp = tuple((os.stat(os.path.join(root, n)).st_size, os.stat(os.path.join(root, n)).st_mtime_ns)
                  for n in names)
    x_tr, y_tr, x_te, y_te = _read_cifar(root, stamp)
    num_val = int(num_val)
    if not 0 <= num_val < len(x_tr):
        raise ValueError(f"num_val must be in [0, {len(x_tr)}) for this copy of CIFAR-10, got {num_val}")
    n_tr = len(x_tr) - num_val
    if num_train is not None:
        if not 0 < int(num_train) <= n_tr:
            raise ValueError(f"num_train must be in [1, {n_tr}], got {num_train}")
        n_tr = int(num_train)
    split = len(x_tr) - num_val

    def prep(x):
        return (x.astype(dtype) / dtype.type(255)).reshape(-1, 3, 32, 32)

    return {"X_train": prep(x_tr[:n_tr]), "y_train": y_tr[:n_tr].astype(np.int64),
            "X_val": prep(x_tr[split:]), "y_val": y_tr[split:].astype(np.int64),
            "X_test": prep(x_te), "y_test": y_te.astype(np.int64)}


# ----------------------------------------------------------------------------------------------------------
# toy 2-D problems

def _rng(rng):
    if rng is None:
        return np.random.default_rng(_DEFAULT_SEED)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator (np.random.default_rng(seed)) or None, "
                         f"got {type(rng).__name__}")
    return rng


def _check_count(name, n, minimum=1):
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {n!r}")
    return int(n)


def _check_noise(noise):
    if not noise >= 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    return float(noise)


def make_spirals(n_per_class=100, n_classes=3, noise=0.2, rng=None):
    """Interleaved spiral arms (the CS231n toy problem that a linear classifier cannot solve).

    Class k has n_per_class points with radius r = linspace(0, 1) and angle
    t = linspace(4k, 4(k+1)) + noise * N(0, 1); the point is (r sin t, r cos t).
    Returns X float64 (n_per_class * n_classes, 2), y int64, grouped by class.
    rng: a numpy Generator; None means np.random.default_rng(0), so the default data is always the same.
    """
    n_per_class = _check_count("n_per_class", n_per_class)
    n_classes = _check_count("n_classes", n_classes)
    noise, rng = _check_noise(noise), _rng(rng)
    r = np.tile(np.linspace(0.0, 1.0, n_per_class), n_classes)
    k = np.repeat(np.arange(n_classes), n_per_class)
    base = np.concatenate([np.linspace(4.0 * c, 4.0 * (c + 1), n_per_class) for c in range(n_classes)])
    t = base + noise * rng.standard_normal(n_per_class * n_classes)
    X = np.stack([r * np.sin(t), r * np.cos(t)], axis=1)
    return X, k.astype(np.int64)


def make_moons(n=200, noise=0.1, rng=None):
    """Two interleaving half circles: class 0 the upper arc (cos t, sin t), class 1 the lower arc
    (1 - cos t, 0.5 - sin t), t in [0, pi], plus Gaussian noise of std `noise`.

    n // 2 points in class 0 (rounded down), the rest in class 1, in shuffled order.
    Returns X float64 (n, 2), y int64. rng None means np.random.default_rng(0).
    """
    n = _check_count("n", n, 2)
    noise, rng = _check_noise(noise), _rng(rng)
    n0 = n // 2
    t0, t1 = np.linspace(0.0, np.pi, n0), np.linspace(0.0, np.pi, n - n0)
    X = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1),
                        np.stack([1.0 - np.cos(t1), 0.5 - np.sin(t1)], 1)])
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n - n0, np.int64)])
    X = X + noise * rng.standard_normal(X.shape)
    perm = rng.permutation(n)
    return X[perm], y[perm]


def make_circles(n=200, noise=0.05, factor=0.5, rng=None):
    """A circle of radius `factor` (class 1) inside a circle of radius 1 (class 0), plus Gaussian noise.

    n // 2 points on the outer circle, the rest on the inner one, in shuffled order; 0 < factor < 1.
    Returns X float64 (n, 2), y int64. rng None means np.random.default_rng(0).
    """
    n = _check_count("n", n, 2)
    if not 0.0 < factor < 1.0:
        raise ValueError(f"factor (inner radius / outer radius) must be in (0, 1), got {factor}")
    noise, rng = _check_noise(noise), _rng(rng)
    n0 = n // 2
    t0 = np.linspace(0.0, 2 * np.pi, n0, endpoint=False)
    t1 = np.linspace(0.0, 2 * np.pi, n - n0, endpoint=False)
    X = np.concatenate([np.stack([np.cos(t0), np.sin(t0)], 1),
                        factor * np.stack([np.cos(t1), np.sin(t1)], 1)])
    y = np.concatenate([np.zeros(n0, np.int64), np.ones(n - n0, np.int64)])
    X = X + noise * rng.standard_normal(X.shape)
    perm = rng.permutation(n)
    return X[perm], y[perm]


# ----------------------------------------------------------------------------------------------------------
# minibatches

def iterate_minibatches(X, y, batch_size, rng=None, shuffle=True, drop_last=False):
    """One epoch of minibatches: yields (X_batch, y_batch) covering every example exactly once.

    X: array (N, ...); y: array (N,) (or anything indexable along axis 0 with length N).
    shuffle=True draws a fresh permutation from `rng` (a numpy Generator, required) at each call, so
    calling this once per epoch with the same Generator reshuffles every epoch. shuffle=False keeps the
    order (and yields views). drop_last=True skips the final batch when it has fewer than batch_size rows.
    Arguments are checked when called, not at the first next().
    """
    X, y = np.asarray(X), np.asarray(y)
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y):
        raise ValueError(f"X and y must have the same number of examples (axis 0), got X {X.shape} and y {y.shape}")
    batch_size = _check_count("batch_size", batch_size)
    if shuffle:
        if not isinstance(rng, np.random.Generator):
            raise ValueError("iterate_minibatches(shuffle=True) needs rng=np.random.default_rng(seed) "
                             f"(a numpy Generator, reused across epochs), got {type(rng).__name__}; "
                             "or pass shuffle=False")
        order = rng.permutation(len(X))
    else:
        order = None
    n = len(X)
    stop = n - n % batch_size if drop_last else n

    def batches():
        for start in range(0, stop, batch_size):
            if order is None:
                yield X[start:start + batch_size], y[start:start + batch_size]
            else:
                idx = order[start:start + batch_size]
                yield X[idx], y[idx]

    return batches()
