"""Plot helpers draw what they are given and never show(); saved to PNG for a look."""

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from nnlab import viz  # noqa: E402
from nnlab.train import History  # noqa: E402


@pytest.fixture
def out(tmp_path):
    def save(fig, name):
        path = tmp_path / f"{name}.png"
        fig.savefig(path)
        matplotlib.pyplot.close(fig)
        assert path.stat().st_size > 1000
    return save


def test_plot_history(out):
    h = History(loss=list(np.exp(-np.linspace(0, 3, 200)) + 0.1), train_acc=[0.5, 0.7, 0.8], val_acc=[0.5, 0.6, 0.7])
    fig = viz.plot_history({"sgd": h, "adam": h})
    assert len(fig.axes) == 2
    assert len(fig.axes[1].lines) == 4, "train and val accuracy for each run"
    out(fig, "history")


def test_layer_histograms(rng, out):
    layers = [rng.standard_normal(1000) * s for s in (1, 0.5, 0.1)]
    fig = viz.plot_layer_histograms(layers)
    assert len(fig.axes) == 3
    assert f"std {layers[1].std():.2f}" in fig.axes[1].get_title()
    out(fig, "histograms")


def test_trajectories_on_contour(out):
    path = np.array([[1.5, 1.0], [1.0, -0.5], [0.5, 0.2], [0.0, 0.0]])
    fig = viz.plot_trajectories_on_contour(lambda x, y: x ** 2 + 10 * y ** 2, {"sgd": path})
    assert len(fig.axes[0].get_legend().get_texts()) == 1
    out(fig, "contour")


def test_decision_boundary_and_image_grid(rng, out):
    X = rng.standard_normal((50, 2))
    y = (X[:, 0] > 0).astype(int)
    out(viz.plot_decision_boundary(lambda g: (g[:, 0] > 0).astype(int), X, y), "boundary")
    fig = viz.show_image_grid(rng.random((12, 784)), labels=list(range(12)), ncols=6)
    assert len(fig.axes) == 12
    out(fig, "grid")
    with pytest.raises(ValueError, match="square"):
        viz.show_image_grid(rng.random((2, 10)))
