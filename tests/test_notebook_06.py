"""Notebook 06 (regularization): fast checks of the solution notebook without executing its experiments.

The exercise cells are executed in a plain namespace; then every graded test cell (visible AND hidden part)
is run against (a) the solution, which must pass, (b) the stubs nbgrader makes, which must fail,
(c) answers that only delegate to nnlab, which must fail with the "not nnlab's" message, and (d) answers with
a classic mistake, whose failure message must name that mistake. The solution is also cross-checked against
nnlab.regularization and nnlab.augment on random inputs: two independent implementations agreeing.
`python -m grader validate 06_regularization` executes the whole notebook; this file takes a few seconds.
"""

import re

import numpy as np
import pytest
from notebook_cells import SOLUTIONS, check_metadata, exercise_sources, load_cells, namespace, stub

import nnlab.augment as A
import nnlab.regularization as R

SOURCE = SOLUTIONS / "06_regularization" / "regularization.ipynb"
pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="no solutions/ here (a student copy of the course)")

EXERCISES = {  # test cell -> the exercise cells it needs (in order)
    "test_penalties": ("penalties_impl",),
    "test_add_penalty": ("penalties_impl", "add_penalty_impl"),
    "test_dropout_forward": ("dropout_forward_impl",),
    "test_dropout_backward": ("dropout_forward_impl", "dropout_backward_impl"),
    "test_dropout_scale_at_test": ("dropout_scale_at_test_impl",),
    "test_random_crop": ("random_crop_impl",),
    "test_horizontal_flip": ("horizontal_flip_impl",),
    "test_early_stopping": ("early_stopping_impl",),
    "test_ensemble": ("ensemble_impl",),
}
OWN = {  # the exercise each test cell grades (the one that is stubbed / wrapped / broken)
    "test_penalties": "penalties_impl", "test_add_penalty": "add_penalty_impl",
    "test_dropout_forward": "dropout_forward_impl", "test_dropout_backward": "dropout_backward_impl",
    "test_dropout_scale_at_test": "dropout_scale_at_test_impl", "test_random_crop": "random_crop_impl",
    "test_horizontal_flip": "horizontal_flip_impl", "test_early_stopping": "early_stopping_impl",
    "test_ensemble": "ensemble_impl",
}


@pytest.fixture(scope="module")
def cells():
    return load_cells(SOURCE)


def sources(cells, test_id, replace=None):
    return exercise_sources(cells, EXERCISES, OWN, test_id, replace)


def test_metadata_points_and_ids(cells):
    check_metadata(cells, EXERCISES, (22, 2))


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_solution_passes_visible_and_hidden_tests(cells, test_id):
    ns = namespace(cells, sources(cells, test_id))
    exec(cells[test_id].source, ns)


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_stub_fails(cells, test_id):
    ns = namespace(cells, sources(cells, test_id, lambda gid, src: stub(src)))
    with pytest.raises(NotImplementedError):
        exec(cells[test_id].source, ns)


WRAP_DROPOUT = '''
from nnlab.regularization import dropout_forward as _nn_fwd, dropout_backward as _nn_bwd
def dropout_forward(x, dropout_param):
    out, (mode, variant, mask) = _nn_fwd(x, dropout_param)
    return out, (dropout_param, None if mode == "test" else mask * (1 - dropout_param["p"]))
def dropout_backward(dout, cache):
    param, mask = cache
    return _nn_bwd(dout, (param["mode"], "inverted", None if mask is None else mask / (1 - param["p"])))
'''
WRAPPERS = {
    "penalties_impl": "from nnlab.regularization import l2_penalty, l1_penalty, elastic_net_penalty",
    "add_penalty_impl": '''
from nnlab.regularization import l2_penalty as _l2, l1_penalty as _l1, elastic_net_penalty as _en
def add_weight_penalty(loss, params, grads, weight_names, lam, kind="l2", l1_ratio=0.5):
    new = dict(grads)
    for n in weight_names:
        r, d = {"l2": lambda w: _l2(w, lam), "l1": lambda w: _l1(w, lam),
                "elastic_net": lambda w: _en(w, lam, l1_ratio)}[kind](params[n])
        loss, new[n] = loss + r, grads[n] + d
    return loss, new
''',
    "dropout_forward_impl": WRAP_DROPOUT,
    "dropout_backward_impl": WRAP_DROPOUT,
    "dropout_scale_at_test_impl": '''
from nnlab.regularization import dropout_forward as _nn_fwd
def dropout_forward_scale_at_test(x, dropout_param):
    out, (mode, variant, mask) = _nn_fwd(x, {**dropout_param, "variant": "scale_at_test"})
    return out, (dropout_param, None if mode == "test" else mask)
''',
    "random_crop_impl": '''
from nnlab.augment import random_crop as _rc
def random_crop(x, padding, rng):
    return _rc(x, x.shape[2:], padding=padding, rng=rng)
''',
    "horizontal_flip_impl": '''
from nnlab.augment import horizontal_flip as _hf
def horizontal_flip(x, rng, p=0.5):
    return _hf(x, p=p, rng=rng)
''',
    "early_stopping_impl": '''
from nnlab.train import EarlyStopping as _ES
class EarlyStopping(_ES):
    def __init__(self, patience=3, min_delta=0.0):
        super().__init__(patience=patience, min_delta=min_delta)
        self.best_epoch, self.best_state = None, None
    def update(self, epoch, val_acc, state):
        class T:
            pass
        t = T()
        t.history, t.epoch, t.stop_training = T(), epoch, False
        t.history.val_acc = [val_acc]
        improved = val_acc > self.best + self.min_delta
        self.on_epoch_end(t)
        if improved:
            self.best_epoch, self.best_state = epoch, {k: v.copy() for k, v in state.items()}
        return t.stop_training
''',
    "ensemble_impl": '''
from nnlab.regularization import ensemble_probabilities as _ep
from nnlab.layers import softmax as _sm
def ensemble_predict(scores):
    probs = _ep([_sm(s) for s in scores]).astype(scores.dtype)
    return probs.argmax(axis=1), probs
''',
}


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_answer_that_wraps_nnlab_fails(cells, test_id):
    # a delegating answer for the exercise the test grades (the others are the solution): it passes the visible
    # tests or not, but the hidden tests must refuse it
    ns = namespace(cells, sources(cells, test_id, lambda gid, src: WRAPPERS[gid]))
    with pytest.raises(AssertionError, match="not nnlab's"):
        exec(cells[test_id].source, ns)


MISTAKES = [  # (test cell, exercise, [(solution text, wrong text)], words the failure must contain)
    ("test_penalties", "penalties_impl", [("R = 0.5 * lam * float(", "R = lam * float(")], "1/2 is missing"),
    ("test_penalties", "penalties_impl", [("    dW = lam * np.sign(W)\n", "    dW = lam * W / np.abs(W)\n")],
     "NaN where W == 0"),
    ("test_penalties", "penalties_impl", [("    dW = lam * np.sign(W)\n", "    dW = lam * np.where(W >= 0, 1.0, -1.0)\n")],
     "subgradient at W == 0 is +lam"),
    ("test_penalties", "penalties_impl", [("    dW = lam * W\n", "    dW = 2 * lam * W\n")], "the 1/2 cancels the 2"),
    ("test_penalties", "penalties_impl", [("    dW = lam * W\n", "    dW = np.float64(lam) * W\n")], "float32"),
    ("test_penalties", "penalties_impl", [("    dW = lam * W\n", "    W *= lam\n    dW = W\n")], "in place"),
    ("test_penalties", "penalties_impl",
     [("dW = lam * (l1_ratio * np.sign(W) + (1 - l1_ratio) * W)", "dW = lam * ((1 - l1_ratio) * np.sign(W) + l1_ratio * W)")],
     "swapped in the gradient"),
    ("test_add_penalty", "add_penalty_impl", [("for name in weight_names:", "for name in params:")],
     "biases were penalised"),
    ("test_add_penalty", "add_penalty_impl", [("total_loss, new_grads = loss, dict(grads)", "total_loss, new_grads = 0.0, dict(grads)")],
     "data loss was not added"),
    ("test_add_penalty", "add_penalty_impl", [("new_grads[name] = grads[name] + dW", "new_grads[name] = dW")],
     "replaced the data gradient"),
    ("test_add_penalty", "add_penalty_impl", [("total_loss, new_grads = loss, dict(grads)", "total_loss, new_grads = loss, grads"),
                                              ("new_grads[name] = grads[name] + dW", "new_grads[name] += dW")],
     "changed in place"),
    ("test_dropout_forward", "dropout_forward_impl",
     [('mask = (dropout_param["rng"].random(x.shape) >= p).astype(x.dtype)\n        out = x * mask / (1 - p)',
       'mask = (dropout_param["rng"].random(x.shape) < p).astype(x.dtype)\n        out = x * mask / p')],
     "probability of KEEPING"),
    ("test_dropout_forward", "dropout_forward_impl", [("out = x * mask / (1 - p)", "out = x * mask")], "no rescaling"),
    ("test_dropout_forward", "dropout_forward_impl", [("        mask = None\n        out = x\n",
                                                       "        mask = None\n        out = x * (dropout_param['rng'].random(x.shape) >= p) / (1 - p)\n")],
     "still on in test mode"),
    ("test_dropout_forward", "dropout_forward_impl", [("        mask = None\n        out = x\n", "        mask = None\n        out = x * (1 - p)\n")],
     "other convention"),
    ("test_dropout_backward", "dropout_backward_impl",
     [('dx = dout * mask / (1 - dropout_param["p"])',
       'dx = dout * (dropout_param["rng"].random(dout.shape) >= dropout_param["p"]) / (1 - dropout_param["p"])')],
     "NEW mask was drawn"),
    ("test_dropout_backward", "dropout_backward_impl", [('dx = dout * mask / (1 - dropout_param["p"])', "dx = dout * mask")],
     "no rescaling in the backward"),
    ("test_dropout_scale_at_test", "dropout_scale_at_test_impl", [("out = x * mask\n", "out = x * mask / (1 - p)\n")],
     "that is inverted dropout"),
    ("test_dropout_scale_at_test", "dropout_scale_at_test_impl", [("out = x * (1 - p)", "out = x")], "returned x unchanged"),
    ("test_random_crop", "random_crop_impl", [("top = rng.integers(0, positions, size=N)\n    left = rng.integers(0, positions, size=N)",
                                               "left = rng.integers(0, positions, size=N)\n    top = rng.integers(0, positions, size=N)")],
     "top and left swapped"),
    ("test_random_crop", "random_crop_impl", [("positions = 2 * padding + 1", "positions = 2 * padding")],
     "upper bound is exclusive"),
    ("test_random_crop", "random_crop_impl", [("top = rng.integers(0, positions, size=N)\n    left = rng.integers(0, positions, size=N)",
                                               "top = np.full(N, rng.integers(0, positions))\n    left = np.full(N, rng.integers(0, positions))")],
     "one offset for the whole batch"),
    ("test_horizontal_flip", "horizontal_flip_impl", [("x[flip][:, :, :, ::-1]", "x[flip][:, :, ::-1, :]")], "upside down"),
    ("test_horizontal_flip", "horizontal_flip_impl", [("out = x.copy()\n    out[flip] = x[flip][:, :, :, ::-1]",
                                                       "x[flip] = x[flip][:, :, :, ::-1]\n    out = x")], "in place"),
    ("test_horizontal_flip", "horizontal_flip_impl", [("flip = rng.random(len(x)) < p", "flip = rng.random(len(x)) >= p")],
     "wrong images were flipped"),
    ("test_early_stopping", "early_stopping_impl", [("if val_acc > self.best + self.min_delta:", "if val_acc >= self.best + self.min_delta:")],
     "tie with the best accuracy"),
    ("test_early_stopping", "early_stopping_impl", [("self.best, self.best_epoch, self.bad_epochs = val_acc, epoch, 0",
                                                     "self.best, self.best_epoch = val_acc, epoch")], "not reset"),
    ("test_early_stopping", "early_stopping_impl", [("return self.bad_epochs >= self.patience", "return self.bad_epochs > self.patience")],
     "one epoch late"),
    ("test_early_stopping", "early_stopping_impl", [("{name: np.array(value, copy=True) for name, value in state.items()}", "dict(state)")],
     "references to the model's arrays"),
    ("test_ensemble", "ensemble_impl", [("labels = np.argmax(mean_probs, axis=1)",
                                         "labels = np.array([np.bincount(c, minlength=scores.shape[2]).argmax() for c in scores.argmax(axis=2).T])")],
     "votes were averaged"),
    ("test_ensemble", "ensemble_impl", [("labels = np.argmax(mean_probs, axis=1)", "labels = np.argmax(scores.mean(axis=0), axis=1)")],
     "raw scores were averaged"),
    ("test_ensemble", "ensemble_impl", [("shifted = scores - scores.max(axis=2, keepdims=True)", "shifted = scores")],
     "overflowed"),
]


@pytest.mark.parametrize("test_id, exercise, edits, words", MISTAKES,
                         ids=[f"{m[0]}-{m[3].split()[0]}-{i}" for i, m in enumerate(MISTAKES)])
def test_classic_mistake_is_named(cells, test_id, exercise, edits, words):
    def broken(gid, src):
        for old, new in edits:
            assert old in src, f"{gid} no longer contains {old!r}: update this test"
            src = src.replace(old, new)
        return src

    assert OWN[test_id] == exercise
    ns = namespace(cells, sources(cells, test_id, broken))
    with np.errstate(all="ignore"), pytest.raises(AssertionError, match=re.escape(words)):
        exec(cells[test_id].source, ns)


def test_add_penalty_blames_a_wrong_penalty_function(cells):
    src = cells["penalties_impl"].source.replace("R = 0.5 * lam * float(", "R = lam * float(")
    ns = namespace(cells, [src, cells["add_penalty_impl"].source])
    with pytest.raises(AssertionError, match="make test_penalties pass first"):
        exec(cells["test_add_penalty"].source, ns)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_solution_agrees_with_nnlab(cells, dtype):
    ns = namespace(cells, [cells[g].source for g in ("penalties_impl", "dropout_forward_impl", "dropout_backward_impl",
                                                      "dropout_scale_at_test_impl", "random_crop_impl",
                                                      "horizontal_flip_impl", "ensemble_impl")])
    rng = np.random.default_rng(606)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for _ in range(5):
        w = rng.normal(size=(int(rng.integers(1, 6)), int(rng.integers(1, 6)))).astype(dtype)
        w[0, 0] = 0
        lam, r = float(rng.uniform(0, 1)), float(rng.uniform(0, 1))
        for mine, ref in ((ns["l2_penalty"](w, lam), R.l2_penalty(w, lam)), (ns["l1_penalty"](w, lam), R.l1_penalty(w, lam)),
                          (ns["elastic_net_penalty"](w, lam, r), R.elastic_net_penalty(w, lam, r))):
            np.testing.assert_allclose(mine[0], ref[0], **tol)
            assert mine[1].dtype == dtype
            np.testing.assert_allclose(mine[1], ref[1], **tol)
        x = rng.normal(size=(5, 7)).astype(dtype)
        p = float(rng.uniform(0, 0.9))
        out, cache = ns["dropout_forward"](x, {"p": p, "mode": "train", "rng": np.random.default_rng(3)})
        ref, ref_cache = R.dropout_forward(x, {"p": p, "mode": "train", "rng": np.random.default_rng(3)})
        np.testing.assert_allclose(out, ref, **tol)
        np.testing.assert_allclose(ns["dropout_backward"](x, cache), R.dropout_backward(x, ref_cache), **tol)
        for mode in ("train", "test"):
            mine = ns["dropout_forward_scale_at_test"](x, {"p": p, "mode": mode, "rng": np.random.default_rng(4)})[0]
            ref = R.dropout_forward(x, {"p": p, "mode": mode, "rng": np.random.default_rng(4), "variant": "scale_at_test"})[0]
            np.testing.assert_allclose(mine, ref, **tol)
        imgs = rng.random((6, 2, 5, 4)).astype(dtype)
        np.testing.assert_array_equal(ns["random_crop"](imgs, 2, np.random.default_rng(5)),
                                      A.random_crop(imgs, (5, 4), padding=2, rng=np.random.default_rng(5)))
        np.testing.assert_array_equal(ns["horizontal_flip"](imgs, np.random.default_rng(6), 0.3),
                                      A.horizontal_flip(imgs, p=0.3, rng=np.random.default_rng(6)))
        scores = (rng.normal(size=(4, 9, 3)) * 5).astype(dtype)
        labels, probs = ns["ensemble_predict"](scores)
        softmaxed = [np.exp(s - s.max(1, keepdims=True)) / np.exp(s - s.max(1, keepdims=True)).sum(1, keepdims=True)
                     for s in scores]
        assert probs.dtype == dtype
        np.testing.assert_allclose(probs, R.ensemble_probabilities(softmaxed), **tol)
        np.testing.assert_array_equal(labels, R.ensemble_predict(softmaxed))
