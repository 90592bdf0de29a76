"""Build datasets/colour_patches.npz: 32x32 colour patches cut from the two photographs in scikit-learn's wheel.

The course needs a little colour image data that ships offline (CIFAR-10 is optional and never shipped).
scikit-learn's wheel carries two JPEG photographs, sklearn/datasets/images/china.jpg (a temple) and
flower.jpg (a flower), each 427 x 640 pixels, RGB, licensed CC BY 2.0 (see datasets/README.md). This
script cuts them into small patches. Nothing is installed; the wheel is read as a zip file.

    .venv/bin/python -m pip download scikit-learn==1.9.1 --no-deps -d /tmp/dl
    .venv/bin/python datasets/build_colour_patches.py /tmp/dl

The rule (deterministic, np.random.default_rng(0)):
  * label 0 = china.jpg, label 1 = flower.jpg ("which photo" the patch comes from);
  * each photo is split by COLUMNS into three disjoint strips: x in [0, 448) for training, [448, 544) for
    validation, [544, 640) for test, so no pixel appears in patches of two different splits;
  * from each strip, top-left corners (row, col) are drawn uniformly with rng.integers so that the 32x32
    patch lies inside the strip: 700 training, 150 validation and 150 test patches per photo
    (patches of the same split may overlap);
  * order of drawing: for split in (train, val, test), for photo in (china, flower): rows then cols.
  * the patches of each split are then shuffled with the same rng, and all splits concatenated
    (train first), with train_idx / val_idx / test_idx pointing into them.

Stored (like the other course datasets: a zip of .npy arrays, no pickles, fixed zip timestamps):
  images    uint8 (2000, 3, 32, 32)   channel order R, G, B; values 0..255
  labels    uint8 (2000,)             0 = china.jpg, 1 = flower.jpg
  train_idx int32 (1400,), val_idx int32 (300,), test_idx int32 (300,)

JPEG decoding uses Pillow (installed with matplotlib). Decoders agree on baseline JPEGs in practice; if
a different libjpeg ever changes a pixel value, the sha256 printed at the end will differ from the one
in datasets/README.md, and the patches will still be equivalent for the course.
"""

import glob
import hashlib
import io
import os
import sys
import zipfile

import numpy as np

from build_datasets import save_npz_deterministic  # the same reproducible writer (this folder)

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "colour_patches.npz")
PHOTOS = ("china.jpg", "flower.jpg")          # label = index in this tuple
SIDE = 32
STRIPS = {"train": (0, 448), "val": (448, 544), "test": (544, 640)}   # column ranges [start, stop)
PER_PHOTO = {"train": 700, "val": 150, "test": 150}


def read_photos(wheel_dir):
    """Return the two photographs as uint8 arrays (H, W, 3), read from the scikit-learn wheel."""
    from PIL import Image  # Pillow: a dependency of matplotlib

    wheels = sorted(glob.glob(os.path.join(wheel_dir, "scikit_learn-*.whl")))
    if not wheels:
        sys.exit(f"no scikit-learn wheel in {wheel_dir}; download it first (see this script's docstring)")
    photos = []
    with zipfile.ZipFile(wheels[-1]) as zf:
        for name in PHOTOS:
            with Image.open(io.BytesIO(zf.read(f"sklearn/datasets/images/{name}"))) as img:
                photos.append(np.asarray(img.convert("RGB"), dtype=np.uint8))
    print(f"read {', '.join(PHOTOS)} from {os.path.basename(wheels[-1])}: shapes {[p.shape for p in photos]}")
    return photos


def cut_patches(photos, seed=0):
    rng = np.random.default_rng(seed)
    images, labels, index = [], [], {}
    start = 0
    for split, (c0, c1) in STRIPS.items():
        imgs, labs = [], []
        for label, photo in enumerate(photos):
            h, w, _ = photo.shape
            if w < c1:
                sys.exit(f"{PHOTOS[label]} is {w} pixels wide; expected at least {c1}")
            n = PER_PHOTO[split]
            rows = rng.integers(0, h - SIDE + 1, size=n)
            cols = rng.integers(c0, c1 - SIDE + 1, size=n)
            for r, c in zip(rows, cols):
                imgs.append(photo[r:r + SIDE, c:c + SIDE].transpose(2, 0, 1))
            labs.append(np.full(n, label, dtype=np.uint8))
        imgs, labs = np.stack(imgs), np.concatenate(labs)
        perm = rng.permutation(len(imgs))
        images.append(imgs[perm])
        labels.append(labs[perm])
        index[split] = np.arange(start, start + len(imgs), dtype=np.int32)
        start += len(imgs)
    return np.concatenate(images), np.concatenate(labels), index


def main(wheel_dir):
    images, labels, index = cut_patches(read_photos(wheel_dir))
    assert images.shape == (2000, 3, SIDE, SIDE) and images.dtype == np.uint8
    save_npz_deterministic(OUT, images=images, labels=labels, train_idx=index["train"],
                           val_idx=index["val"], test_idx=index["test"])
    with open(OUT, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    print(f"wrote {OUT}: images {images.shape} uint8, labels {labels.shape} uint8 (0 = china, 1 = flower), "
          f"split {len(index['train'])}/{len(index['val'])}/{len(index['test'])}, "
          f"{os.path.getsize(OUT) / 1e6:.2f} MB\n  sha256 {digest}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "/tmp/dl")
