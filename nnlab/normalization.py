"""Normalisation layers as forward/backward pairs in the cache pattern.

    out, cache          = batchnorm_forward(x, gamma, beta, bn_param)
    dx, dgamma, dbeta   = batchnorm_backward(dout, cache)       (or batchnorm_backward_alt)

Every layer computes xhat = (x - mean) / sqrt(var + eps) over some axes and returns
out = gamma * xhat + beta. They differ only in which axes the statistics are taken over:

    batchnorm          (N, D)        per feature, over the batch N        (train) / running stats (test)
    spatial_batchnorm  (N, C, H, W)  per channel, over N, H, W
    layernorm          (N, D)        per example, over the features D    (same in train and test)
    groupnorm          (N, C, H, W)  per example and group of C/G channels, over those channels and H, W

All variances are BIASED (divide by the number of values averaged), as in the lecture and in the
papers (Ioffe & Szegedy 2015; Ba et al. 2016; Wu & He 2018). Everything keeps the dtype of x.

Running averages and the direction of momentum
----------------------------------------------
We follow CS231n: running = momentum * running + (1 - momentum) * batch, default momentum = 0.9,
so momentum weights the OLD average. PyTorch's BatchNorm uses the opposite convention,
running = (1 - m) * running + m * batch with default m = 0.1: convert with torch_m = 1 - ours.
PyTorch also feeds the UNBIASED batch variance (times N/(N-1)) into running_var while it
normalises with the biased one; here both are biased by default, and
bn_param["unbiased_running_var"] = True reproduces PyTorch's choice.
"""

import numpy as np

from ._validate import as_float_array, check_same_dtype, check_shape

__all__ = [
    "batchnorm_forward", "batchnorm_backward", "batchnorm_backward_alt",
    "spatial_batchnorm_forward", "spatial_batchnorm_backward",
    "layernorm_forward", "layernorm_backward",
    "groupnorm_forward", "groupnorm_backward", "fold_batchnorm",
]


def _param(params, name, default):
    return default if params is None else params.get(name, default)


def _check_eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating, np.integer)) or not eps > 0:
        raise ValueError(f"eps must be a positive number, got {eps!r}")
    return eps


def _check_affine(x, gamma, beta, d):
    gamma = as_float_array("gamma", gamma)
    beta = as_float_array("beta", beta)
    check_shape("gamma", gamma, (d,))
    check_shape("beta", beta, (d,))
    check_same_dtype(x=x, gamma=gamma, beta=beta)
    return gamma, beta


def _check_dout(dout, shape):
    dout = as_float_array("dout", dout)
    if dout.shape != shape:
        raise ValueError(f"dout must have the shape of the forward output {shape}, got {dout.shape}")
    return dout


def _normalize(x, axis, eps):
    """Biased mean/variance over `axis` (kept as size-1 dims); returns xhat, inv_std."""
    mean = x.mean(axis=axis, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=axis, keepdims=True)
    inv_std = 1 / np.sqrt(var + x.dtype.type(eps))
    return xc * inv_std, inv_std, mean, var


def _normalize_backward(dxhat, xhat, inv_std, axis):
    """Closed-form gradient through xhat = (x - mean(x)) / sqrt(var(x) + eps) over `axis`:

        dx = inv_std * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))      (means over `axis`)
    """
    return inv_std * (dxhat - dxhat.mean(axis=axis, keepdims=True)
                      - xhat * (dxhat * xhat).mean(axis=axis, keepdims=True))


# ----------------------------------------------------------------------------- batchnorm
def batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation (Ioffe & Szegedy 2015) of (N, D) activations.

    Train mode, with mu, var the per-feature mean and BIASED variance of the batch:
        xhat = (x - mu) / sqrt(var + eps),       out = gamma * xhat + beta
        running_mean = momentum * running_mean + (1 - momentum) * mu
        running_var  = momentum * running_var  + (1 - momentum) * var
    Test mode normalises with running_mean / running_var instead, and changes nothing.

    momentum weights the OLD average (CS231n convention, default 0.9); PyTorch's momentum
    weights the new batch (default 0.1): torch_momentum = 1 - momentum.

    Args:
        x: (N, D).
        gamma, beta: (D,) scale and shift, dtype of x.
        bn_param: dict, read and updated:
            mode: "train" or "test" (required).
            eps: added to the variance (default 1e-5).
            momentum: in [0, 1] (default 0.9).
            running_mean, running_var: (D,); created on the first call as zeros / ones of the
                dtype of x. Train mode stores NEW arrays back in bn_param (the arrays passed in
                are not modified).
            unbiased_running_var: if True, running_var averages var * N / (N - 1) (as PyTorch
                does); default False. The normalisation always uses the biased variance.
    Returns:
        out: (N, D), dtype of x.
        cache: everything batchnorm_backward needs.
    """
    x = as_float_array("x", x, ndim=2)
    n, d = x.shape
    gamma, beta = _check_affine(x, gamma, beta, d)
    if not isinstance(bn_param, dict):
        raise ValueError(f"bn_param must be a dict, got {type(bn_param).__name__}")
    mode = bn_param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"bn_param['mode'] must be 'train' or 'test', got {mode!r}")
    eps = _check_eps(bn_param.get("eps", 1e-5))
    momentum = bn_param.get("momentum", 0.9)
    if isinstance(momentum, bool) or not isinstance(momentum, (int, float, np.floating, np.integer)) \
            or not 0 <= momentum <= 1:
        raise ValueError(f"bn_param['momentum'] must be in [0, 1] (it weights the OLD running average, "
                         f"CS231n convention; PyTorch's 0.1 is our 0.9), got {momentum!r}")
    f = x.dtype.type
    running = {}
    for key, fill in (("running_mean", 0), ("running_var", 1)):
        r = bn_param.get(key)
        if r is None:
            r = np.full(d, fill, dtype=x.dtype)
        else:
            r = as_float_array(f"bn_param['{key}']", r)
            check_shape(f"bn_param['{key}']", r, (d,))
            if r.dtype != x.dtype:
                raise ValueError(f"bn_param['{key}'] has dtype {r.dtype} but x has dtype {x.dtype}")
        running[key] = r

    if mode == "train":
        if n < 2:
            raise ValueError(f"batchnorm in train mode needs a batch of at least 2 examples, got x shape {x.shape}")
        xhat, inv_std, mean, var = _normalize(x, 0, eps)
        batch_var = var[0]
        if bn_param.get("unbiased_running_var", False):
            batch_var = batch_var * f(n / (n - 1))
        m = f(momentum)
        bn_param["running_mean"] = m * running["running_mean"] + (1 - m) * mean[0]
        bn_param["running_var"] = m * running["running_var"] + (1 - m) * batch_var
        cache = {"mode": mode, "x": x, "xhat": xhat, "xc": x - mean, "var": var,
                 "std": np.sqrt(var + f(eps)), "inv_std": inv_std, "gamma": gamma, "eps": eps}
    else:
        inv_std = 1 / np.sqrt(running["running_var"] + f(eps))
        xhat = (x - running["running_mean"]) * inv_std
        bn_param["running_mean"] = running["running_mean"]
        bn_param["running_var"] = running["running_var"]
        cache = {"mode": mode, "xhat": xhat, "inv_std": inv_std, "gamma": gamma}
    return gamma * xhat + beta, cache


def _test_mode_backward(dout, cache):
    # running statistics are constants: out = gamma * (x - rm) * inv_std + beta is affine in x.
    xhat, inv_std, gamma = cache["xhat"], cache["inv_std"], cache["gamma"]
    return dout * (gamma * inv_std), (dout * xhat).sum(axis=0), dout.sum(axis=0)


def batchnorm_backward(dout, cache):
    """Backward pass of batchnorm_forward, stage by stage through the computational graph.

    Forward graph (train mode): mu = mean(x); xc = x - mu; var = mean(xc^2); std = sqrt(var + eps);
    inv = 1/std; xhat = xc * inv; out = gamma * xhat + beta. Each stage below is the local
    derivative of one of these, times the gradient flowing in.

    Args:
        dout: (N, D).
        cache: from batchnorm_forward.
    Returns:
        dx: (N, D); dgamma, dbeta: (D,).
    """
    dout = _check_dout(dout, cache["xhat"].shape)
    if cache["mode"] == "test":
        return _test_mode_backward(dout, cache)
    xhat, xc, std, inv_std, gamma = (cache[k] for k in ("xhat", "xc", "std", "inv_std", "gamma"))
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)                       # out = ... + beta
    dgamma = (dout * xhat).sum(axis=0)             # out = gamma * xhat + ...
    dxhat = dout * gamma
    dxc = dxhat * inv_std                          # xhat = xc * inv  (the xc branch)
    dinv = (dxhat * xc).sum(axis=0, keepdims=True)  # (the inv branch)
    dstd = -dinv / (std * std)                     # inv = 1 / std
    dvar = dstd / (2 * std)                        # std = sqrt(var + eps)
    dxc = dxc + 2 * xc * dvar / n                  # var = mean(xc^2)
    dmu = -dxc.sum(axis=0, keepdims=True)          # xc = x - mu
    dx = dxc + dmu / n                             # mu = mean(x)
    return dx, dgamma, dbeta


def batchnorm_backward_alt(dout, cache):
    """Backward pass of batchnorm_forward in closed form (same result as batchnorm_backward):

        dx = (gamma * inv_std / N) * (N * dout - sum_n dout - xhat * sum_n (dout * xhat))
        dgamma = sum_n dout * xhat,   dbeta = sum_n dout

    Returns:
        dx: (N, D); dgamma, dbeta: (D,).
    """
    dout = _check_dout(dout, cache["xhat"].shape)
    if cache["mode"] == "test":
        return _test_mode_backward(dout, cache)
    xhat, inv_std, gamma = cache["xhat"], cache["inv_std"], cache["gamma"]
    n = dout.shape[0]
    dbeta = dout.sum(axis=0)
    dgamma = (dout * xhat).sum(axis=0)
    dx = (gamma * inv_std / n) * (n * dout - dbeta - xhat * dgamma)
    return dx, dgamma, dbeta


# ----------------------------------------------------------------------------- spatial batchnorm
def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    """Batch normalisation of (N, C, H, W) feature maps: one mean/variance per channel,
    taken over N, H and W. Same bn_param and conventions as batchnorm_forward (running stats (C,)).

    Implemented by moving channels last and reshaping to (N*H*W, C) for batchnorm_forward.

    Args:
        x: (N, C, H, W); gamma, beta: (C,).
    Returns:
        out: (N, C, H, W); cache for spatial_batchnorm_backward.
    """
    x = as_float_array("x", x, ndim=4)
    n, c, h, w = x.shape
    flat = x.transpose(0, 2, 3, 1).reshape(-1, c)
    out, cache = batchnorm_forward(flat, gamma, beta, bn_param)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), (cache, x.shape)


def spatial_batchnorm_backward(dout, cache):
    """Backward pass of spatial_batchnorm_forward.

    Returns:
        dx: (N, C, H, W); dgamma, dbeta: (C,).
    """
    bn_cache, shape = cache
    dout = _check_dout(dout, shape)
    n, c, h, w = shape
    dx, dgamma, dbeta = batchnorm_backward_alt(dout.transpose(0, 2, 3, 1).reshape(-1, c), bn_cache)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


# ----------------------------------------------------------------------------- layernorm
def layernorm_forward(x, gamma, beta, ln_param=None):
    """Layer normalisation (Ba et al. 2016): normalise each example over its D features.

        mu_n = mean_d x[n, d],  var_n = mean_d (x[n, d] - mu_n)^2  (biased)
        out = gamma * (x - mu_n) / sqrt(var_n + eps) + beta

    No running statistics: train and test behave identically (any "mode" is ignored).

    Args:
        x: (N, D); gamma, beta: (D,).
        ln_param: dict or None; eps (default 1e-5).
    Returns:
        out: (N, D); cache for layernorm_backward.
    """
    x = as_float_array("x", x, ndim=2)
    gamma, beta = _check_affine(x, gamma, beta, x.shape[1])
    eps = _check_eps(_param(ln_param, "eps", 1e-5))
    xhat, inv_std, _, _ = _normalize(x, 1, eps)
    return gamma * xhat + beta, (xhat, inv_std, gamma)


def layernorm_backward(dout, cache):
    """Backward pass of layernorm_forward: the batchnorm formula with the roles of the axes swapped,

        dxhat = dout * gamma
        dx = inv_std_n * (dxhat - mean_d dxhat - xhat * mean_d (dxhat * xhat))
        dgamma = sum_n dout * xhat,  dbeta = sum_n dout

    Returns:
        dx: (N, D); dgamma, dbeta: (D,).
    """
    xhat, inv_std, gamma = cache
    dout = _check_dout(dout, xhat.shape)
    dx = _normalize_backward(dout * gamma, xhat, inv_std, 1)
    return dx, (dout * xhat).sum(axis=0), dout.sum(axis=0)


# ----------------------------------------------------------------------------- groupnorm
def groupnorm_forward(x, gamma, beta, G, gn_param=None):
    """Group normalisation (Wu & He 2018): split the C channels of each example into G groups
    of C/G consecutive channels and normalise each group over its channels and positions.
    G = 1 is LayerNorm over (C, H, W); G = C is InstanceNorm. Same in train and test.

    Args:
        x: (N, C, H, W) (any (N, C, ...) works).
        gamma, beta: (C,) per-channel scale and shift (the same shape as for the other layers
            here; CS231n's (1, C, 1, 1) is also accepted, and then dgamma/dbeta come back in it).
        G: number of groups; must divide C.
        gn_param: dict or None; eps (default 1e-5).
    Returns:
        out: shape of x; cache for groupnorm_backward.
    """
    x = as_float_array("x", x, min_ndim=2)
    n, c = x.shape[:2]
    if isinstance(G, bool) or not isinstance(G, (int, np.integer)) or G < 1 or c % G:
        raise ValueError(f"G must be a positive integer that divides the {c} channels, got {G!r}")
    gshape = gamma.shape if isinstance(gamma, np.ndarray) else None
    bcast = (1, c) + (1,) * (x.ndim - 2)
    if isinstance(gamma, np.ndarray) and gamma.shape == bcast and x.ndim > 2:
        gamma = gamma.reshape(c)
    if isinstance(beta, np.ndarray) and beta.shape == bcast and x.ndim > 2:
        beta = beta.reshape(c)
    gamma, beta = _check_affine(x, gamma, beta, c)
    eps = _check_eps(_param(gn_param, "eps", 1e-5))
    xg = x.reshape(n, G, -1)
    xhat_g, inv_std, _, _ = _normalize(xg, 2, eps)
    xhat = xhat_g.reshape(x.shape)
    out = gamma.reshape(bcast) * xhat + beta.reshape(bcast)
    return out, (xhat, inv_std, gamma, G, gshape)


def groupnorm_backward(dout, cache):
    """Backward pass of groupnorm_forward (the layernorm formula applied within each group):

        dxhat = dout * gamma
        dx = inv_std_g * (dxhat - mean_g dxhat - xhat * mean_g (dxhat * xhat))
        dgamma = sum over N, H, W of dout * xhat,   dbeta = sum over N, H, W of dout

    Returns:
        dx: shape of x; dgamma, dbeta: shaped like the gamma passed to the forward pass.
    """
    xhat, inv_std, gamma, G, gshape = cache
    dout = _check_dout(dout, xhat.shape)
    n, c = xhat.shape[:2]
    bcast = (1, c) + (1,) * (xhat.ndim - 2)
    axes = (0,) + tuple(range(2, xhat.ndim))
    dgamma = (dout * xhat).sum(axis=axes).reshape(gshape)
    dbeta = dout.sum(axis=axes).reshape(gshape)
    dxhat = (dout * gamma.reshape(bcast)).reshape(n, G, -1)
    dx = _normalize_backward(dxhat, xhat.reshape(n, G, -1), inv_std, 2).reshape(xhat.shape)
    return dx, dgamma, dbeta


# ----------------------------------------------------------------------------- folding
def fold_batchnorm(w, b, gamma, beta, running_mean, running_var, eps=1e-5):
    """Fold a test-mode BatchNorm into the affine layer before it (for inference).

    BN_test(x @ w + b) = gamma * (x @ w + b - running_mean) / sqrt(running_var + eps) + beta
                       = x @ (w * s) + ((b - running_mean) * s + beta),   s = gamma / sqrt(running_var + eps)

    Args:
        w: (D, M); b, gamma, beta, running_mean, running_var: (M,), all of one dtype.
        eps: the eps the BatchNorm layer used.
    Returns:
        w_folded: (D, M), b_folded: (M,) with affine(x, w_folded, b_folded) == BN_test(affine(x, w, b)).
    """
    w = as_float_array("w", w, ndim=2)
    m = w.shape[1]
    arrays = {"b": b, "gamma": gamma, "beta": beta, "running_mean": running_mean, "running_var": running_var}
    for name, a in arrays.items():
        check_shape(name, as_float_array(name, a), (m,))
    check_same_dtype(w=w, **arrays)
    eps = _check_eps(eps)
    scale = gamma / np.sqrt(running_var + w.dtype.type(eps))
    return w * scale, (b - running_mean) * scale + beta
