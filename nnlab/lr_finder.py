"""The learning-rate range test ("LR finder"; L. N. Smith, "Cyclical Learning Rates for Training
Neural Networks", 2017), with its suggestion rule.

Train from the current weights for `num_steps` minibatch steps while the learning rate grows
geometrically from lr_min to lr_max,

    lr_k = lr_min * (lr_max / lr_min) ** (k / (num_steps - 1)),      k = 0, ..., num_steps - 1,

and record the loss of every step. At first the rate is too small to change anything (a flat
loss), then the loss falls, then the steps become too large and it shoots up. The test stops as
soon as it diverges: the loss is not finite, or its smoothed value exceeds `diverge` times the
lowest smoothed value so far. The model gets its weights back afterwards (restore=True).

    result = lr_range_test(model, data, lr_min=1e-5, lr_max=10, num_steps=100, rng=rng)
    result.suggestion          # a learning rate to start from
    result.plot()              # loss against learning rate, on a log axis

Suggestion rules (suggest_lr), both computed on the smoothed loss:
- "min/10" (default): the learning rate at the lowest smoothed loss, divided by 10. At the
  minimum the loss is about to blow up; a tenth of it is safely on the falling part.
- "steepest": where the smoothed loss falls fastest per decade of learning rate (before the
  minimum). Often larger than min/10 and more sensitive to noise.

Smoothing is the bias-corrected exponential moving average (as in Adam):
avg_k = beta * avg_{k-1} + (1 - beta) * loss_k, avg_{-1} = 0, smoothed_k = avg_k / (1 - beta ** (k + 1)).
Without the correction the first smoothed values are close to 0, and the "minimum" is step 0. The
average lags behind the raw losses by about 1 / (1 - beta) steps: beta = 0.9 suits a test of about a
hundred steps (fastai's 0.98 suits longer ones).
"""

import math
from dataclasses import dataclass

import numpy as np

from .train import DivergenceError, Trainer

__all__ = ["geometric_lrs", "smooth_losses", "suggest_lr", "lr_range_test", "LRFinderResult"]


def _positive(name, value):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive number, got {value}")
    return value


def _steps(num_steps):
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 2:
        raise ValueError(f"num_steps must be an integer >= 2, got {num_steps!r}")
    return int(num_steps)


def _beta(beta):
    beta = float(beta)
    if not 0 <= beta < 1:
        raise ValueError(f"beta must be in [0, 1), got {beta}")
    return beta


def geometric_lrs(lr_min, lr_max, num_steps):
    """The learning rates of the range test: lr_min * (lr_max / lr_min) ** (k / (num_steps - 1)).

    Returns a float64 array of length num_steps, from lr_min to lr_max (both included), with a constant
    ratio (lr_max / lr_min) ** (1 / (num_steps - 1)) between neighbours.
    """
    lr_min, lr_max, num_steps = _positive("lr_min", lr_min), _positive("lr_max", lr_max), _steps(num_steps)
    if not lr_min < lr_max:
        raise ValueError(f"need lr_min < lr_max, got lr_min={lr_min:g}, lr_max={lr_max:g}")
    return lr_min * (lr_max / lr_min) ** (np.arange(num_steps) / (num_steps - 1))


def smooth_losses(losses, beta=0.9):
    """Bias-corrected exponential moving average of a loss sequence (float64 array, same length).

    avg_k = beta * avg_{k-1} + (1 - beta) * loss_k with avg_{-1} = 0; smoothed_k = avg_k / (1 - beta**(k+1)).
    beta = 0 returns the losses unchanged. A non-finite loss makes every later value non-finite.
    """
    beta = _beta(beta)
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 1:
        raise ValueError(f"losses must be a 1-d sequence, got shape {losses.shape}")
    out = np.empty_like(losses)
    avg = 0.0
    for k, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        out[k] = avg / (1 - beta ** (k + 1))
    return out


def _check_curve(lrs, losses):
    lrs = np.asarray(lrs, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if lrs.ndim != 1 or losses.shape != lrs.shape:
        raise ValueError(f"lrs and losses must be 1-d of the same length, got shapes {lrs.shape} and {losses.shape}")
    if lrs.size < 2:
        raise ValueError(f"need at least 2 recorded steps, got {lrs.size}")
    if not np.all(lrs > 0):
        raise ValueError("lrs must all be > 0")
    return lrs, losses


def suggest_lr(lrs, losses, method="min/10", beta=0.9):
    """A learning rate suggested by a range test's curve (see the module docstring).

    Args:
        lrs, losses: the recorded learning rates and losses (same length >= 2). A last, non-finite loss
            (the divergence that stopped the test) is ignored.
        method: "min/10" (the lr at the lowest smoothed loss, divided by 10) or "steepest" (the lr where
            the smoothed loss decreases fastest with log(lr), searched between the first tenth of the steps,
            whose smoothed values are the noisiest, and the minimum).
        beta: smoothing of the losses (0 = none).
    Returns:
        float.
    """
    lrs, losses = _check_curve(lrs, losses)
    finite = np.isfinite(losses)
    if not finite.any():
        raise ValueError("every loss is non-finite: lower lr_min")
    last = len(losses) if finite.all() else int(np.argmin(finite))  # up to the first non-finite loss
    if last < 1:
        raise ValueError("the first loss is already non-finite: lower lr_min")
    lrs, smoothed = lrs[:last], smooth_losses(losses[:last], beta)
    best = int(np.argmin(smoothed))
    if method == "min/10":
        return float(lrs[best] / 10)
    if method == "steepest":
        skip = len(lrs) // 10        # the first smoothed values are the noisiest: not searched
        if best - skip < 2:
            return float(lrs[min(skip, best)])
        slope = np.gradient(smoothed[skip:best + 1], np.log(lrs[skip:best + 1]))
        return float(lrs[skip + int(np.argmin(slope))])
    raise ValueError(f"method must be 'min/10' or 'steepest', got {method!r}")


@dataclass
class LRFinderResult:
    """What lr_range_test measured.

    lrs, losses: float64 arrays, one entry per step taken (the loss of the step's batch before its update,
    made with that learning rate); smoothed: smooth_losses(losses, beta); diverged: whether the test stopped
    early; suggestion: suggest_lr(lrs, losses, method, beta); method, beta: as passed.
    """

    lrs: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    diverged: bool
    suggestion: float
    method: str
    beta: float

    def suggest(self, method="min/10"):
        """The suggestion with another rule."""
        return suggest_lr(self.lrs, self.losses, method=method, beta=self.beta)

    def plot(self, ax=None, raw=True, label=None):
        """Loss against learning rate (log x axis), the suggestion as a vertical line; returns the axes."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots(figsize=(7, 4))
        if raw:
            ax.plot(self.lrs, self.losses, color="0.75", linewidth=0.8, label="loss of each step")
        ax.plot(self.lrs, self.smoothed, color="C0", label=label or f"smoothed (beta={self.beta:g})")
        ax.axvline(self.suggestion, color="C3", linestyle="--", label=f"suggestion ({self.method}): {self.suggestion:.3g}")
        finite = self.smoothed[np.isfinite(self.smoothed)]
        if finite.size:
            ax.set_ylim(0.9 * finite.min() if finite.min() > 0 else finite.min() - 0.1,
                        min(finite.max(), 4 * finite.min() if finite.min() > 0 else finite.max()) * 1.1)
        ax.set(xscale="log", xlabel="learning rate (log scale)", ylabel="training loss", title="LR range test")
        ax.legend(fontsize=8)
        return ax


def lr_range_test(model, data, lr_min=1e-5, lr_max=10.0, num_steps=100, update_rule="sgd", optim_config=None,
                  batch_size=64, reg=0.0, rng=None, beta=0.9, diverge=4.0, method="min/10", restore=True):
    """Run the LR range test on `model` (see the module docstring).

    Args:
        model: an nnlab Module (e.g. nnlab.modules.mlp); trained in place, then restored if restore=True
            (params and buffers, e.g. BatchNorm running averages).
        data: dict with X_train, y_train (what nnlab.data returns); minibatches are drawn from it, reshuffled
            each pass.
        lr_min, lr_max, num_steps: the geometric schedule (geometric_lrs).
        update_rule, optim_config, reg: as for nnlab.train.Trainer ("lr" in optim_config is overridden).
            Use the update rule you will train with: momentum and Adam change which rates work.
        rng: numpy Generator for the minibatch order.
        beta: smoothing of the recorded losses; diverge: stop when the smoothed loss exceeds diverge times
            its lowest value so far (or a loss is not finite).
        method: the suggestion rule ("min/10" or "steepest").
    Returns:
        LRFinderResult.
    """
    lrs_all = geometric_lrs(lr_min, lr_max, num_steps)
    beta, diverge = _beta(beta), _positive("diverge", diverge)
    if diverge <= 1:
        raise ValueError(f"diverge must be > 1 (a factor above the lowest smoothed loss), got {diverge}")
    if method not in ("min/10", "steepest"):
        raise ValueError(f"method must be 'min/10' or 'steepest', got {method!r}")
    rng = np.random.default_rng() if rng is None else rng
    train_data = {"X_train": data["X_train"], "y_train": data["y_train"]} if isinstance(data, dict) else data
    trainer = Trainer(model, train_data, update_rule=update_rule, optim_config=optim_config,
                      lr_schedule=lambda step: lrs_all[step], batch_size=batch_size, reg=reg, rng=rng,
                      progress=False, diverge_factor=math.inf)
    state = model.state_dict() if restore else None
    X, y = train_data["X_train"], train_data["y_train"]
    losses, avg, best, diverged = [], 0.0, math.inf, False
    model.train()
    try:
        with np.errstate(all="ignore"):           # the last steps are meant to overflow
            while len(losses) < len(lrs_all) and not diverged:
                order = rng.permutation(len(X))
                for start in range(0, len(X), batch_size):
                    if len(losses) == len(lrs_all):
                        break
                    idx = order[start:start + batch_size]
                    trainer.step = len(losses)
                    try:
                        loss = float(trainer.train_step(X[idx], y[idx]))
                    except (DivergenceError, FloatingPointError):
                        loss = math.inf
                    losses.append(loss)
                    k = len(losses)
                    avg = beta * avg + (1 - beta) * loss
                    smoothed = avg / (1 - beta ** k)
                    if not math.isfinite(loss) or not math.isfinite(smoothed) or smoothed > diverge * best:
                        diverged = True
                        break
                    best = min(best, smoothed)
    finally:
        if restore:
            model.load_state_dict(state)
    lrs, losses = lrs_all[:len(losses)].copy(), np.asarray(losses, dtype=np.float64)
    with np.errstate(all="ignore"):
        smoothed = smooth_losses(losses, beta)
    if len(losses) < 2:
        raise ValueError(f"the loss diverged at the very first step (lr={lrs[0]:.3g}): lower lr_min")
    return LRFinderResult(lrs=lrs, losses=losses, smoothed=smoothed, diverged=diverged,
                          suggestion=suggest_lr(lrs, losses, method=method, beta=beta), method=method, beta=beta)
