"""What every ``python -m keras_nasnet.*`` command line shares: a quiet start, and Ctrl-C as one line.

TensorFlow prints several lines when it is imported (oneDNN, CUDA drivers, CPU features) and, on a
machine without a GPU, ``E0000 ... failed call to cuInit: INTERNAL: CUDA error``, which reads like a
failure of the command. The command lines hide them; ``KERAS_NASNET_VERBOSE=1`` brings them back.
A library user importing ``keras_nasnet`` is never affected: :func:`quiet_startup` acts only when the
process was started as ``python -m keras_nasnet...``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import tempfile
import threading
import time

#: Environment variable: ``1`` shows TensorFlow's start-up and C++ log lines in the command lines.
VERBOSE_ENV = "KERAS_NASNET_VERBOSE"

#: Exit status of a command stopped by Ctrl-C (128 + SIGINT), as shells report it.
INTERRUPTED = 130


def verbose() -> bool:
    """Whether ``KERAS_NASNET_VERBOSE`` asks for TensorFlow's own log lines."""
    return os.environ.get(VERBOSE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def running_as_cli() -> bool:
    """Whether this process was started as ``python -m keras_nasnet[.something]``."""
    return _command()[0].split(".")[0] == "keras_nasnet"


def _command() -> tuple[str, list[str]]:
    """The ``-m`` module and the arguments after it (``("", [])`` when not run with ``-m``)."""
    argv = list(getattr(sys, "orig_argv", []))
    for i, arg in enumerate(argv):
        if arg == "-m" and i + 1 < len(argv):
            return argv[i + 1], argv[i + 2:]
        if arg.startswith("-m") and len(arg) > 2:
            return arg[2:], argv[i + 1:]
    return "", []


def light_command() -> bool:
    """Whether this process is a command line that needs no TensorFlow: ``--help`` of any of them,
    ``python -m keras_nasnet`` (the list of commands), or ``python -m keras_nasnet.weights`` (listing, fetching and verifying files; not ``convert``,
    which builds a model). The package then
    imports its models lazily, on first use."""
    module, args = _command()
    if module.split(".")[0] != "keras_nasnet":
        return False
    if "-h" in args or "--help" in args or module == "keras_nasnet":  # the last only lists commands
        return True
    # ``weights convert`` builds PNASNet5Large (TensorFlow): it gets the quiet start-up instead.
    return module == "keras_nasnet.weights" and "convert" not in args[:1]


@contextlib.contextmanager
def _stderr_held_back():
    """Holds what is written to file descriptor 2 (C++ logging included) in a temporary file; it is
    replayed if the block raises (but not on Ctrl-C), so a real error is never hidden."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr (embedded interpreters)
        yield
        return
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        except BaseException as e:
            os.dup2(saved, 2)
            if not isinstance(e, KeyboardInterrupt):
                held.seek(0)
                os.write(2, held.read())
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_on_sigterm_like_ctrl_c() -> None:
    """Makes SIGTERM (``kill PID``, ``timeout``, a batch scheduler's preemption) stop a command line
    the way Ctrl-C does: it raises ``KeyboardInterrupt``, so searches and trainings write their
    last checkpoint and print how to resume, instead of dying with up to one checkpoint interval of
    work lost.

    Acts only in ``python -m keras_nasnet...`` processes, in the main thread, and only where
    SIGTERM still has its default action: a library user's or a parent's handler is left alone.
    Worker processes are started with ``spawn`` and so keep the default (the driver stops them).
    """
    if (not running_as_cli() or threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        return
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)


def raised_by_interrupt(error: BaseException) -> bool:
    """Whether ``error`` was raised while a ``KeyboardInterrupt`` (Ctrl-C, or SIGTERM made one)
    was being handled. TensorFlow turns a Ctrl-C that lands while it traces a function into an
    ``AssertionError('Concurrent access?')`` from a context manager's ``__exit__``; the command
    lines treat such an error as the interrupt it came from."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, KeyboardInterrupt):
            return True
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return False


def stop_signals() -> list:
    """The signals that currently raise ``KeyboardInterrupt``: SIGINT while Python's own handler is
    installed, and SIGTERM after :func:`stop_on_sigterm_like_ctrl_c`."""
    found = []
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        found.append(signal.SIGINT)
    if signal.getsignal(signal.SIGTERM) is _terminate_as_interrupt:
        found.append(signal.SIGTERM)
    return found


#: TensorFlow's switch for its oneDNN CPU kernels (``1`` on, ``0`` off; unset: TensorFlow decides).
ONEDNN_ENV = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn() -> None:
    """Turns TensorFlow's oneDNN CPU kernels on in this package's command lines, unless the user
    set ``TF_ENABLE_ONEDNN_OPTS`` (``0`` keeps them off).

    TensorFlow turns oneDNN on by default only on CPUs with AVX-512 VNNI/BF16, AVX-VNNI or AMX;
    elsewhere (an AVX2-only AMD EPYC here) it runs its Eigen kernels, and a search child then
    trained in 268.6 CPU-seconds against 78.6 with oneDNN (3.4x; ``speed_check.py`` in
    ``search/evolve-scratch/``). The variable is read when TensorFlow is imported, so this runs
    first. Outside ``python -m keras_nasnet...`` nothing is changed: a library user's process is
    theirs (docs/performance.md says how to set it there; a search's worker processes get it from
    ``keras_nasnet.search.workers`` either way).
    """
    if running_as_cli():
        os.environ.setdefault(ONEDNN_ENV, "1")


def quiet_startup() -> None:
    """Silences TensorFlow's start-up lines when run as one of this package's command lines.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless the user set it) and imports TensorFlow with its
    start-up output held back: the lines it prints before its logging is configured ignore that
    variable. Does nothing with ``KERAS_NASNET_VERBOSE=1``, outside ``python -m keras_nasnet...``, or
    when TensorFlow is already imported or another Keras backend is chosen.
    """
    if verbose() or not running_as_cli():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if ("tensorflow" in sys.modules or light_command()
            or os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow"):
        return
    try:
        with _stderr_held_back():
            import tensorflow  # noqa: F401
    except ImportError:
        pass  # reported, with its own message, where TensorFlow is needed
    except KeyboardInterrupt:
        # Ctrl-C in the first seconds (TensorFlow's import) gave a 30-line traceback through
        # importlib; nothing has been read or written yet.
        interrupted("stopped while starting (importing TensorFlow); nothing was done",
                    "run the command again")
        raise SystemExit(INTERRUPTED) from None


def interrupted(what: str, resume: str) -> int:
    """Prints the one line a command line gives on Ctrl-C and returns :data:`INTERRUPTED`.

    Args:
        what: what was stopped and what state it left, e.g. ``"training stopped; runs/a keeps its
            last checkpoint"``.
        resume: how to go on, e.g. ``"run the same command again to resume"``.
    """
    print(f"\ninterrupted: {what}; {resume}.", file=sys.stderr)
    return INTERRUPTED


@contextlib.contextmanager
def converter_output_held_back():
    """Hides what converters and runtimes print while the block runs (TensorFlow Lite's deprecation
    and statistics warnings, "Created TensorFlow Lite XNNPACK delegate"): the command's own output
    says what was written and checked. Shown again if the block fails, and always with
    ``KERAS_NASNET_VERBOSE=1``."""
    if verbose():
        yield
        return
    sys.stderr.flush()
    with _stderr_held_back():
        yield
        sys.stderr.flush()  # Python-level warnings written in the block go to the held file


class _LogLines:
    """What a progress bar writes when stderr is not a terminal (a log file, ``nohup``, a batch
    job): one plain line at most every ``every`` seconds, and one when it closes. tqdm's redraws
    there are carriage returns, which pile up as one unreadable line of tens of kilobytes."""

    def __init__(self, total, initial=0, desc="", unit="it", every=60.0):
        self.total, self.n, self.desc, self.unit, self.every = total, initial, desc, unit, every
        self.postfix = {}
        self._last = time.monotonic()
        self._shown = None

    def update(self, n=1):
        self.n += n
        if time.monotonic() - self._last >= self.every:
            self._line()

    def set_postfix(self, **values):
        self.postfix = values

    def _line(self):
        self._last = time.monotonic()
        if self._shown == (self.n, tuple(self.postfix.items())):
            return
        self._shown = (self.n, tuple(self.postfix.items()))
        of = f" of {self.total:,}" if self.total else ""
        extra = "".join(f", {k} {v}" for k, v in self.postfix.items())
        print(f"{self.desc}: {self.n:,}{of} {self.unit}{extra}", file=sys.stderr, flush=True)

    def close(self):
        self._line()


def live_stderr() -> bool:
    """Whether stderr shows redrawn progress bars: a terminal, or a Jupyter kernel (whose stderr
    is not a terminal but renders tqdm's carriage returns)."""
    return sys.stderr.isatty() or "ipykernel" in sys.modules


def progress_bar(total, initial=0, desc="", unit="it", units=None):
    """A tqdm bar on stderr when it shows one (:func:`live_stderr`); otherwise (a log file) a plain
    line at most once a minute, written as items finish.

    Both have ``update(n)``, ``set_postfix(**values)`` and ``close()``; ``unit`` names one item in
    the bar's rate, ``units`` (default ``unit``) many of them in the lines."""
    if live_stderr():
        from tqdm import tqdm

        return tqdm(total=total, initial=initial, unit=unit, desc=desc, dynamic_ncols=True,
                    file=sys.stderr)
    return _LogLines(total, initial, desc, units or unit)
