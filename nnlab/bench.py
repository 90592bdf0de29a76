"""Benchmark one training step of a 784-512-512-10 ReLU MLP (batch 256, float32).

    python -m nnlab.bench                         # nnlab, built from the functional layers
    python -m nnlab.bench --torch /path/to/python # the same step in PyTorch, side by side

A step is forward, softmax loss, backward and an SGD update of every parameter. The figure is the
median over repeats, after warm-up. For a fair comparison both sides use the same number of
threads (`--threads`, default: all cores). PyTorch is never a dependency of the course: point
`--torch` at any interpreter that has it, e.g. a throwaway venv:

    python -m venv /tmp/torch-venv
    /tmp/torch-venv/bin/pip install /opt/wheels/torch-*.whl   # or: pip install torch --index-url ...
"""

import argparse
import os
import subprocess
import sys
import time

SIZES = (784, 512, 512, 10)

TORCH_SCRIPT = r"""
import sys, time, torch
batch, threads, repeats = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
sizes = [int(s) for s in sys.argv[4].split(",")]
torch.set_num_threads(threads)
g = torch.Generator().manual_seed(0)
layers = []
for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
    layers.append(torch.nn.Linear(a, b))
    if i < len(sizes) - 2:
        layers.append(torch.nn.ReLU())
model = torch.nn.Sequential(*layers)
opt = torch.optim.SGD(model.parameters(), lr=1e-3)
x = torch.randn(batch, sizes[0], generator=g)
y = torch.randint(0, sizes[-1], (batch,), generator=g)
loss_fn = torch.nn.CrossEntropyLoss()
def step():
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
for _ in range(10):
    step()
times = []
for _ in range(repeats):
    t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
times.sort()
print(times[len(times) // 2], torch.__version__)
"""


def make_problem(batch=256, sizes=SIZES, dtype="float32", seed=0):
    """Random inputs, labels and He-initialised weights for the benchmark MLP."""
    import numpy as np
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=batch)
    params = []
    for d_in, d_out in zip(sizes[:-1], sizes[1:]):
        w = (rng.standard_normal((d_in, d_out)) * np.sqrt(2.0 / d_in)).astype(dtype)
        params.append([w, np.zeros(d_out, dtype=dtype)])
    return x, y, params


def train_step(x, y, params, lr=1e-3):
    """One SGD step of the MLP from nnlab's functional layers; updates params in place, returns the loss."""
    from .layers import affine_backward, affine_forward, relu_backward, relu_forward, softmax_loss
    caches, h = [], x
    for i, (w, b) in enumerate(params):
        h, affine_cache = affine_forward(h, w, b)
        relu_cache = None
        if i < len(params) - 1:
            h, relu_cache = relu_forward(h)
        caches.append((affine_cache, relu_cache))
    loss, dout = softmax_loss(h, y)
    for i in reversed(range(len(params))):
        w, b = params[i]
        affine_cache, relu_cache = caches[i]
        if relu_cache is not None:
            dout = relu_backward(dout, relu_cache)
        dout, dw, db = affine_backward(dout, affine_cache, need_dx=i > 0)  # no gradient for the data
        w -= lr * dw  # in place: the same update as nnlab.optim.sgd without a new allocation
        b -= lr * db
    return loss


def time_nnlab(batch=256, dtype="float32", repeats=50):
    """Median seconds per training step."""
    x, y, params = make_problem(batch, dtype=dtype)
    for _ in range(5):
        train_step(x, y, params)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        train_step(x, y, params)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def time_torch(python, batch, threads, repeats):
    """Run the PyTorch step in another interpreter; returns (median seconds, torch version)."""
    result = subprocess.run([python, "-c", TORCH_SCRIPT, str(batch), str(threads), str(repeats),
                             ",".join(map(str, SIZES))], capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"could not run PyTorch with {python}:\n{result.stderr.strip()[-800:]}")
    seconds, version = result.stdout.split()
    return float(seconds), version


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m nnlab.bench", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--threads", type=int, default=os.cpu_count(),
                        help="BLAS threads for both sides (default: all cores)")
    parser.add_argument("--torch", metavar="PYTHON", help="an interpreter with PyTorch, for a side-by-side figure")
    args = parser.parse_args(argv)

    if os.environ.get("_NNLAB_BENCH_CHILD") != "1":
        # BLAS reads its thread count at import time, so run the measurement in a child with it set.
        env = dict(os.environ, _NNLAB_BENCH_CHILD="1", OMP_NUM_THREADS=str(args.threads),
                   OPENBLAS_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
        return subprocess.call([sys.executable, "-m", "nnlab.bench", *(argv if argv is not None else sys.argv[1:])],
                               env=env)

    import numpy as np
    seconds = time_nnlab(args.batch, args.dtype, args.repeats)
    shape = "-".join(map(str, SIZES))
    print(f"nnlab   {shape} ReLU MLP, batch {args.batch}, {args.dtype}, {args.threads} thread(s), numpy {np.__version__}")
    print(f"nnlab   {seconds * 1e3:7.2f} ms/step  ({args.batch / seconds:,.0f} examples/s)")
    if args.torch:
        torch_seconds, version = time_torch(args.torch, args.batch, args.threads, args.repeats)
        print(f"torch   {torch_seconds * 1e3:7.2f} ms/step  (PyTorch {version}, float32)")
        print(f"ratio   nnlab / torch = {seconds / torch_seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
