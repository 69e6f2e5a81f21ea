"""Runs in a subprocess under KERAS_BACKEND=jax (or torch) for tests/test_backends.py.

Keras fixes its backend per process, so the TensorFlow-side pytest process writes weights, inputs
and TensorFlow's outputs to a folder, and this script loads them on the other backend, exercises
the library there and writes what it measured to ``result.json`` in that folder. Usage:
``python tests/backend_child.py FOLDER``.
"""

import json
import resource
import sys
import time
from pathlib import Path

import numpy as np


def rel_err(got, want):
    """Largest difference relative to the largest magnitude of ``want``."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return float(np.max(np.abs(got - want)) / max(np.max(np.abs(want)), 1e-12))


class _NoTensorFlow:
    """Makes ``import tensorflow`` fail, as on a machine without it (the GPU machine): Keras then
    takes its TensorFlow-free paths (it imports TensorFlow itself when installed, e.g. to save)."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None


def _cpu_seconds():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return round(r.ru_utime + r.ru_stime, 1)


def main(folder: Path):
    t0 = time.time()
    res = {"cpu": {}}
    import os

    if os.environ["KERAS_BACKEND"] == "jax":  # torch._dynamo probes for TensorFlow at import
        sys.meta_path.insert(0, _NoTensorFlow())
    import keras

    import keras_nasnet as kn
    from keras_nasnet import train
    from keras_nasnet.weights import load_file, read_h5

    res["backend"] = keras.backend.backend()
    res["tf_after_import"] = "tensorflow" in sys.modules
    res["cpu"]["import"] = _cpu_seconds()
    spec = json.loads((folder / "spec.json").read_text())
    x = np.load(folder / "x.npy")

    # NASNetCIFAR: the TF process's weights through both formats, same outputs.
    cifar = kn.NASNetCIFAR(**spec["cifar"])
    cifar.load_weights(str(folder / "cifar.weights.h5"))
    res["cifar_weights_h5_err"] = rel_err(cifar.predict(x, verbose=0), np.load(folder / "cifar_tf.npy"))
    want = np.load(folder / "cifar_tf.npy")
    for w in cifar.weights:  # then the same weights from the Keras-2 h5 of keras_nasnet.weights
        w.assign(np.zeros(w.shape, w.dtype))
    load_file(cifar, folder / "cifar.h5")
    res["cifar_h5_err"] = rel_err(cifar.predict(x, verbose=0), want)

    res["cpu"]["cifar"] = _cpu_seconds()
    folded = kn.fold_batch_norm(cifar)
    res["folded_err"] = rel_err(folded.predict(x, verbose=0), want)
    res["bns"] = sum(isinstance(l, keras.layers.BatchNormalization) for l in cifar.layers)
    res["folded_bns"] = sum(isinstance(l, keras.layers.BatchNormalization) for l in folded.layers)

    res["cpu"]["fold"] = _cpu_seconds()
    path = folder / "cifar.keras"
    cifar.save(path)
    reloaded = keras.models.load_model(path)
    res["keras_roundtrip_err"] = rel_err(reloaded.predict(x, verbose=0), want)
    res["keras_roundtrip_class"] = type(reloaded.layers[-1]).__name__

    res["cpu"]["keras_file"] = _cpu_seconds()
    # NASNetMobile, weights from a Keras-written h5 of keras.applications' network.
    mobile = kn.NASNetMobile(weights=str(folder / "mobile.h5"), **spec["mobile"])
    res["mobile_err"] = rel_err(mobile.predict(x / 127.5 - 1, verbose=0), np.load(folder / "mobile_tf.npy"))

    res["cpu"]["mobile"] = _cpu_seconds()
    # A tiny PNASNet-5 (TF "SAME" pools), weights from the TensorFlow process's h5.
    pnas = kn.NASNet(**spec["pnas"], weights=str(folder / "pnas.h5"))
    res["pnas_err"] = rel_err(pnas.predict(x / 127.5 - 1, verbose=0), np.load(folder / "pnas_tf.npy"))
    res["cpu"]["pnas"] = _cpu_seconds()
    # Training without TensorFlow: one epoch from an image folder, then the same command again,
    # which finds the finished checkpoint and trains nothing more.
    argv = ["--out", str(folder / "run"), "--data", str(folder / "images"), "--num-cells", "1",
            "--penultimate-filters", "24", "--epochs", "1", "--batch-size", "20", "--split", "full",
            "--aux-weight", "0", "--verbose", "0"]
    result_file = folder / "run" / "result.json"
    assert train.main(argv) == 0
    first = json.loads(result_file.read_text())
    weights_after_first = read_h5(folder / "run" / "weights.h5")
    res["cpu"]["train"] = _cpu_seconds()
    assert train.main(argv) == 0
    second = json.loads(result_file.read_text())
    res["cpu"]["resume"] = _cpu_seconds()
    res["train_first"] = first
    res["train_second"] = second
    res["train_log_lines"] = len((folder / "run" / "log.csv").read_text().strip().splitlines())
    again = read_h5(folder / "run" / "weights.h5")
    res["train_weights_unchanged"] = again.keys() == weights_after_first.keys() and all(
        np.array_equal(a, b) for k in again for a, b in zip(again[k], weights_after_first[k]))
    res["tf_at_end"] = "tensorflow" in sys.modules
    res["seconds"] = time.time() - t0
    (folder / "result.json").write_text(json.dumps(res))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
