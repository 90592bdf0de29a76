"""Learning-rate schedules: each factory returns a callable `lr(step) -> float`.

The Trainer calls `schedule(step)` before every update, with step = 0 for the first update,
1 for the second, and so on (steps count updates, not epochs: for "decay every 5 epochs" pass
every=5 * steps_per_epoch). The values are Python floats, so they never promote float32
parameters.

    >>> sched = warmup_then(100, cosine(0.1, total_steps=900))
    >>> sched(0), sched(99), sched(100), sched(1000)     # 0.001, 0.1, 0.1, 0.0

Schedules are small picklable objects with a readable repr, so they can travel to the worker
processes of `nnlab.search`. `values(schedule, n)` returns the first n learning rates as an
array, for plotting.
"""

import math

import numpy as np

__all__ = ["Schedule", "constant", "step_decay", "exponential", "inverse_time", "cosine",
           "linear_warmup", "warmup_then", "values"]


def _positive(name, value, allow_zero=False):
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'}, got {value}")
    return value


def _positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def _step(step):
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be a non-negative integer (0 for the first update), got {step!r}")
    return int(step)


class Schedule:
    """Base class: subclasses implement `_value(t)` for an integer t >= 0."""

    def __call__(self, step):
        return float(self._value(_step(step)))

    def _value(self, t):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.__dict__.items())
        return f"{type(self).__name__}({args})"


class constant(Schedule):
    """lr(t) = lr for every step."""

    def __init__(self, lr):
        self.lr = _positive("lr", lr)

    def _value(self, t):
        return self.lr


class step_decay(Schedule):
    """Multiply by `drop` every `every` steps: lr(t) = lr * drop ** floor(t / every).

    With drop=0.1, every=1000: steps 0..999 use lr, 1000..1999 use lr/10, ...
    """

    def __init__(self, lr, drop=0.1, every=1000):
        self.lr = _positive("lr", lr)
        self.drop = _positive("drop", drop)
        self.every = _positive_int("every", every)

    def _value(self, t):
        return self.lr * self.drop ** (t // self.every)


class exponential(Schedule):
    """lr(t) = lr * exp(-k t), k >= 0."""

    def __init__(self, lr, k):
        self.lr = _positive("lr", lr)
        self.k = _positive("k", k, allow_zero=True)

    def _value(self, t):
        return self.lr * math.exp(-self.k * t)


class inverse_time(Schedule):
    """lr(t) = lr / (1 + k t), k >= 0 (the "1/t" decay)."""

    def __init__(self, lr, k):
        self.lr = _positive("lr", lr)
        self.k = _positive("k", k, allow_zero=True)

    def _value(self, t):
        return self.lr / (1.0 + self.k * t)


class cosine(Schedule):
    """Cosine annealing (Loshchilov & Hutter, SGDR, 2017), without restarts.

        lr(t) = lr_min + (lr - lr_min) / 2 * (1 + cos(pi * t / T))   for t <= T = total_steps
        lr(t) = lr_min                                              for t >= T

    Starts at lr (t = 0), is halfway at t = T/2, reaches lr_min at t = T and stays there.
    torch.optim.lr_scheduler.CosineAnnealingLR agrees for 0 <= t <= T, then climbs back up.
    """

    def __init__(self, lr, total_steps, lr_min=0.0):
        self.lr = _positive("lr", lr)
        self.total_steps = _positive_int("total_steps", total_steps)
        self.lr_min = _positive("lr_min", lr_min, allow_zero=True)
        if self.lr_min > self.lr:
            raise ValueError(f"lr_min must be <= lr ({self.lr}), got {self.lr_min}")

    def _value(self, t):
        frac = min(t, self.total_steps) / self.total_steps
        return self.lr_min + 0.5 * (self.lr - self.lr_min) * (1.0 + math.cos(math.pi * frac))


class linear_warmup(Schedule):
    """Linear warm-up to lr, then constant (Goyal et al. 2017, "Accurate, large minibatch SGD").

        lr(t) = lr * (t + 1) / warmup_steps   for t < warmup_steps
        lr(t) = lr                            for t >= warmup_steps

    Convention: the first update (t = 0) already uses lr / warmup_steps, never 0 (a zero
    learning rate would waste a step), and step warmup_steps - 1 is the first at full lr.
    """

    def __init__(self, lr, warmup_steps):
        self.lr = _positive("lr", lr)
        self.warmup_steps = _positive_int("warmup_steps", warmup_steps)

    def _value(self, t):
        return self.lr * min(t + 1, self.warmup_steps) / self.warmup_steps


class warmup_then(Schedule):
    """Linear warm-up into any schedule, which then starts from its own step 0.

        lr(t) = schedule(0) * (t + 1) / warmup_steps   for t < warmup_steps
        lr(t) = schedule(t - warmup_steps)             for t >= warmup_steps

    So warmup_then(100, cosine(0.1, 900)) warms up over steps 0..99 and anneals over the
    following 900 steps (1000 in total).
    """

    def __init__(self, warmup_steps, schedule):
        self.warmup_steps = _positive_int("warmup_steps", warmup_steps)
        if not callable(schedule):
            raise ValueError(f"schedule must be a callable lr(step), got {type(schedule).__name__}")
        self.schedule = schedule

    def _value(self, t):
        if t < self.warmup_steps:
            return float(self.schedule(0)) * (t + 1) / self.warmup_steps
        return float(self.schedule(t - self.warmup_steps))


def values(schedule, n):
    """The learning rates of steps 0..n-1 as a float64 array (for plots)."""
    n = int(n)
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    return np.array([schedule(t) for t in range(n)], dtype=np.float64)
