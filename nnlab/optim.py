"""Update rules. Every rule has one shape:

    next_w = rule(w, dw, state, **hyper)

`state` is a dict the rule fills on first use and updates in place (one dict per parameter),
so a student's own rule plugs into the Trainer the same way. The rules never modify `w` or
`dw`; they return a new array of the same shape and dtype as `w`.

Hyperparameter names are shared by all rules: lr, momentum, decay_rate, beta1, beta2, eps
(and weight_decay for adamw). Hyperparameters are converted to Python floats, so a float32
parameter stays float32 even if a schedule hands in a numpy float64 learning rate.

Conventions (from the lectures):

- Momentum accumulates raw gradients: v <- rho*v + dw, w <- w - lr*v.
- Nesterov is written as an update from the gradient at the *current* point after a change of
  variables (Sutskever et al. 2013); its velocity already contains -lr, so its sign differs
  from sgd_momentum's. `nesterov_lookahead` gives the lecture's look-ahead form.
- AdaGrad, RMSProp and Adam add eps OUTSIDE the square root: dw / (sqrt(cache) + eps).
- Adam's step counter t starts at 0 in the state and is incremented before use, so the first
  update uses t = 1; both moments are bias-corrected (Kingma & Ba 2015).

Second-order methods (`newton_step`, `lbfgs`) do not follow the rule shape: they are for
small full-batch problems, where they shine.
"""

import math

import numpy as np

from ._validate import as_float_array

__all__ = ["sgd", "sgd_momentum", "nesterov", "nesterov_lookahead", "adagrad", "rmsprop", "adam",
           "adamw", "RULES", "newton_step", "lbfgs"]


def sgd(w, dw, state, lr=1e-2):
    """Vanilla SGD: w <- w - lr * dw. Uses no state.

    lr is taken as a Python float so a float32 w stays float32 even when a schedule hands in
    a numpy float64 learning rate."""
    return w - float(lr) * dw


# ----------------------------------------------------------------------------- helpers
def _check(w, dw, state):
    """Validate the common arguments of an update rule."""
    as_float_array("w", w)
    as_float_array("dw", dw)
    if dw.shape != w.shape:
        raise ValueError(f"dw must have the shape of w, {w.shape}, got {dw.shape}")
    if dw.dtype != w.dtype:
        raise ValueError(f"dw must have the dtype of w ({w.dtype}), got {dw.dtype}; "
                         "convert it with .astype(...) so float32 stays float32")
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict (one per parameter), got {type(state).__name__}")


def _hyper(name, value, low=None, high=None, low_open=False, high_open=False):
    """Return `value` as a Python float, checking it lies in the allowed range."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    bad_low = low is not None and (value <= low if low_open else value < low)
    bad_high = high is not None and (value >= high if high_open else value > high)
    if bad_low or bad_high or not np.isfinite(value):
        lo = "" if low is None else ("(" if low_open else "[") + f"{low}, "
        hi = "" if high is None else f"{high}" + (")" if high_open else "]")
        raise ValueError(f"{name} must be in {lo or '(-inf, '}{hi or 'inf)'}, got {value}")
    return value


def _slot(state, key, w):
    """state[key], created as zeros like w on first use; checked against w afterwards."""
    if key not in state:
        state[key] = np.zeros_like(w)
    elif state[key].shape != w.shape:
        raise ValueError(f"state[{key!r}] has shape {state[key].shape} but w has shape {w.shape}: "
                         "use one state dict per parameter")
    return state[key]


# ----------------------------------------------------------------------------- first-order rules
def sgd_momentum(w, dw, state, lr=1e-2, momentum=0.9):
    """SGD with momentum, in the lecture's form.

        v <- momentum * v + dw          (state["velocity"], zeros on first use)
        w <- w - lr * v

    The velocity is a running sum of raw gradients with friction `momentum` (rho, typically 0.9
    or 0.99). With a constant learning rate this is the same trajectory as the other common form
    u <- rho*u - lr*dw, w <- w + u, since u = -lr*v. The two differ when lr changes over time:
    here a new lr rescales the whole accumulated velocity at once.

    Args:
        w, dw: arrays of any one shape and dtype (parameter and its gradient).
        state: dict, one per parameter; holds "velocity" (same shape/dtype as w).
        lr: learning rate alpha > 0. momentum: rho in [0, 1).
    Returns:
        next_w: array like w.
    """
    _check(w, dw, state)
    lr = _hyper("lr", lr, 0.0)
    rho = _hyper("momentum", momentum, 0.0, 1.0, high_open=True)
    v = _slot(state, "velocity", w)
    v *= rho
    v += dw
    return w - lr * v


def nesterov(w, dw, state, lr=1e-2, momentum=0.9):
    """Nesterov momentum, as an update that uses the gradient at the current point.

    The lecture's look-ahead form evaluates the gradient at x + rho*v:

        v <- rho * v - lr * grad(x + rho * v);   x <- x + v          (see nesterov_lookahead)

    Changing variables to w = x + rho*v (the look-ahead point itself) gives a rule that needs
    only the gradient dw = grad(w) at the current parameters:

        v_old = v
        v     <- rho * v - lr * dw                      (state["velocity"])
        w     <- w - rho * v_old + (1 + rho) * v

    Sign convention: this velocity INCLUDES the factor -lr (it is the step itself, like the
    lecture's Nesterov v), whereas sgd_momentum's velocity is a sum of raw gradients and the
    step is -lr*v. Starting from v = 0 both forms give the same iterates w_t = x_t + rho*v_t
    (Sutskever et al., "On the importance of initialization and momentum in deep learning", 2013).
    It also equals PyTorch's SGD(nesterov=True) for a constant lr; under a schedule they differ,
    because this velocity was scaled by earlier learning rates while PyTorch's buffer holds raw gradients.

    Args:
        w, dw: arrays of one shape and dtype. state: dict holding "velocity".
        lr: learning rate > 0. momentum: rho in [0, 1).
    Returns:
        next_w: array like w.
    """
    _check(w, dw, state)
    lr = _hyper("lr", lr, 0.0)
    rho = _hyper("momentum", momentum, 0.0, 1.0, high_open=True)
    v = _slot(state, "velocity", w)
    v_new = rho * v - lr * dw
    next_w = w - rho * v + (1.0 + rho) * v_new
    v[...] = v_new
    return next_w


def nesterov_lookahead(w, grad_fn, state, lr=1e-2, momentum=0.9):
    """Nesterov momentum in the lecture's look-ahead form (needs the gradient function).

        v <- rho * v - lr * grad_fn(w + rho * v)      (state["velocity"], zeros on first use)
        w <- w + v

    "Look ahead" to where the velocity would carry us, take the gradient there, and mix it into
    the velocity. The Trainer cannot use this form (it only knows the gradient at the current
    parameters); `nesterov` is the equivalent rule after the change of variables w + rho*v.

    Args:
        w: array. grad_fn: callable taking an array like w and returning its gradient.
        state: dict holding "velocity". lr > 0. momentum: rho in [0, 1).
    Returns:
        next_w: array like w.
    """
    as_float_array("w", w)
    if not callable(grad_fn):
        raise ValueError(f"grad_fn must be a callable returning the gradient, got {type(grad_fn).__name__}")
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict (one per parameter), got {type(state).__name__}")
    lr = _hyper("lr", lr, 0.0)
    rho = _hyper("momentum", momentum, 0.0, 1.0, high_open=True)
    v = _slot(state, "velocity", w)
    g = np.asarray(grad_fn(w + rho * v), dtype=w.dtype)
    if g.shape != w.shape:
        raise ValueError(f"grad_fn must return an array of shape {w.shape}, got {g.shape}")
    v *= rho
    v -= lr * g
    return w + v


def adagrad(w, dw, state, lr=1e-2, eps=1e-8):
    """AdaGrad (Duchi et al. 2011): per-parameter step sizes from the sum of squared gradients.

        cache <- cache + dw**2                      (state["cache"], zeros on first use)
        w     <- w - lr * dw / (sqrt(cache) + eps)   (eps OUTSIDE the square root)

    The cache only grows, so the effective step lr/sqrt(cache) shrinks towards zero over time.
    """
    _check(w, dw, state)
    lr = _hyper("lr", lr, 0.0)
    eps = _hyper("eps", eps, 0.0)
    cache = _slot(state, "cache", w)
    cache += dw * dw
    return w - lr * dw / (np.sqrt(cache) + eps)


def rmsprop(w, dw, state, lr=1e-2, decay_rate=0.99, eps=1e-8):
    """RMSProp (Tieleman & Hinton 2012): AdaGrad with a leaky (exponential) average.

        cache <- decay_rate * cache + (1 - decay_rate) * dw**2   (state["cache"])
        w     <- w - lr * dw / (sqrt(cache) + eps)               (eps OUTSIDE the square root)

    decay_rate in [0, 1); 0.99 or 0.9 are usual.
    """
    _check(w, dw, state)
    lr = _hyper("lr", lr, 0.0)
    d = _hyper("decay_rate", decay_rate, 0.0, 1.0, high_open=True)
    eps = _hyper("eps", eps, 0.0)
    cache = _slot(state, "cache", w)
    cache *= d
    cache += (1.0 - d) * (dw * dw)
    return w - lr * dw / (np.sqrt(cache) + eps)


def _adam_step(w, dw, state, lr, beta1, beta2, eps, bias_correction):
    _check(w, dw, state)
    lr = _hyper("lr", lr, 0.0)
    b1 = _hyper("beta1", beta1, 0.0, 1.0, high_open=True)
    b2 = _hyper("beta2", beta2, 0.0, 1.0, high_open=True)
    eps = _hyper("eps", eps, 0.0)
    m = _slot(state, "m", w)
    v = _slot(state, "v", w)
    state["t"] = int(state.get("t", 0)) + 1
    t = state["t"]
    m *= b1
    m += (1.0 - b1) * dw
    v *= b2
    tmp = np.multiply(dw, dw)
    tmp *= (1.0 - b2)
    v += tmp
    # lr * m_hat / (sqrt(v_hat) + eps) with m_hat = m/c1, v_hat = v/c2 equals
    # (lr*sqrt(c2)/c1) * m / (sqrt(v) + eps*sqrt(c2)): the same value with fewer array passes.
    c1, c2 = (1.0 - b1 ** t, 1.0 - b2 ** t) if bias_correction else (1.0, 1.0)
    np.sqrt(v, out=tmp)
    tmp += eps * math.sqrt(c2)
    np.divide(m, tmp, out=tmp)
    tmp *= lr * math.sqrt(c2) / c1
    return tmp


def adam(w, dw, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, bias_correction=True):
    """Adam (Kingma & Ba 2015): momentum on the gradient plus RMSProp's scaling, bias-corrected.

        t <- t + 1                                  (state["t"], starts at 0: first update uses t=1)
        m <- beta1 * m + (1 - beta1) * dw           (state["m"], first moment)
        v <- beta2 * v + (1 - beta2) * dw**2        (state["v"], second moment)
        m_hat = m / (1 - beta1**t);  v_hat = v / (1 - beta2**t)
        w <- w - lr * m_hat / (sqrt(v_hat) + eps)   (eps OUTSIDE the square root)

    Because m and v start at zero they are biased towards zero in the first steps; the bias
    correction undoes this, so the very first step is lr * dw / (|dw| + eps) ~= lr * sign(dw).
    With bias_correction=False (for comparison only) m_hat = m and v_hat = v, and the first
    step is lr * 0.1*dw / (sqrt(0.001)*|dw|) ~= 3.16 * lr in size.

    Defaults beta1=0.9, beta2=0.999, lr=1e-3 are the paper's and a good starting point.
    """
    return w - _adam_step(w, dw, state, lr, beta1, beta2, eps, bias_correction)


def adamw(w, dw, state, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=1e-2,
          bias_correction=True):
    """AdamW (Loshchilov & Hutter 2019): Adam with DECOUPLED weight decay.

        w <- w - lr * weight_decay * w - lr * m_hat / (sqrt(v_hat) + eps)

    with t, m, v, m_hat, v_hat exactly as in `adam` (the decay uses the old w, as in PyTorch's
    AdamW). Adding an L2 penalty to the loss instead would pass lam*w through Adam's scaling, so
    weights with large gradients would be decayed less; here every weight decays at rate
    lr*weight_decay. Do not penalise biases: give them weight_decay=0.
    """
    wd = _hyper("weight_decay", weight_decay, 0.0)
    step = _adam_step(w, dw, state, lr, beta1, beta2, eps, bias_correction)
    return w - float(lr) * wd * w - step


RULES = {
    "sgd": sgd,
    "sgd_momentum": sgd_momentum,
    "nesterov": nesterov,
    "adagrad": adagrad,
    "rmsprop": rmsprop,
    "adam": adam,
    "adamw": adamw,
}


# ----------------------------------------------------------------------------- second order
def newton_step(w, grad, hessian):
    """One Newton step: jump to the minimum of the local quadratic model.

        J(w + d) ~= J(w) + g.d + 1/2 d.H.d   is minimal at   d = -H^{-1} g,
        next_w = w - solve(H, g)

    (solve, never an explicit inverse). On a quadratic with positive-definite H this lands on
    the minimum in one step. The cost is O(D^2) memory and O(D^3) time, which is why nobody
    does this for a network with millions of weights.

    Args:
        w: array of any shape, D = w.size entries. grad: array of w's shape.
        hessian: (D, D) array.
    Returns:
        next_w: array like w.
    Raises:
        ValueError if the shapes disagree or the Hessian is singular (no unique Newton step).
    """
    as_float_array("w", w)
    as_float_array("grad", grad)
    as_float_array("hessian", hessian, ndim=2)
    d = w.size
    if grad.shape != w.shape:
        raise ValueError(f"grad must have the shape of w, {w.shape}, got {grad.shape}")
    if hessian.shape != (d, d):
        raise ValueError(f"hessian must have shape ({d}, {d}) for w with {d} entries, got {hessian.shape}")
    singular = ValueError("hessian is singular (or numerically singular): the quadratic model has no "
                          "unique minimum, so the Newton step is undefined; add a damping term "
                          "lam * I to the Hessian or use a first-order method")
    if np.linalg.cond(hessian) > 1.0 / np.finfo(hessian.dtype).eps:
        raise singular
    try:
        step = np.linalg.solve(hessian, grad.reshape(d))
    except np.linalg.LinAlgError:
        raise singular from None
    return (w - step.reshape(w.shape).astype(w.dtype, copy=False))


def lbfgs(f_and_grad, w0, memory=10, max_iter=100, tol=1e-6, c1=1e-4, max_backtracks=50):
    """Minimise f with L-BFGS (Nocedal 1980; Liu & Nocedal 1989): full batch, deterministic.

    Keeps the last `memory` pairs s_k = w_{k+1} - w_k, y_k = g_{k+1} - g_k and applies an
    approximate inverse Hessian to the gradient with the two-loop recursion:

        q = g
        for k newest..oldest:   a_k = rho_k s_k.q;  q -= a_k y_k          (rho_k = 1 / y_k.s_k)
        r = gamma q,  gamma = s.y / y.y of the newest pair (initial Hessian scaling)
        for k oldest..newest:   b = rho_k y_k.r;  r += (a_k - b) s_k
        direction p = -r

    The step length comes from a backtracking line search: start at 1 and halve until the Armijo
    condition f(w + a p) <= f(w) + c1 a g.p holds. A pair with y.s <= 0 (curvature not positive)
    is skipped, which keeps the approximation positive definite. Stops when ||g|| <= tol.

    Args:
        f_and_grad: callable w -> (f(w) float, gradient array like w).
        w0: starting point, float array of any shape (use float64 for tight tolerances).
        memory: number of (s, y) pairs kept (>= 1). max_iter: maximum iterations.
        tol: stop when the gradient's Euclidean norm is <= tol.
    Returns:
        (w, history): w the final point (w0's shape and dtype); history a dict with
        "f" (list of f at each iterate, starting with f(w0)), "grad_norm" (same length),
        "step" (accepted step lengths), "n_iter", "n_evals" (calls to f_and_grad),
        "converged" (bool) and "message".
    """
    w = np.array(as_float_array("w0", w0), copy=True)
    if int(memory) < 1:
        raise ValueError(f"memory must be a positive integer, got {memory}")
    if int(max_iter) < 0:
        raise ValueError(f"max_iter must be >= 0, got {max_iter}")
    tol = _hyper("tol", tol, 0.0)
    shape, dtype = w.shape, w.dtype

    def evaluate(x):
        f, g = f_and_grad(x.reshape(shape))
        g = np.asarray(g)
        if g.shape != shape:
            raise ValueError(f"f_and_grad must return a gradient of shape {shape}, got {g.shape}")
        return float(f), g.astype(dtype, copy=False).reshape(-1)

    x = w.reshape(-1)
    f, g = evaluate(x)
    n_evals = 1
    hist = {"f": [f], "grad_norm": [float(np.linalg.norm(g))], "step": []}
    s_list, y_list, rho_list = [], [], []
    converged = hist["grad_norm"][-1] <= tol
    message = "gradient norm below tol" if converged else "max_iter reached"
    it = 0
    while not converged and it < max_iter:
        # two-loop recursion
        q = g.copy()
        alphas = []
        for s, y, rho in zip(reversed(s_list), reversed(y_list), reversed(rho_list)):
            a = rho * float(s @ q)
            q -= a * y
            alphas.append(a)
        if s_list:
            q *= float(s_list[-1] @ y_list[-1]) / float(y_list[-1] @ y_list[-1])
        else:
            q *= min(1.0, 1.0 / max(hist["grad_norm"][-1], 1e-300))  # first step: length <= 1
        for s, y, rho, a in zip(s_list, y_list, rho_list, reversed(alphas)):
            b = rho * float(y @ q)
            q += (a - b) * s
        p = -q
        slope = float(g @ p)
        if not slope < 0:  # not a descent direction (numerical trouble): restart with -g
            s_list, y_list, rho_list = [], [], []
            p = -g
            slope = float(g @ p)
        # backtracking line search (Armijo)
        step = 1.0
        for _ in range(max_backtracks):
            x_new = x + step * p
            f_new, g_new = evaluate(x_new)
            n_evals += 1
            if np.isfinite(f_new) and f_new <= f + c1 * step * slope:
                break
            step *= 0.5
        else:
            message = "line search failed to decrease f"
            break
        s, y = x_new - x, g_new - g
        sy = float(s @ y)
        if sy > 1e-10 * float(np.linalg.norm(s)) * float(np.linalg.norm(y)):
            s_list.append(s)
            y_list.append(y)
            rho_list.append(1.0 / sy)
            if len(s_list) > int(memory):
                s_list.pop(0), y_list.pop(0), rho_list.pop(0)
        x, f, g = x_new, f_new, g_new
        it += 1
        hist["f"].append(f)
        hist["grad_norm"].append(float(np.linalg.norm(g)))
        hist["step"].append(step)
        if hist["grad_norm"][-1] <= tol:
            converged, message = True, "gradient norm below tol"
    hist.update(n_iter=it, n_evals=n_evals, converged=converged, message=message)
    return x.reshape(shape), hist
