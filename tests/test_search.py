"""Hyperparameter search: distributions, parallel trials, reproducibility, failures, coarse-to-fine."""

import csv
import math
import os
import time

import numpy as np
import pytest

from nnlab.search import (Choice, best_at_edge, IntLogUniform, IntUniform, LogUniform, Results, Uniform, coarse_to_fine,
                          grid_search, random_search, sample)

SPACE = {"lr": LogUniform(1e-5, 1e-1), "reg": Uniform(0.0, 1.0), "hidden": Choice([32, 64, 128]), "epochs": 3}


# Objectives are top-level functions: worker processes receive them pickled.
def noisy_bowl(params, rng):
    """Best at lr = 1e-3, reg = 0.2; a little noise from the trial's own rng."""
    score = -(math.log10(params["lr"]) + 3) ** 2 - (params["reg"] - 0.2) ** 2 + 0.01 * rng.standard_normal()
    return {"score": score, "noise_draw": float(rng.random())}


def slow_objective(params, rng):
    time.sleep(0.2)  # long enough that both workers pick up trials
    return params["lr"]


def fails_for_large_lr(params, rng):
    if params["lr"] > 1e-2:
        raise FloatingPointError(f"loss diverged with lr={params['lr']:.3g}")
    return -params["lr"]


def test_log_uniform_puts_the_same_share_in_every_decade(rng):
    d = LogUniform(1e-4, 1e-0)
    x = np.array([d.sample(rng) for _ in range(4000)])
    assert x.min() >= 1e-4 and x.max() <= 1.0
    counts = np.histogram(np.log10(x), bins=[-4, -3, -2, -1, 0])[0]
    assert np.all(np.abs(counts / 4000 - 0.25) < 0.03), f"share per decade {counts / 4000}, expected 0.25 each"


def test_other_distributions_and_sample(rng):
    assert all(1 <= IntUniform(1, 3).sample(rng) <= 3 for _ in range(50))
    v = [IntLogUniform(1, 1000).sample(rng) for _ in range(500)]
    assert all(isinstance(i, int) and 1 <= i <= 1000 for i in v) and np.median(v) < 100
    assert {Choice(["a", "b"]).sample(rng) for _ in range(50)} == {"a", "b"}
    cfg = sample(SPACE, rng)
    assert set(cfg) == set(SPACE) and cfg["epochs"] == 3 and cfg["hidden"] in (32, 64, 128)
    assert 0.0 <= cfg["reg"] <= 1.0 and isinstance(cfg["lr"], float)


def test_distributions_reject_bad_bounds():
    with pytest.raises(ValueError, match="low must be > 0"):
        LogUniform(0, 1)
    with pytest.raises(ValueError, match="low <= high"):
        Uniform(2, 1)
    with pytest.raises(ValueError, match="non-empty"):
        Choice([])


def test_trials_run_in_parallel_worker_processes():
    res = random_search(slow_objective, {"lr": LogUniform(1e-4, 1e-1)}, n_trials=4, seed=0, n_jobs=2)
    pids = {r["pid"] for r in res}
    assert len(pids) > 1, f"all trials ran in one process {pids}: n_jobs=2 should use two workers"
    assert os.getpid() not in pids


def test_same_seed_same_results_whatever_n_jobs():
    a = random_search(noisy_bowl, SPACE, n_trials=6, seed=42, n_jobs=2)
    b = random_search(noisy_bowl, SPACE, n_trials=6, seed=42, n_jobs=1)
    key = lambda res: sorted((r["trial"], r["score"], tuple(r["params"].items()), r["seed"]) for r in res)  # noqa: E731
    assert key(a) == key(b)
    c = random_search(noisy_bowl, SPACE, n_trials=6, seed=43, n_jobs=1)
    assert key(c) != key(a)
    assert len({r["seed"] for r in a}) == 6, "every trial must get its own seed"


def test_results_sorted_best_first_with_table_and_csv(tmp_path):
    res = random_search(noisy_bowl, SPACE, n_trials=8, seed=1, n_jobs=1)
    scores = [r["score"] for r in res]
    assert scores == sorted(scores, reverse=True) and res.best is res[0]
    rows = res.to_rows()
    assert rows[0]["rank"] == 1 and {"lr", "reg", "hidden", "epochs", "noise_draw", "score"} <= set(rows[0])
    text = repr(res)
    assert "8 trials" in text and "lr" in text.splitlines()[1] and len(text.splitlines()) == 10
    path = res.to_csv(tmp_path / "results.csv")
    with open(path) as f:
        back = list(csv.DictReader(f))
    assert len(back) == 8 and float(back[0]["score"]) == pytest.approx(res.best["score"])
    lows = random_search(noisy_bowl, SPACE, n_trials=8, seed=1, n_jobs=1, mode="min")
    assert lows.best["score"] == min(scores)


def test_failing_trials_are_recorded_and_the_search_goes_on():
    res = random_search(fails_for_large_lr, {"lr": LogUniform(1e-4, 1)}, n_trials=12, seed=3, n_jobs=2)
    assert len(res) == 12
    failed = res.failed
    assert failed and len(res.ok) == 12 - len(failed)
    assert all(r["params"]["lr"] > 1e-2 for r in failed)
    assert all(r["error"].startswith("FloatingPointError: loss diverged") for r in failed)
    assert res[-len(failed):] == failed, "failed trials are listed last"
    assert "FloatingPointError" in res.to_string()


def test_grid_search_runs_every_combination():
    res = grid_search(noisy_bowl, {"lr": [1e-4, 1e-3, 1e-2], "reg": [0.0, 0.2], "hidden": 64}, n_jobs=2, seed=0)
    combos = {(r["params"]["lr"], r["params"]["reg"]) for r in res}
    assert len(res) == 6 and len(combos) == 6
    assert all(r["params"]["hidden"] == 64 for r in res)
    assert (res.best["params"]["lr"], res.best["params"]["reg"]) == (1e-3, 0.2)


def test_coarse_to_fine_narrows_around_the_best():
    res = random_search(noisy_bowl, SPACE, n_trials=30, seed=7, n_jobs=1)
    fine = coarse_to_fine(res, SPACE, top_k=5, shrink=0.5)
    old_w = math.log(1e-1) - math.log(1e-5)
    new_w = math.log(fine["lr"].high) - math.log(fine["lr"].low)
    assert isinstance(fine["lr"], LogUniform) and new_w == pytest.approx(0.5 * old_w)
    assert 1e-5 <= fine["lr"].low < fine["lr"].high <= 1e-1 + 1e-15
    assert fine["lr"].low <= res.best["params"]["lr"] <= fine["lr"].high
    assert fine["reg"].high - fine["reg"].low == pytest.approx(0.5)
    assert set(fine["hidden"].options) == {r["params"]["hidden"] for r in res.ok[:5]}
    assert fine["epochs"] == 3
    # and a second round searches inside the narrower space
    res2 = random_search(noisy_bowl, fine, n_trials=5, seed=8, n_jobs=1)
    assert all(fine["lr"].low <= r["params"]["lr"] <= fine["lr"].high for r in res2)


def test_coarse_to_fine_centres_in_log_space():
    trials = [{"trial": i, "score": -i, "status": "ok", "params": {"lr": lr}, "metrics": {}, "error": None,
               "seed": 0, "pid": 0, "time": 0.0} for i, lr in enumerate([1e-3, 1e-2])]
    fine = coarse_to_fine(Results(trials), {"lr": LogUniform(1e-6, 1e0)}, top_k=2, shrink=0.5)
    # geometric mean of 1e-3 and 1e-2 is 10**-2.5; width 3 decades
    assert fine["lr"].low == pytest.approx(10 ** -4.0) and fine["lr"].high == pytest.approx(10 ** -1.0)


def test_search_bad_input():
    with pytest.raises(ValueError, match="picklable"):
        random_search(lambda p, r: 0.0, SPACE, n_trials=2, seed=0, n_jobs=2)
    with pytest.raises(ValueError, match="n_trials must be a positive integer"):
        random_search(noisy_bowl, SPACE, n_trials=0)
    with pytest.raises(ValueError, match="mode must be"):
        random_search(noisy_bowl, SPACE, n_trials=1, mode="best")
    with pytest.raises(ValueError, match="shrink must be in"):
        coarse_to_fine(random_search(noisy_bowl, SPACE, n_trials=2, seed=0, n_jobs=1), SPACE, shrink=2)
    res = random_search(fails_for_large_lr, {"lr": LogUniform(0.1, 1)}, n_trials=2, seed=0, n_jobs=1)
    with pytest.raises(ValueError, match="no trial succeeded"):
        res.best
    with pytest.raises(ValueError, match="at least one successful trial"):
        coarse_to_fine(res, {"lr": LogUniform(0.1, 1)})


def test_rng_argument_is_reproducible():
    a = random_search(noisy_bowl, SPACE, n_trials=3, rng=np.random.default_rng(5), n_jobs=1)
    b = random_search(noisy_bowl, SPACE, n_trials=3, rng=np.random.default_rng(5), n_jobs=1)
    assert [r["score"] for r in a] == [r["score"] for r in b]
    replay = random_search(noisy_bowl, SPACE, n_trials=3, seed=a.seed, n_jobs=1)
    assert [r["score"] for r in replay] == [r["score"] for r in a], "results.seed replays the search"
    with pytest.raises(ValueError, match="either seed or rng"):
        random_search(noisy_bowl, SPACE, n_trials=1, seed=1, rng=np.random.default_rng(1))


def test_best_at_edge_flags_values_near_the_range_limits():
    trials = [{"trial": 0, "score": 1.0, "status": "ok", "params": {"lr": 1.5e-6, "reg": 0.5, "p": 0.97},
               "metrics": {}, "error": None, "seed": 0, "pid": 0, "time": 0.0}]
    space = {"lr": LogUniform(1e-6, 1e-1), "reg": LogUniform(1e-3, 1e3), "p": Uniform(0, 1)}
    assert best_at_edge(Results(trials), space) == {"lr": "low", "p": "high"}
