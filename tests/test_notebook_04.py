"""Notebook 04 (batchnorm): fast checks of the solution notebook without executing its experiments.

The exercise cells are executed in a plain namespace; then every graded test cell (visible AND hidden part)
is run against (a) the solution, which must pass, (b) the stubs nbgrader makes, which must fail,
(c) answers that only delegate to nnlab, which must fail with the "not nnlab's" message, and (d) answers with
a classic BatchNorm mistake, whose failure message must name that mistake. The solution is also cross-checked
against nnlab.normalization on random inputs: two independent implementations agreeing.
`python -m grader validate 04_batchnorm` executes the whole notebook; this file takes a second or two.
"""

import re

import numpy as np
import pytest
from notebook_cells import SOLUTIONS, check_metadata, exercise_sources, load_cells, namespace, stub

import nnlab.normalization as N

SOURCE = SOLUTIONS / "04_batchnorm" / "batchnorm.ipynb"
pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="no solutions/ here (a student copy of the course)")

EXERCISES = {  # test cell -> the exercise cells it needs (in order)
    "test_bn_forward_train": ("bn_forward_impl",),
    "test_bn_forward_running": ("bn_forward_impl",),
    "test_bn_forward_test_mode": ("bn_forward_impl",),
    "test_bn_backward": ("bn_backward_impl",),          # the backward tests build the cache themselves
    "test_bn_backward_alt": ("bn_backward_impl", "bn_backward_alt_impl"),
    "test_ln_forward": ("ln_impl",),
    "test_ln_backward": ("ln_impl",),
    "test_fold_bn": ("fold_bn_impl",),
}
OWN = {  # the exercise each test cell grades (the one that is stubbed / wrapped / broken)
    "test_bn_forward_train": "bn_forward_impl", "test_bn_forward_running": "bn_forward_impl",
    "test_bn_forward_test_mode": "bn_forward_impl", "test_bn_backward": "bn_backward_impl",
    "test_bn_backward_alt": "bn_backward_alt_impl", "test_ln_forward": "ln_impl", "test_ln_backward": "ln_impl",
    "test_fold_bn": "fold_bn_impl",
}


@pytest.fixture(scope="module")
def cells():
    return load_cells(SOURCE)


def sources(cells, test_id, replace=None):
    return exercise_sources(cells, EXERCISES, OWN, test_id, replace)


def test_metadata_points_and_ids(cells):
    check_metadata(cells, EXERCISES, (18, 2))


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_solution_passes_visible_and_hidden_tests(cells, test_id):
    ns = namespace(cells, sources(cells, test_id))
    exec(cells[test_id].source, ns)


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_stub_fails(cells, test_id):
    ns = namespace(cells, sources(cells, test_id, lambda gid, src: stub(src)))
    with pytest.raises(NotImplementedError):
        exec(cells[test_id].source, ns)


WRAPPERS = {  # answers that delegate to nnlab, adapting the stated cache format to nnlab's own
    "bn_forward_impl": "from nnlab.normalization import batchnorm_forward",
    "bn_backward_impl": ("import nnlab.normalization as nnlab_norm\n"
                         "def batchnorm_backward(dout, cache):\n"
                         "    return nnlab_norm.batchnorm_backward(dout, dict(cache, xhat=cache['x_hat'], mode='train'))\n"),
    "bn_backward_alt_impl": ("import nnlab.normalization as nnlab_norm\n"
                             "def batchnorm_backward_alt(dout, cache):\n"
                             "    return nnlab_norm.batchnorm_backward_alt(dout, dict(cache, xhat=cache['x_hat'], mode='train'))\n"),
    "ln_impl": ("import nnlab.normalization as nnlab_norm\n"
                "def layernorm_forward(x, gamma, beta, ln_param=None):\n"
                "    out, (xhat, inv_std, g) = nnlab_norm.layernorm_forward(x, gamma, beta, ln_param)\n"
                "    eps = 1e-5 if ln_param is None else ln_param.get('eps', 1e-5)\n"
                "    mu = x.mean(axis=1, keepdims=True)\n"
                "    return out, {'x': x, 'mu': mu, 'xc': x - mu, 'var': 1 / inv_std ** 2 - eps, 'eps': eps,\n"
                "                 'std': 1 / inv_std, 'inv_std': inv_std, 'x_hat': xhat, 'gamma': g}\n"
                "def layernorm_backward(dout, cache):\n"
                "    return nnlab_norm.layernorm_backward(dout, (cache['x_hat'], cache['inv_std'], cache['gamma']))\n"),
    "fold_bn_impl": "from nnlab.normalization import fold_batchnorm",
}


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_answer_that_wraps_nnlab_fails(cells, test_id):
    # a consistent delegating answer: every exercise the test needs comes from nnlab
    ns = namespace(cells, [WRAPPERS[gid] for gid in EXERCISES[test_id]])
    if test_id == "test_bn_forward_train":      # nnlab's cache is not the stated format: caught before forbid_calls
        with pytest.raises(AssertionError, match="cache must be a dict with the keys"):
            exec(cells[test_id].source, ns)
        return
    with pytest.raises(AssertionError, match="not nnlab's"):
        exec(cells[test_id].source, ns)


FWD = "bn_forward_impl"
MISTAKES = [  # (test cell, exercise, [(solution text, wrong text)], words the failure must contain)
    ("test_bn_forward_train", FWD, [("batch_var = (xc * xc).mean(axis=0)", "batch_var = x.var(axis=0, ddof=1)")],
     "UNBIASED variance"),
    ("test_bn_forward_train", FWD, [("std = np.sqrt(batch_var + eps)", "std = np.sqrt(batch_var) + eps")],
     "eps OUTSIDE"),
    ("test_bn_forward_train", FWD, [("xc = x - batch_mean", "xc = x - running_mean"),
                                    ("std = np.sqrt(batch_var + eps)", "std = np.sqrt(running_var + eps)")],
     "RUNNING averages in train mode"),
    ("test_bn_forward_running", FWD,
     [("running_mean = momentum * running_mean + (1 - momentum) * batch_mean",
       "running_mean = (1 - momentum) * running_mean + momentum * batch_mean")], "momentum the wrong way round"),
    ("test_bn_forward_running", FWD,
     [("running_mean = momentum * running_mean + (1 - momentum) * batch_mean", "pass")], "still holds the old average"),
    ("test_bn_forward_test_mode", FWD,
     [("x_hat = (x - running_mean) / np.sqrt(running_var + eps)", "x_hat = (x - x.mean(0)) / np.sqrt(x.var(0) + eps)")],
     "the mode never switched"),
    ("test_bn_forward_test_mode", FWD,
     [("x_hat = (x - running_mean) / np.sqrt(running_var + eps)", "x_hat = (x - running_mean) / (np.sqrt(running_var) + eps)")],
     "eps OUTSIDE"),
    ("test_bn_forward_train", FWD, [('eps = bn_param.get("eps", 1e-5)', 'eps = np.float64(bn_param.get("eps", 1e-5))')],
     "float32"),
    ("test_bn_backward", "bn_backward_impl", [("dx = dxc + dmu / N", "dx = dxc")], "path through the batch mean"),
    ("test_bn_backward", "bn_backward_impl", [("dxc = dxc + (2 / N) * xc * dvar", "pass")],
     "path through the batch variance"),
    ("test_bn_backward_alt", "bn_backward_alt_impl",
     [("    ### BEGIN SOLUTION\n", "    ### BEGIN SOLUTION\n    return batchnorm_backward(dout, cache)\n")],
     "calls batchnorm_backward"),
    ("test_bn_backward_alt", "bn_backward_alt_impl",
     [("dx = (gamma * inv_std / N) * (N * dout - dbeta - x_hat * dgamma)",
       "dx = gamma * inv_std * (dout - dbeta - x_hat * dgamma)")], "factor 1/N missing"),
    ("test_ln_forward", "ln_impl", [("mu = x.mean(axis=1, keepdims=True)", "mu = x.mean(axis=0)"),
                                    ("var = (xc * xc).mean(axis=1, keepdims=True)", "var = (xc * xc).mean(axis=0)")],
     "as in BatchNorm"),
    ("test_fold_bn", "fold_bn_impl", [("b_folded = (b - running_mean) * scale + beta", "b_folded = b * scale + beta")],
     "running mean was not subtracted"),
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
    with pytest.raises(AssertionError, match=re.escape(words)):
        exec(cells[test_id].source, ns)


BROKEN_FORWARDS = [  # wrong forward passes that must not cost the backward tests anything
    ("batch_var = (xc * xc).mean(axis=0)", "batch_var = x.var(axis=0, ddof=1)"),              # unbiased variance
    ("xc = x - batch_mean", "x -= batch_mean\n        xc = x"),                                    # centres x in place
    ("        ### BEGIN SOLUTION\n        batch_mean", "        raise NotImplementedError()\n        batch_mean"),
]


@pytest.mark.parametrize("old, new", BROKEN_FORWARDS, ids=["ddof1", "in-place", "stub"])
@pytest.mark.parametrize("test_id", ["test_bn_backward", "test_bn_backward_alt"])
def test_a_wrong_forward_pass_leaves_the_backward_tests_their_points(cells, test_id, old, new):
    forward = cells[FWD].source
    assert old in forward
    ns = namespace(cells, [forward.replace(old, new)] + sources(cells, test_id))
    exec(cells[test_id].source, ns)


def test_a_wrong_layernorm_forward_leaves_the_backward_test_its_points(cells):
    src = cells["ln_impl"].source
    broken = src.replace("mu = x.mean(axis=1, keepdims=True)", "mu = x.mean(axis=0)")
    assert broken != src
    ns = namespace(cells, [broken])
    with pytest.raises(AssertionError):
        exec(cells["test_ln_forward"].source, ns)
    exec(cells["test_ln_backward"].source, ns)


def test_every_test_passes_with_all_other_exercises_stubbed(cells):
    """No test cell needs another exercise: each passes with every other exercise left as the stub."""
    order = [gid for gid in cells if gid.endswith("_impl")]
    for test_id, own in OWN.items():
        srcs = [cells[g].source if g == own else stub(cells[g].source) for g in order]
        if test_id == "test_bn_backward_alt":       # it compares with the staged version when that one runs
            srcs = [cells[g].source if g in (own, "bn_backward_impl") else stub(cells[g].source) for g in order]
        exec(cells[test_id].source, namespace(cells, srcs))


def test_in_place_centring_is_named(cells):
    src = cells[FWD].source.replace("xc = x - batch_mean", "x -= batch_mean\n        xc = x")
    ns = namespace(cells, [src])
    with pytest.raises(AssertionError, match=r"batchnorm_forward changed its argument x in place"):
        exec(cells["test_bn_forward_train"].source, ns)


def test_fold_batchnorm_broadcast_error_is_explained(cells):
    src = cells["fold_bn_impl"].source.replace("w_folded = w * scale", "w_folded = w * scale[:, None]")
    ns = namespace(cells, [src])
    with pytest.raises(AssertionError, match="one entry per OUTPUT unit"):
        exec(cells["test_fold_bn"].source, ns)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_solution_agrees_with_nnlab(cells, dtype):
    ns = namespace(cells, [cells[g].source for g in ("bn_forward_impl", "bn_backward_impl",
                                                      "bn_backward_alt_impl", "ln_impl", "fold_bn_impl")])
    rng = np.random.default_rng(404)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)
    for _ in range(5):
        n, d = int(rng.integers(2, 20)), int(rng.integers(1, 8))
        x = (rng.normal(size=(n, d)) * 2 + 1).astype(dtype)
        g, b, dout = rng.normal(size=d).astype(dtype), rng.normal(size=d).astype(dtype), rng.normal(size=(n, d)).astype(dtype)
        p_mine, p_ref = {"mode": "train", "momentum": 0.8}, {"mode": "train", "momentum": 0.8}
        for _step in range(2):
            out, cache = ns["batchnorm_forward"](x, g, b, p_mine)
            ref, ref_cache = N.batchnorm_forward(x, g, b, p_ref)
        np.testing.assert_allclose(out, ref, **tol)
        for key in ("running_mean", "running_var"):
            assert p_mine[key].dtype == dtype
            np.testing.assert_allclose(p_mine[key], p_ref[key], **tol)
        for mine in (ns["batchnorm_backward"], ns["batchnorm_backward_alt"]):
            for a, r in zip(mine(dout, cache), N.batchnorm_backward(dout, ref_cache)):
                assert a.dtype == dtype
                np.testing.assert_allclose(a, r, **tol)
        p_mine["mode"] = p_ref["mode"] = "test"
        np.testing.assert_allclose(ns["batchnorm_forward"](x, g, b, p_mine)[0], N.batchnorm_forward(x, g, b, p_ref)[0], **tol)
        out, cache = ns["layernorm_forward"](x, g, b)
        ref, ref_cache = N.layernorm_forward(x, g, b)
        np.testing.assert_allclose(out, ref, **tol)
        for a, r in zip(ns["layernorm_backward"](dout, cache), N.layernorm_backward(dout, ref_cache)):
            np.testing.assert_allclose(a, r, **tol)
        w, bias = rng.normal(size=(3, d)).astype(dtype), rng.normal(size=d).astype(dtype)
        rm, rv = rng.normal(size=d).astype(dtype), rng.uniform(0.5, 2, size=d).astype(dtype)
        for a, r in zip(ns["fold_batchnorm"](w, bias, g, b, rm, rv), N.fold_batchnorm(w, bias, g, b, rm, rv)):
            assert a.dtype == dtype
            np.testing.assert_allclose(a, r, **tol)


@pytest.mark.parametrize("staged", ["stub", "wrong"])
def test_closed_form_is_graded_on_its_own(cells, staged, capsys):
    # a correct closed form keeps its points when the staged backward is missing or wrong (no double penalty),
    # and the student is told which of the two to fix
    src = cells["bn_backward_impl"].source
    src = stub(src) if staged == "stub" else src.replace("dx = dxc + dmu / N", "dx = dxc")
    ns = namespace(cells, [cells[FWD].source, src, cells["bn_backward_alt_impl"].source])
    exec(cells["test_bn_backward_alt"].source, ns)
    out = capsys.readouterr().out
    assert ("raised NotImplementedError" in out) if staged == "stub" else ("staged version is the one to fix" in out)


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_every_exercise_that_receives_arrays_checks_them_for_in_place_changes(cells, test_id):
    assert "assert_no_mutation(" in cells[test_id].source


def test_closed_form_that_calls_the_staged_backward_fails(cells):
    """The check runs where the student's code runs, so it holds in Lab and under the grader's judge."""
    alt = ("def batchnorm_backward_alt(dout, cache):\n"
           "    return batchnorm_backward(dout, cache)\n")
    ns = namespace(cells, [cells["bn_backward_impl"].source, alt])
    with pytest.raises(AssertionError, match="closed-form"):
        exec(cells["test_bn_backward_alt"].source, ns)
