"""Shared fixtures. Tests make their own small data and never touch the network."""

import json
import os
import statistics
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _isolated_keras_home(tmp_path, monkeypatch):
    """Every test gets its own Keras and tfds folders, so nothing leaks between tests or to ~."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras_home"))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tensorflow_datasets"))
    monkeypatch.delenv("KERAS_NASNET_WEIGHTS_URL", raising=False)
    # The tfds source looks up its download host before tfds' own retries; tests that reach it
    # (with tfds' mock data or a stubbed download) must not make that lookup on the network.
    import keras_nasnet.data

    monkeypatch.setattr(keras_nasnet.data, "_unresolvable", lambda url: None)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def random_genotype(rng, num_blocks=3, ops=None):
    """A random valid genotype (uniform choices; concat = unused block outputs, as in the paper)."""
    from keras_nasnet.genotypes import OPS, Block, Cell, Genotype

    ops = ops or OPS

    def cell():
        blocks = []
        for k in range(num_blocks):
            blocks.append(Block(
                (int(rng.integers(0, 2 + k)), int(rng.integers(0, 2 + k))),
                (str(rng.choice(ops)), str(rng.choice(ops))),
                str(rng.choice(["add", "concat"])),
            ))
        used = {i for b in blocks for i in b.inputs}
        concat = [i for i in range(2, 2 + num_blocks) if i not in used] or [1 + num_blocks]
        return Cell(tuple(blocks), tuple(concat))

    return Genotype(cell(), cell())


def randomise_bn(model, rng):
    """Random statistics and affine values in every BatchNormalization of ``model``: fresh BNs are
    the identity in inference, so a comparison of outputs would not exercise them."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            n = layer.moving_mean.shape[0]
            layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.1, n),
                               rng.normal(0, 0.2, n), rng.uniform(0.5, 2.0, n)])


def pytest_configure(config):
    # Keras' NumPy conversion warns once per tensor under NumPy 2; noise, not a finding.
    config.addinivalue_line("filterwarnings", "ignore:__array__ implementation doesn't accept a copy keyword")


def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (setup.cfg): one worker per core, at most 4. Each worker holds TensorFlow and, in
    turn, the big models (a few GB); past a few workers the suite is bound by its longest files."""
    return max(1, min(4, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


# The suite's files, longest first. xdist hands each worker whole files (--dist loadfile) in this
# order as it frees up (setup.cfg: --no-loadscope-reorder); its own order (most tests first)
# could leave one long file for last while the other core sat idle. The seconds are measured
# (`pytest --record-file-seconds` on a quiet machine rewrites the file); a file
# not in it counts as the median.
FILE_SECONDS = Path(__file__).with_name("file_seconds.json")


def pytest_addoption(parser):
    parser.addoption("--record-file-seconds", action="store_true",
                     help=f"write each test file's total seconds to {FILE_SECONDS.name} (run the whole "
                          "suite, on a quiet machine: it sets the order files are run in)")


def _file_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def pytest_collection_modifyitems(session, config, items):
    try:
        seconds = json.loads(FILE_SECONDS.read_text())
    except (OSError, ValueError):
        return  # no table: xdist's own order
    default = statistics.median(seconds.values()) if seconds else 0.0
    # A stable sort: the tests of each file keep their order.
    items.sort(key=lambda item: -seconds.get(_file_of(item.nodeid), default))


_recorded: dict = {}


def pytest_runtest_logreport(report):
    if report.passed or report.failed or report.skipped:
        _recorded[_file_of(report.nodeid)] = _recorded.get(_file_of(report.nodeid), 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    # On the controller only (xdist workers have ``workerinput``): it sees every worker's reports.
    if session.config.getoption("--record-file-seconds") and not hasattr(session.config, "workerinput"):
        if exitstatus != 0:
            print(f"\n--record-file-seconds: not written, the run did not pass (exit {exitstatus}).")
            return
        FILE_SECONDS.write_text(json.dumps({k: round(v, 1) for k, v in sorted(_recorded.items())},
                                           indent=1) + "\n")


def pytest_report_header(config):
    import keras_nasnet

    return f"keras_nasnet: {keras_nasnet.__file__}"


def journal_records(path) -> list:
    """The records of a ``trials.jsonl`` (or a folder holding one), read as a test polls a running
    search: a last line still being written (a write that crossed a page boundary shows in part)
    is left out, as the journal's own reader leaves it."""
    import json
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        path = path / "trials.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    return [json.loads(line) for line in lines if line.endswith("\n") and line.strip()]


def write_image_folder(root, train_per_class, test_per_class, rng):
    """Writes a CIFAR-layout folder ``root/{train,test}/<class>/<k>.png`` of small 32x32 images whose
    brightness depends on the class (so a short training can learn something); returns ``root``."""
    import tensorflow as tf

    from keras_nasnet import data as D

    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for label, cls in enumerate(D.CLASSES):
            d = root / split / cls
            d.mkdir(parents=True)
            for k in range(n):
                img = np.clip(rng.normal(25 * label, 30, (32, 32, 3)), 0, 255).astype(np.uint8)
                (d / f"{k}.png").write_bytes(tf.io.encode_png(img).numpy())
    return root
