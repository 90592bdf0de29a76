"""Regularisation: dropout (cache pattern), weight penalties, and ensembles.

    out, cache = dropout_forward(x, dropout_param)      dx = dropout_backward(dout, cache)
    loss, dW   = l2_penalty(W, lam)                     (also l1_penalty, elastic_net_penalty)
    labels     = ensemble_predict([probs_model_1, probs_model_2, ...])

Conventions (as in the lectures):
- dropout's p is the probability of DROPPING a unit (as in PyTorch; some papers use the
  probability of keeping it). The default "inverted" dropout scales the kept units by 1/(1-p)
  at training time so that nothing changes at test time.
- L2 penalty is lam/2 * ||W||^2 with gradient lam * W. Penalise weight matrices only, not biases.
"""

import numpy as np

from ._validate import as_float_array, check_probability

__all__ = ["dropout_forward", "dropout_backward", "l2_penalty", "l1_penalty", "elastic_net_penalty",
           "ensemble_probabilities", "ensemble_predict"]


# ----------------------------------------------------------------------------- dropout
def dropout_forward(x, dropout_param):
    """Dropout (Srivastava et al. 2014): zero each unit independently with probability p.

    variant "inverted" (default):
        train: mask_i ~ Bernoulli(1 - p) (1 = keep),  out = x * mask / (1 - p)
        test:  out = x  (x itself, not a copy)        (E[train output] = x, so nothing to do)
    variant "scale_at_test" (the original paper's formulation):
        train: out = x * mask
        test:  out = x * (1 - p)                      (matches the expected train output)

    Args:
        x: array of any shape.
        dropout_param: dict with
            p: probability of DROPPING a unit, in [0, 1) (required). p = 0 is the identity.
            mode: "train" or "test" (required).
            rng: numpy.random.Generator, required in train mode (the mask is drawn from it with
                rng.random(x.shape), so the same generator state gives the same mask in float32
                and float64).
            variant: "inverted" (default) or "scale_at_test".
    Returns:
        out: shape and dtype of x.
        cache: (mode, variant, mask) where mask is what dout is multiplied by in the backward
            pass (the scaled 0/1 mask in train mode, a scalar in test mode).
    """
    x = as_float_array("x", x)
    if not isinstance(dropout_param, dict):
        raise ValueError(f"dropout_param must be a dict, got {type(dropout_param).__name__}")
    if "p" not in dropout_param:
        raise ValueError("dropout_param['p'] (the probability of DROPPING a unit) is required")
    p = dropout_param["p"]
    if isinstance(p, bool) or not isinstance(p, (int, float, np.integer, np.floating)):
        raise ValueError(f"dropout_param['p'] must be a number in [0, 1), got {p!r}")
    check_probability("dropout_param['p'] (the probability of DROPPING a unit)", p)
    mode = dropout_param.get("mode")
    if mode not in ("train", "test"):
        raise ValueError(f"dropout_param['mode'] must be 'train' or 'test', got {mode!r}")
    variant = dropout_param.get("variant", "inverted")
    if variant not in ("inverted", "scale_at_test"):
        raise ValueError(f"dropout_param['variant'] must be 'inverted' or 'scale_at_test', got {variant!r}")
    keep = x.dtype.type(1 - p)

    if mode == "train":
        rng = dropout_param.get("rng")
        if not isinstance(rng, np.random.Generator):
            raise ValueError("dropout_param['rng'] must be a numpy.random.Generator in train mode "
                             f"(e.g. np.random.default_rng(0)), got {rng!r}")
        mask = (rng.random(x.shape) >= p).astype(x.dtype)
        if variant == "inverted":
            mask /= keep
        return x * mask, (mode, variant, mask)
    if variant == "inverted":
        return x, (mode, variant, x.dtype.type(1))
    return x * keep, (mode, variant, keep)


def dropout_backward(dout, cache):
    """Backward pass of dropout_forward: dx = dout * (what x was multiplied by).

    train: dx = dout * mask / (1 - p) (inverted) or dout * mask (scale_at_test);
    test:  dx = dout (inverted) or dout * (1 - p) (scale_at_test).

    Returns:
        dx: shape of dout.
    """
    mode, variant, mask = cache
    dout = as_float_array("dout", dout)
    if mode == "train" and dout.shape != mask.shape:
        raise ValueError(f"dout must have the shape of the forward output {mask.shape}, got {dout.shape}")
    if mode == "test" and variant == "inverted":
        return dout
    return dout * mask


# ----------------------------------------------------------------------------- penalties
def _check_lam(lam):
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.integer, np.floating)) or not lam >= 0:
        raise ValueError(f"lam (the regularisation strength) must be a number >= 0, got {lam!r}")
    return lam


def _penalty(W, lam, loss_and_grad):
    """Apply loss_and_grad to one array, or to each array of a list/tuple (losses summed)."""
    _check_lam(lam)
    if isinstance(W, (list, tuple)):
        if not W:
            raise ValueError("W must be an array or a non-empty list of arrays, got an empty list")
        results = [loss_and_grad(as_float_array(f"W[{i}]", w)) for i, w in enumerate(W)]
        return sum(r[0] for r in results), [r[1] for r in results]
    return loss_and_grad(as_float_array("W", W))


def l2_penalty(W, lam):
    """L2 penalty ("weight decay"):  R = lam/2 * sum W^2,  dR/dW = lam * W.

    Args:
        W: a weight array, or a list of them (biases are not penalised: do not pass them).
        lam: strength >= 0.
    Returns:
        loss: Python float (summed over the list).
        dW: array shaped and typed like W (a list of them for a list).
    """
    def one(w):
        return 0.5 * float(lam) * float(np.sum(w * w, dtype=np.float64)), w * w.dtype.type(lam)
    return _penalty(W, lam, one)


def l1_penalty(W, lam):
    """L1 penalty:  R = lam * sum |W|,  dR/dW = lam * sign(W).

    |w| has no derivative at 0; we use the subgradient 0 there (np.sign(0) = 0).

    Returns:
        loss: Python float; dW: shaped like W (a list of them for a list).
    """
    def one(w):
        return float(lam) * float(np.sum(np.abs(w), dtype=np.float64)), np.sign(w) * w.dtype.type(lam)
    return _penalty(W, lam, one)


def elastic_net_penalty(W, lam, l1_ratio=0.5):
    """Elastic net (Zou & Hastie 2005), a mix of L1 and L2 (the parametrisation of scikit-learn):

        R = lam * (l1_ratio * sum |W| + (1 - l1_ratio)/2 * sum W^2)
        dR/dW = lam * (l1_ratio * sign(W) + (1 - l1_ratio) * W)      (subgradient 0 at W = 0)

    l1_ratio = 1 is l1_penalty, l1_ratio = 0 is l2_penalty.

    Returns:
        loss: Python float; dW: shaped like W (a list of them for a list).
    """
    if isinstance(l1_ratio, bool) or not isinstance(l1_ratio, (int, float, np.integer, np.floating)) \
            or not 0 <= l1_ratio <= 1:
        raise ValueError(f"l1_ratio must be in [0, 1], got {l1_ratio!r}")
    r = float(l1_ratio)

    def one(w):
        f = w.dtype.type
        loss = float(lam) * (r * float(np.sum(np.abs(w), dtype=np.float64))
                      + (1 - r) / 2 * float(np.sum(w * w, dtype=np.float64)))
        return loss, f(lam) * (f(r) * np.sign(w) + f(1 - r) * w)
    return _penalty(W, lam, one)


# ----------------------------------------------------------------------------- ensembles
def ensemble_probabilities(prob_list):
    """Average the class probabilities of several models: mean over models of (N, C) arrays.

    Args:
        prob_list: list of K arrays (N, C) (each row a probability distribution), or a (K, N, C) array.
    Returns:
        (N, C) mean probabilities.
    """
    if isinstance(prob_list, np.ndarray):
        probs = as_float_array("prob_list", prob_list, ndim=3)
    else:
        if not isinstance(prob_list, (list, tuple)) or not prob_list:
            raise ValueError("prob_list must be a non-empty list of (N, C) probability arrays")
        arrays = [as_float_array(f"prob_list[{i}]", p, ndim=2) for i, p in enumerate(prob_list)]
        for i, p in enumerate(arrays):
            if p.shape != arrays[0].shape:
                raise ValueError(f"prob_list[{i}] has shape {p.shape}, but prob_list[0] has shape "
                                 f"{arrays[0].shape}: every model must score the same (N, C) examples")
        probs = np.stack(arrays)
    if probs.shape[0] == 0:
        raise ValueError("prob_list must hold at least one model's probabilities")
    return probs.mean(axis=0)


def ensemble_predict(prob_list):
    """Ensemble prediction: average the models' probabilities, then take the argmax per example.

    (Average probabilities, not votes or scores: a model that is unsure counts for less.)

    Returns:
        labels: (N,) int64.
    """
    return np.argmax(ensemble_probabilities(prob_list), axis=1).astype(np.int64)
