"""Executors that evaluate children: inline, a pool of local worker processes, or Ray.

Every executor takes proposed trials with ``submit`` and hands back finished ones with ``poll``.
A child that raises (NaN loss, out of memory, a bad genotype) comes back ``failed`` with reward 0;
a worker process that dies mid-child is replaced and its trial comes back ``failed`` too, so the
search always goes on.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
import traceback


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
        return CIFARReward(space, ProxyConfig(**spec["proxy"]))
    if spec["reward"] == "cifar10-shared":
        from .shared_reward import SharedConfig, SharedWeightsReward

        return SharedWeightsReward(space, SharedConfig(**spec["shared"]), seed=spec.get("seed", 0))
    raise ValueError(f"Unknown reward {spec['reward']!r}; use synthetic, cifar10 or cifar10-shared.")


#: Rewards that keep state between children (a trained supernet): they run in the search's process.
IN_PROCESS_REWARDS = ("cifar10-shared",)


def failed_record(task: dict, worker: str, error: str, seconds: float = 0.0) -> dict:
    """The ``finished`` record of a child that could not be evaluated (reward 0)."""
    return {"event": "finished", "trial": task["trial"], "actions": task["actions"],
            "logp": task["logp"], "seed": task["seed"], "worker": worker, "status": "failed",
            "reward": 0.0, "seconds": seconds, "error": error[:500], "finished_at": time.time()}


def evaluate(reward_fn, task: dict, worker: str) -> dict:
    """Runs one child and returns its ``finished`` record (never raises)."""
    import math

    start = time.time()
    rec = {"event": "finished", "trial": task["trial"], "actions": task["actions"],
           "logp": task["logp"], "seed": task["seed"], "worker": worker}
    try:
        reward = float(reward_fn(task["actions"], task["seed"]))
        if not math.isfinite(reward):
            raise ValueError(f"non-finite reward {reward}")
        rec.update(status="ok", reward=reward)
    except Exception as e:  # any child failure is a result, not a crash of the search
        rec.update(status="failed", reward=0.0, error=f"{type(e).__name__}: {e}"[:500],
                   traceback=traceback.format_exc(limit=3)[-1500:])
    rec["seconds"] = round(time.time() - start, 3)
    rec["finished_at"] = time.time()
    return rec


class InlineExecutor:
    """Evaluates in the calling process, one child at a time (cheap rewards, tests)."""

    def __init__(self, reward_spec: dict, capacity: int = 20, state_dir=None, progress: bool = False):
        self.reward = make_reward(reward_spec)
        self.capacity = capacity
        self._done = []
        if hasattr(self.reward, "bind"):  # a stateful reward: its checkpoints live in the search folder
            self.reward.bind(state_dir, progress)

    def submit(self, task: dict) -> None:
        """Evaluates ``task`` now."""
        self._done.append(evaluate(self.reward, task, "inline"))

    def poll(self, timeout: float = 0.0) -> list[dict]:
        """Results finished since the last poll."""
        done, self._done = self._done, []
        return done

    def close(self) -> None:
        """Lets a stateful reward write its last checkpoint."""
        if hasattr(self.reward, "close"):
            self.reward.close()


def _worker_main(wid: int, reward_spec: dict, tasks, results, threads: int | None) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if threads:
        import tensorflow as tf

        # Several workers on one machine: split the cores instead of oversubscribing them.
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    reward = make_reward(reward_spec)
    while True:
        task = tasks.get()
        if task is None:
            return
        results.put(evaluate(reward, task, f"local-{wid}"))


class LocalExecutor:
    """A pool of worker processes, one child each at a time, fed by the search's work queue.

    Each worker has its own task queue, so the driver always knows which trial a worker holds; a
    worker that dies (killed, out of memory) is restarted and its trial reported as failed.
    """

    def __init__(self, reward_spec: dict, workers: int, threads_per_worker: int | None = None):
        self.reward_spec = reward_spec
        self.capacity = workers
        self._ctx = mp.get_context("spawn")  # TensorFlow is not fork-safe
        self._results = self._ctx.Queue()
        self._threads = threads_per_worker
        self._procs, self._tasks, self._holding = {}, {}, {}
        for wid in range(workers):
            self._start(wid)

    def _start(self, wid: int) -> None:
        tasks = self._ctx.Queue()
        p = self._ctx.Process(target=_worker_main,
                              args=(wid, self.reward_spec, tasks, self._results, self._threads),
                              daemon=True, name=f"keras_nasnet-worker-{wid}")
        p.start()
        self._procs[wid], self._tasks[wid] = p, tasks
        self._holding[wid] = None

    def submit(self, task: dict) -> None:
        """Gives ``task`` to an idle worker."""
        wid = next(w for w, t in self._holding.items() if t is None)
        self._holding[wid] = task
        self._tasks[wid].put(task)

    def poll(self, timeout: float = 1.0) -> list[dict]:
        """Finished results (waiting up to ``timeout`` for the first), dead workers' trials included."""
        out = []
        try:
            out.append(self._results.get(timeout=timeout))
            while True:
                out.append(self._results.get_nowait())
        except queue.Empty:
            pass
        for rec in out:
            wid = int(rec["worker"].split("-")[1])
            self._holding[wid] = None
        for wid, p in list(self._procs.items()):
            if not p.is_alive():
                task = self._holding[wid]
                if task is not None:
                    out.append(failed_record(task, f"local-{wid}",
                                             f"worker process died (exit code {p.exitcode})"))
                self._start(wid)
        return out

    def worker_pids(self) -> dict:
        """Process ids of the workers (for monitoring and tests)."""
        return {w: p.pid for w, p in self._procs.items()}

    def close(self) -> None:
        """Stops the workers."""
        for wid, q in self._tasks.items():
            try:
                q.put(None)
            except (OSError, ValueError):
                pass
        for p in self._procs.values():
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
