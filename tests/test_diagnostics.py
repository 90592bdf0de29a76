"""Diagnostics: activation statistics, saturation, dead units, gradient norms, update ratios."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from nnlab.diagnostics import (UpdateRatioRecorder, activation_stats, dead_unit_fraction, gradient_norms,
                               saturation_fraction, update_ratios)
from nnlab.optim import sgd


def test_activation_stats_values():
    a = np.array([[0.0, 0.995, -1.0], [0.5, 0.0, 0.2]])
    (s,) = activation_stats([a])
    assert s["mean"] == pytest.approx(a.mean()) and s["std"] == pytest.approx(a.std())
    assert (s["min"], s["max"]) == (-1.0, 0.995)
    assert s["frac_zero"] == pytest.approx(2 / 6)
    assert s["frac_saturated"] == pytest.approx(2 / 6), "tanh default: |a| >= 0.99 counts as saturated"
    (s2,) = activation_stats([a], saturation_bounds=None)
    assert s2["frac_saturated"] is None


def test_activation_stats_keeps_dict_keys_and_sigmoid_bounds():
    out = activation_stats({"h1": np.array([[0.005, 0.5, 0.999]])}, saturation_bounds=(0.01, 0.99))
    assert list(out) == ["h1"] and out["h1"]["frac_saturated"] == pytest.approx(2 / 3)


def test_activation_stats_shows_tanh_collapse_with_small_init(rng):
    x = rng.standard_normal((500, 100))
    acts = []
    for _ in range(6):
        x = np.tanh(x @ (0.01 * rng.standard_normal((100, 100))))
        acts.append(x)
    stds = [s["std"] for s in activation_stats(acts)]
    assert all(b < a for a, b in zip(stds, stds[1:])) and stds[-1] < 1e-4


def test_saturation_fraction_of_tanh(rng):
    h = np.array([[0.0, 1.0, 3.5, -5.0], [-0.5, 10.0, 2.0, 0.1]])
    local = 1 - np.tanh(h) ** 2
    # |h| > ~2.99 gives 1 - tanh^2 < 0.01
    assert saturation_fraction(local) == pytest.approx(3 / 8)
    assert saturation_fraction([local, np.ones((2, 2))]) == [pytest.approx(3 / 8), 0.0]
    assert saturation_fraction({"l1": local}, threshold=0.5) == {"l1": pytest.approx(np.mean(local < 0.5))}


def test_dead_unit_fraction_counts_units_never_active():
    acts = np.array([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 2.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    assert dead_unit_fraction(acts) == pytest.approx(0.5), "units 0 and 3 are never active"
    preacts = np.array([[-1.0, 0.5], [-2.0, -0.1]])
    assert dead_unit_fraction([preacts, acts]) == [0.5, 0.5]
    conv = np.zeros((2, 3, 2, 2))
    conv[0, 0] = 1.0
    assert dead_unit_fraction(conv) == pytest.approx(8 / 12)


def test_gradient_norms_dict_and_list():
    grads = {"W1": np.array([[3.0, 4.0]]), "b1": np.zeros(2, dtype=np.float32)}
    assert gradient_norms(grads) == {"W1": 5.0, "b1": 0.0}
    assert gradient_norms([np.ones(4)]) == [2.0]


def test_update_ratios_values():
    before = {"W": np.array([3.0, 4.0]), "b": np.zeros(2)}
    after = {"W": np.array([3.0, 4.05]), "b": np.array([0.1, 0.0])}
    r = update_ratios(before, after)
    assert r["W"] == pytest.approx(0.01)
    assert np.isnan(r["b"]), "||W_before|| = 0: the ratio is undefined (nan)"
    assert update_ratios([np.ones(4)], [np.ones(4) * 1.001]) == [pytest.approx(1e-3)]


@settings(max_examples=25, deadline=None)
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=3), lr=st.floats(1e-5, 1e-1))
def test_update_ratio_of_sgd_is_lr_times_grad_over_weight_norm(shape, lr):
    rng = np.random.default_rng(sum(shape))
    w, dw = rng.standard_normal(shape) + 0.1, rng.standard_normal(shape)
    r = update_ratios({"w": w}, {"w": sgd(w, dw, {}, lr=lr)})["w"]
    assert r == pytest.approx(lr * np.linalg.norm(dw) / np.linalg.norm(w), rel=1e-9)


def test_diagnostics_reject_bad_input():
    with pytest.raises(ValueError, match="must be a list or a dict"):
        activation_stats(np.ones(3))
    with pytest.raises(ValueError, match="same keys"):
        update_ratios({"W": np.ones(2)}, {"V": np.ones(2)})
    with pytest.raises(ValueError, match=r"params_after\['W'\] must have shape \(2,\)"):
        update_ratios({"W": np.ones(2)}, {"W": np.ones(3)})
    with pytest.raises(ValueError, match="threshold must be > 0"):
        saturation_fraction(np.ones(2), threshold=0)
    with pytest.raises(ValueError, match="at least 2 dimension"):
        dead_unit_fraction(np.ones(3))
    with pytest.raises(ValueError, match="floating-point"):
        gradient_norms({"W": np.ones(2, dtype=int)})


class _FakeModel:
    def __init__(self, rng):
        self.params = {"W": rng.standard_normal((4, 3)), "b": np.ones(3)}


class _FakeTrainer:
    def __init__(self, rng):
        self.model = _FakeModel(rng)
        self.step = 0

    def update(self, rng):
        for k, v in self.model.params.items():
            self.model.params[k] = v - 1e-2 * rng.standard_normal(v.shape)
        self.step += 1


def test_recorder_with_params_getter_records_every_update(rng):
    params = {"W": rng.standard_normal((5, 5))}
    rec = UpdateRatioRecorder(params=lambda: params)
    history = []
    for _ in range(3):
        before = params["W"].copy()
        params["W"] -= 1e-3 * rng.standard_normal((5, 5))  # in-place update, as an optimiser may do
        history.append(np.linalg.norm(params["W"] - before) / np.linalg.norm(before))
        rec.on_step()
    assert rec.steps == [1, 2, 3]
    assert rec.ratios["W"] == pytest.approx(history, rel=1e-12)


def test_recorder_as_trainer_callback(rng):
    trainer = _FakeTrainer(rng)
    rec = UpdateRatioRecorder(every=2, names=["W"])
    expected = []
    for i in range(6):
        before = trainer.model.params["W"].copy()
        trainer.update(rng)
        if (i + 1) % 2 == 0:
            expected.append(np.linalg.norm(trainer.model.params["W"] - before) / np.linalg.norm(before))
        rec.on_step(trainer)
    rec.on_epoch_end(trainer)
    assert rec.steps == [2, 4, 6] and list(rec.ratios) == ["W"]
    assert rec.ratios["W"] == pytest.approx(expected, rel=1e-12)
    steps, ratios = rec.as_arrays()
    assert steps.shape == ratios["W"].shape == (3,)
    assert "recorded=3" in repr(rec)


def test_recorder_without_getter_skips_first_update_unless_started(rng):
    trainer = _FakeTrainer(rng)
    rec = UpdateRatioRecorder()
    trainer.update(rng)
    rec.on_step(trainer)
    trainer.update(rng)
    rec.on_step(trainer)
    assert rec.steps == [2]
    rec2 = UpdateRatioRecorder()
    rec2.start(trainer.model.params)
    trainer.update(rng)
    rec2.on_step(trainer)
    assert rec2.steps == [3] and set(rec2.ratios) == {"W", "b"}


@pytest.mark.slow
def test_recorder_with_the_real_trainer(rng):
    from nnlab.modules import mlp
    from nnlab.train import Trainer

    X = rng.standard_normal((60, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = mlp(5, [8], 2, rng=rng)
    rec = UpdateRatioRecorder()
    Trainer(model, {"X_train": X, "y_train": y}, update_rule="sgd", optim_config={"lr": 1e-2}, batch_size=20,
            epochs=2, rng=rng, callbacks=[rec], progress=False).fit()
    assert rec.steps == [1, 2, 3, 4, 5, 6], "every update, the first one included, is recorded"
    names = [n for n, _ in model.named("params")]
    assert set(rec.ratios) == set(names) and len(names) >= 4
    w_names = [n for n in names if n.endswith("w")]
    assert all(0 < r < 1 for n in w_names for r in rec.ratios[n])


# ----------------------------------------------------------------------------- over the course of training
def test_activation_histograms_are_fractions_with_clipped_ends():
    from nnlab.diagnostics import activation_histograms
    a = np.array([-1.0, 0.0, 0.1, 0.6, 0.9, 5.0])
    h = activation_histograms([a, np.zeros(4)], bins=[0.0, 0.5, 1.0])
    assert h.shape == (2, 2)
    np.testing.assert_allclose(h[0], [3 / 6, 3 / 6])       # -1 clipped into the first bin, 5 into the last
    np.testing.assert_allclose(h[1], [1.0, 0.0])
    np.testing.assert_allclose(h.sum(axis=1), 1.0)
    assert list(activation_histograms({"x": a}, [0.0, 1.0])) == ["x"]
    with pytest.raises(ValueError, match="increasing"):
        activation_histograms([a], [1.0, 0.0])


def test_near_zero_fraction():
    from nnlab.diagnostics import near_zero_fraction
    got = near_zero_fraction([np.array([0.0, 0.005, -0.02, 1.0]), np.ones(3)], tol=0.01)
    np.testing.assert_allclose(got, [0.5, 0.0])
    with pytest.raises(ValueError):
        near_zero_fraction([np.ones(2)], tol=0)


def test_activation_history_recorder_with_a_trainer_leaves_training_unchanged(rng):
    from nnlab.data import make_moons
    from nnlab.diagnostics import ActivationHistoryRecorder
    from nnlab.modules import mlp
    from nnlab.train import Trainer
    X, y = make_moons(n=200, noise=0.1, rng=np.random.default_rng(0))
    data = {"X_train": X.astype(np.float32), "y_train": y, "X_val": X[:50].astype(np.float32), "y_val": y[:50]}

    def run(callbacks):
        model = mlp(2, [16, 16], 2, norm="batchnorm", rng=np.random.default_rng(1))
        hist = Trainer(model, data, update_rule="sgd", optim_config={"lr": 0.1}, batch_size=20, epochs=3,
                       rng=np.random.default_rng(2), progress=False, callbacks=callbacks).fit()
        return model, hist

    rec = ActivationHistoryRecorder(data["X_train"][:64], bins=np.linspace(0, 3, 7), every=5)
    model, hist = run([rec])
    plain, plain_hist = run([])
    np.testing.assert_array_equal(hist.loss, plain_hist.loss)              # recording changes nothing
    for (n1, v1), (_, v2) in zip(model.named("buffers"), plain.named("buffers")):
        np.testing.assert_array_equal(v1, v2, err_msg=n1)
    steps = rec.steps
    assert steps[0] == 0 and np.all(np.diff(steps) == 5) and steps[-1] == 30
    assert rec.names == ["2:relu", "5:relu"]
    assert rec.histograms.shape == (2, len(steps), 6) and rec.near_zero.shape == (2, len(steps))
    np.testing.assert_allclose(rec.histograms.sum(axis=2), 1.0)
    # ReLU outputs: the first bin holds the zeros, so it is at least the near-zero fraction of exact zeros
    assert np.all(rec.histograms[:, :, 0] >= rec.near_zero - 1e-12)
    with pytest.raises(ValueError):
        ActivationHistoryRecorder(data["X_train"], bins=[0, 1], every=0)
