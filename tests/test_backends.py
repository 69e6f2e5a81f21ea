"""The models, weight formats and training on Keras' JAX (and PyTorch) backends.

Keras fixes its backend per process: this (TensorFlow) process writes weights, inputs and its own
outputs to a folder, and one subprocess per other backend (tests/backend_child.py) loads them,
runs the library there and reports what it measured. Skipped when the backend's package is not
installed (``pip install keras_nasnet[jax]``; PyTorch is not installed in CI).
"""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import randomise_bn, write_image_folder

import keras_nasnet as kn
from keras_nasnet.weights import write_h5

CIFAR = {"num_cells": 1, "penultimate_filters": 24, "auxiliary_head": False}
MOBILE = {"include_top": False, "pooling": "avg", "input_shape": (32, 32, 3)}
# PNASNet-5 at a tiny size: its stem, one cell for both kinds, TF "SAME" pools (op_style="slim").
PNAS = {"genotype": "PNASNET_5", "num_cells": [1, 1, 1], "penultimate_filters": 160,
        "stem_filters": 8, "op_style": "slim", "input_shape": (32, 32, 3), "classes": 5}


@pytest.fixture(scope="module")
def tf_side(tmp_path_factory):
    """The TensorFlow process's weights, inputs and outputs, shared by every backend."""
    folder = tmp_path_factory.mktemp("backends")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    np.save(folder / "x.npy", x)

    cifar = kn.NASNetCIFAR(**CIFAR)
    randomise_bn(cifar, rng)
    cifar.save_weights(folder / "cifar.weights.h5")
    write_h5(cifar, folder / "cifar.h5")
    np.save(folder / "cifar_tf.npy", np.asarray(cifar(x, training=False)))

    ref = keras.applications.NASNetMobile(weights=None, **MOBILE)
    randomise_bn(ref, rng)
    ref.save(folder / "mobile.h5")  # a Keras-2-format h5, as the official files are
    np.save(folder / "mobile_tf.npy", np.asarray(ref(x / 127.5 - 1, training=False)))

    pnas = kn.NASNet(**PNAS)
    randomise_bn(pnas, rng)
    write_h5(pnas, folder / "pnas.h5")
    np.save(folder / "pnas_tf.npy", np.asarray(pnas(x / 127.5 - 1, training=False)))

    write_image_folder(folder / "images", 4, 1, rng)
    spec = {"cifar": CIFAR, "mobile": MOBILE, "pnas": PNAS}
    (folder / "spec.json").write_text(json.dumps(spec))
    return folder


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.slow
def test_backend_matches_tensorflow_and_trains_without_it(backend, tf_side, tmp_path):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    folder = tmp_path / backend
    import shutil

    shutil.copytree(tf_side, folder)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "KERAS_BACKEND": backend, "KERAS_HOME": str(tmp_path / "keras_home"),
           "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": "",
           # The keras_nasnet this process imported (the installed wheel in CI, else the checkout).
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(kn.__file__).resolve().parents[1]),
                                                       os.environ.get("PYTHONPATH")])),
           # XLA's CPU compiles (one per model, one per initializer shape) dominate the run; without
           # LLVM's optimisation they take a third of the time, and the models here are tiny.
           "XLA_FLAGS": "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"}
    child = Path(__file__).with_name("backend_child.py")
    proc = subprocess.run([sys.executable, str(child), str(folder)], env=env, cwd=root,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    r = json.loads((folder / "result.json").read_text())

    assert r["backend"] == backend
    assert not r["tf_after_import"], "import keras_nasnet imported TensorFlow"
    if backend == "jax":  # with TensorFlow blocked (torch probes for it; see backend_child.py)
        assert not r["tf_at_end"], "models, weights or training imported TensorFlow"
    # Same weights, same outputs as TensorFlow's (relative 1e-4), through every weight format.
    for key in ("cifar_weights_h5_err", "cifar_h5_err", "folded_err", "keras_roundtrip_err",
                "mobile_err", "pnas_err"):
        assert r[key] <= 1e-4, (key, r[key])
    assert r["folded_bns"] < r["bns"] / 4  # only BNs after a concatenation stay
    # fit through the NumPy pipeline: one epoch logged; the second run resumed, trained nothing
    # more and reports the same result.
    assert r["train_log_lines"] == 2
    assert r["train_first"] == r["train_second"]
    assert r["train_first"]["test_images"] == 10
    assert r["train_weights_unchanged"]
