"""Trainer: the minibatch loop, its history, and callbacks.

    model = mlp(784, [100], 10, rng=rng)
    history = Trainer(model, data, update_rule=adam, optim_config={"lr": 1e-3},
                      epochs=5, rng=rng).fit()

`data` is a dict with X_train, y_train and optionally X_val, y_val (what nnlab.data returns).
The loss is softmax cross-entropy plus an optional L2 penalty reg/2 * sum ||W||^2 over the weight
matrices (biases and normalisation parameters are not penalised).

Any update rule `rule(w, dw, state, **hyper) -> next_w` plugs in, yours included; the Trainer
keeps one `state` dict per parameter. Callbacks are objects with any of the methods
on_train_begin(trainer), on_step(trainer), on_epoch_end(trainer), on_train_end(trainer);
setting `trainer.stop_training = True` ends training after the current step.
"""

import math
import sys
from dataclasses import dataclass, field

import numpy as np

from .data import iterate_minibatches
from .layers import softmax_loss
from .optim import RULES

__all__ = ["Trainer", "History", "DivergenceError", "EarlyStopping", "BestSnapshot", "accuracy", "predict"]


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite, or grew far above its starting value."""


@dataclass
class History:
    """What happened during fit(): per-step loss and lr, per-epoch accuracies."""

    loss: list = field(default_factory=list)        # training loss of each step (data loss + penalty)
    lr: list = field(default_factory=list)          # learning rate used at each step
    train_acc: list = field(default_factory=list)   # accuracy on (a subset of) the training set, per epoch
    val_acc: list = field(default_factory=list)     # validation accuracy per epoch (if X_val was given)
    epoch_steps: list = field(default_factory=list)  # step count at the end of each epoch

    @property
    def steps(self):
        return len(self.loss)

    def steps_to_reach(self, target_loss, window=20):
        """First step at which the moving average (over `window` steps) of the loss is <= target, or None."""
        if len(self.loss) < window:
            return None
        avg = np.convolve(self.loss, np.ones(window) / window, mode="valid")
        hits = np.flatnonzero(avg <= target_loss)
        return int(hits[0]) + window if hits.size else None


def predict(model, X, batch_size=1000):
    """Class scores of `model` for X (N, ...), computed in eval mode in batches; returns (N, C)."""
    was_training = model.training
    model.eval()
    try:
        return np.concatenate([model.forward(X[i:i + batch_size]) for i in range(0, len(X), batch_size)])
    finally:
        model.train(was_training)


def accuracy(model, X, y, batch_size=1000):
    """Fraction of examples whose highest score is the true label (eval mode)."""
    return float(np.mean(np.argmax(predict(model, X, batch_size), axis=1) == y))


def _progress_bar(total, enabled):
    if not enabled:
        return None
    from tqdm.auto import tqdm  # notebook-aware; writes to stdout so nbgrader never sees stderr
    return tqdm(total=total, file=sys.stdout, leave=False, dynamic_ncols=True)


class Trainer:
    """Minibatch training of a Module on a classification dataset.

    Args:
        model: a Module mapping (N, ...) inputs to (N, C) scores (e.g. nnlab.modules.mlp).
        data: dict with X_train, y_train, and optionally X_val, y_val.
        update_rule: a rule(w, dw, state, **hyper) -> next_w, or a name in nnlab.optim.RULES.
        optim_config: hyperparameters passed to the rule, e.g. {"lr": 1e-3, "beta1": 0.9}.
        lr_schedule: optional callable step -> lr (nnlab.schedules); it overrides optim_config["lr"].
        batch_size, epochs: the loop; max_steps stops earlier. drop_last skips the last, smaller
            batch of each epoch (BatchNorm cannot normalise a batch of one example).
        reg: L2 strength lambda in lambda/2 * ||W||^2 over weight matrices.
        rng: Generator for shuffling (required for reproducible runs).
        callbacks: objects with on_train_begin/on_step/on_epoch_end/on_train_end methods.
        progress: show a progress bar.
        num_train_eval: training-set accuracy is measured on this many training examples.
        diverge_factor: raise DivergenceError when the loss exceeds diverge_factor * the first loss.
    """

    def __init__(self, model, data, update_rule="sgd", optim_config=None, lr_schedule=None, batch_size=100,
                 epochs=10, reg=0.0, rng=None, callbacks=(), progress=True, max_steps=None,
                 num_train_eval=1000, diverge_factor=10.0, drop_last=False):
        for key in ("X_train", "y_train"):
            if key not in data:
                raise ValueError(f"data must contain {key!r}; got keys {sorted(data)}")
        if len(data["X_train"]) != len(data["y_train"]):
            raise ValueError(f"X_train has {len(data['X_train'])} examples but y_train has {len(data['y_train'])}")
        param_dtypes = {w.dtype for _, w in model.named("params")}
        x_dtype = np.asarray(data["X_train"]).dtype
        if param_dtypes and param_dtypes != {x_dtype}:
            raise ValueError(f"X_train is {x_dtype} but the model's parameters are {', '.join(map(str, param_dtypes))}; "
                             f"build the model with dtype=np.{x_dtype} or convert the data with .astype(...)")
        if isinstance(update_rule, str):
            if update_rule not in RULES:
                raise ValueError(f"unknown update rule {update_rule!r}; choose one of {sorted(RULES)} or pass a function")
            update_rule = RULES[update_rule]
        if batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size}")
        self.model, self.data = model, data
        self.update_rule = update_rule
        self.optim_config = dict(optim_config or {})
        self.lr_schedule = lr_schedule
        self.batch_size, self.epochs, self.max_steps, self.drop_last = batch_size, epochs, max_steps, drop_last
        self.reg = reg
        self.rng = np.random.default_rng() if rng is None else rng
        self.callbacks = list(callbacks)
        self.progress = progress
        self.num_train_eval = num_train_eval
        self.diverge_factor = diverge_factor
        self.states = {name: {} for name, _ in model.named("params")}
        self.history = History()
        self.step = 0
        self.epoch = 0
        self.stop_training = False

    # --- one step -------------------------------------------------------------------------------
    def loss_and_grads(self, X, y):
        """Forward, loss, backward. Returns the loss; the gradients are left in the model."""
        scores = self.model.forward(X)
        loss, dscores = softmax_loss(scores, y)
        self.model.backward(dscores)
        return loss

    def train_step(self, X, y):
        """One update of every parameter; returns the loss (data loss + L2 penalty) of this batch."""
        loss = self.loss_and_grads(X, y)
        params = dict(self.model.named("params"))
        grads = dict(self.model.named("grads"))
        if self.reg:
            for name in self.model.decayed():
                w = params[name]
                loss += 0.5 * self.reg * float(np.sum(w * w, dtype=np.float64))
                grads[name] = grads[name] + self.reg * w
        config = self.optim_config
        if self.lr_schedule is not None:
            config = {**config, "lr": float(self.lr_schedule(self.step))}
        for name, w in params.items():
            self.model.set("params", name, self.update_rule(w, grads[name], self.states[name], **config))
        self.history.lr.append(config.get("lr"))
        return loss

    def _check_divergence(self, loss):
        first = self.history.loss[0]
        if not math.isfinite(loss) or loss > self.diverge_factor * max(first, 1.0):
            raise DivergenceError(
                f"loss diverged at step {self.step}: it is {loss:.4g} (it started at {first:.4g}). "
                "Is the learning rate too high?")

    def _call(self, hook):
        for callback in self.callbacks:
            method = getattr(callback, hook, None)
            if method is not None:
                method(self)

    def _end_of_epoch(self):
        d = self.data
        n = min(self.num_train_eval, len(d["X_train"]))
        self.history.train_acc.append(accuracy(self.model, d["X_train"][:n], d["y_train"][:n]))
        if "X_val" in d:
            self.history.val_acc.append(accuracy(self.model, d["X_val"], d["y_val"]))
        self.history.epoch_steps.append(self.step)

    # --- the loop -------------------------------------------------------------------------------
    def fit(self):
        """Train for `epochs` epochs (or max_steps steps); returns the History."""
        X, y = self.data["X_train"], self.data["y_train"]
        steps_per_epoch = (len(X) // self.batch_size if self.drop_last else math.ceil(len(X) / self.batch_size))
        total = steps_per_epoch * self.epochs
        if self.max_steps is not None:
            total = min(total, self.max_steps)
        bar = _progress_bar(total, self.progress)
        self.model.train()
        self._call("on_train_begin")
        try:
            while self.epoch < self.epochs and not self.stop_training:
                for X_batch, y_batch in iterate_minibatches(X, y, self.batch_size, rng=self.rng,
                                                            drop_last=self.drop_last):
                    loss = self.train_step(X_batch, y_batch)
                    self.history.loss.append(loss)
                    self._check_divergence(loss)
                    self.step += 1
                    if bar is not None:
                        bar.update(1)
                        if self.step % 10 == 0:
                            bar.set_postfix(epoch=self.epoch + 1, loss=f"{loss:.3f}", refresh=False)
                    self._call("on_step")
                    if self.max_steps is not None and self.step >= self.max_steps:
                        self.stop_training = True
                    if self.stop_training:
                        break
                self.epoch += 1
                self._end_of_epoch()
                self._call("on_epoch_end")
        finally:
            if bar is not None:
                bar.close()
        self._call("on_train_end")
        return self.history


class EarlyStopping:
    """Stop when `monitor` ("val_acc" or "train_acc") has not improved by min_delta for `patience` epochs."""

    def __init__(self, patience=3, monitor="val_acc", min_delta=0.0):
        self.patience, self.monitor, self.min_delta = patience, monitor, min_delta
        self.best, self.bad_epochs, self.stopped_epoch = -np.inf, 0, None

    def on_epoch_end(self, trainer):
        value = getattr(trainer.history, self.monitor)[-1]
        if value > self.best + self.min_delta:
            self.best, self.bad_epochs = value, 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                trainer.stop_training = True
                self.stopped_epoch = trainer.epoch


class BestSnapshot:
    """Keep a copy of the model (params AND buffers such as BatchNorm running statistics) at the
    epoch where `monitor` was best, and load it back when training ends (restore=True)."""

    def __init__(self, monitor="val_acc", restore=True):
        self.monitor, self.restore = monitor, restore
        self.best, self.best_epoch, self.state = -np.inf, None, None

    def on_epoch_end(self, trainer):
        value = getattr(trainer.history, self.monitor)[-1]
        if value > self.best:
            self.best, self.best_epoch = value, trainer.epoch
            self.state = trainer.model.state_dict()

    def on_train_end(self, trainer):
        if self.restore and self.state is not None:
            trainer.model.load_state_dict(self.state)
