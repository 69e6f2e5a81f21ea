"""Executors that evaluate children: inline, a pool of local worker processes, or Ray.

Every executor takes proposed trials with ``submit`` and hands back records with ``poll``. A record
is one of:

* ``finished`` with status ``ok``: the child's reward;
* ``finished`` with status ``failed``: the child's *architecture* failed (the reward raised
  :class:`~keras_nasnet.search.rewards.ChildFailed`: it cannot be built, its loss became NaN, its
  reward is not finite). It gets :data:`FAILED_REWARD` and teaches the controller like any result;
* ``error``: the *infrastructure* failed (the worker process died, a Ray node was lost, the data
  or a library raised). Not the architecture's fault, so it does not reach the controller; the
  search runs the trial again.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback

from .base import Reward

#: The reward of a child whose architecture failed (see the module docstring).
FAILED_REWARD = 0.0


def make_reward(spec: dict):
    """Builds a reward function from its JSON-able description (sent to worker processes)."""
    from ..genotypes import genotype_from
    from .rewards import CIFARReward, ProxyConfig, SyntheticReward
    from .space import SearchSpace

    space = SearchSpace(**spec["space"])
    if spec["reward"] == "synthetic":
        return SyntheticReward(space, genotype_from(spec.get("target", "NASNET_A")),
                               spec.get("interaction", 0.2), spec.get("delay", 0.0))
    if spec["reward"] == "cifar10":
        return CIFARReward(space, ProxyConfig.from_record(spec["proxy"]))
    if spec["reward"] == "cifar10-shared":
        from .shared_reward import SharedConfig, SharedWeightsReward

        reward = SharedWeightsReward(space, SharedConfig(**spec["shared"]), seed=spec.get("seed", 0))
        reward.score_from = int(spec.get("score_from", 0))  # the stages' re-scoring split
        return reward
    if spec["reward"] == "standalone":  # the stages' stand-alone training (see stages.py)
        from .stages import StandaloneReward

        return StandaloneReward(spec)
    raise ValueError(f"Unknown reward {spec['reward']!r}; use synthetic, cifar10 or cifar10-shared.")


#: Rewards that keep state between children (a trained supernet): they run in the search's process.
IN_PROCESS_REWARDS = ("cifar10-shared",)


def error_record(task: dict, worker: str, error: str, seconds: float = 0.0) -> dict:
    """The ``error`` record of a child lost to an infrastructure failure (it will be run again)."""
    return {"event": "error", "trial": task["trial"], "actions": task["actions"],
            "logp": task["logp"], "seed": task["seed"], "worker": worker, "status": "error",
            "seconds": seconds, "error": error[:500], "finished_at": time.time()}


def evaluate(reward_fn, task: dict, worker: str) -> dict:
    """Runs one child and returns its ``finished`` or ``error`` record (never raises)."""
    import math

    from .rewards import ChildFailed

    start, cpu_start = time.time(), time.process_time()
    rec = {"event": "finished", "trial": task["trial"], "actions": task["actions"],
           "logp": task["logp"], "seed": task["seed"], "worker": worker}
    try:
        value = reward_fn(task["actions"], task["seed"])
        if isinstance(value, dict):  # a reward with extra metrics: {"reward": r, name: value, ...}
            rec["metrics"] = {k: v for k, v in value.items() if k != "reward"}
            value = value["reward"]
        reward = float(value)
        if not math.isfinite(reward):
            raise ChildFailed(f"non-finite reward {reward}")
        rec.update(status="ok", reward=reward)
    except ChildFailed as e:  # the architecture's failure: a result the controller learns from
        rec.update(status="failed", reward=FAILED_REWARD, error=f"{type(e).__name__}: {e}"[:500],
                   traceback=traceback.format_exc(limit=3)[-1500:])
    except Exception as e:  # anything else is the setup's failure: the trial is run again
        rec.update(event="error", status="error", error=f"{type(e).__name__}: {e}"[:500],
                   traceback=traceback.format_exc(limit=3)[-1500:])
    rec["seconds"] = round(time.time() - start, 3)
    # CPU time of this process (all its threads): the child's cost whatever else the machine runs,
    # which wall seconds are not; a reward's one-off setup inside the call is recorded apart.
    setup = reward_fn.take_setup_cost() if isinstance(reward_fn, Reward) else {}
    rec["cpu_seconds"] = round(time.process_time() - cpu_start - setup.get("setup_cpu_seconds", 0.0), 3)
    rec.update({k: round(float(v), 3) for k, v in setup.items()})
    rec["finished_at"] = time.time()
    return rec


class InlineExecutor:
    """Evaluates in the calling process (``--workers 0``: the supernet reward, cheap rewards,
    tests), one child per :meth:`poll`, in the order submitted: each result reaches the caller,
    and its journal, before the next child starts, so a kill loses at most the child under way.
    It is ``synchronous``: the search proposes its next batch when this one is done."""

    synchronous = True

    def __init__(self, reward_spec: dict, capacity: int = 20, state_dir=None, progress: bool = False):
        from .base import as_reward

        self.reward = as_reward(make_reward(reward_spec))
        self.capacity = capacity
        self._queue = collections.deque()
        if state_dir is not None:  # a stateful reward keeps its checkpoints in the search folder
            self.reward.bind(state_dir, progress)

    def submit(self, task: dict) -> None:
        """Queues ``task``; the next :meth:`poll` without an earlier task evaluates it."""
        self._queue.append(task)

    def poll(self, timeout: float = 0.0) -> list[dict]:
        """Evaluates the oldest queued child now and returns its result (``[]`` if none is queued)."""
        if not self._queue:
            return []
        return [evaluate(self.reward, self._queue.popleft(), "inline")]

    def close(self) -> None:
        """Lets a stateful reward write its last checkpoint."""
        self.reward.close()


def _exit_with_parent(parent_pid: int) -> None:
    """Ends this worker when the driver process dies, even by ``kill -9``.

    On Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``; strictly, when the
    driver thread that started the worker ends, so run a search from a thread that outlives it);
    everywhere a daemon thread also checks every second whether the parent changed (the orphan is
    re-parented).
    """
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the watcher thread alone
        pass

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    if os.getppid() != parent_pid:  # the driver died before the hook was in place
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="keras_nasnet-parent-watch").start()


def _worker_main(wid: int, reward_spec: dict, conn, threads: int | None, parent_pid: int) -> None:
    _exit_with_parent(parent_pid)
    if threads:
        import tensorflow as tf

        # Several workers on one machine: split the cores instead of oversubscribing them.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    reward = make_reward(reward_spec)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the driver closed the channel or died
            return
        if task is None:
            return
        conn.send(evaluate(reward, task, f"local-{wid}"))


def receive(conn):
    """The next record from a worker's channel, or ``None`` if the channel is broken (the worker
    died, possibly in the middle of writing it)."""
    try:
        return conn.recv()
    except Exception:  # EOF, a cut frame, a cut pickle: the channel is unusable
        return None


@contextlib.contextmanager
def _child_start_environment(log_path):
    """What a worker process inherits at its start: Ctrl-C ignored (the driver stops it), quiet
    TensorFlow logging, TensorFlow's oneDNN kernels unless the user set ``TF_ENABLE_ONEDNN_OPTS``
    (off by default on CPUs without AVX-512 VNNI/BF16 or AMX, where a child trains about 3x slower
    without them: docs/performance.md; a worker imports TensorFlow before any of its own code
    runs, so only its inherited environment can say it), and standard error into ``log_path``
    (TensorFlow's start-up lines come from C++ before any Python code of the worker runs, so only
    the inherited file can catch them).
    """
    from .._cli import ONEDNN_ENV

    old_level = os.environ.get("TF_CPP_MIN_LOG_LEVEL")
    old_onednn = os.environ.get(ONEDNN_ENV)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault(ONEDNN_ENV, "1")
    in_main = threading.current_thread() is threading.main_thread()
    old_int = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    saved = log = None
    if log_path is not None:
        import sys

        sys.stderr.flush()
        log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
        saved = os.dup(2)
        os.dup2(log, 2)
    try:
        yield
    finally:
        if saved is not None:
            os.dup2(saved, 2)
            os.close(saved)
            os.close(log)
        if in_main:
            signal.signal(signal.SIGINT, old_int)
        if old_level is None:
            os.environ.pop("TF_CPP_MIN_LOG_LEVEL", None)
        if old_onednn is None:
            os.environ.pop(ONEDNN_ENV, None)


class LocalExecutor:
    """A pool of worker processes, one child each at a time, fed by the search's work queue.

    Each worker has its own duplex pipe for tasks and results, so the driver always knows which
    trial a worker holds, and a worker killed in the middle of a write breaks only its own channel.
    A worker that dies (killed, out of memory) is restarted and its trial comes back as an
    ``error`` (run again). Workers exit by themselves when the driver dies. Their standard error
    (TensorFlow's start-up logs, warnings) goes to ``log_path`` when one is given.
    """

    def __init__(self, reward_spec: dict, workers: int, threads_per_worker: int | None = None,
                 log_path=None):
        if workers < 1:
            raise ValueError(f"LocalExecutor needs at least one worker; got {workers}.")
        self.reward_spec = reward_spec
        self.capacity = workers
        self._ctx = mp.get_context("spawn")  # TensorFlow is not fork-safe
        self._threads = threads_per_worker
        self._log_path = log_path
        self._procs, self._conns, self._holding = {}, {}, {}
        for wid in range(workers):
            self._start(wid)

    def _start(self, wid: int) -> None:
        ours, theirs = self._ctx.Pipe(duplex=True)
        p = self._ctx.Process(target=_worker_main,
                              args=(wid, self.reward_spec, theirs, self._threads, os.getpid()),
                              daemon=True, name=f"keras_nasnet-worker-{wid}")
        with _child_start_environment(self._log_path):
            p.start()
        theirs.close()  # only the worker holds its end: its death is an EOF here
        self._procs[wid], self._conns[wid] = p, ours
        self._holding[wid] = None

    def _replace(self, wid: int, why: str, out: list) -> None:
        p = self._procs[wid]
        if p.is_alive():
            p.kill()
        p.join(timeout=5)
        self._conns[wid].close()
        task = self._holding[wid]
        if task is not None:
            out.append(error_record(task, f"local-{wid}", f"{why} (exit code {p.exitcode})"))
        self._start(wid)

    def submit(self, task: dict) -> None:
        """Gives ``task`` to an idle worker."""
        wid = next(w for w, t in self._holding.items() if t is None)
        self._holding[wid] = task
        try:
            self._conns[wid].send(task)
        except OSError:  # the worker is dead; poll() replaces it and reports the trial
            pass

    def poll(self, timeout: float = 1.0) -> list[dict]:
        """Records that arrived (waiting up to ``timeout`` for the first), dead workers' included."""
        from multiprocessing.connection import wait

        out = []
        by_conn = {c: w for w, c in self._conns.items()}
        for conn in wait(list(by_conn), timeout=timeout):
            wid = by_conn[conn]
            rec = receive(conn)
            if rec is None:
                self._replace(wid, "worker process died", out)
                continue
            self._holding[wid] = None
            out.append(rec)
        for wid, p in list(self._procs.items()):
            if not p.is_alive():
                self._replace(wid, "worker process died", out)
        return out

    def worker_pids(self) -> dict:
        """Process ids of the workers (for monitoring and tests)."""
        return {w: p.pid for w, p in self._procs.items()}

    def close(self) -> None:
        """Stops the workers (at once if they are busy: their children are not needed any more)."""
        for wid, conn in self._conns.items():
            try:
                conn.send(None)
            except (OSError, ValueError):
                pass
        deadline = time.time() + 2
        for wid, p in self._procs.items():
            if self._holding[wid] is not None:
                p.kill()
            p.join(timeout=max(0.1, deadline - time.time()))
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        for conn in self._conns.values():
            conn.close()
