"""A thin object layer over the functional layers.

A Module holds three dicts and a mode:

    params   name -> array     learned by the update rule
    grads    name -> array     filled by backward(), same shapes as params
    buffers  name -> array     state that is not learned (BatchNorm running statistics)
    training True in train mode, False in eval mode (dropout off, BatchNorm uses running stats)

`forward(x)` caches what `backward(dout)` needs, exactly like the functional pairs, so a
student's own `(forward, backward)` pair plugs in through FunctionModule or `mlp(activation=...)`.
Containers name nested entries "index.name" ("0.w", "2.gamma"), which is what the Trainer and
`state_dict()` use.
"""

import numpy as np

from . import init as initializers
from .activations import ACTIVATIONS, prelu_backward, prelu_forward
from .layers import affine_backward, affine_forward
from .normalization import (batchnorm_backward_alt, batchnorm_forward, layernorm_backward,
                            layernorm_forward)
from .regularization import dropout_backward, dropout_forward

__all__ = ["Module", "Linear", "FunctionModule", "Activation", "ReLU", "Sigmoid", "Tanh", "LeakyReLU",
           "ELU", "SELU", "GELU", "PReLU", "BatchNorm1d", "LayerNorm", "Dropout", "Sequential", "mlp"]


class Module:
    """Base class: subclasses set params/buffers in __init__ and implement forward/backward."""

    #: names of params that weight decay / L2 applies to (biases and norm scales are not penalised)
    decay = ()

    def __init__(self):
        self.params, self.grads, self.buffers = {}, {}, {}
        self.training = True
        self._cache = None

    def forward(self, x):
        raise NotImplementedError

    def backward(self, dout):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def _check_forward_done(self):
        if self._cache is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._cache

    # --- mode -------------------------------------------------------------------------------
    def train(self, mode=True):
        """Switch to train mode (eval mode with mode=False). Returns self."""
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    # --- nested naming ----------------------------------------------------------------------
    def children(self):
        return []

    def named(self, kind):
        """All (qualified_name, array) pairs of `kind` ("params", "grads" or "buffers"), nested included."""
        items = list(getattr(self, kind).items())
        for i, child in enumerate(self.children()):
            items += [(f"{i}.{name}", value) for name, value in child.named(kind)]
        return items

    def _owner(self, qualified):
        head, _, rest = qualified.partition(".")
        if rest and head.isdigit() and int(head) < len(self.children()):
            return self.children()[int(head)]._owner(rest)
        return self, qualified

    def set(self, kind, qualified, value):
        """Replace one entry, e.g. set("params", "0.w", new_w) (how the Trainer applies updates)."""
        owner, name = self._owner(qualified)
        store = getattr(owner, kind)
        if name not in store:
            raise KeyError(f"{type(self).__name__} has no {kind[:-1]} named {qualified!r}; "
                           f"it has {[n for n, _ in self.named(kind)]}")
        store[name] = value

    def decayed(self):
        """Qualified names of the params that a weight penalty applies to."""
        names = [name for name in self.params if name in self.decay]
        for i, child in enumerate(self.children()):
            names += [f"{i}.{name}" for name in child.decayed()]
        return names

    def state_dict(self):
        """Copies of all params and buffers, keyed "params/NAME" and "buffers/NAME"."""
        return {f"{kind}/{name}": value.copy()
                for kind in ("params", "buffers") for name, value in self.named(kind)}

    def load_state_dict(self, state):
        """Restore what state_dict() returned (copies, so the snapshot stays intact)."""
        for key, value in state.items():
            kind, _, name = key.partition("/")
            self.set(kind, name, value.copy())

    def num_params(self):
        return sum(value.size for _, value in self.named("params"))

    def __repr__(self):
        return f"{type(self).__name__}()"


class Linear(Module):
    """Fully connected layer out = x @ w + b with w (in_dim, out_dim), b (out_dim,).

    `init` is a name from nnlab.init ("he", "xavier", "small_random", "orthogonal", ...), a float
    (the std of a Gaussian), or a callable init(shape, rng=, dtype=). Biases start at zero.
    With needs_input_grad=False, backward() fills the grads but returns None instead of dx:
    mlp() sets it on the first layer, whose input is the data.
    """

    decay = ("w",)

    def __init__(self, in_dim, out_dim, init="he", rng=None, dtype=np.float32, needs_input_grad=True):
        super().__init__()
        self.needs_input_grad = needs_input_grad
        rng = np.random.default_rng() if rng is None else rng
        shape = (int(in_dim), int(out_dim))
        if isinstance(init, (int, float)):
            w = float(init) * rng.standard_normal(shape)
        else:
            w = (initializers.get(init) if isinstance(init, str) else init)(shape, rng=rng, dtype=dtype)
        self.params = {"w": np.asarray(w, dtype=dtype), "b": np.zeros(out_dim, dtype=dtype)}
        self.in_dim, self.out_dim = shape

    def forward(self, x):
        out, self._cache = affine_forward(x, self.params["w"], self.params["b"])
        return out

    def backward(self, dout):
        dx, self.grads["w"], self.grads["b"] = affine_backward(dout, self._check_forward_done(),
                                                               need_dx=self.needs_input_grad)
        return dx

    def __repr__(self):
        return f"Linear({self.in_dim}, {self.out_dim})"


class FunctionModule(Module):
    """Wrap a parameter-free pair forward_fn(x) -> (out, cache), backward_fn(dout, cache) -> dx.

    This is how your own activation plugs into a network: FunctionModule(my_forward, my_backward).
    """

    def __init__(self, forward_fn, backward_fn, name=None):
        super().__init__()
        self.forward_fn, self.backward_fn = forward_fn, backward_fn
        self.name = name or getattr(forward_fn, "__name__", "function").removesuffix("_forward")

    def forward(self, x):
        out, self._cache = self.forward_fn(x)
        return out

    def backward(self, dout):
        return self.backward_fn(dout, self._check_forward_done())

    def __repr__(self):
        return f"{type(self).__name__}({self.name})"


class Activation(FunctionModule):
    """An activation of nnlab.activations by name: Activation("tanh")."""

    def __init__(self, name):
        if name not in ACTIVATIONS:
            raise ValueError(f"unknown activation {name!r}; choose one of {sorted(ACTIVATIONS)}")
        super().__init__(*ACTIVATIONS[name], name=name)


class ReLU(Activation):
    def __init__(self):
        super().__init__("relu")


class Sigmoid(Activation):
    def __init__(self):
        super().__init__("sigmoid")


class Tanh(Activation):
    def __init__(self):
        super().__init__("tanh")


class LeakyReLU(Activation):
    def __init__(self):
        super().__init__("leaky_relu")


class ELU(Activation):
    def __init__(self):
        super().__init__("elu")


class SELU(Activation):
    def __init__(self):
        super().__init__("selu")


class GELU(Activation):
    def __init__(self):
        super().__init__("gelu")


class PReLU(Module):
    """Parametric ReLU max(0,x) + alpha*min(0,x) with one learned slope per feature (dim,)."""

    def __init__(self, dim, alpha=0.25, dtype=np.float32):
        super().__init__()
        self.params = {"alpha": np.full(dim, alpha, dtype=dtype)}

    def forward(self, x):
        out, self._cache = prelu_forward(x, self.params["alpha"])
        return out

    def backward(self, dout):
        dx, self.grads["alpha"] = prelu_backward(dout, self._check_forward_done())
        return dx


class BatchNorm1d(Module):
    """BatchNorm over the batch axis of (N, D) inputs; see nnlab.normalization.batchnorm_forward.

    momentum follows the lecture (CS231n) convention: running = momentum * running + (1 - momentum) * batch,
    so 0.9 weights the old average (PyTorch's momentum=0.1 is the same thing).
    running_var averages the biased batch variance, as in the lectures; unbiased_running_var=True
    averages the unbiased one, as torch.nn.BatchNorm1d does.
    The running statistics live in .buffers and are used in eval mode.
    """

    def __init__(self, dim, momentum=0.9, eps=1e-5, unbiased_running_var=False, dtype=np.float32):
        super().__init__()
        self.params = {"gamma": np.ones(dim, dtype=dtype), "beta": np.zeros(dim, dtype=dtype)}
        self.buffers = {"running_mean": np.zeros(dim, dtype=dtype), "running_var": np.ones(dim, dtype=dtype)}
        self.momentum, self.eps, self.unbiased_running_var = momentum, eps, unbiased_running_var

    def forward(self, x):
        bn_param = {"mode": "train" if self.training else "test", "eps": self.eps, "momentum": self.momentum,
                    "unbiased_running_var": self.unbiased_running_var, **self.buffers}
        out, self._cache = batchnorm_forward(x, self.params["gamma"], self.params["beta"], bn_param)
        self.buffers["running_mean"] = bn_param["running_mean"]
        self.buffers["running_var"] = bn_param["running_var"]
        return out

    def backward(self, dout):
        dx, self.grads["gamma"], self.grads["beta"] = batchnorm_backward_alt(dout, self._check_forward_done())
        return dx


class LayerNorm(Module):
    """LayerNorm over the features of each example (same in train and eval mode)."""

    def __init__(self, dim, eps=1e-5, dtype=np.float32):
        super().__init__()
        self.params = {"gamma": np.ones(dim, dtype=dtype), "beta": np.zeros(dim, dtype=dtype)}
        self.eps = eps

    def forward(self, x):
        out, self._cache = layernorm_forward(x, self.params["gamma"], self.params["beta"], {"eps": self.eps})
        return out

    def backward(self, dout):
        dx, self.grads["gamma"], self.grads["beta"] = layernorm_backward(dout, self._check_forward_done())
        return dx


class Dropout(Module):
    """Inverted dropout; p is the probability of DROPPING a unit. Identity in eval mode."""

    def __init__(self, p, rng=None):
        super().__init__()
        self.p = p
        self.rng = np.random.default_rng() if rng is None else rng

    def forward(self, x):
        param = {"p": self.p, "mode": "train" if self.training else "test", "rng": self.rng}
        out, self._cache = dropout_forward(x, param)
        return out

    def backward(self, dout):
        return dropout_backward(dout, self._check_forward_done())

    def __repr__(self):
        return f"Dropout(p={self.p})"


class Sequential(Module):
    """Modules applied in order; backward runs them in reverse."""

    def __init__(self, *layers):
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise ValueError(f"Sequential takes Modules, but argument {i} is a {type(layer).__name__}; "
                                 "wrap a (forward, backward) pair in FunctionModule")
        self.layers = list(layers)

    def children(self):
        return self.layers

    def forward(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dout):
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
            if dout is None:  # a layer that needs no input gradient: nothing below it to update
                break
        return dout

    def __getitem__(self, i):
        return self.layers[i]

    def __len__(self):
        return len(self.layers)

    def __repr__(self):
        inner = "\n".join(f"  ({i}) {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


def _activation_module(activation, dim, dtype):
    if isinstance(activation, str):
        return PReLU(dim, dtype=dtype) if activation == "prelu" else Activation(activation)
    if isinstance(activation, tuple) and len(activation) == 2:
        return FunctionModule(*activation)
    if callable(activation):  # a factory such as nnlab.modules.Tanh
        return activation()
    raise ValueError("activation must be a name, a (forward, backward) pair or a Module class, "
                     f"got {activation!r}")


def mlp(input_dim, hidden_dims, num_classes, activation="relu", norm=None, dropout=0.0, init="he",
        rng=None, dtype=np.float32):
    """Build Linear -> [norm] -> activation -> [dropout] for each hidden width, then a Linear to the scores.

    Args:
        input_dim: D, the number of input features.
        hidden_dims: widths of the hidden layers, e.g. [512, 512]; [] gives a linear classifier.
        num_classes: C, the number of output scores.
        activation: a name in nnlab.activations.ACTIVATIONS or "prelu", your own (forward, backward)
            pair, or a Module class.
        norm: None, "batchnorm" or "layernorm" (placed before the activation).
        dropout: probability of dropping a hidden unit (0 disables dropout).
        init: weight initialiser (see Linear).
        rng: numpy Generator for the weights and the dropout masks.
    Returns:
        a Sequential mapping (N, D) inputs to (N, C) scores. Its first Linear computes no gradient
        for the data (set model[0].needs_input_grad = True to get dx from model.backward).
    """
    if norm not in (None, "batchnorm", "layernorm"):
        raise ValueError(f"norm must be None, 'batchnorm' or 'layernorm', got {norm!r}")
    rng = np.random.default_rng() if rng is None else rng
    layers, fan_in = [], input_dim
    for width in hidden_dims:
        layers.append(Linear(fan_in, width, init=init, rng=rng, dtype=dtype, needs_input_grad=bool(layers)))
        if norm == "batchnorm":
            layers.append(BatchNorm1d(width, dtype=dtype))
        elif norm == "layernorm":
            layers.append(LayerNorm(width, dtype=dtype))
        layers.append(_activation_module(activation, width, dtype))
        if dropout:
            layers.append(Dropout(dropout, rng=rng))
        fan_in = width
    layers.append(Linear(fan_in, num_classes, init=init, rng=rng, dtype=dtype, needs_input_grad=bool(layers)))
    return Sequential(*layers)
