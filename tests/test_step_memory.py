"""A compiled training step allocates no large array in steady state: counted, not
timed (page faults and large allocations do not flake the way timings do)."""
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

SCRIPT = textwrap.dedent("""
    import resource, tracemalloc
    import numpy as np
    from compiler import compile_step
    from runtime import nn, optim

    rng = np.random.default_rng(0)
    params = nn.init_mlp([784, 256, 256, 10], rng=rng)
    x, y = rng.normal(size=(128, 784)), rng.integers(0, 10, 128)
    step = compile_step(lambda p, x, y: nn.softmax_cross_entropy(nn.mlp(p, x, activation=nn.relu), y),
                        optim.SGD(lr=1e-3))
    for _ in range(5):
        step(params, x, y)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(10):
        step(params, x, y)
    faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 10
    tracemalloc.start()
    current, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    step(params, x, y)
    transient = tracemalloc.get_traced_memory()[1] - current
    tracemalloc.stop()
    print(faults, transient)
""")


def test_mlp_step_takes_no_page_faults_and_allocates_no_large_array_per_step():
    result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, check=True)
    faults, transient = result.stdout.split()
    # careful hand-written NumPy takes 0-7 faults per step at this size; the compiled
    # step computes into arrays it keeps, so after warm-up it only allocates small
    # temporaries (masks, the 128 x 10 logits), never a layer-sized array (256 KiB+)
    assert float(faults) <= 2.0, result.stdout
    assert int(transient) < 256 * 1024, result.stdout
