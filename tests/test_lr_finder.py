"""LR range test: the geometric schedule, smoothing, the suggestion rules, and the test on a real model."""

import math

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from nnlab.data import make_spirals
from nnlab.lr_finder import LRFinderResult, geometric_lrs, lr_range_test, smooth_losses, suggest_lr
from nnlab.modules import mlp


def test_geometric_lrs_end_points_and_constant_ratio():
    lrs = geometric_lrs(1e-5, 10.0, 61)
    assert lrs.dtype == np.float64 and lrs.shape == (61,)
    assert lrs[0] == pytest.approx(1e-5) and lrs[-1] == pytest.approx(10.0)
    ratios = lrs[1:] / lrs[:-1]
    np.testing.assert_allclose(ratios, 10 ** 0.1, rtol=1e-12)     # 6 decades in 60 steps


@pytest.mark.parametrize("args, words", [((0, 1, 10), "lr_min must be a positive"), ((1, 1, 10), "lr_min < lr_max"),
                                         ((1e-3, 1, 1), "num_steps must be an integer >= 2"),
                                         ((1e-3, float("inf"), 10), "lr_max must be a positive")])
def test_geometric_lrs_rejects_bad_arguments(args, words):
    with pytest.raises(ValueError, match=words):
        geometric_lrs(*args)


def test_smooth_losses_is_the_bias_corrected_average():
    losses = np.array([2.0, 4.0, 1.0, 3.0])
    beta = 0.5
    avg, expected = 0.0, []
    for k, loss in enumerate(losses):
        avg = beta * avg + (1 - beta) * loss
        expected.append(avg / (1 - beta ** (k + 1)))
    np.testing.assert_allclose(smooth_losses(losses, beta), expected, rtol=1e-12)
    np.testing.assert_allclose(smooth_losses(np.full(50, 2.3), 0.98), 2.3, rtol=1e-12)   # no start-up bias
    np.testing.assert_array_equal(smooth_losses(losses, 0.0), losses)
    with pytest.raises(ValueError, match="beta must be in"):
        smooth_losses(losses, 1.0)


def test_suggest_min_over_ten_on_a_parabola():
    lrs = np.logspace(-5, 0, 101)
    losses = (np.log10(lrs) + 2) ** 2 + 1.0          # lowest at lr = 1e-2
    assert suggest_lr(lrs, losses, beta=0.0) == pytest.approx(1e-3)
    # smoothing delays the curve a little, so the minimum of the smoothed loss comes a few steps later
    assert 1e-3 <= suggest_lr(lrs, losses, beta=0.9) <= 3e-3


def test_suggest_steepest_on_a_sigmoid_drop():
    lrs = np.logspace(-5, 0, 101)
    t = np.log10(lrs)
    losses = 2.3 - 2.0 / (1 + np.exp(-4 * (t + 3))) + np.where(t > -1, 10 * (t + 1) ** 2, 0)   # steepest at 1e-3
    assert suggest_lr(lrs, losses, method="steepest", beta=0.0) == pytest.approx(1e-3, rel=0.15)
    with pytest.raises(ValueError, match="method must be"):
        suggest_lr(lrs, losses, method="valley")


def test_suggest_ignores_the_divergent_tail():
    lrs = np.logspace(-4, 1, 6)
    losses = np.array([2.3, 2.0, 1.0, 0.5, 3.0, np.inf])
    assert suggest_lr(lrs, losses, beta=0.0) == pytest.approx(1e-2)
    with pytest.raises(ValueError, match="first loss is already non-finite"):
        suggest_lr(lrs, np.array([np.nan, 1, 1, 1, 1, 1.0]))
    with pytest.raises(ValueError, match="same length"):
        suggest_lr(lrs, losses[:3])


@pytest.fixture
def spirals(rng):
    X, y = make_spirals(n_per_class=100, n_classes=3, rng=rng)
    return {"X_train": X.astype(np.float32), "y_train": y}


def test_range_test_records_stops_on_divergence_and_restores(spirals):
    model = mlp(2, [32], 3, rng=np.random.default_rng(0))
    before = model.state_dict()
    result = lr_range_test(model, spirals, lr_min=1e-4, lr_max=1e3, num_steps=200, batch_size=32,
                           rng=np.random.default_rng(1))
    assert isinstance(result, LRFinderResult)
    assert result.diverged and 2 <= len(result.lrs) < 200, "a learning rate of 1000 must blow the loss up"
    np.testing.assert_allclose(result.lrs, geometric_lrs(1e-4, 1e3, 200)[:len(result.lrs)])
    assert result.losses.shape == result.lrs.shape == result.smoothed.shape
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    # the curve falls before it rises: the lowest smoothed loss is clearly below the first loss
    assert result.smoothed.min() < 0.9 * result.losses[0]
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k]) for k in before), "the model must get its weights back"
    assert result.suggest("steepest") > 0


def test_range_test_is_reproducible_and_can_keep_the_trained_weights(spirals):
    runs = [lr_range_test(mlp(2, [16], 3, rng=np.random.default_rng(0)), spirals, lr_min=1e-3, lr_max=1.0,
                          num_steps=30, batch_size=50, rng=np.random.default_rng(5)) for _ in range(2)]
    np.testing.assert_array_equal(runs[0].losses, runs[1].losses)
    assert not runs[0].diverged and len(runs[0].lrs) == 30        # 30 steps > one pass over 300 examples
    model = mlp(2, [16], 3, rng=np.random.default_rng(0))
    w0 = model[0].params["w"].copy()
    lr_range_test(model, spirals, lr_min=1e-3, lr_max=1.0, num_steps=10, rng=np.random.default_rng(5), restore=False)
    assert not np.array_equal(w0, model[0].params["w"])


def test_range_test_with_momentum_and_arguments(spirals):
    model = mlp(2, [16], 3, rng=np.random.default_rng(0))
    result = lr_range_test(model, spirals, lr_min=1e-4, lr_max=10, num_steps=50, update_rule="sgd_momentum",
                           optim_config={"momentum": 0.9}, rng=np.random.default_rng(2), method="steepest")
    assert result.method == "steepest" and math.isfinite(result.suggestion)
    with pytest.raises(ValueError, match="diverge must be > 1"):
        lr_range_test(model, spirals, diverge=1.0)
    with pytest.raises(ValueError, match="method must be"):
        lr_range_test(model, spirals, method="valley")


def test_plot_returns_the_axes(spirals):
    import matplotlib.pyplot as plt

    result = lr_range_test(mlp(2, [16], 3, rng=np.random.default_rng(0)), spirals, lr_min=1e-4, lr_max=1e3,
                           num_steps=100, rng=np.random.default_rng(3))
    ax = result.plot()
    assert ax.get_xscale() == "log" and len(ax.lines) == 3
    plt.close(ax.figure)
