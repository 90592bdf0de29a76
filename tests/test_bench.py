"""The benchmark's step is the real training step: it must lower the loss (timing is not tested here)."""

from nnlab.bench import main, make_problem, train_step


def test_benchmark_step_trains():
    x, y, params = make_problem(batch=32, sizes=(20, 16, 16, 4))
    losses = [train_step(x, y, params, lr=0.1) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    assert all(w.dtype.name == "float32" for w, _ in params), "float32 must stay float32"


def test_benchmark_cli_prints_a_figure(capsys, monkeypatch):
    monkeypatch.setenv("_NNLAB_BENCH_CHILD", "1")
    assert main(["--repeats", "2", "--batch", "8"]) == 0
    assert "ms/step" in capsys.readouterr().out
