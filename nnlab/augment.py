"""Data augmentation on image batches x of shape (N, C, H, W), in numpy.

Every function returns a NEW array of the same dtype as x (integer images are rounded and clipped to the
dtype's range after interpolation) and draws one random choice PER IMAGE from the Generator ``rng``
(required): the same seed gives the same augmented batch. All channels of an image get the same transform.

Geometry: pixel (i, j) has its centre at coordinates (i, j); resampling uses inverse mapping (for each
output pixel, find where it comes from in the input and interpolate there), with zeros (``fill``) for
points that fall outside the input.

Functions: random_crop (pad then crop, CIFAR style), random_resized_crop (Inception / torchvision style),
horizontal_flip, random_translate, random_rotate; deterministic helpers: crop, rotate, resize.
"""

import math

import numpy as np

__all__ = ["random_crop", "random_resized_crop", "horizontal_flip", "random_translate", "random_rotate",
           "crop", "rotate", "resize"]


# ------------------------------------------------------------------------------------------------ checks

def _images(x):
    if not isinstance(x, np.ndarray):
        raise ValueError(f"x must be a numpy array of images (N, C, H, W), got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {x.shape}")
    if x.dtype.kind not in "fiub":
        raise ValueError(f"x must hold numbers, got dtype {x.dtype}")
    return x


def _gen(rng):
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"rng must be a numpy Generator, e.g. rng=np.random.default_rng(0), got {type(rng).__name__}")
    return rng


def _size2(name, size):
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        size = (int(size), int(size))
    try:
        h, w = (int(s) for s in size)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int or a pair (height, width), got {size!r}") from None
    if h < 1 or w < 1:
        raise ValueError(f"{name} must be positive, got {size!r}")
    return h, w


def _nonneg_int(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
        raise ValueError(f"{name} must be a non-negative int, got {v!r}")
    return int(v)


def _work_dtype(dtype):
    return dtype if dtype.kind == "f" else np.dtype(np.float32)


def _cast_back(values, dtype):
    if dtype.kind == "f":
        return values.astype(dtype, copy=False)
    if dtype.kind == "b":
        return values >= 0.5
    info = np.iinfo(dtype)
    return np.clip(np.rint(values), info.min, info.max).astype(dtype)


# ------------------------------------------------------------------------------------------------ sampling

def _gather(x, rows, cols):
    """x (N,C,H,W); rows (N,Ho,Wo) / cols (N,Ho,Wo) integer, in range -> (N,C,Ho,Wo)."""
    n = np.arange(x.shape[0])[:, None, None]
    return np.moveaxis(x[n, :, rows, cols], -1, 1)  # advanced indices first: (N,Ho,Wo,C)


def _sample(x, ys, xs, interpolation="bilinear", fill=0.0):
    """Sample each image of x at real coordinates (ys[n], xs[n]) (each (N, Ho, Wo)) -> (N, C, Ho, Wo).

    Points outside [0, H-1] x [0, W-1] (beyond half a pixel for nearest) get `fill`.
    Returns the working float dtype; the caller casts back.
    """
    if interpolation not in ("bilinear", "nearest"):
        raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}")
    wd = _work_dtype(x.dtype)
    xf = x.astype(wd, copy=False)
    H, W = x.shape[2:]
    if interpolation == "nearest":
        r, c = np.floor(ys + 0.5).astype(np.intp), np.floor(xs + 0.5).astype(np.intp)
        inside = (r >= 0) & (r < H) & (c >= 0) & (c < W)
        out = _gather(xf, np.clip(r, 0, H - 1), np.clip(c, 0, W - 1))
        return np.where(inside[:, None], out, wd.type(fill))
    eps = 1e-6  # points on the last row/column (up to rounding) are inside
    inside = (ys >= -eps) & (ys <= H - 1 + eps) & (xs >= -eps) & (xs <= W - 1 + eps)
    ys, xs = np.clip(ys, 0, H - 1), np.clip(xs, 0, W - 1)
    y0 = np.minimum(np.floor(ys).astype(np.intp), max(H - 2, 0))
    x0 = np.minimum(np.floor(xs).astype(np.intp), max(W - 2, 0))
    y1, x1 = np.minimum(y0 + 1, H - 1), np.minimum(x0 + 1, W - 1)
    wy, wx = (ys - y0).astype(wd)[:, None], (xs - x0).astype(wd)[:, None]
    top = _gather(xf, y0, x0) * (1 - wx) + _gather(xf, y0, x1) * wx
    bottom = _gather(xf, y1, x0) * (1 - wx) + _gather(xf, y1, x1) * wx
    out = top * (1 - wy) + bottom * wy
    return np.where(inside[:, None], out, wd.type(fill))


# ------------------------------------------------------------------------------------------------ crops

def crop(x, top, left, size):
    """Deterministic per-image crop: out[n] = x[n, :, top[n]:top[n]+h, left[n]:left[n]+w].

    x (N, C, H, W); top, left int arrays (N,); size int or (h, w). Windows must lie inside x.
    """
    x = _images(x)
    h, w = _size2("size", size)
    top, left = np.asarray(top, dtype=np.intp), np.asarray(left, dtype=np.intp)
    N, _, H, W = x.shape
    if top.shape != (N,) or left.shape != (N,):
        raise ValueError(f"top and left must have shape ({N},), got {top.shape} and {left.shape}")
    if N and (top.min() < 0 or left.min() < 0 or top.max() + h > H or left.max() + w > W):
        raise ValueError(f"crop windows of size ({h}, {w}) must lie inside images of size ({H}, {W})")
    rows = (top[:, None] + np.arange(h))[:, :, None] + np.zeros((1, 1, w), np.intp)
    cols = (left[:, None] + np.arange(w))[:, None, :] + np.zeros((1, h, 1), np.intp)
    return _gather(x, rows, cols)


def random_crop(x, size, padding=0, rng=None, fill=0):
    """Pad each image with `padding` pixels of `fill` on every side, then cut a random size window.

    x (N, C, H, W) -> (N, C, h, w). Each image's window offset is uniform over all positions that fit
    inside the padded image, so out[n] == padded[n, :, t:t+h, l:l+w] for some t, l (CIFAR: size 32, padding 4).
    """
    x, rng = _images(x), _gen(rng)
    h, w = _size2("size", size)
    p = _nonneg_int("padding", padding)
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill) if p else x
    Hp, Wp = xp.shape[2:]
    if h > Hp or w > Wp:
        raise ValueError(f"size ({h}, {w}) is larger than the padded image ({Hp}, {Wp})")
    top = rng.integers(0, Hp - h + 1, size=len(x))
    left = rng.integers(0, Wp - w + 1, size=len(x))
    return crop(xp, top, left, (h, w))


def resize(x, size, interpolation="bilinear"):
    """Resize every image to size (h, w) (pixel centres aligned, as in OpenCV / torchvision without
    antialiasing): output pixel i samples input row (i + 0.5) * H / h - 0.5. Same-size resize is identity."""
    x = _images(x)
    N, _, H, W = x.shape
    return _resize_boxes(x, np.zeros(N), np.zeros(N), np.full(N, float(H)), np.full(N, float(W)),
                         _size2("size", size), interpolation)


def _resize_boxes(x, top, left, bh, bw, size, interpolation):
    """Resample the box [top, top+bh) x [left, left+bw) (pixel edges) of each image to `size`."""
    h, w = size
    i = (np.arange(h) + 0.5)[None, :] * (bh[:, None] / h) - 0.5 + top[:, None]     # (N, h)
    j = (np.arange(w) + 0.5)[None, :] * (bw[:, None] / w) - 0.5 + left[:, None]    # (N, w)
    H, W = x.shape[2:]
    ys = np.broadcast_to(np.clip(i, 0, H - 1)[:, :, None], (len(x), h, w))
    xs = np.broadcast_to(np.clip(j, 0, W - 1)[:, None, :], (len(x), h, w))
    return _cast_back(_sample(x, ys, xs, interpolation), x.dtype)


def random_resized_crop(x, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), rng=None, interpolation="bilinear"):
    """Cut a random box of random area and aspect ratio from each image and resize it to `size`
    (the Inception / torchvision RandomResizedCrop).

    For each image: area fraction s ~ U(scale), aspect ratio r = w/h log-uniform in `ratio`,
    box w = sqrt(s*H*W*r), h = sqrt(s*H*W/r) (rounded); up to 10 draws until the box fits, else the
    central box of the whole image clamped to `ratio`. Position uniform. x (N,C,H,W) -> (N,C,h_out,w_out).
    """
    x, rng = _images(x), _gen(rng)
    out_size = _size2("size", size)
    lo, hi = (float(v) for v in scale)
    if not 0 < lo <= hi <= 1:
        raise ValueError(f"scale must be (min, max) with 0 < min <= max <= 1, got {scale}")
    rlo, rhi = (float(v) for v in ratio)
    if not 0 < rlo <= rhi:
        raise ValueError(f"ratio must be (min, max) with 0 < min <= max, got {ratio}")
    N, _, H, W = x.shape
    tries = 10
    area = H * W * rng.uniform(lo, hi, size=(N, tries))
    r = np.exp(rng.uniform(math.log(rlo), math.log(rhi), size=(N, tries)))
    bw = np.rint(np.sqrt(area * r))
    bh = np.rint(np.sqrt(area / r))
    ok = (bw >= 1) & (bh >= 1) & (bw <= W) & (bh <= H)
    first = np.argmax(ok, axis=1)
    found = ok[np.arange(N), first]
    bw, bh = bw[np.arange(N), first], bh[np.arange(N), first]
    # fallback: central crop of the whole image with the aspect ratio clamped into `ratio`
    in_ratio = W / H
    if in_ratio < rlo:
        fw, fh = W, round(W / rlo)
    elif in_ratio > rhi:
        fw, fh = round(H * rhi), H
    else:
        fw, fh = W, H
    bw, bh = np.where(found, bw, fw), np.where(found, bh, fh)
    u = rng.random((2, N))
    top = np.where(found, np.floor(u[0] * (H - bh + 1)), (H - fh) // 2)
    left = np.where(found, np.floor(u[1] * (W - bw + 1)), (W - fw) // 2)
    return _resize_boxes(x, top, left, bh, bw, out_size, interpolation)


# ------------------------------------------------------------------------------------------------ flips, shifts

def horizontal_flip(x, p=0.5, rng=None):
    """Mirror each image left-right with probability p (independently per image). Returns a copy."""
    x, rng = _images(x), _gen(rng)
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p (probability of flipping an image) must be in [0, 1], got {p}")
    flip = rng.random(len(x)) < p
    out = x.copy()
    out[flip] = x[flip][..., ::-1]
    return out


def random_translate(x, max_shift, rng=None, fill=0):
    """Shift each image by integers (dy, dx), each uniform in [-max_shift, max_shift]; pixels shifted in
    from outside are `fill`. out[n, :, i, j] = x[n, :, i - dy, j - dx]. max_shift=0 returns a copy of x."""
    x, rng = _images(x), _gen(rng)
    m = _nonneg_int("max_shift", max_shift)
    N, _, H, W = x.shape
    shift = rng.integers(-m, m + 1, size=(2, N))
    xp = np.pad(x, ((0, 0), (0, 0), (m, m), (m, m)), constant_values=fill) if m else x
    return crop(xp, m - shift[0], m - shift[1], (H, W))


# ------------------------------------------------------------------------------------------------ rotation

def rotate(x, degrees, interpolation="bilinear", fill=0):
    """Rotate image n by degrees[n] counter-clockwise (as displayed, row 0 at the top) about its centre.

    Inverse mapping: output pixel (i, j) takes the input at the centre c + R(-theta) ((i, j) - c);
    points from outside the input are `fill`. x (N, C, H, W), degrees (N,) or a scalar -> same shape.
    """
    x = _images(x)
    N, _, H, W = x.shape
    theta = np.deg2rad(np.broadcast_to(np.asarray(degrees, dtype=np.float64), (N,)))
    cy, cx = (H - 1) / 2.0, (W - 1) / 2.0
    i = np.arange(H, dtype=np.float64)[None, :, None] - cy     # (1, H, 1): downwards
    j = np.arange(W, dtype=np.float64)[None, None, :] - cx     # (1, 1, W): rightwards
    cos, sin = np.cos(theta)[:, None, None], np.sin(theta)[:, None, None]
    # in upward coordinates (u, v) = (j, -i) the output is R(theta) applied to the source, so the source
    # is R(-theta) applied to the output: u_s = cos*u + sin*v, v_s = -sin*u + cos*v; back to (i, j):
    ys = cy + cos * i + sin * j
    xs = cx + cos * j - sin * i
    ys, xs = np.broadcast_to(ys, (N, H, W)), np.broadcast_to(xs, (N, H, W))
    return _cast_back(_sample(x, ys, xs, interpolation, fill), x.dtype)


def random_rotate(x, max_degrees, rng=None, interpolation="bilinear", fill=0):
    """Rotate each image by an angle uniform in [-max_degrees, max_degrees] (see ``rotate``)."""
    x, rng = _images(x), _gen(rng)
    if not max_degrees >= 0:
        raise ValueError(f"max_degrees must be >= 0, got {max_degrees}")
    angles = rng.uniform(-max_degrees, max_degrees, size=len(x))
    return rotate(x, angles, interpolation, fill)
