"""Update rules. Every rule has one shape:

    next_w = rule(w, dw, state, **hyper)

`state` is a dict the rule fills on first use and updates in place (one dict per parameter),
so a student's own rule plugs into the Trainer the same way.
"""


def sgd(w, dw, state, lr=1e-2):
    """Vanilla SGD: w <- w - lr * dw. Uses no state."""
    return w - lr * dw
