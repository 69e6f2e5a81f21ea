"""What every command line shares: a quiet start-up, progress that suits a log file."""

import os
import subprocess
import sys
from types import SimpleNamespace

import pytest


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
                 ["keras_nasnet.export", "--help"], ["keras_nasnet", "--help"]):
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


@pytest.mark.slow
def test_command_lines_turn_onednn_on_unless_the_user_chose():
    # TensorFlow leaves its oneDNN kernels off on CPUs without AVX-512 VNNI/BF16 or AMX (a search
    # child 3.4x slower on such a CPU here); the command lines turn them on, a user's own setting
    # stands, and a library import changes nothing. The process claims to be `python -m keras_nasnet.train`.
    probe = ("import sys, os; sys.orig_argv = [sys.executable, '-m', 'keras_nasnet.train'] if "
             "sys.argv[1] == 'cli' else sys.orig_argv; import keras_nasnet; "
             "from tensorflow.python.util import _pywrap_util_port as port; "
             "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'), port.IsMklEnabled())")
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    for mode, extra in (("cli", {}), ("cli", {"TF_ENABLE_ONEDNN_OPTS": "0"}), ("library", {})):
        r = subprocess.run([sys.executable, "-c", probe, mode], env={**env, **extra},
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-800:]
        got = r.stdout.split()
        if mode == "library":
            assert got[0] == "None"  # whatever TensorFlow decides for this CPU
        else:
            want = extra.get("TF_ENABLE_ONEDNN_OPTS", "1")
            assert got == [want, str(want == "1")], (extra, r.stdout)


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


def test_search_progress_off_a_terminal_is_plain_lines(capsys, monkeypatch):
    # tqdm's redraws in a log file are carriage returns: a 300-child search wrote 27 KB of them.
    from keras_nasnet import _cli

    bar = _cli.progress_bar(3, desc="search", unit="child", units="children")
    assert isinstance(bar, _cli._LogLines)  # capsys's stderr is not a terminal
    bar.every = 0.0
    for _ in range(3):
        bar.update(1)
    bar.set_postfix(best="0.5000")
    bar.close()
    err = capsys.readouterr().err
    assert "\r" not in err
    assert err.splitlines() == ["search: 1 of 3 children", "search: 2 of 3 children",
                                "search: 3 of 3 children", "search: 3 of 3 children, best 0.5000"]
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = _cli.progress_bar(3)
    assert not isinstance(bar, _cli._LogLines)  # a terminal gets tqdm's bar
    bar.close()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False)
    monkeypatch.setitem(sys.modules, "ipykernel", object())  # a notebook renders redraws too
    bar = _cli.progress_bar(3)
    assert not isinstance(bar, _cli._LogLines)
    bar.close()


def test_ctrl_c_while_tensorflow_imports_is_one_line(monkeypatch, capsys):
    import contextlib

    from keras_nasnet import _cli

    @contextlib.contextmanager
    def interrupted_import():
        raise KeyboardInterrupt
        yield

    monkeypatch.setattr(_cli, "running_as_cli", lambda: True)
    monkeypatch.setattr(_cli, "light_command", lambda: False)
    monkeypatch.delenv(_cli.VERBOSE_ENV, raising=False)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow")  # restored afterwards
    monkeypatch.setattr(_cli, "_stderr_held_back", interrupted_import)
    with pytest.raises(SystemExit) as e:
        _cli.quiet_startup()
    assert e.value.code == _cli.INTERRUPTED
    assert capsys.readouterr().err.strip() == (
        "interrupted: stopped while starting (importing TensorFlow); nothing was done; run the "
        "command again.")


def test_command_line_errors_are_not_buried_under_the_usage(capsys):
    from keras_nasnet.search.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["--reward", "synthetic", "--proxy", "cpu", "--out", "unused"])
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2 and len(err) == 2 and "--help" in err[0]
    assert err[1] == ("python -m keras_nasnet.search: error: --proxy applies to --reward cifar10 only; "
                      "this search uses --reward synthetic.")


def test_weights_convert_gets_the_quiet_start_up(monkeypatch):
    """``weights convert`` builds PNASNet5Large, so TensorFlow must be imported quietly up front;
    list, fetch and verify import none."""
    from keras_nasnet import _cli

    for args, light in ((["list"], True), (["verify"], True), (["convert", "timm:x", "o.h5"], False)):
        monkeypatch.setattr(sys, "orig_argv", ["python", "-m", "keras_nasnet.weights", *args])
        assert _cli.light_command() is light, args


def test_the_package_name_alone_lists_its_commands(capsys):
    from keras_nasnet.__main__ import main as package_main

    assert package_main([]) == 2  # no command runs from here
    err = capsys.readouterr().err
    for command in ("search", "train", "weights", "export"):
        assert f"  {command} " in err
    assert package_main(["search", "--trials", "3"]) == 2
    assert "run it as: python -m keras_nasnet.search --trials 3" in capsys.readouterr().err
    assert package_main(["--help"]) == 0 and "commands:" in capsys.readouterr().out
