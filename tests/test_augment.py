"""nnlab.augment: shapes and dtypes, determinism given the seed, per-image randomness, and exact
geometric identities (flip twice, zero shift, crops are windows of the padded input, 90-degree rotation)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnlab import augment as A
from nnlab.checks import assert_close


@pytest.fixture
def images(rng):
    return rng.standard_normal((6, 3, 10, 12)).astype(np.float32)


RANDOM_OPS = {
    "random_crop": lambda x, rng: A.random_crop(x, (8, 9), padding=2, rng=rng),
    "random_resized_crop": lambda x, rng: A.random_resized_crop(x, 7, rng=rng),
    "random_resized_crop_nearest": lambda x, rng: A.random_resized_crop(x, (5, 6), rng=rng, interpolation="nearest"),
    "horizontal_flip": lambda x, rng: A.horizontal_flip(x, rng=rng),
    "random_translate": lambda x, rng: A.random_translate(x, 3, rng=rng),
    "random_rotate": lambda x, rng: A.random_rotate(x, 30, rng=rng),
    "random_rotate_nearest": lambda x, rng: A.random_rotate(x, 30, rng=rng, interpolation="nearest"),
}
OUT_HW = {"random_crop": (8, 9), "random_resized_crop": (7, 7), "random_resized_crop_nearest": (5, 6)}


@pytest.mark.parametrize("op", RANDOM_OPS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.uint8])
def test_shape_dtype_determinism_and_no_aliasing(op, dtype):
    x = (np.random.default_rng(0).random((6, 3, 10, 12)) * 255).astype(dtype)
    before = x.copy()
    out = RANDOM_OPS[op](x, np.random.default_rng(7))
    again = RANDOM_OPS[op](x, np.random.default_rng(7))
    assert out.shape == (6, 3, *OUT_HW.get(op, (10, 12)))
    assert out.dtype == dtype, f"{op} must keep the dtype {np.dtype(dtype)}, got {out.dtype}"
    np.testing.assert_array_equal(out, again, err_msg=f"{op}: the same seed must give the same batch")
    np.testing.assert_array_equal(x, before, err_msg=f"{op} modified its input")
    assert not np.shares_memory(out, x), f"{op} must return a new array"


@pytest.mark.parametrize("op", ["random_crop", "random_resized_crop", "random_translate", "random_rotate"])
def test_randomness_is_per_image(op):
    one = np.random.default_rng(0).random((1, 1, 10, 12)).astype(np.float32)
    x = np.repeat(one, 16, axis=0)  # 16 copies of the same image
    out = RANDOM_OPS[op](x, np.random.default_rng(1))
    distinct = len({o.tobytes() for o in out})
    assert distinct > 4, f"{op} gave only {distinct} different results for 16 copies of one image"
    # and all channels of an image get the same transform
    rgb = np.repeat(x, 3, axis=1)
    out3 = RANDOM_OPS[op](rgb, np.random.default_rng(1))
    np.testing.assert_array_equal(out3[:, 0], out3[:, 2])


# ------------------------------------------------------------------------------------------ flips

def test_flip_twice_is_identity(images):
    once = A.horizontal_flip(images, rng=np.random.default_rng(3))
    twice = A.horizontal_flip(once, rng=np.random.default_rng(3))  # same seed -> same images flipped
    np.testing.assert_array_equal(twice, images)
    np.testing.assert_array_equal(A.horizontal_flip(images, p=1.0, rng=np.random.default_rng(0)),
                                  images[..., ::-1])
    np.testing.assert_array_equal(A.horizontal_flip(images, p=0.0, rng=np.random.default_rng(0)), images)


def test_flip_mirrors_columns_only_and_about_half_the_images(rng):
    x = rng.standard_normal((400, 1, 2, 3))
    out = A.horizontal_flip(x, rng=rng)
    flipped = np.all(out == x[..., ::-1], axis=(1, 2, 3))
    same = np.all(out == x, axis=(1, 2, 3))
    assert np.all(flipped | same), "each image is either unchanged or mirrored left-right (last axis)"
    assert 150 < flipped.sum() < 250
    with pytest.raises(ValueError, match="p"):
        A.horizontal_flip(x, p=1.5, rng=rng)


# ------------------------------------------------------------------------------------------ crops, shifts

@pytest.mark.parametrize("padding", [0, 1, 3])
def test_crop_is_a_window_of_the_padded_input(images, padding):
    out = A.random_crop(images, (7, 8), padding=padding, rng=np.random.default_rng(4))
    padded = np.pad(images, ((0, 0), (0, 0), (padding,) * 2, (padding,) * 2))
    H, W = padded.shape[2:]
    for n in range(len(images)):
        windows = [(t, l) for t in range(H - 7 + 1) for l in range(W - 8 + 1)
                   if np.array_equal(padded[n, :, t:t + 7, l:l + 8], out[n])]
        assert windows, f"crop of image {n} is not a 7x8 window of the zero-padded image"


def test_crop_full_size_without_padding_is_identity(images):
    np.testing.assert_array_equal(A.random_crop(images, (10, 12), rng=np.random.default_rng(0)), images)
    with pytest.raises(ValueError, match="larger than the padded image"):
        A.random_crop(images, 13, padding=0, rng=np.random.default_rng(0))


def test_zero_translation_is_identity(images):
    out = A.random_translate(images, 0, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(out, images)
    assert not np.shares_memory(out, images)


def test_translation_moves_content_and_fills_zeros(rng):
    x = rng.random((50, 2, 6, 7)) + 1.0  # strictly positive, so zeros can only come from the fill
    out = A.random_translate(x, 2, rng=rng)
    for n in range(len(x)):
        found = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = np.zeros_like(x[n])
                src = x[n][:, max(0, -dy):6 - max(0, dy), max(0, -dx):7 - max(0, dx)]
                shifted[:, max(0, dy):max(0, dy) + src.shape[1], max(0, dx):max(0, dx) + src.shape[2]] = src
                found |= np.array_equal(out[n], shifted)
        assert found, f"image {n} is not x shifted by integers in [-2, 2] with zero fill"


# ------------------------------------------------------------------------------------------ resize, resized crop

def test_resized_crop_of_the_whole_image_is_identity(rng):
    x = rng.standard_normal((4, 2, 9, 9))
    out = A.random_resized_crop(x, 9, scale=(1.0, 1.0), ratio=(1.0, 1.0), rng=rng)
    assert_close(out, x, atol=1e-12, name="resized crop with scale=1, ratio=1, same size")
    assert_close(A.resize(x, (9, 9)), x, atol=1e-12, name="resize to the same size")


def test_resize_of_constant_and_linear_images(rng):
    x = np.full((2, 1, 5, 5), 3.0)
    assert_close(A.resize(x, (8, 3)), np.full((2, 1, 8, 3), 3.0))
    ramp = np.tile(np.arange(8.0), (1, 1, 4, 1))  # value = column index
    half = A.resize(ramp, (4, 4))
    assert_close(half[0, 0, 0], np.array([0.5, 2.5, 4.5, 6.5]), name="bilinear 2x downsample of a ramp")
    near = A.resize(ramp, (4, 16), interpolation="nearest")
    assert set(np.unique(near)) <= set(range(8))


def test_resized_crop_content_comes_from_the_image(rng):
    x = np.broadcast_to(np.arange(20.0)[None, None, :, None], (8, 1, 20, 20)).copy()  # value = row
    out = A.random_resized_crop(x, (6, 6), scale=(0.1, 0.5), rng=rng)
    rows = out[:, 0, :, 0]
    assert np.all(np.diff(rows, axis=1) >= 0), "row order must be preserved (no flip/transpose)"
    assert np.all(out >= 0) and np.all(out <= 19)
    assert len({tuple(r) for r in rows}) > 1


def test_resized_crop_bad_arguments(images):
    with pytest.raises(ValueError, match="scale"):
        A.random_resized_crop(images, 4, scale=(0.5, 0.1), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="ratio"):
        A.random_resized_crop(images, 4, ratio=(0, 1), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match="interpolation"):
        A.random_resized_crop(images, 4, rng=np.random.default_rng(0), interpolation="cubic")


# ------------------------------------------------------------------------------------------ rotation

@pytest.mark.parametrize("interpolation", ["nearest", "bilinear"])
def test_rotation_by_right_angles(images, interpolation):
    sq = images[..., :10]
    assert_close(A.rotate(sq, 90, interpolation), np.rot90(sq, 1, axes=(2, 3)), atol=1e-6,
                 name="rotate(x, 90) (counter-clockwise as displayed)",
                 mistakes={"rotated clockwise": np.rot90(sq, -1, axes=(2, 3))})
    assert_close(A.rotate(sq, 180, interpolation), sq[..., ::-1, ::-1], atol=1e-6)
    assert_close(A.rotate(images, 0, interpolation), images, atol=0)


def test_random_rotate_zero_degrees_is_identity(images):
    np.testing.assert_array_equal(A.random_rotate(images, 0, rng=np.random.default_rng(0)), images)


def test_rotation_keeps_the_centre_and_fills_corners():
    x = np.ones((1, 1, 9, 9))
    out = A.rotate(x, 45)
    assert out[0, 0, 4, 4] == 1.0
    assert out[0, 0, 0, 0] == 0.0, "corners rotated in from outside the image must be filled with 0"
    assert_close(A.rotate(x, 45, fill=0.5)[0, 0, 0, 0], 0.5)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 4), c=st.integers(1, 3), h=st.integers(2, 9), w=st.integers(2, 9), seed=st.integers(0, 99))
def test_every_op_keeps_n_and_c_for_random_shapes(n, c, h, w, seed):
    x = np.random.default_rng(seed).standard_normal((n, c, h, w))
    rng = np.random.default_rng(seed)
    assert A.random_crop(x, (h, w), padding=1, rng=rng).shape == x.shape
    assert A.random_translate(x, 1, rng=rng).shape == x.shape
    assert A.random_rotate(x, 20, rng=rng).shape == x.shape
    assert A.horizontal_flip(x, rng=rng).shape == x.shape
    assert A.random_resized_crop(x, (3, 4), rng=rng).shape == (n, c, 3, 4)


def test_bad_inputs_name_the_argument(images):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        A.horizontal_flip(images[0], rng=rng)
    with pytest.raises(ValueError, match="rng"):
        A.random_crop(images, 4)
    with pytest.raises(ValueError, match="padding"):
        A.random_crop(images, 4, padding=-1, rng=rng)
    with pytest.raises(ValueError, match="max_shift"):
        A.random_translate(images, 1.5, rng=rng)
    with pytest.raises(ValueError, match="max_degrees"):
        A.random_rotate(images, -3, rng=rng)
