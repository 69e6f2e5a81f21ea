"""What every command line shares: a quiet start-up, progress that suits a log file."""

import os
import subprocess
import sys
from types import SimpleNamespace


def _run(tmp_path, *argv):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERAS_NASNET_VERBOSE")}
    env["KERAS_HOME"] = str(tmp_path)
    return subprocess.run([sys.executable, *argv], env=env, capture_output=True, text=True, timeout=300)


def test_command_lines_start_without_tensorflow_log_lines(tmp_path):
    # TensorFlow's start-up lines (oneDNN, CUDA drivers, "E0000 ... failed call to cuInit") read
    # like a failure of the command; a few of them ignore TF_CPP_MIN_LOG_LEVEL.
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    r = _run(tmp_path, "-m", "keras_nasnet.train", "--out", str(a_file))  # imports TensorFlow
    assert r.returncode == 2
    assert [line for line in r.stderr.splitlines() if not line.startswith(("usage:", "  "))] == [
        f"python -m keras_nasnet.train: error: argument --out: {a_file} is a file; give a folder for "
        "the run (a new one, or a run folder to resume)"]


def test_listing_weights_and_help_import_no_tensorflow(tmp_path):
    for argv in (["keras_nasnet.weights", "list"], ["keras_nasnet.train", "--help"],
                 ["keras_nasnet.export", "--help"]):
        r = _run(tmp_path, "-X", "importtime", "-m", *argv)
        assert r.returncode == 0 and r.stdout
        imported = {line.rsplit("|", 1)[-1].strip() for line in r.stderr.splitlines()}
        assert not imported & {"tensorflow", "keras"}, argv
        assert all(line.startswith("import time:") for line in r.stderr.splitlines()), r.stderr[-500:]


def test_verbose_variable_keeps_tensorflow_logging(monkeypatch):
    from keras_nasnet import _cli

    monkeypatch.setattr(_cli, "running_as_cli", lambda: True)
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    monkeypatch.setenv("KERAS_NASNET_VERBOSE", "1")
    _cli.quiet_startup()
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ
    monkeypatch.setenv("KERAS_NASNET_VERBOSE", "0")
    _cli.quiet_startup()
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"


def test_progress_is_one_line_per_epoch_off_a_terminal(monkeypatch):
    # A redrawn bar written to a file repeats every update (and the last one twice).
    from keras_nasnet import train

    class Out:
        def __init__(self, tty):
            self.tty = tty

        def isatty(self):
            return self.tty

    monkeypatch.setattr(sys, "stdout", Out(False))
    assert train._verbosity(SimpleNamespace(verbose=None)) == 2
    assert train._verbosity(SimpleNamespace(verbose=1)) == 1  # asked for: kept
    monkeypatch.setattr(sys, "stdout", Out(True))
    assert train._verbosity(SimpleNamespace(verbose=None)) == 1
