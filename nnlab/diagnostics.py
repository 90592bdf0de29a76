"""Diagnostics for "babysitting" training: activation, gradient and update statistics.

- activation_stats: mean / std / range / fraction of zeros / fraction saturated, per layer.
  In a healthy deep net the per-layer std neither collapses to 0 nor blows up with depth.
- saturation_fraction: fraction of units whose local gradient |f'(h)| is tiny (saturated
  sigmoid/tanh units pass almost no gradient back).
- dead_unit_fraction: fraction of ReLU units that are never active on a whole dataset.
- gradient_norms: the L2 norm of each parameter's gradient (vanishing / exploding gradients).
- update_ratios: ||W_after - W_before|| / ||W_before|| per parameter. A rule of thumb (Karpathy,
  CS231n): about 1e-3 per update is healthy; ~1e-1 or more means the learning rate is too high,
  ~1e-5 or less means it is too low.
- UpdateRatioRecorder: a Trainer callback that records update_ratios after every update.
- activation_histograms / near_zero_fraction / ActivationHistoryRecorder: per-layer histograms of the
  activations and the fraction near zero, recorded over training on a fixed probe batch (the
  "colorful dimension" plot of fast.ai's course).

Layers can be given as a list (results come back as a list, in order) or as a dict
name -> array (results come back as a dict with the same keys).
"""

import numpy as np

from ._validate import as_float_array

__all__ = ["activation_stats", "saturation_fraction", "dead_unit_fraction", "gradient_norms",
           "update_ratios", "UpdateRatioRecorder", "activation_histograms", "near_zero_fraction",
           "layer_outputs", "ActivationHistoryRecorder"]


def _per_layer(name, layers, fn):
    """Apply fn(label, array) to every layer of a list/tuple or dict, keeping the container kind."""
    if isinstance(layers, dict):
        return {k: fn(f"{name}[{k!r}]", v) for k, v in layers.items()}
    if isinstance(layers, (list, tuple)):
        return [fn(f"{name}[{i}]", v) for i, v in enumerate(layers)]
    raise ValueError(f"{name} must be a list or a dict of arrays (one per layer), got {type(layers).__name__}")


def activation_stats(activations, saturation_bounds=(-0.99, 0.99)):
    """Summary statistics of each layer's activations.

    Args:
        activations: list (or dict) of arrays, one per layer, any shape (N, ...).
        saturation_bounds: (low, high); a value <= low or >= high counts as saturated. The default
            suits tanh (|a| >= 0.99); use (0.01, 0.99) for sigmoid. None skips this statistic.
    Returns:
        list (or dict) of dicts with float values:
        "mean", "std", "min", "max", "frac_zero" (exact zeros, e.g. ReLU outputs),
        "frac_saturated" (None when saturation_bounds is None).
    """
    if saturation_bounds is not None:
        if len(saturation_bounds) != 2 or not saturation_bounds[0] < saturation_bounds[1]:
            raise ValueError(f"saturation_bounds must be a pair (low, high) with low < high, got {saturation_bounds!r}")
    low, high = saturation_bounds if saturation_bounds is not None else (None, None)

    def stats(label, a):
        a = as_float_array(label, a)
        if a.size == 0:
            raise ValueError(f"{label} is empty (shape {a.shape})")
        sat = None if low is None else float(np.mean((a <= low) | (a >= high)))
        return {"mean": float(a.mean()), "std": float(a.std()), "min": float(a.min()), "max": float(a.max()),
                "frac_zero": float(np.mean(a == 0)), "frac_saturated": sat}

    return _per_layer("activations", activations, stats)


def saturation_fraction(local_grad, threshold=1e-2):
    """Fraction of unit activations whose local gradient is below `threshold` in magnitude.

        saturation_fraction = mean over all entries of [ |f'(h)| < threshold ]

    `local_grad` is f'(h) for the layer's pre-activations h, shape (N, ...), e.g.
    sigmoid: s*(1-s) (at most 0.25); tanh: 1 - tanh(h)^2 (at most 1). With the default threshold
    0.01 a tanh unit counts as saturated for |h| > ~3.0, a sigmoid unit for |h| > ~4.6. Each
    (example, unit) pair counts once, so 0.3 means 30% of the signals reaching this layer are
    (almost) blocked on the way back.

    Args:
        local_grad: one array, or a list / dict of arrays (one per layer).
        threshold: float > 0.
    Returns:
        float, or a list / dict of floats.
    """
    threshold = float(threshold)
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")

    def frac(label, g):
        g = as_float_array(label, g)
        return float(np.mean(np.abs(g) < threshold)) if g.size else 0.0

    if isinstance(local_grad, np.ndarray):
        return frac("local_grad", local_grad)
    return _per_layer("local_grad", local_grad, frac)


def dead_unit_fraction(activations):
    """Fraction of units that are never active (> 0) for any example of a dataset.

    Args:
        activations: array (N, D) or (N, C, ...), ReLU outputs or the pre-activations that feed a
            ReLU (a ReLU unit is active exactly when its pre-activation is > 0); or a list / dict
            of such arrays, one per layer. A unit is one position of the non-batch axes, so
            for (N, C, H, W) each (c, h, w) counts as a unit.
    Returns:
        float in [0, 1], or a list / dict of floats. Pass the whole training set (or a large
        sample): a unit inactive on one mini-batch is not necessarily dead.
    """
    def frac(label, a):
        a = as_float_array(label, a, min_ndim=2)
        if a.shape[0] == 0:
            raise ValueError(f"{label} has no examples (shape {a.shape})")
        return float(np.mean(~np.any(a > 0, axis=0)))

    if isinstance(activations, np.ndarray):
        return frac("activations", activations)
    return _per_layer("activations", activations, frac)


def gradient_norms(grads):
    """Euclidean (Frobenius) norm of each gradient: ||dW|| = sqrt(sum dW^2).

    Args:
        grads: dict name -> array (e.g. model.grads) or list of arrays.
    Returns:
        dict name -> float, or list of floats (computed in float64).
    """
    return _per_layer("grads", grads,
                      lambda label, g: float(np.linalg.norm(as_float_array(label, g).astype(np.float64, copy=False).ravel())))


def update_ratios(params_before, params_after):
    """Relative size of one update per parameter: ||W_after - W_before|| / ||W_before||.

    About 1e-3 is healthy (rule of thumb from CS231n); much larger (1e-1) means the learning rate
    is too high, much smaller (1e-5 or less) means it is too low. A parameter whose norm is 0
    before the update (e.g. biases initialised to zero) has an undefined ratio: nan.

    Args:
        params_before, params_after: dicts name -> array with the same keys and shapes
            (or lists of arrays of the same length).
    Returns:
        dict name -> float (or list of floats), computed in float64.
    """
    if isinstance(params_before, dict) != isinstance(params_after, dict):
        raise ValueError("params_before and params_after must both be dicts or both be lists")
    if isinstance(params_before, dict):
        if set(params_before) != set(params_after):
            raise ValueError(f"params_before and params_after must have the same keys, got "
                             f"{sorted(params_before)} and {sorted(params_after)}")
        keys = list(params_before)
        pairs = [(f"[{k!r}]", params_before[k], params_after[k]) for k in keys]
    elif isinstance(params_before, (list, tuple)) and isinstance(params_after, (list, tuple)):
        if len(params_before) != len(params_after):
            raise ValueError(f"params_before and params_after must have the same length, got "
                             f"{len(params_before)} and {len(params_after)}")
        keys = None
        pairs = [(f"[{i}]", b, a) for i, (b, a) in enumerate(zip(params_before, params_after))]
    else:
        raise ValueError(f"params_before must be a dict or a list of arrays, got {type(params_before).__name__}")
    out = []
    for label, before, after in pairs:
        before = as_float_array("params_before" + label, before)
        after = as_float_array("params_after" + label, after)
        if before.shape != after.shape:
            raise ValueError(f"params_after{label} must have shape {before.shape}, got {after.shape}")
        b = before.astype(np.float64, copy=False).ravel()
        d = after.astype(np.float64, copy=False).ravel() - b
        norm_w = float(np.linalg.norm(b))
        out.append(float(np.linalg.norm(d)) / norm_w if norm_w > 0 else float("nan"))
    return dict(zip(keys, out)) if keys is not None else out


class UpdateRatioRecorder:
    """Trainer callback that records update_ratios (||dW|| / ||W||) after every `every` updates.

    The Trainer calls `on_step(trainer)` after each update and `on_epoch_end(trainer)` after each
    epoch. The recorder keeps a copy of the parameters from the previous call and compares.

    Args:
        params: optional callable returning the current dict name -> array of parameters. Without
            it the recorder reads the trainer's model: dict(trainer.model.named("params")) for nnlab
            modules (qualified names like "0.w", nested modules included), else trainer.model.params.
            With it, the recorder is usable without a Trainer (call `on_step()` after each update
            yourself) and snapshots the parameters at construction, so the very first update is
            recorded too.
        every: record one update in `every` (the copy is taken on the call before).
        names: optional list of parameter names to track (default: all).

    Attributes:
        steps: list of the step numbers recorded (trainer.step when available, else the number
            of on_step calls so far).
        ratios: dict name -> list of floats, aligned with `steps`.

    The Trainer calls `on_train_begin(trainer)` before the first update, which takes the first
    snapshot. Used by hand without a getter, call `start(params_dict)` before the first update,
    or the first update is not recorded (there is no "before" yet).
    """

    def __init__(self, params=None, every=1, names=None):
        if params is not None and not callable(params):
            raise ValueError(f"params must be a callable returning the parameter dict, got {type(params).__name__}")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self._get = params
        self.every = int(every)
        self.names = None if names is None else list(names)
        self.steps = []
        self.ratios = {}
        self._calls = 0
        self._before = None
        if params is not None and self.every == 1:
            self.start(params())

    def _select(self, params):
        if not isinstance(params, dict):
            raise ValueError(f"params must be a dict name -> array, got {type(params).__name__}")
        names = self.names if self.names is not None else list(params)
        missing = [n for n in names if n not in params]
        if missing:
            raise ValueError(f"parameters {missing} not found; available: {sorted(params)}")
        return {n: params[n] for n in names}

    def start(self, params):
        """Take the "before" snapshot now (copies the arrays)."""
        self._before = {k: np.array(v, copy=True) for k, v in self._select(params).items()}

    def _current(self, trainer):
        if self._get is not None:
            return self._get()
        if trainer is None:
            raise ValueError("on_step needs the trainer when the recorder has no params getter")
        model = trainer.model
        if hasattr(model, "named"):   # nnlab modules: nested params under qualified names ("0.w")
            return dict(model.named("params"))
        return model.params

    def on_train_begin(self, trainer=None):
        """Snapshot the parameters before the first update (the Trainer calls this at fit())."""
        self._calls = 0
        if self.every == 1:
            self.start(self._current(trainer))

    def on_step(self, trainer=None):
        self._calls += 1
        current = self._current(trainer)
        if self._before is not None and self._calls % self.every == 0:
            after = self._select(current)
            step = getattr(trainer, "step", None) if trainer is not None else None
            self.steps.append(int(step) if step is not None else self._calls)
            for name, r in update_ratios(self._before, after).items():
                self.ratios.setdefault(name, []).append(r)
        if (self._calls + 1) % self.every == 0:
            self.start(current)
        else:
            self._before = None

    def on_epoch_end(self, trainer=None):
        """Nothing to do at the end of an epoch (present so the Trainer can call it)."""

    def as_arrays(self):
        """(steps, {name: ratios}) as numpy arrays, for plotting on a log scale."""
        return np.asarray(self.steps), {k: np.asarray(v) for k, v in self.ratios.items()}

    def __repr__(self):
        last = {k: f"{v[-1]:.2e}" for k, v in self.ratios.items() if v}
        return f"UpdateRatioRecorder(every={self.every}, recorded={len(self.steps)}, last={last})"


# ----------------------------------------------------------------------------- over the course of training
def activation_histograms(activations, bins):
    """Histogram of each layer's activations on fixed bins, as fractions of the layer's entries.

    Values below bins[0] are counted in the first bin and values above bins[-1] in the last one, so
    every row sums to 1 and a layer whose activations grow beyond the range stays visible.

    Args:
        activations: list (or dict) of arrays, one per layer, any shape.
        bins: increasing bin edges, B + 1 numbers.
    Returns:
        float64 array of shape (L, B) (or a dict of (B,) arrays for dict input).
    """
    edges = np.asarray(bins, dtype=np.float64)
    if edges.ndim != 1 or edges.size < 2 or not np.all(np.diff(edges) > 0):
        raise ValueError(f"bins must be at least two increasing edges, got {bins!r}")

    def hist(label, a):
        a = as_float_array(label, a).astype(np.float64, copy=False).ravel()
        if a.size == 0:
            raise ValueError(f"{label} is empty")
        counts, _ = np.histogram(np.clip(a, edges[0], edges[-1]), bins=edges)
        return counts / a.size

    out = _per_layer("activations", activations, hist)
    return np.array(out) if isinstance(out, list) else out


def near_zero_fraction(activations, tol=1e-2):
    """Fraction of the entries of each layer with |a| < tol (ReLU units that are off, collapsed signals).

    Returns a float64 array of shape (L,) (or a dict of floats for dict input).
    """
    if not tol > 0:
        raise ValueError(f"tol must be positive, got {tol!r}")
    out = _per_layer("activations", activations,
                     lambda label, a: float(np.mean(np.abs(as_float_array(label, a)) < tol)))
    return np.array(out, dtype=np.float64) if isinstance(out, list) else out


def layer_outputs(model, x, layer_types=None):
    """Run x through a Sequential and return the outputs of its activation layers, in order.

    Args:
        model: an nnlab Sequential (anything with a .layers list of modules with .forward).
        x: the input batch.
        layer_types: class names whose outputs to keep; default: every FunctionModule (the
            activations, nnlab's own or yours wrapped in FunctionModule).
    Returns:
        (names, outputs): names like "2:relu" (index in the Sequential, and the layer's name or class)
        and the arrays.
    """
    from .modules import FunctionModule
    names, outs = [], []
    for i, layer in enumerate(model.layers):
        x = layer.forward(x)
        keep = (type(layer).__name__ in layer_types) if layer_types else isinstance(layer, FunctionModule)
        if keep:
            names.append(f"{i}:{getattr(layer, 'name', type(layer).__name__)}")
            outs.append(x)
    return names, outs


class ActivationHistoryRecorder:
    """Trainer callback: per-layer activation histograms and near-zero fractions over training.

    Every `every` steps (and before the first one) it runs a fixed probe batch through the model in
    the mode the model is in (train mode during fit: BatchNorm uses the probe's own statistics),
    keeps the outputs of the activation layers (see layer_outputs), and restores every buffer
    (BatchNorm's running averages) afterwards, so recording does not change training. Plotted as an
    image per layer, steps on the x-axis and bins on the y-axis, this is the "colorful dimension" of
    fast.ai's course: healthy layers show a stable band, collapsing ones a bright stripe at zero.

    Args:
        X_probe: the probe batch (the same examples at every record).
        bins: histogram bin edges (see activation_histograms).
        every: record every `every` steps.
        tol: |a| < tol counts as near zero.
        layer_types: which layers to record (see layer_outputs).

    Attributes (numpy arrays once at least one record exists):
        steps: (T,) step numbers; histograms: (L, T, B); near_zero: (L, T); names: list of L names.
    """

    def __init__(self, X_probe, bins, every=10, tol=1e-2, layer_types=None):
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"every must be a positive integer, got {every!r}")
        self.X_probe, self.bins, self.every, self.tol = X_probe, np.asarray(bins, dtype=np.float64), int(every), tol
        self.layer_types = layer_types
        self.names, self._steps, self._hists, self._zeros = None, [], [], []

    def record(self, model, step):
        """Take one record now (what on_step does every `every` steps)."""
        saved = [(name, value.copy()) for name, value in model.named("buffers")]
        try:
            names, outs = layer_outputs(model, self.X_probe, self.layer_types)
        finally:
            for name, value in saved:
                model.set("buffers", name, value)
        self.names = names
        self._steps.append(int(step))
        self._hists.append(activation_histograms(outs, self.bins))
        self._zeros.append(near_zero_fraction(outs, self.tol))

    def on_train_begin(self, trainer):
        self.record(trainer.model, getattr(trainer, "step", 0))

    def on_step(self, trainer):
        if trainer.step % self.every == 0:
            self.record(trainer.model, trainer.step)

    @property
    def steps(self):
        return np.array(self._steps)

    @property
    def histograms(self):
        return np.stack(self._hists, axis=1) if self._hists else np.zeros((0, 0, len(self.bins) - 1))

    @property
    def near_zero(self):
        return np.stack(self._zeros, axis=1) if self._zeros else np.zeros((0, 0))
