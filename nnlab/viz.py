"""Plots the notebooks share. Each function draws into a new figure (or the `ax` given),
returns the Figure, and never calls plt.show(): the notebook displays it, a test saves it."""

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

__all__ = ["plot_history", "plot_layer_histograms", "plot_trajectories_on_contour",
           "plot_decision_boundary", "show_image_grid", "smooth"]


class NotebookFigure(Figure):
    """The Figure these functions return. In a notebook it is shown once: `plot_history(h)` as the last
    line of a cell would otherwise be shown twice, as the cell's value and again by the inline backend,
    which shows every open figure when the cell ends. Displaying it shows it and closes it, so the
    backend does not show it again; displaying it in a later cell shows it again."""

    def _ipython_display_(self):
        from IPython.core.pylabtools import print_figure
        from IPython.display import Image, display

        display(Image(data=print_figure(self, "png"), format="png"))
        number = getattr(self, "number", None)
        if number is not None and plt.fignum_exists(number) and "inline" in matplotlib.get_backend():
            plt.close(self)


def smooth(values, window=25):
    """Moving average of a 1-D sequence (valid part only); returns the input when it is too short."""
    values = np.asarray(values, dtype=np.float64)
    if window <= 1 or len(values) < window:
        return values
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot_history(histories, title=None, smooth_window=25):
    """Loss per step (raw, faint, and smoothed) and accuracy per epoch.

    Args:
        histories: one nnlab.train.History, or a dict label -> History to compare runs.
    Returns:
        Figure with two axes: loss (log scale) and accuracy.
    """
    if not isinstance(histories, dict):
        histories = {"": histories}
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 3.8), FigureClass=NotebookFigure)
    for i, (label, h) in enumerate(histories.items()):
        color = f"C{i}"
        steps = np.arange(1, len(h.loss) + 1)
        ax_loss.plot(steps, h.loss, color=color, alpha=0.25, lw=0.8)
        smoothed = smooth(h.loss, smooth_window)
        ax_loss.plot(steps[len(steps) - len(smoothed):], smoothed, color=color, label=label or "loss")
        epochs = np.arange(1, len(h.train_acc) + 1)
        ax_acc.plot(epochs, h.train_acc, "o-", color=color, label=f"{label} train".strip())
        if h.val_acc:
            ax_acc.plot(epochs, h.val_acc, "s--", color=color, label=f"{label} val".strip())
    ax_loss.set(xlabel="step", ylabel="training loss", yscale="log", title="loss (faint: per batch)")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_layer_histograms(values, bins=50, range=None, title=None, xlabel="value"):
    """One histogram per layer, side by side, with the mean and std in each title.

    Args:
        values: list of arrays (one per layer) or dict name -> array.
        range: (low, high) shared by all histograms; default: each layer's own range.
    """
    if not isinstance(values, dict):
        values = {f"layer {i + 1}": v for i, v in enumerate(values)}
    n = len(values)
    fig, axes = plt.subplots(1, n, figsize=(min(2.2 * n, 18), 2.6), sharey=True, squeeze=False,
                             FigureClass=NotebookFigure)
    for ax, (name, v) in zip(axes[0], values.items()):
        v = np.asarray(v, dtype=np.float64).ravel()
        ax.hist(v, bins=bins, range=range, color="C0")
        ax.set_title(f"{name}\nmean {v.mean():+.2f} std {v.std():.2f}", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_xlabel(xlabel, fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_trajectories_on_contour(f, trajectories, xlim=(-2, 2), ylim=(-2, 2), levels=30, log_levels=True,
                                 ax=None, title=None):
    """Paths of 2-D optimisers over the contours of f.

    Args:
        f: function of two arrays (x, y) -> values (vectorised), e.g. lambda x, y: x**2 + 10*y**2.
        trajectories: dict label -> (T, 2) array of points visited.
        log_levels: space contour levels logarithmically (good for ill-conditioned bowls).
    """
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(6, 5), FigureClass=NotebookFigure)
    xs, ys = np.linspace(*xlim, 300), np.linspace(*ylim, 300)
    gx, gy = np.meshgrid(xs, ys)
    z = f(gx, gy)
    if log_levels:
        lo = max(float(np.min(z)), 0.0)
        shift = 1e-3 * (float(np.max(z)) - lo) + 1e-12
        levels = lo + np.geomspace(shift, float(np.max(z)) - lo + shift, int(levels)) - shift
    ax.contour(gx, gy, z, levels=levels, cmap="Greys", linewidths=0.6)
    for i, (label, path) in enumerate(trajectories.items()):
        path = np.asarray(path)
        ax.plot(path[:, 0], path[:, 1], "o-", ms=2.5, lw=1.2, color=f"C{i}", label=label)
        ax.plot(*path[0], "k^", ms=6)
    ax.set(xlim=xlim, ylim=ylim, xlabel="$w_1$", ylabel="$w_2$", title=title)
    ax.legend(fontsize=8)
    return fig


def plot_decision_boundary(predict, X, y, ax=None, resolution=300, padding=0.5, title=None):
    """Colour the plane by predicted class and scatter the data on top.

    Args:
        predict: function (M, 2) array -> (M,) integer labels (or (M, C) scores; argmax is taken).
        X: (N, 2) points; y: (N,) labels.
    """
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 5), FigureClass=NotebookFigure)
    x_min, y_min = X.min(axis=0) - padding
    x_max, y_max = X.max(axis=0) + padding
    gx, gy = np.meshgrid(np.linspace(x_min, x_max, resolution), np.linspace(y_min, y_max, resolution))
    grid = np.c_[gx.ravel(), gy.ravel()].astype(X.dtype)
    pred = np.asarray(predict(grid))
    if pred.ndim == 2:
        pred = pred.argmax(axis=1)
    num_classes = int(max(y.max(), pred.max())) + 1
    cmap = plt.get_cmap("tab10", 10)
    ax.contourf(gx, gy, pred.reshape(gx.shape), levels=np.arange(num_classes + 1) - 0.5,
                cmap=cmap, vmin=-0.5, vmax=9.5, alpha=0.3)
    ax.scatter(X[:, 0], X[:, 1], c=y, cmap=cmap, vmin=-0.5, vmax=9.5, s=12, edgecolors="k", linewidths=0.3)
    ax.set(xlim=(x_min, x_max), ylim=(y_min, y_max), title=title)
    ax.set_aspect("equal")
    return fig


def show_image_grid(images, labels=None, ncols=10, cmap="gray", title=None, scale=1.2):
    """Show (N, H, W), (N, 1, H, W), (N, 3, H, W) or (N, H*W) square images in a grid.

    Colour images are rescaled to [0, 1] per image for display (so normalised data is visible).
    """
    images = np.asarray(images)
    if images.ndim == 2:
        side = int(round(np.sqrt(images.shape[1])))
        if side * side != images.shape[1]:
            raise ValueError(f"flat images must be square, got {images.shape[1]} pixels per image")
        images = images.reshape(-1, side, side)
    if images.ndim == 4:
        images = images.transpose(0, 2, 3, 1)
        if images.shape[-1] == 1:
            images = images[..., 0]
    n = len(images)
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * nrows + (0.3 if title else 0)),
                             squeeze=False, FigureClass=NotebookFigure)
    for i, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i].astype(np.float64)
        if img.ndim == 3:
            img = (img - img.min()) / max(img.max() - img.min(), 1e-12)
        ax.imshow(img, cmap=cmap if img.ndim == 2 else None)
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig
