"""Modules: gradients through containers, modes, naming, state, and plugging in your own pair."""

import numpy as np
import pytest

from nnlab.checks import assert_close, assert_grad_close
from nnlab.gradcheck import numerical_gradient
from nnlab.layers import softmax_loss
from nnlab.modules import (BatchNorm1d, Dropout, FunctionModule, LayerNorm, Linear, PReLU, Sequential,
                           Tanh, mlp)


def _loss(model, X, y):
    loss, _ = softmax_loss(model.forward(X), y)
    return loss


def _check_model_gradients(model, X, y, tol=1e-6):
    loss, dscores = softmax_loss(model.forward(X), y)
    model.backward(dscores)
    grads = dict(model.named("grads"))
    for name, w in model.named("params"):
        numeric = numerical_gradient(lambda _: _loss(model, X, y), w)
        assert_grad_close(grads[name], numeric, name=name, tol=tol)


@pytest.mark.parametrize("norm", [None, "batchnorm", "layernorm"])
@pytest.mark.parametrize("activation", ["relu", "tanh", "prelu"])
def test_mlp_gradients(rng, norm, activation):
    model = mlp(5, [6, 4], 3, activation=activation, norm=norm, init="xavier", rng=rng, dtype=np.float64)
    X = rng.standard_normal((7, 5))
    y = rng.integers(0, 3, size=7)
    _check_model_gradients(model, X, y)


def test_mlp_layout_and_param_names(rng):
    model = mlp(784, [100, 50], 10, norm="batchnorm", dropout=0.5, rng=rng)
    kinds = [type(layer).__name__ for layer in model]
    assert kinds == ["Linear", "BatchNorm1d", "Activation", "Dropout",
                     "Linear", "BatchNorm1d", "Activation", "Dropout", "Linear"]
    names = [name for name, _ in model.named("params")]
    assert names[:4] == ["0.w", "0.b", "1.gamma", "1.beta"]
    assert model.decayed() == ["0.w", "4.w", "8.w"], "only weight matrices are penalised, not biases or BN"
    assert model.num_params() == 784 * 100 + 100 + 200 + 100 * 50 + 50 + 100 + 50 * 10 + 10
    assert all(w.dtype == np.float32 for _, w in model.named("params"))


def test_student_pair_plugs_in(rng):
    calls = []

    def my_tanh_forward(x):
        calls.append("forward")
        out = np.tanh(x)
        return out, out

    def my_tanh_backward(dout, cache):
        calls.append("backward")
        return dout * (1 - cache ** 2)

    mine = mlp(4, [5], 3, activation=(my_tanh_forward, my_tanh_backward), rng=np.random.default_rng(0),
               dtype=np.float64)
    ref = mlp(4, [5], 3, activation=Tanh, rng=np.random.default_rng(0), dtype=np.float64)
    X = rng.standard_normal((6, 4))
    assert_close(mine.forward(X), ref.forward(X), name="scores with your tanh")
    mine.backward(np.ones((6, 3)))
    assert calls == ["forward", "backward"]
    assert "my_tanh" in repr(mine)


def test_set_and_state_dict_roundtrip(rng):
    model = mlp(3, [4], 2, norm="batchnorm", rng=rng, dtype=np.float64)
    model.forward(rng.standard_normal((8, 3)))  # moves the running statistics
    snapshot = model.state_dict()
    assert "buffers/1.running_mean" in snapshot
    model.set("params", "0.w", np.zeros((3, 4)))
    model.set("buffers", "1.running_mean", np.full(4, 7.0))
    model.load_state_dict(snapshot)
    assert_close(model[0].params["w"], snapshot["params/0.w"], name="restored weights")
    assert_close(model[1].buffers["running_mean"], snapshot["buffers/1.running_mean"], name="restored running mean")
    with pytest.raises(KeyError, match="no param named '0.gamma'"):
        model.set("params", "0.gamma", np.zeros(4))


def test_eval_mode_turns_off_dropout_and_uses_running_stats(rng):
    model = Sequential(Linear(4, 6, rng=rng, dtype=np.float64), BatchNorm1d(6, dtype=np.float64),
                       Dropout(0.5, rng=rng))
    X = rng.standard_normal((16, 4))
    model.train()
    assert not np.allclose(model.forward(X), model.forward(X)), "dropout masks differ between calls in train mode"
    model.eval()
    assert not model[1].training and not model[2].training
    out = model.forward(X)
    assert_close(model.forward(X), out, name="eval-mode output (deterministic)")
    bn = model[1]
    h = X @ model[0].params["w"] + model[0].params["b"]
    expected = (h - bn.buffers["running_mean"]) / np.sqrt(bn.buffers["running_var"] + bn.eps)
    assert_close(out, expected, name="eval output", hint="eval mode normalises with the running statistics")


def test_layernorm_and_prelu_modules_have_grads(rng):
    model = Sequential(Linear(3, 4, rng=rng, dtype=np.float64), LayerNorm(4, dtype=np.float64),
                       PReLU(4, dtype=np.float64), Linear(4, 2, rng=rng, dtype=np.float64))
    _check_model_gradients(model, rng.standard_normal((5, 3)), rng.integers(0, 2, size=5))


def test_bad_construction_messages(rng):
    with pytest.raises(ValueError, match="unknown activation 'relu6'"):
        mlp(3, [4], 2, activation="relu6", rng=rng)
    with pytest.raises(ValueError, match="norm must be"):
        mlp(3, [4], 2, norm="groupnorm", rng=rng)
    with pytest.raises(ValueError, match="wrap a \\(forward, backward\\) pair in FunctionModule"):
        Sequential(np.tanh)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        Linear(2, 2, rng=rng).backward(np.ones((1, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"x must|w must"):
        Linear(3, 2, rng=rng).forward(np.ones((4, 5), dtype=np.float32))


def test_function_module_named_after_forward():
    module = FunctionModule(lambda x: (x, None), lambda d, c: d, name="identity")
    assert repr(module) == "FunctionModule(identity)"


def test_first_layer_skips_the_data_gradient_unless_asked(rng):
    model = mlp(4, [5], 3, rng=rng, dtype=np.float64)
    X = rng.standard_normal((6, 4))
    dscores = rng.standard_normal((6, 3))
    model.forward(X)
    assert model.backward(dscores) is None, "the data needs no gradient, so mlp skips computing it"
    model[0].needs_input_grad = True
    model.forward(X)
    dx = model.backward(dscores)
    numeric = numerical_gradient(lambda v: np.sum(model.forward(v) * dscores), X)
    assert_grad_close(dx, numeric, name="dx of the whole network")
