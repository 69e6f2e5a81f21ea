"""Child evaluation as Ray tasks, on a local Ray runtime or an existing cluster.

The controller and the journal stay on the driver; each child is one Ray task with declared
resources (``num_cpus``, ``num_gpus``). A task whose worker process or node dies is retried by Ray
up to ``max_retries`` times, then reported as an ``error`` record (an infrastructure failure: the
search runs the trial again and the controller never sees it), so nothing already finished is
lost. Needs ``pip install "keras_nasnet[distributed]"``.
"""

from __future__ import annotations

import os
import time

from .._cli import ONEDNN_ENV
from .workers import error_record


def _evaluate_remote(reward_spec: dict, task: dict) -> dict:
    from .workers import evaluate, make_reward

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # Ray reuses worker processes: build each reward once per process (the CIFAR arrays stay loaded).
    key = repr(sorted(reward_spec.items()))
    cache = globals().setdefault("_REWARDS", {})
    if key not in cache:
        cache[key] = make_reward(reward_spec)
    return evaluate(cache[key], task, f"ray-{os.getpid()}")


def _task_env_vars(ray) -> dict:
    """The environment variables each child's Ray worker process starts with.

    TensorFlow reads ``TF_ENABLE_ONEDNN_OPTS`` once, when it is imported, and leaves its oneDNN
    kernels off on CPUs without AVX-512 VNNI/BF16 or AMX, where a child then trains about 3x
    slower (docs/performance.md). A Ray worker, on this machine or another node, takes its
    environment from Ray, not from the driver, so the driver's value travels with each task: the
    command lines set ``1`` unless the user set it. A driver without the variable (a script that
    did not set it) sends nothing, leaving the nodes' own environment to decide, and a value in
    the job's own ``runtime_env`` is left as it is.
    """
    try:
        job = dict((ray.get_runtime_context().runtime_env or {}).get("env_vars") or {})
    except Exception:  # an older Ray without the runtime context's runtime_env: nothing to keep
        job = {}
    if ONEDNN_ENV in job or ONEDNN_ENV not in os.environ:
        return {}
    return {ONEDNN_ENV: os.environ[ONEDNN_ENV]}


class RayExecutor:
    """Runs children as Ray tasks; ``capacity`` of them at a time."""

    def __init__(self, reward_spec: dict, workers: int, address: str | None = None,
                 num_cpus: float = 1, num_gpus: float = 0, max_retries: int = 2):
        try:
            import ray
        except ImportError:
            raise ImportError('--executor ray needs Ray: pip install "keras_nasnet[distributed]"') from None
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            import signal
            import threading

            main = threading.current_thread() is threading.main_thread()
            term = signal.getsignal(signal.SIGTERM) if main else None
            ray.init(address=address, include_dashboard=False, log_to_driver=False,
                     configure_logging=False)
            # Ray's core worker installs its own fatal-signal handler for SIGTERM (a stack dump,
            # then abort: exit 134); the command line's handler stops the search and says how to
            # resume, so it is put back (Python's getsignal does not see the C-level change).
            if main and callable(term):
                signal.signal(signal.SIGTERM, term)
            self._started = True
        self.reward_spec = reward_spec
        self.capacity = workers
        self.max_retries = max_retries
        env = _task_env_vars(ray)
        self._fn = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries,
                              runtime_env={"env_vars": env} if env else None)(_evaluate_remote)
        self._pending: dict = {}

    def submit(self, task: dict) -> None:
        """Starts ``task`` as a Ray task."""
        self._pending[self._fn.remote(self.reward_spec, task)] = task

    def poll(self, timeout: float = 1.0) -> list[dict]:
        """Finished children; tasks lost even after Ray's retries come back as ``error`` records."""
        if not self._pending:
            time.sleep(min(timeout, 0.1))
            return []
        ready, _ = self._ray.wait(list(self._pending), num_returns=1, timeout=timeout)
        if ready:
            ready, _ = self._ray.wait(list(self._pending), num_returns=len(self._pending), timeout=0)
        out = []
        for ref in ready:
            task = self._pending.pop(ref)
            try:
                out.append(self._ray.get(ref))
            except Exception as e:  # worker or node died more often than max_retries allows
                out.append(error_record(
                    task, "ray", f"{type(e).__name__} after {self.max_retries} retries: {str(e)[:300]}"))
        return out

    def close(self) -> None:
        """Cancels unfinished tasks; shuts Ray down if this executor started it."""
        for ref in self._pending:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:  # already finished or gone; nothing to cancel
                pass
        self._pending.clear()
        if self._started:
            self._ray.shutdown()
