"""nbval on the solution notebooks: the numbers the prose states are the numbers the code prints.

Every solution notebook runs top to bottom in a fresh kernel under `pytest --nbval-lax`, one nbval run
(one kernel) per notebook, the notebooks spread over make test's workers. Only the cells marked
tagged `nbval-check-output` are compared with the outputs committed in solutions/, after
tests/nbval_sanitize.cfg (addresses, timings, speed-ups, progress bars, rounding-level differences).
A notebook without committed outputs (a new one) is skipped, with the command that adds them:
`make solutions-outputs NOTEBOOKS=NN_topic` (tests/solution_outputs.py). `make nbval` runs all of them
in one pytest run (-n 2 --dist loadscope) and shows nbval's own report.

Cells left unchecked on purpose (code-cell numbers as nbval counts them), because their numbers are
not the same on every machine:
- clock timings: 01 cell 22 (cost of the activations), 04 cell 10 (closed-form backward speed-up),
  05 cell 28 (Newton solve times) and 05 cell 30 (the summary, which repeats them);
- float32 trainings whose printed digits move with the CPU's vector instructions and the BLAS kernel
  (rerun with NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL AVX512_SPR" OPENBLAS_CORETYPE=Haswell to
  see it): 03 cell 27 (MNIST per initialisation), 04 cells 20, 21, 23, 24, 25 (batch sizes, train-mode
  bug, generalisation gap, activation histograms, summary), 05 cells 23, 24 (MNIST per optimiser,
  learning-rate schedules). Printing them banded (e.g. "about 0.94") would let them be checked.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from solution_outputs import ROOT, SANITIZE, SOLUTIONS, checked_cells, has_outputs, kernel_env, solution_notebooks  # noqa: E402

NOTEBOOKS = solution_notebooks() if SOLUTIONS.is_dir() else []
MARKER = "the tag nbval-check-output"


def nbval(path: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    """`pytest --nbval-lax` on one notebook, in the kernel environment its committed outputs come from."""
    cmd = [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", f"--nbval-sanitize-with={SANITIZE}",
           "--nbval-cell-timeout=600", "-p", "no:cacheprovider", "-p", "no:xdist", "-q", "--no-header",
           f"--rootdir={ROOT}", str(path)]
    return subprocess.run(cmd, cwd=ROOT, env=kernel_env(), capture_output=True, text=True, timeout=timeout)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def _id(p):
    return p.parent.name


@pytest.mark.slow
@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS or [pytest.param(None, marks=pytest.mark.skip("no solutions/ here"))],
                         ids=lambda p: _id(p) if p else "none")
def test_solution_prints_what_its_prose_states(path):
    nb = nbformat.read(path, as_version=4)
    if not has_outputs(nb):
        pytest.skip(f"{path.relative_to(ROOT)} has no committed outputs yet, so nbval has nothing to compare: "
                    f"run `make solutions-outputs NOTEBOOKS={path.parent.name}` and commit the notebook")
    r = nbval(path)
    report = (r.stdout + r.stderr)[-6000:]
    assert r.returncode == 0, (f"nbval failed on {path.relative_to(ROOT)}: a checked cell (tag nbval-check-output) "
                               f"printed something else than its committed output, or a cell raised. If the change "
                               f"is intended, update the prose and run `make solutions-outputs "
                               f"NOTEBOOKS={path.parent.name}`.\n{report}")
    assert re.search(rf"\b{len(code_cells(nb))} passed\b", r.stdout), report


@pytest.mark.parametrize("path", NOTEBOOKS or [pytest.param(None, marks=pytest.mark.skip("no solutions/ here"))],
                         ids=lambda p: _id(p) if p else "none")
def test_checked_cells_are_free_cells_with_outputs(path):
    """Markers only in experiment cells (graded and locked cells carry nbgrader checksums), and a marked
    cell has a committed output to compare with (else the outputs were not regenerated after marking)."""
    nb = nbformat.read(path, as_version=4)
    code = code_cells(nb)
    for i in checked_cells(nb):
        md = code[i].metadata.get("nbgrader") or {}
        assert not (md.get("grade") or md.get("locked") or md.get("solution")), \
            f"{path.name}: code cell {i} ({md.get('grade_id')}) is an nbgrader cell: mark experiment cells only"
        if has_outputs(nb):
            assert code[i].outputs, (f"{path.name}: code cell {i} is marked {MARKER} but has no committed output: "
                                     f"run `make solutions-outputs NOTEBOOKS={path.parent.name}`")


def _patterns():
    from nbval.plugin import get_sanitize_patterns
    return get_sanitize_patterns(SANITIZE.read_text())


def sanitize(text):
    for regex, replace in _patterns():
        text = re.sub(regex, replace, text)
    return text


def test_the_sanitiser_hides_what_varies_and_keeps_the_numbers():
    varying = [("<nnlab.modules.Linear object at 0x7f3a2c1d9e50>", "<nnlab.modules.Linear object at 0x7f00aa00bb00>"),
               ("ReLU   0.93 ms   ( 1.0x ReLU's forward + backward)", "ReLU   1.20 ms   ( 1.0x ReLU's forward + backward)"),
               ("one solve about 1.9e+10 s", "one solve about 2.3e+10 s"),
               ("speed-up: 2.14x", "speed-up: 1.87x"),
               (" 45%|####5     | 45/100 [00:01<00:02, 30.2it/s]", "100%|##########| 100/100 [00:03<00:00, 29.1it/s]"),
               ("largest difference of the trajectories 4.4e-16", "largest difference of the trajectories 8.9e-16")]
    for a, b in varying:
        assert sanitize(a) == sanitize(b), (a, sanitize(a))
    kept = [("training accuracy 99.2%", "training accuracy 99.1%"), ("ratio  5.01", "ratio  5.02"),
            ("406 steps (lr 0.3, range 404-414)", "407 steps (lr 0.3, range 404-414)"),
            ("sigma'( 5.0) = 6.65e-03", "sigma'( 5.0) = 6.66e-03"), ("float64: 5.0e-10", "float64: 5.1e-10"),
            ("lr=0.3  seeds (1, 2, 3): [50, 56, 61]", "lr=0.3  seeds (1, 2, 3): [50, 56, 62]"),
            ("forward 0.0e+00", "forward 1.0e+00")]
    for a, b in kept:
        assert sanitize(a) != sanitize(b), (a, sanitize(a))


def _first_checked(nb):
    """The notebook cut after its first checked cell whose output has a number the sanitiser keeps,
    with that cell's index among the code cells and the position of the number's first digit in its stdout."""
    code = code_cells(nb)
    for i in checked_cells(nb):
        streams = [o for o in code[i].outputs if o.output_type == "stream" and o.name == "stdout"]
        if not streams:
            continue
        text = streams[0].text
        for pos, ch in enumerate(text):
            if ch.isdigit() and (pos == 0 or not (text[pos - 1].isalnum() or text[pos - 1] in ".-+")):
                changed = text[:pos] + str((int(ch) + 1) % 10) + text[pos + 1:]
                if sanitize(changed) != sanitize(text):
                    cut = nb.cells.index(code[i]) + 1
                    return nb.cells[:cut], i, streams[0], pos
    return None


@pytest.mark.slow
@pytest.mark.notebooks
def test_a_changed_number_fails_nbval(tmp_path):
    """A real solution's first checked cell, with its committed output: nbval passes; one digit of that
    output changed: nbval fails and shows the difference."""
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        found = _first_checked(nb) if has_outputs(nb) else None
        if found:
            break
    else:
        pytest.skip("no solution notebook has committed outputs with a checked cell yet")
    cells, index, stream, pos = found
    nb.cells = cells
    target = tmp_path / path.name  # nnlab is installed, so the notebook's cells do not depend on the folder
    nbformat.write(nb, target)
    r = nbval(target, timeout=600)
    assert r.returncode == 0, f"the unchanged cut of {path.name} fails nbval:\n{(r.stdout + r.stderr)[-4000:]}"
    before = stream.text
    stream.text = before[:pos] + str((int(before[pos]) + 1) % 10) + before[pos + 1:]
    nbformat.write(nb, target)
    r = nbval(target, timeout=600)
    out = r.stdout + r.stderr
    (tmp_path / "nbval-report.txt").write_text(out)
    assert r.returncode != 0, f"nbval did not notice a changed number in code cell {index} of {path.name}:\n{out[-4000:]}"
    assert f"Cell {index}: Cell outputs differ" in out and "mismatch 'stdout'" in out and "1 failed" in out, out[-4000:]


def test_release_strips_the_committed_outputs():
    """Solutions carry outputs; what release writes for students never does."""
    sys.path.insert(0, str(ROOT))
    from grader.release import normalise

    with_outputs = [p for p in NOTEBOOKS if has_outputs(nbformat.read(p, as_version=4))]
    if not with_outputs:
        pytest.skip("no solution notebook has committed outputs yet")
    released = json.loads(normalise(nbformat.read(with_outputs[0], as_version=4)))
    assert all(c["outputs"] == [] and c["execution_count"] is None
               for c in released["cells"] if c["cell_type"] == "code")
