"""Notebook 07 (hyperparameters): fast checks of the solution notebook without executing its experiments.

The locked helper cells and the exercise cells are executed in a plain namespace; then every graded test cell
(visible AND hidden part) is run against (a) the solution, which must pass, (b) the stubs nbgrader makes, which
must fail, (c) answers that only delegate to nnlab, which must fail with the "not nnlab's" message, and (d) answers
with a classic mistake, whose failure message must name that mistake. The notebook's own network (mlp_loss) is
gradient-checked, its solution cross-checked against nnlab.search and nnlab.lr_finder, and the synthetic curves
the diagnose exercise is graded on are checked to be readable by the reference rules.
`python -m grader validate 07_hyperparameters` executes the whole notebook; this file takes a few seconds.
"""

import re

import numpy as np
import pytest
from notebook_cells import SOLUTIONS, check_metadata, exercise_sources, load_cells, namespace, stub

import nnlab.lr_finder as LF
import nnlab.search as S
from nnlab.gradcheck import numerical_gradient

SOURCE = SOLUTIONS / "07_hyperparameters" / "hyperparameters.ipynb"
pytestmark = pytest.mark.skipif(not SOURCE.exists(), reason="no solutions/ here (a student copy of the course)")

HELPERS = ("mlp_helpers", "curve_helpers")     # locked cells the tests use
EXERCISES = {  # test cell -> the exercise cells it needs (in order)
    "test_expected_initial_loss": ("initial_loss_impl",),
    "test_check_initial_loss": ("initial_loss_impl",),
    "test_overfit_small_sample": ("overfit_impl",),
    "test_lr_range_test": ("lr_range_test_impl",),
    "test_suggest_lr": ("suggest_lr_impl",),
    "test_log_uniform": ("log_uniform_impl",),
    "test_narrow_range": ("narrow_range_impl",),
    "test_diagnose": ("diagnose_impl",),
    "test_stratified_kfold": ("stratified_kfold_impl",),
}
OWN = {test: impls[-1] for test, impls in EXERCISES.items()}   # the exercise each test cell grades


@pytest.fixture(scope="module")
def cells():
    return load_cells(SOURCE)


def sources(cells, test_id, replace=None):
    return exercise_sources(cells, EXERCISES, OWN, test_id, replace, helpers=HELPERS)


def solution_namespace(cells):
    return namespace(cells, [cells[h].source for h in HELPERS] +
                     [cells[g].source for g in dict.fromkeys(sum(EXERCISES.values(), ()))])


def test_metadata_points_and_ids(cells):
    check_metadata(cells, EXERCISES, (23, 2))
    for gid in HELPERS:
        assert cells[gid].metadata["nbgrader"]["locked"], f"{gid} is used by test cells: it must be locked"


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_solution_passes_visible_and_hidden_tests(cells, test_id):
    ns = namespace(cells, sources(cells, test_id))
    with np.errstate(all="raise"):          # the solution must not even warn (stderr fails plain nbgrader)
        exec(cells[test_id].source, ns)


@pytest.mark.parametrize("test_id", sorted(EXERCISES))
def test_stub_fails(cells, test_id):
    ns = namespace(cells, sources(cells, test_id, lambda gid, src: stub(src)))
    with pytest.raises(NotImplementedError):
        exec(cells[test_id].source, ns)


WRAPPERS = {  # consistent answers that delegate the core of the exercise to nnlab
    "test_check_initial_loss": ("initial_loss_impl", [(
        "    s = np.asarray(scores, dtype=np.float64)\n    shifted = s - s.max(axis=1, keepdims=True)\n"
        "    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))\n"
        "    data_loss = -float(np.mean(log_probs[np.arange(len(y)), y]))\n",
        "    from nnlab.layers import softmax_loss\n    s = np.asarray(scores, dtype=np.float64)\n"
        "    data_loss = softmax_loss(s, np.asarray(y))[0]\n")]),
    "test_lr_range_test": ("lr_range_test_impl", [(
        "lr = lr_min * (lr_max / lr_min) ** (k / (num_steps - 1))",
        "from nnlab.lr_finder import geometric_lrs; lr = float(geometric_lrs(lr_min, lr_max, num_steps)[k])")]),
    "test_suggest_lr": ("suggest_lr_impl", [(
        "    ### BEGIN SOLUTION\n",
        "    ### BEGIN SOLUTION\n    from nnlab.lr_finder import suggest_lr as s\n"
        "    return s(lrs, losses, method='min/10', beta=beta)\n")]),
    "test_log_uniform": ("log_uniform_impl", [(
        "    ### BEGIN SOLUTION\n",
        "    ### BEGIN SOLUTION\n    from nnlab.search import LogUniform\n"
        "    d = LogUniform(low, high)\n    return np.array([d.sample(rng) for _ in range(size)])\n")]),
}


@pytest.mark.parametrize("test_id", sorted(WRAPPERS))
def test_answer_that_wraps_nnlab_fails(cells, test_id):
    exercise, edits = WRAPPERS[test_id]
    assert OWN[test_id] == exercise

    def wrapped(gid, src):
        for old, new in edits:
            assert old in src, f"{gid} no longer contains {old!r}: update this test"
            src = src.replace(old, new)
        return src

    ns = namespace(cells, sources(cells, test_id, wrapped))
    with pytest.raises(AssertionError, match="not nnlab's"):
        exec(cells[test_id].source, ns)


IMPL = "initial_loss_impl"
MISTAKES = [  # (test cell, exercise, [(solution text, wrong text)], words the failure must contain)
    ("test_expected_initial_loss", IMPL, [("float(np.log(num_classes))", "float(np.log10(num_classes))")],
     "log10 instead of the natural logarithm"),
    ("test_expected_initial_loss", IMPL, [("float(np.log(num_classes))", "1 / num_classes")], "1/C, the probability"),
    ("test_expected_initial_loss", IMPL, [("+ 0.5 * reg * penalty\n    ### END", "+ reg * penalty\n    ### END")],
     "without the 1/2"),
    ("test_check_initial_loss", IMPL, [("shifted = s - s.max(axis=1, keepdims=True)", "shifted = s")], "overflowed"),
    ("test_check_initial_loss", IMPL, [("data_loss = -float(np.mean(", "data_loss = -float(np.sum(")],
     "SUM over the 6 examples"),
    ("test_check_initial_loss", IMPL, [("    s = np.asarray(scores, dtype=np.float64)\n    shifted = s - s.max(axis=1, keepdims=True)",
                                        "    scores -= scores.max(axis=1, keepdims=True)\n    s = np.asarray(scores, dtype=np.float64)\n    shifted = s")],
     "modified `scores` in place"),
    ("test_check_initial_loss", IMPL, [("loss = data_loss + 0.5 * reg * penalty", "loss = data_loss")],
     "penalty reg/2 * sum ||W||^2 is missing"),
    ("test_check_initial_loss", IMPL, [("s.shape[1], reg, weights)", "s.shape[0], reg, weights)")],
     "number of examples"),
    ("test_overfit_small_sample", "overfit_impl",
     [("current = {k: v.copy() for k, v in params.items()}", "current = params"),
      ("current = {k: v - lr * grads[k] for k, v in current.items()}",
       "for k in current:\n            current[k] -= lr * grads[k]")], "modified the params passed to it"),
    ("test_overfit_small_sample", "overfit_impl", [("steps = len(losses)\n", "steps = len(losses) - 1\n")], "off by one"),
    ("test_overfit_small_sample", "overfit_impl",
     [("while steps is None and len(losses) < max_steps:", "while len(losses) < max_steps:"),
      ("steps = len(losses)\n", "steps = len(losses) if steps is None else steps\n")], "training went on"),
    ("test_overfit_small_sample", "overfit_impl",
     [("steps = 0 if accuracy_of(current, X, y) == 1.0 else None", "steps = None")], "need no update"),
    ("test_overfit_small_sample", "overfit_impl", [("v - lr * grads[k]", "v - np.float64(lr) * grads[k]")],
     "float64 scalar"),
    ("test_lr_range_test", "lr_range_test_impl",
     [("lr = lr_min * (lr_max / lr_min) ** (k / (num_steps - 1))", "lr = lr_min + (lr_max - lr_min) * k / (num_steps - 1)")],
     "LINEAR schedule"),
    ("test_lr_range_test", "lr_range_test_impl", [("(k / (num_steps - 1))", "(k / num_steps)")], "never reached"),
    ("test_lr_range_test", "lr_range_test_impl",
     [("if not np.isfinite(loss) or loss > diverge * min(losses):", "if False:")], "ran all 60 steps"),
    ("test_lr_range_test", "lr_range_test_impl",
     [("        lrs.append(lr)\n        losses.append(loss)\n        if not np.isfinite(loss) or loss > diverge * min(losses):",
       "        if losses and (not np.isfinite(loss) or loss > diverge * min(losses)):\n            break\n"
       "        lrs.append(lr)\n        losses.append(loss)\n        if False:")], "record the loss that triggers the stop"),
    ("test_lr_range_test", "lr_range_test_impl",
     [("batch = np.arange(k * batch_size, (k + 1) * batch_size) % N", "batch = np.arange(batch_size)")],
     "used the first batch again"),
    ("test_suggest_lr", "suggest_lr_impl", [("smoothed[k] = avg / (1 - beta ** (k + 1))", "smoothed[k] = avg")],
     "bias correction"),
    ("test_suggest_lr", "suggest_lr_impl", [("int(np.argmin(smoothed))] / 10)", "int(np.argmin(smoothed))])")],
     "AT the minimum"),
    ("test_suggest_lr", "suggest_lr_impl",
     [("n = len(losses) if finite.all() else int(np.argmin(finite))", "n = len(losses)")], "nan loss was not left out"),
    ("test_suggest_lr", "suggest_lr_impl", [("beta=0.9):", "beta=0.98):")], "the default beta is 0.98"),
    ("test_log_uniform", "log_uniform_impl",
     [("return 10.0 ** rng.uniform(np.log10(low), np.log10(high), size=size)",
       "return np.log10(rng.uniform(low, high, size=size))")], "THEN the log"),
    ("test_log_uniform", "log_uniform_impl",
     [("10.0 ** rng.uniform(np.log10(low), np.log10(high), size=size)", "10.0 ** rng.uniform(np.log(low), np.log(high), size=size)")],
     "base mix-up"),
    ("test_log_uniform", "log_uniform_impl",
     [("return 10.0 ** rng.uniform(np.log10(low), np.log10(high), size=size)", "return rng.uniform(low, high, size=size)")],
     "plain uniform"),
    ("test_log_uniform", "log_uniform_impl",
     [("10.0 ** rng.uniform(np.log10(low), np.log10(high), size=size)", "10.0 ** np.random.uniform(np.log10(low), np.log10(high), size=size)")],
     "rng"),
    ("test_log_uniform", "log_uniform_impl",
     [('        raise ValueError(f"log_uniform needs', '        pass  # f"log_uniform needs')], "must raise ValueError"),
    ("test_narrow_range", "narrow_range_impl",
     [("f = np.log10 if log else", "f = (lambda v: np.asarray(v, dtype=np.float64)) if True else"),
      ("    if log:\n        new_lo, new_hi = 10.0", "    if False:\n        new_lo, new_hi = 10.0")], "LINEAR space"),
    ("test_narrow_range", "narrow_range_impl", [('np.argsort(-scores, kind="stable")', 'np.argsort(scores, kind="stable")')],
     "WORST trials"),
    ("test_narrow_range", "narrow_range_impl",
     [('at_edge = "low" if pos <= margin else "high" if pos >= 1 - margin else None', "at_edge = None")],
     "at_edge should be 'high'"),
    ("test_narrow_range", "narrow_range_impl", [("new_lo, new_hi = t_lo, t_lo + 2 * half", "new_lo = t_lo")],
     "CUT at the old edge"),
    ("test_narrow_range", "narrow_range_impl",
     [("    keep = ~np.isnan(scores)\n    values, scores = values[keep], scores[keep]\n", ""),
      ("pos = (t[0] - t_lo) / width", "pos = (f(values[int(np.argmax(scores))]) - t_lo) / width")], "FAILED"),
    ("test_diagnose", "diagnose_impl",
     [('    if np.median(loss[int(0.15 * n):int(0.25 * n) + 1]) >= 0.9 * first:\n        return "bad init"\n', "")],
     "a 'bad init' history"),
    ("test_diagnose", "diagnose_impl", [('    if not np.all(np.isfinite(loss)):\n        return "lr too high"\n', "")],
     "a 'lr too high' history"),
    ("test_stratified_kfold", "stratified_kfold_impl",
     [("    start = 0\n    for c in np.unique(y):\n        idx = rng.permutation(np.flatnonzero(y == c))\n"
       "        fold_of[idx] = (start + np.arange(len(idx))) % k\n        start += len(idx)\n",
       "    fold_of[rng.permutation(N)] = np.arange(N) % k\n")], "not stratified"),
    ("test_stratified_kfold", "stratified_kfold_impl",
     [("fold_of[idx] = (start + np.arange(len(idx))) % k", "fold_of[idx] = np.arange(len(idx)) % k")],
     "validation fold sizes are"),
    ("test_stratified_kfold", "stratified_kfold_impl",
     [("idx = rng.permutation(np.flatnonzero(y == c))", "idx = np.flatnonzero(y == c)")], "do not depend on rng"),
    ("test_stratified_kfold", "stratified_kfold_impl",
     [("    y = np.asarray(y)\n", "    y = np.asarray(y)\n    rng.shuffle(y)\n")], "modified y"),
    ("test_stratified_kfold", "stratified_kfold_impl",
     [("return [(np.flatnonzero(fold_of != f), np.flatnonzero(fold_of == f)) for f in range(k)]",
       "return [(np.arange(N), np.flatnonzero(fold_of == f)) for f in range(k)]")], "train_idx must hold every index"),
]


@pytest.mark.parametrize("test_id, exercise, edits, words", MISTAKES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MISTAKES)])
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


def test_check_initial_loss_blames_a_wrong_expected_initial_loss(cells):
    src = cells[IMPL].source.replace("float(np.log(num_classes))", "float(np.log10(num_classes))")
    ns = namespace(cells, [cells[h].source for h in HELPERS] + [src])
    with pytest.raises(AssertionError, match="make expected_initial_loss right first"):
        exec(cells["test_check_initial_loss"].source, ns)


def test_the_notebooks_network_passes_a_gradient_check(cells):
    ns = solution_namespace(cells)
    rng = np.random.default_rng(707)
    for sizes in ([5, 4], [6, 8, 3], [4, 7, 5, 3]):
        params = ns["init_mlp"](sizes, rng, dtype=np.float64)
        params = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in params.items()}   # non-zero biases
        X, y = rng.standard_normal((9, sizes[0])), rng.integers(0, sizes[-1], size=9)
        loss, grads = ns["mlp_loss"](params, X, y, reg=0.3)
        for k in params:
            def f(w, k=k):
                return ns["mlp_loss"]({**params, k: w}, X, y, reg=0.3)[0]
            num = numerical_gradient(f, params[k].copy())
            err = np.max(np.abs(num - grads[k]) / np.maximum(1e-8, np.abs(num) + np.abs(grads[k])))
            assert err < 1e-6, f"mlp_loss gradient of {k} for sizes {sizes}: relative error {err:.2e}"
    p32 = ns["init_mlp"]([5, 4, 3], rng)
    loss, grads = ns["mlp_loss"](p32, rng.standard_normal((6, 5)).astype(np.float32), np.arange(6) % 3, reg=0.1)
    assert isinstance(loss, float) and all(g.dtype == np.float32 for g in grads.values())


def test_solution_agrees_with_nnlab(cells):
    ns = solution_namespace(cells)
    rng = np.random.default_rng(708)
    for _ in range(20):
        lo = float(10 ** rng.uniform(-7, -2))
        hi = lo * float(10 ** rng.uniform(1, 5))
        seed = int(rng.integers(10**6))
        mine = ns["log_uniform"](lo, hi, 50, np.random.default_rng(seed))
        d, r = S.LogUniform(lo, hi), np.random.default_rng(seed)
        np.testing.assert_allclose(mine, [d.sample(r) for _ in range(50)], rtol=1e-9)
        # narrow_range = nnlab's coarse_to_fine when the best trial is not at an edge, and at_edge = best_at_edge
        n = int(rng.integers(5, 30))
        values = 10 ** rng.uniform(np.log10(lo), np.log10(hi), n)
        scores = -np.abs(np.log10(values) - rng.uniform(np.log10(lo), np.log10(hi))) + 0.01 * rng.standard_normal(n)
        top_k, shrink = int(rng.integers(1, 5)), float(rng.uniform(0.2, 1))
        results = S.Results([{"trial": i, "score": float(s), "status": "ok", "params": {"x": float(v)}, "metrics": {},
                              "error": None, "seed": 0, "pid": 0, "time": 0.0} for i, (v, s) in enumerate(zip(values, scores))])
        space = {"x": S.LogUniform(lo, hi)}
        got = ns["narrow_range"](values, scores, lo, hi, top_k=top_k, shrink=shrink, margin=0.1)
        edge = S.best_at_edge(results, space, margin=0.1)
        assert got["at_edge"] == edge.get("x")
        if got["at_edge"] is None:
            ref = S.coarse_to_fine(results, space, top_k=top_k, shrink=shrink)["x"]
            np.testing.assert_allclose([got["low"], got["high"]], [ref.low, ref.high], rtol=1e-9)
        # suggest_lr = nnlab.lr_finder.suggest_lr("min/10")
        K = int(rng.integers(10, 100))
        lrs, losses = np.logspace(-5, 1, K), 2 + np.sin(np.linspace(0, 4, K)) + 0.1 * rng.standard_normal(K)
        beta = float(rng.choice([0.0, 0.5, 0.9]))
        assert ns["suggest_lr"](lrs, losses, beta=beta) == pytest.approx(LF.suggest_lr(lrs, losses, beta=beta), rel=1e-12)


def test_lr_range_test_follows_the_geometric_schedule_of_nnlab(cells):
    ns = solution_namespace(cells)
    rng = np.random.default_rng(709)
    X, y = rng.standard_normal((64, 5)), rng.integers(0, 3, size=64)
    params = ns["init_mlp"]([5, 8, 3], rng, dtype=np.float64)
    lrs, losses = ns["lr_range_test"](params, X, y, lr_min=1e-4, lr_max=1e-2, num_steps=25, batch_size=16)
    np.testing.assert_allclose(lrs, LF.geometric_lrs(1e-4, 1e-2, 25), rtol=1e-12)
    assert losses.shape == (25,) and np.all(np.isfinite(losses))


def test_synthetic_histories_are_readable(cells):
    """The reference rules read (almost) every generated history right, including every one the tests use."""
    ns = solution_namespace(cells)
    kinds, make, diagnose = ns["CURVE_KINDS"], ns["synthetic_history"], ns["diagnose"]
    for i in range(40):                                   # the hidden test's histories
        kind = kinds[i % 5]
        assert diagnose(make(kind, np.random.default_rng([7008, i]))) == kind
    wrong = 0
    rng = np.random.default_rng(710)
    for i in range(1000):
        h = make(kinds[i % 5], rng)
        assert set(h) == {"loss", "train_acc", "val_acc"} and 1 <= len(h["loss"]) <= 400
        assert len(h["loss"]) >= 150 or not np.isfinite(h["loss"][-1])       # shorter only when it diverged
        assert all(0 <= a <= 1 for a in h["train_acc"] + h["val_acc"])
        wrong += diagnose(h) != kinds[i % 5]
    assert wrong <= 3, f"the reference diagnose misread {wrong} of 1000 synthetic histories"
    with pytest.raises(ValueError, match="kind must be one of"):
        make("exploding", rng)


def _quadratic(params, rng):
    return -(np.log10(params["lr"]) + 2) ** 2


def test_search_runs_where_worker_processes_are_not_allowed(monkeypatch, capsys):
    """Notebook 07's search must also run in a sandbox without a writable /dev/shm (no multiprocessing locks):
    nnlab.search then runs the same trials in the kernel itself, with the same results."""
    space = {"lr": S.LogUniform(1e-4, 1.0)}
    parallel = S.random_search(_quadratic, space, n_trials=4, seed=3, n_jobs=2)

    def no_pool(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(S, "ProcessPoolExecutor", no_pool)
    serial = S.random_search(_quadratic, space, n_trials=4, seed=3, n_jobs=2)
    assert "running the 4 trials one after another" in capsys.readouterr().out
    assert [r["score"] for r in serial] == [r["score"] for r in parallel]
