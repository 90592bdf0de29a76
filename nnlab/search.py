"""Hyperparameter search: random, grid and coarse-to-fine, with trials in parallel processes.

A search space is a dict name -> distribution (or a plain value, kept constant):

    space = {"lr": LogUniform(1e-4, 1e-1), "reg": LogUniform(1e-5, 1e-1),
             "hidden": Choice([64, 128, 256]), "epochs": 2}

The objective is a TOP-LEVEL function (worker processes must be able to pickle it)

    def objective(params, rng):      # params: dict of sampled values; rng: this trial's Generator
        ...train for a few epochs...
        return val_acc               # a number, or a dict {"score": val_acc, "train_acc": ...}

and random_search(objective, space, n_trials=20, seed=0, n_jobs=2) returns a `Results` table,
best trial first. Learning rates and regularisation strengths are sampled in LOG space: a
uniform sample of [1e-4, 1e-1] would put 90% of the trials above 1e-2.

Reproducibility: from `seed` one numpy SeedSequence is derived; it samples every trial's
parameters in the parent process and spawns one independent child seed per trial. So trial i
gets the same parameters and the same random stream whatever the number of workers or the
order in which they finish.

A trial that raises (say DivergenceError) is recorded as failed with its message and the search
goes on. coarse_to_fine(results, space) narrows the space around the best trials for the next,
longer round (the lecture's recipe: a coarse search for a few epochs, then a finer one).
"""

import csv
import itertools
import math
import multiprocessing
import os
import pickle
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np

__all__ = ["Distribution", "LogUniform", "Uniform", "Choice", "IntLogUniform", "IntUniform", "sample",
           "Results", "random_search", "grid_search", "coarse_to_fine", "best_at_edge"]


# ----------------------------------------------------------------------------- distributions
class Distribution:
    """Base class of a search dimension: `sample(rng)` returns one value."""

    def sample(self, rng):  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self):
        return f"{type(self).__name__}({', '.join(repr(v) for v in self.__dict__.values())})"

    def __eq__(self, other):
        return type(self) is type(other) and self.__dict__ == other.__dict__


def _bounds(cls, low, high, positive=False):
    try:
        low, high = float(low), float(high)
    except (TypeError, ValueError):
        raise ValueError(f"{cls}: low and high must be numbers, got {low!r} and {high!r}") from None
    if positive and not low > 0:
        raise ValueError(f"{cls}: low must be > 0 (sampling is in log space), got {low}")
    if not (math.isfinite(low) and math.isfinite(high) and low <= high):
        raise ValueError(f"{cls}: need finite low <= high, got low={low}, high={high}")
    return low, high


class Uniform(Distribution):
    """Uniform on [low, high] (for quantities like a dropout probability)."""

    def __init__(self, low, high):
        self.low, self.high = _bounds("Uniform", low, high)

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))


class LogUniform(Distribution):
    """log(x) uniform on [log low, log high]: every decade gets the same share of trials.

    Use for learning rates and regularisation strengths (anything that acts multiplicatively).
    """

    def __init__(self, low, high):
        self.low, self.high = _bounds("LogUniform", low, high, positive=True)

    def sample(self, rng):
        return float(math.exp(rng.uniform(math.log(self.low), math.log(self.high))))


class IntUniform(Distribution):
    """Integer uniform on {low, ..., high} (both ends included)."""

    def __init__(self, low, high):
        lo, hi = _bounds("IntUniform", low, high)
        self.low, self.high = int(math.ceil(lo)), int(math.floor(hi))
        if self.low > self.high:
            raise ValueError(f"IntUniform: no integer in [{low}, {high}]")

    def sample(self, rng):
        return int(rng.integers(self.low, self.high + 1))


class IntLogUniform(Distribution):
    """Integer in {low, ..., high} sampled in log space (hidden sizes, batch sizes), low >= 1."""

    def __init__(self, low, high):
        lo, hi = _bounds("IntLogUniform", low, high, positive=True)
        self.low, self.high = int(math.ceil(lo)), int(math.floor(hi))
        if self.low < 1 or self.low > self.high:
            raise ValueError(f"IntLogUniform: need integers 1 <= low <= high, got low={low}, high={high}")

    def sample(self, rng):
        x = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
        return int(min(self.high, max(self.low, math.floor(x))))


class Choice(Distribution):
    """One of a list of options, each with the same probability."""

    def __init__(self, options):
        self.options = list(options)
        if not self.options:
            raise ValueError("Choice: options must be a non-empty list")

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]


def _check_space(space, what="space"):
    if not isinstance(space, dict) or not space:
        raise ValueError(f"{what} must be a non-empty dict name -> distribution or value, got {space!r}")


def sample(space, rng):
    """Draw one configuration: dict name -> value (plain values in `space` are kept as they are)."""
    _check_space(space)
    return {k: (v.sample(rng) if isinstance(v, Distribution) else v) for k, v in space.items()}


# ----------------------------------------------------------------------------- results
class Results(list):
    """The trials of a search, best first: a list of dicts with keys

        "trial" (index in the order of sampling), "score", "status" ("ok" | "failed"),
        "params" (dict), "metrics" (extra values the objective returned), "error" (message or
        None), "seed" (int: rerun with objective(params, np.random.default_rng(seed))),
        "pid" (worker process id), "time" (seconds).

    Failed trials come last. `best` is the best successful trial; `to_rows()` flattens the trials
    into one dict per row (params and metrics as columns); `to_string()`/print shows a table;
    `to_csv(path)` writes it.
    """

    def __init__(self, trials, mode="max", seed=None):
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        sign = -1.0 if mode == "max" else 1.0
        ordered = sorted(trials, key=lambda r: (r["status"] != "ok",
                                                sign * r["score"] if r["status"] == "ok" else 0.0, r["trial"]))
        super().__init__(ordered)
        self.mode = mode
        self.seed = seed

    @property
    def ok(self):
        return [r for r in self if r["status"] == "ok"]

    @property
    def failed(self):
        return [r for r in self if r["status"] != "ok"]

    @property
    def best(self):
        ok = self.ok
        if not ok:
            raise ValueError("no trial succeeded: look at the 'error' column (results.failed)")
        return ok[0]

    def to_rows(self):
        param_keys = list(dict.fromkeys(k for r in self for k in r["params"]))
        metric_keys = list(dict.fromkeys(k for r in self for k in r["metrics"]))
        rows = []
        for rank, r in enumerate(self, start=1):
            row = {"rank": rank, "trial": r["trial"], "score": r["score"], "status": r["status"]}
            row.update({k: r["params"].get(k) for k in param_keys})
            row.update({k: r["metrics"].get(k) for k in metric_keys})
            row.update(time=r["time"], pid=r["pid"], error=r["error"])
            rows.append(row)
        return rows

    def to_string(self, max_rows=None):
        rows = self.to_rows()
        if not rows:
            return "Results(no trials)"
        shown = rows if max_rows is None else rows[:max_rows]
        cols = [c for c in rows[0] if c not in ("pid",) and not (c == "error" and not self.failed)]

        def fmt(v):
            if v is None:
                return "-"
            if isinstance(v, float):
                return f"{v:.4g}" if math.isfinite(v) else str(v)
            s = str(v)
            return s if len(s) <= 60 else s[:57] + "..."

        cells = [[fmt(r[c]) for c in cols] for r in shown]
        widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
        left = [c in ("status", "error") for c in cols]

        def line(values):
            return "  ".join(v.ljust(w) if lj else v.rjust(w) for v, w, lj in zip(values, widths, left)).rstrip()

        lines = [line(cols)] + [line(row) for row in cells]
        if len(rows) > len(shown):
            lines.append(f"... {len(rows) - len(shown)} more trial(s)")
        return "\n".join(lines)

    def __repr__(self):
        return f"Results({len(self)} trials, mode={self.mode!r}, {len(self.failed)} failed)\n" + \
            self.to_string(max_rows=20)

    def to_csv(self, path):
        rows = self.to_rows()
        fields = list(rows[0]) if rows else ["rank", "trial", "score", "status"]
        with open(path, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(rows)
        return path


# ----------------------------------------------------------------------------- running trials
def _run_trial(objective, trial, params, seed):
    """Run one trial; never raises for an error of the objective (top level: workers pickle it)."""
    start = time.perf_counter()
    rec = {"trial": trial, "score": float("nan"), "status": "ok", "params": dict(params), "metrics": {},
           "error": None, "seed": seed, "pid": os.getpid()}
    try:
        out = objective(dict(params), np.random.default_rng(seed))
        if isinstance(out, dict):
            if "score" not in out:
                raise ValueError(f"the objective returned a dict without a 'score' key: {sorted(out)}")
            metrics = {k: v for k, v in out.items() if k != "score"}
            out = out["score"]
        else:
            metrics = {}
        score = float(out)
        rec["metrics"] = metrics
        rec["score"] = score
        if not math.isfinite(score):
            rec["status"], rec["error"] = "failed", f"the objective returned a non-finite score ({score})"
    except Exception as e:  # noqa: BLE001 - a failed trial must not stop the search
        rec["status"], rec["error"] = "failed", f"{type(e).__name__}: {e}"
    rec["time"] = time.perf_counter() - start
    return rec


def _root_seed(seed, rng=None):
    if rng is not None:
        if seed is not None:
            raise ValueError("pass either seed or rng, not both")
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"rng must be a numpy Generator, got {type(rng).__name__}")
        seed = rng
    if isinstance(seed, np.random.SeedSequence):
        return seed
    if isinstance(seed, np.random.Generator):
        return np.random.SeedSequence(int(seed.integers(2 ** 63)))
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0):
        return np.random.SeedSequence(seed)
    raise ValueError(f"seed must be a non-negative int, a SeedSequence, a Generator or None, got {seed!r}")


def _context():
    methods = multiprocessing.get_all_start_methods()
    # "fork" lets functions defined in a notebook reach the workers; "spawn" elsewhere (Windows, macOS).
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _run_all(objective, configs, root, n_jobs, mode):
    if not callable(objective):
        raise ValueError(f"objective must be a callable objective(params, rng), got {type(objective).__name__}")
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, (int, np.integer)) or n_jobs < 1:
        raise ValueError(f"n_jobs must be a positive integer, got {n_jobs!r}")
    seeds = [int(s.generate_state(1, dtype=np.uint64)[0]) for s in root.spawn(len(configs))]
    jobs = [(objective, i, p, s) for i, (p, s) in enumerate(zip(configs, seeds))]
    if n_jobs == 1 or len(jobs) <= 1:
        trials = [_run_trial(*job) for job in jobs]
    else:
        try:
            pickle.dumps(objective)
        except Exception as e:
            raise ValueError("objective must be picklable to run in worker processes: define it with `def` at "
                             f"the top level of a module or notebook (not a lambda or nested function), or use "
                             f"n_jobs=1 ({type(e).__name__}: {e})") from None
        try:
            pool = ProcessPoolExecutor(max_workers=min(int(n_jobs), len(jobs)), mp_context=_context())
        except OSError as e:
            # No worker processes here: multiprocessing needs a writable /dev/shm for its locks, which some
            # sandboxes (a grading sandbox, some containers) lack. Same trials and results, one after another.
            print(f"nnlab.search: worker processes are not available here ({type(e).__name__}: {e}); "
                  f"running the {len(jobs)} trials one after another")
            trials = [_run_trial(*job) for job in jobs]
        else:
            with pool:
                futures = [pool.submit(_run_trial, *job) for job in jobs]
                trials = [f.result() for f in futures]
    return Results(trials, mode=mode, seed=root.entropy)


def random_search(objective, space, n_trials, seed=None, n_jobs=2, mode="max", rng=None):
    """Random search: `n_trials` configurations sampled from `space`, run in parallel.

    Args:
        objective: top-level function objective(params: dict, rng: Generator) -> score (float) or
            dict with a "score" key (other keys are kept as metric columns).
        space: dict name -> Distribution (LogUniform, Uniform, Choice, IntLogUniform, IntUniform)
            or a constant value.
        n_trials: number of configurations (>= 1).
        seed: int, SeedSequence or Generator; the same seed gives the same trials and scores
            (if the objective uses only the rng it receives), whatever n_jobs. The seed actually
            used is kept in results.seed (its entropy), so even seed=None can be replayed.
        rng: alternatively a numpy Generator to draw the root seed from (not with seed).
        n_jobs: worker processes (1 runs in this process, handy for debugging). Where worker processes
            cannot be started (a sandbox without a writable /dev/shm), the trials run in this process, with
            a printed note; the results are the same.
        mode: "max" (accuracy) or "min" (loss): which end of the scores is best.
    Returns:
        Results, best first.
    """
    _check_space(space)
    if isinstance(n_trials, bool) or not isinstance(n_trials, (int, np.integer)) or n_trials < 1:
        raise ValueError(f"n_trials must be a positive integer, got {n_trials!r}")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    root = _root_seed(seed, rng)
    sample_seq, trial_seq = root.spawn(2)
    sampler = np.random.default_rng(sample_seq)
    configs = [sample(space, sampler) for _ in range(int(n_trials))]
    results = _run_all(objective, configs, trial_seq, n_jobs, mode)
    results.seed = root.entropy
    return results


def grid_search(objective, grid, n_jobs=2, seed=None, mode="max", rng=None):
    """Grid search: one trial per combination of the values in `grid` (dict name -> list of values;
    a non-list value is a constant). Same objective, seeding and Results as random_search.

    Random search usually finds better values with the same budget (Bergstra & Bengio 2012): with a
    grid, an unimportant hyperparameter wastes trials on repeated values of the important one.
    """
    _check_space(grid, "grid")
    if mode not in ("max", "min"):
        raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
    names = list(grid)
    axes = []
    for k in names:
        v = grid[k]
        vals = list(v) if isinstance(v, (list, tuple, np.ndarray, range)) else [v]
        if not vals:
            raise ValueError(f"grid[{k!r}] is empty")
        axes.append([x.item() if isinstance(x, np.generic) else x for x in vals])
    configs = [dict(zip(names, combo)) for combo in itertools.product(*axes)]
    root = _root_seed(seed, rng)
    results = _run_all(objective, configs, root, n_jobs, mode)
    results.seed = root.entropy
    return results


# ----------------------------------------------------------------------------- coarse to fine
def _narrow(lo, hi, vals, shrink):
    centre = float(np.mean(vals))
    half = shrink * (hi - lo) / 2
    new_lo, new_hi = centre - half, centre + half
    if new_lo < lo:            # shift (not cut) back inside the old range, keeping the width
        new_lo, new_hi = lo, lo + 2 * half
    if new_hi > hi:
        new_lo, new_hi = hi - 2 * half, hi
    return new_lo, new_hi


def coarse_to_fine(results, space, top_k=5, shrink=0.5):
    """A narrower space around the best trials, for the next (finer, longer) round of search.

    For each dimension, with the values v_1..v_k of the `top_k` best successful trials:
      - LogUniform / IntLogUniform: in log space, the new interval has `shrink` times the old
        width and is centred on the mean of log(v_i);
      - Uniform / IntUniform: the same in linear space;
      - Choice: keeps only the options used by the top trials (in their original order);
      - constants (and unknown kinds) are kept as they are.
    The new interval is shifted back inside the old one if it sticks out. If the best trials sit at
    an edge of the old range, the optimum may lie outside it: widen the range instead and search
    again (the lecture's warning).

    Args:
        results: Results of a previous search over `space`.
        space: the space that search used. top_k: number of best trials to use (>= 1).
        shrink: new width / old width, in (0, 1].
    Returns:
        a new space dict.
    """
    _check_space(space)
    if not isinstance(results, Results):
        raise ValueError(f"results must be the Results of a search, got {type(results).__name__}")
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
    shrink = float(shrink)
    if not 0 < shrink <= 1:
        raise ValueError(f"shrink must be in (0, 1], got {shrink}")
    top = results.ok[:int(top_k)]
    if not top:
        raise ValueError("coarse_to_fine needs at least one successful trial; all trials failed")
    new = {}
    for name, dist in space.items():
        if not isinstance(dist, Distribution):
            new[name] = dist
            continue
        vals = [r["params"][name] for r in top if name in r["params"]]
        if not vals:
            raise ValueError(f"no trial in results has a value for {name!r}: was it searched over this space?")
        if isinstance(dist, (LogUniform, IntLogUniform)):
            lo, hi = _narrow(math.log(dist.low), math.log(dist.high), [math.log(v) for v in vals], shrink)
            lo, hi = math.exp(lo), math.exp(hi)
            if isinstance(dist, IntLogUniform):
                lo, hi = max(dist.low, math.floor(lo)), min(dist.high, math.ceil(hi))
            new[name] = type(dist)(lo, hi)
        elif isinstance(dist, (Uniform, IntUniform)):
            lo, hi = _narrow(dist.low, dist.high, vals, shrink)
            if isinstance(dist, IntUniform):
                lo, hi = max(dist.low, math.floor(lo)), min(dist.high, math.ceil(hi))
            new[name] = type(dist)(lo, hi)
        elif isinstance(dist, Choice):
            new[name] = Choice([o for o in dist.options if any(o == v for v in vals)])
        else:
            new[name] = dist
    return new


def best_at_edge(results, space, margin=0.1):
    """Dimensions where the best trial sits near an edge of its range (the optimum may lie outside).

    For LogUniform / IntLogUniform the position is measured in log space, for Uniform / IntUniform
    in linear space: a value in the lowest or highest `margin` fraction of the range counts.

    Returns:
        dict name -> "low" or "high" (empty when no best value is near an edge). Widen the range on
        that side before narrowing it with coarse_to_fine.
    """
    _check_space(space)
    margin = float(margin)
    if not 0 < margin < 0.5:
        raise ValueError(f"margin must be in (0, 0.5), got {margin}")
    best = results.best["params"]
    out = {}
    for name, dist in space.items():
        if name not in best or not isinstance(dist, (LogUniform, IntLogUniform, Uniform, IntUniform)):
            continue
        lo, hi, x = float(dist.low), float(dist.high), float(best[name])
        if isinstance(dist, (LogUniform, IntLogUniform)):
            lo, hi, x = math.log(lo), math.log(hi), math.log(x)
        if hi <= lo:
            continue
        pos = (x - lo) / (hi - lo)
        if pos <= margin:
            out[name] = "low"
        elif pos >= 1 - margin:
            out[name] = "high"
    return out
