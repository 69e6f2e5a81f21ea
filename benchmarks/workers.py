"""Children per hour with 1 and 2 workers, local processes and Ray tasks, in one run.

    python benchmarks/workers.py --children 8 --train-images 1000

Each configuration runs a short random search with the ``cifar10`` reward on generated CIFAR-shaped
data (so it needs no dataset; the cost per child is that of a real proxy child of the same size)
and reports children per hour and the ratio to one local worker.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def _fake_cifar(folder: Path) -> Path:
    """A cifar-10-batches-py folder of random images (enough for the proxy split)."""
    import pickle

    d = folder / "cifar-10-batches-py"
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (2000, 3072), dtype=np.uint8)
        (d / name).write_bytes(pickle.dumps({b"data": x, b"labels": rng.integers(0, 10, 2000).tolist()}))
    return d


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--children", type=int, default=8)
    p.add_argument("--train-images", type=int, default=1000)
    p.add_argument("--executors", nargs="+", default=["local", "ray"])
    a = p.parse_args(argv)
    from keras_nasnet.search.__main__ import main as search_main

    tmp = Path(tempfile.mkdtemp())
    data = _fake_cifar(tmp / "data")
    rows = []
    for executor in a.executors:
        for workers in (1, 2):
            out = tmp / f"{executor}_{workers}"
            t = time.time()
            search_main(["--reward", "cifar10", "--strategy", "random", "--data", str(data),
                         "--child-train-images", str(a.train_images), "--trials", str(a.children),
                         "--workers", str(workers), "--executor", executor,
                         # a local worker's threads; a Ray child's CPUs (the flag each executor takes)
                         "--threads-per-worker" if executor == "local" else "--cpus-per-child",
                         str(max(1, (os.cpu_count() or 2) // workers)), "--out", str(out), "--no-progress"])
            hours = (time.time() - t) / 3600
            rows.append({"executor": executor, "workers": workers, "children_per_hour": a.children / hours})
            print(json.dumps(rows[-1]), flush=True)
    base = rows[0]["children_per_hour"]
    for r in rows:
        r["ratio_to_1_local"] = round(r["children_per_hour"] / base, 3)
    print(json.dumps({"rows": rows}))


if __name__ == "__main__":
    main()
