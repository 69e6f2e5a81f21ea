"""The search loop: a controller proposes, workers evaluate, the journal records, and a killed search
resumes where it stopped."""

from __future__ import annotations

import collections
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..fileio import other_files, write_json_atomic, write_text_atomic
from .errors import SearchFailed
from .journal import Journal
from .space import SearchSpace
from .workers import FAILED_REWARD

#: Children in a row that may fail (architecture or infrastructure) before the search stops.
MAX_CONSECUTIVE_FAILURES = 10

#: Infrastructure errors of one trial after which it counts as its architecture's failure (a child
#: that kills its worker every time, e.g. by running out of memory, must not be retried forever).
MAX_ATTEMPTS = 3


class Dispatcher:
    """Hands journaled children to an executor and their results back, for the search loop and the
    stages alike: fills the executor up to its capacity, journals every result, runs a child again
    after an infrastructure error (``error`` record) up to :data:`MAX_ATTEMPTS` times, after which it
    is recorded as failed with :data:`~keras_nasnet.search.workers.FAILED_REWARD`, and drops late
    duplicates (a retried Ray task whose first run also finished).

    Args:
        executor: an executor (``submit``/``poll``/``capacity``, see :mod:`.workers`).
        journal: the :class:`~keras_nasnet.search.journal.Journal` the results go to.
        queue: proposed records to run first (e.g. a resumed search's unfinished ones).
        annotate: ``(task, result) -> result`` applied before journaling (the stages add the budget).
    """

    def __init__(self, executor, journal, queue=(), annotate=None):
        self.executor, self.journal = executor, journal
        self.queue = collections.deque(queue)
        self.in_flight: dict[int, dict] = {}
        self.attempts = collections.Counter(r["trial"] for r in journal.errors)
        self.annotate = annotate

    def add(self, rec: dict) -> None:
        """Queues a proposed (already journaled) record."""
        self.queue.append(rec)

    @property
    def pending(self) -> int:
        """Children queued or running."""
        return len(self.queue) + len(self.in_flight)

    @property
    def free(self) -> int:
        """How many more children the executor could take now. A synchronous executor (in
        process, one child per poll) takes a new batch only once the last one is done, so each
        batch is drawn from the strategy's policy after it has seen the whole previous batch."""
        if getattr(self.executor, "synchronous", False) and self.pending:
            return 0
        return self.executor.capacity - self.pending

    def poll(self, timeout: float = 1.0) -> list[tuple[dict, dict]]:
        """Submits queued children while the executor has room, then waits up to ``timeout``
        seconds; returns ``(task, record)`` for every result, already journaled: ``finished``
        records, and ``error`` records whose child went back to the front of the queue."""
        out = []
        while self.queue and len(self.in_flight) < self.executor.capacity:
            rec = self.queue.popleft()
            self.in_flight[rec["trial"]] = rec
            self.executor.submit(rec)
        self._collect(self.executor.poll(timeout=timeout), out)
        return out

    def _collect(self, results, out):
        for res in results:
            task = self.in_flight.pop(res["trial"], None)
            if task is None:
                continue  # a late duplicate (e.g. a retried Ray task); the first result counts
            if self.annotate is not None:
                res = self.annotate(task, res)
            if res["event"] == "error":
                self.attempts[res["trial"]] += 1
                if self.attempts[res["trial"]] >= MAX_ATTEMPTS:
                    # gave_up: no result about the architecture (the stages run it again on resume)
                    res = {**res, "event": "finished", "status": "failed", "reward": FAILED_REWARD, "gave_up": True,
                           "error": f"{MAX_ATTEMPTS} attempts failed; the last: {res.get('error', '')}"[:500]}
                else:
                    self.queue.appendleft(task)  # not the architecture's fault: run it again
            self.journal.append(res)
            out.append((task, res))


def make_strategy(name: str, space: SearchSpace, seed: int, ppo_kwargs: dict, evolution_kwargs: dict | None = None):
    """``ppo`` (the paper's controller), ``random`` (uniform search) or ``evolution``
    (regularized evolution; ``evolution_kwargs``: :class:`~keras_nasnet.search.config.EvolutionConfig`
    fields)."""
    if name == "evolution":
        from .config import EvolutionConfig
        from .evolution import EvolutionStrategy

        return EvolutionStrategy(space, EvolutionConfig(**(evolution_kwargs or {})), seed=seed)
    from .ppo import PPOConfig, PPOStrategy, RandomStrategy

    if name == "ppo":
        return PPOStrategy(space, PPOConfig(**ppo_kwargs), seed=seed)
    if name == "random":
        return RandomStrategy(space, seed=seed)
    raise ValueError(f"Unknown strategy {name!r}; use ppo, random or evolution.")


def make_executor(kind: str, reward_spec: dict, workers: int, **kw):
    """``inline`` (workers=0), ``local`` processes, or ``ray`` tasks."""
    from . import workers as w

    if reward_spec["reward"] in w.IN_PROCESS_REWARDS:
        if workers or kind != "local":
            raise ValueError(f"--reward {reward_spec['reward']} keeps its state in this process: use "
                             "--workers 0 and --executor local.")
        return w.InlineExecutor(reward_spec, capacity=kw.get("batch_size", 20),
                                state_dir=kw.get("state_dir"), progress=kw.get("progress", False))
    if kind == "local" and workers == 0:
        return w.InlineExecutor(reward_spec, capacity=kw.get("batch_size", 20))
    if kind == "local":
        return w.LocalExecutor(reward_spec, workers, kw.get("threads_per_worker"), kw.get("log_path"))
    if kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(reward_spec, max(1, workers), address=kw.get("ray_address"),
                           num_cpus=kw.get("cpus_per_child", 1), num_gpus=kw.get("gpus_per_child", 0),
                           max_retries=kw.get("max_retries", 2))
    raise ValueError(f"Unknown executor {kind!r}; use local or ray.")


def check_run_settings(out, config: dict, workers: int, executor: str) -> None:
    """Refuses, before anything is written, a run that cannot work: ``out`` is a file, the executor
    does not suit the reward, or Ray is not installed. Raises
    :class:`~keras_nasnet.search.errors.InvalidSettings` naming the flag."""
    import importlib.util

    from . import workers as w
    from .errors import InvalidSettings

    if Path(out).exists() and not Path(out).is_dir():
        raise InvalidSettings(f"--out {out} is a file, not a folder: choose a folder (new, or one that "
                              "holds a search to resume).")
    _refuse_other_files(Path(out))
    if executor not in ("local", "ray"):
        raise InvalidSettings(f"--executor must be local or ray; got {executor!r}.")
    if workers < 0:
        raise InvalidSettings(f"--workers must be >= 0; got {workers}.")
    if config["reward"] in w.IN_PROCESS_REWARDS and (workers or executor != "local"):
        raise InvalidSettings(f"--reward {config['reward']} keeps its trained supernet in this "
                              "process, so its children cannot go to workers: use --workers 0 (its "
                              "default) and --executor local.")
    if executor == "ray" and importlib.util.find_spec("ray") is None:
        raise InvalidSettings("--executor ray needs Ray: pip install 'keras_nasnet[distributed]', or use "
                              "--executor local.")


#: Files a search reads and checks before it writes them, which a user may copy into a new --out.
_REUSABLE_STATE = frozenset({"warm_start.json", "supernet.npz"})


def _refuse_other_files(out: Path) -> None:
    """Refuses an ``out`` that holds files but no search: a search writes ``summary.json``,
    ``best_genotype.json``, ``rewards.png``, ... and would replace the user's files of those names
    (``keras_nasnet.train`` refuses such a folder the same way)."""
    from .errors import InvalidSettings

    if not out.is_dir() or (out / "config.json").exists():
        return  # a new folder, or a search (or another command's folder: the journal says which)
    trials = out / "trials.jsonl"
    if trials.is_file() and trials.stat().st_size:
        return  # a journal without its config.json: the journal refuses it, saying so
    # Hidden files (.lock, .DS_Store, .gitkeep) are left out: no search writes over them; an empty
    # trials.jsonl holds nothing. State a search reads and checks before it writes, copied in to be
    # reused, is a search's too: a warm start's widths (warm_start.json, refused if they are
    # another warm start's) and a trained supernet (supernet.npz, search/fair/README.md's recipe).
    shown = other_files(out, allowed=_REUSABLE_STATE | {trials.name})
    if shown:
        raise InvalidSettings(
            f"--out {out} holds files ({shown}) but no search (it has no config.json); a search would "
            "overwrite files of its own names there. Give a new or empty folder as --out.")


def _check_executor_settings(out, executor, workers, stages, threads_per_worker, ray_address,
                             cpus_per_child, gpus_per_child) -> None:
    """Refuses an empty ``out`` and executor settings that are out of range or that this run
    would ignore (as the command line refuses a reward's flags under another reward)."""
    from .errors import InvalidSettings

    if not str(out).strip():
        raise InvalidSettings("--out is empty: name the search folder (an unset shell variable?); "
                              "an empty name would write the search into the current folder.")
    if threads_per_worker is not None and (isinstance(threads_per_worker, bool)
                                           or not isinstance(threads_per_worker, int) or threads_per_worker < 1):
        raise InvalidSettings(f"threads_per_worker (--threads-per-worker) must be an integer >= 1; "
                              f"got {threads_per_worker!r}.")
    for name, value, least in (("cpus_per_child (--cpus-per-child)", cpus_per_child, "> 0"),
                               ("gpus_per_child (--gpus-per-child)", gpus_per_child, ">= 0")):
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or value != value
                or (value <= 0 if least == "> 0" else value < 0)):
            raise InvalidSettings(f"{name} must be a number {least}; got {value!r}.")
    if executor == "local":
        ignored = [flag for flag, value, default in (("--ray-address", ray_address, None),
                                                     ("--cpus-per-child", cpus_per_child, 1),
                                                     ("--gpus-per-child", gpus_per_child, 0))
                   if value != default]
        if ignored:
            raise InvalidSettings(f"{', '.join(ignored)} apply to --executor ray only: add "
                                  "--executor ray, or leave them out.")
        if threads_per_worker is not None and workers == 0 and stages is None:
            raise InvalidSettings("--threads-per-worker sets the threads of worker processes, and "
                                  "--workers 0 evaluates the children in this process: give "
                                  "--workers N, or leave it out.")
    elif threads_per_worker is not None:
        raise InvalidSettings("--threads-per-worker applies to --executor local; a Ray child "
                              "takes its CPUs from --cpus-per-child.")


def run_search(config, out, *, trials: int | None = None, workers: int | None = None,
               executor: str = "local", progress: bool = True,
               max_failures: int = MAX_CONSECUTIVE_FAILURES, threads_per_worker: int | None = None,
               ray_address: str | None = None, cpus_per_child: float = 1,
               gpus_per_child: float = 0, stages=None) -> dict:
    """Runs (or resumes) the search ``config`` in the folder ``out``; returns its summary.

    Args:
        config: a :class:`~keras_nasnet.search.SearchConfig` (or the dict of a ``config.json``).
            A folder that holds a search with another configuration is refused.
        out: the search folder: records, state and results (``best_genotype.json``,
            ``summary.json``, ``rewards.png``, kept up to date as the search goes).
        trials: children to evaluate in total (default: ``config.default_trials``). Running again
            with a larger number extends a finished search (not one with a PPO learning-rate
            or entropy schedule, which spans its trials).
        workers: parallel child workers (processes, or Ray tasks); 0 evaluates in this process.
            Default: 1 for the ``cifar10`` reward, else 0.
        executor: ``local`` (processes on this machine) or ``ray``.
        progress: draw progress bars on standard error (plain lines at most once a minute when it
            is not a terminal). Continuing an earlier search prints one ``Resuming`` line there
            either way.
        max_failures: stop after this many children in a row failed.
        threads_per_worker: TensorFlow threads of each local worker (default: all cores each).
        ray_address: address of an existing Ray cluster (default: start one).
        cpus_per_child: Ray resources of one child.
        gpus_per_child: Ray resources of one child.
        stages: a :class:`~keras_nasnet.search.stages.StageConfig` to run the stages after the
            controller (re-score, stand-alone training of the top cells, successive halving, a
            report in ``final.json``; ``best_genotype.json`` becomes the final cell), through the
            same executor, once all ``trials`` are in. ``None`` (the default): no stages.
            A ``cifar10-shared`` search that evaluates in this process (``workers=0``, its
            default) trains the stand-alone children in one local worker per core
            instead (one TensorFlow thread each unless ``threads_per_worker`` says otherwise):
            they are independent trainings, and one per core is how ``search/calibration/``
            measured their cost.

    Everything is checked (settings, executor, data) before anything is written. Raises
    :class:`~keras_nasnet.search.errors.InvalidSettings` (a ``ValueError``) for settings that
    cannot work, and other :class:`~keras_nasnet.search.errors.SearchError` subclasses when the
    search cannot start or go on; on ``KeyboardInterrupt`` everything recorded is kept and the same
    call resumes.
    """
    import multiprocessing

    from .config import SearchConfig
    from .errors import InvalidSettings

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        # A worker process (started with spawn) imports the user's script before it runs a child:
        # an unguarded run_search there would start the search again in every worker.
        raise RuntimeError(
            "run_search() was called while a search worker process was importing your script: "
            "the workers start by importing the main script, so put the call under "
            '`if __name__ == "__main__":`.'
        )
    if isinstance(config, dict):
        config = SearchConfig.from_dict(config)
    elif not isinstance(config, SearchConfig):
        raise TypeError(f"config must be a SearchConfig or a dict; got {type(config).__name__}.")
    config.validate()
    trials = config.default_trials if trials is None else trials
    if isinstance(trials, bool) or not isinstance(trials, int) or trials < 1:
        raise InvalidSettings(f"--trials must be an integer >= 1; got {trials!r}.")
    if isinstance(max_failures, bool) or not isinstance(max_failures, int) or max_failures < 1:
        raise InvalidSettings(f"max_failures (--max-failures) must be an integer >= 1; got {max_failures!r}.")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise InvalidSettings(f"workers (--workers) must be an integer >= 0; got {workers!r}.")
    if workers is None:
        workers = 1 if config.reward == "cifar10" else 0
    if executor == "ray" and workers == 0:
        workers = 1
    _check_executor_settings(out, executor, workers, stages, threads_per_worker, ray_address,
                             cpus_per_child, gpus_per_child)
    if stages is not None:  # before anything is written: the sizes, and the stand-alone data
        from .stages import StandaloneReward, standalone_spec

        stages.validate(config)
        StandaloneReward(standalone_spec(config, stages.cheap_budget, stages.images, stages.match_params)).check()
    ex_kwargs = {"threads_per_worker": threads_per_worker, "ray_address": ray_address,
                 "cpus_per_child": cpus_per_child, "gpus_per_child": gpus_per_child}
    # The folder stays locked from the search through its stages: a second command on it meanwhile
    # (more trials, say) would otherwise extend the journal the stages just read, and the two
    # runs' summary.json and final.json would overwrite each other.
    held = []
    try:
        summary = search(out, config=config.to_dict(), trials=trials, workers=workers, executor=executor,
                         progress=progress, max_consecutive_failures=max_failures,
                         executor_kwargs=ex_kwargs, _hold_lock=held)
        return _after_search(config, out, summary, stages, executor, workers, progress, ex_kwargs,
                             max_failures)
    finally:
        for lock in held:
            lock.release()


def _after_search(config, out, summary, stages, executor, workers, progress, ex_kwargs, max_failures):
    from .report import _final

    stale = _stale_stages(out, _final(Path(out)), summary["trials"])
    if stages is None and stale:
        print(f"note: {stale} best_genotype.json stays that final cell; run the same command with "
              "--stages all to run the stages on all of them (children they trained are reused).",
              file=sys.stderr)
    if stages is not None and summary["best_trial"] is not None:
        from .stages import run_stages

        final = run_stages(config, out, stages, {"executor": executor, "workers": workers,
                                                 "progress": progress, **ex_kwargs},
                           max_failures=max_failures)
        summary["final_cell"] = final["final_cell"]
        # summary.json says what best_genotype.json now holds: the stages' final cell
        write_json_atomic(Path(out) / "summary.json", summary)
    return summary


def search(out, *, config: dict, trials: int, workers: int = 0, executor: str = "local",
           progress: bool = True, executor_kwargs: dict | None = None,
           max_consecutive_failures: int = MAX_CONSECUTIVE_FAILURES, _hold_lock: list | None = None) -> dict:
    """Runs (or resumes) the search described by the ``config.json`` dict ``config`` in folder
    ``out`` (the lower-level form of :func:`run_search`, which most callers want).

    ``config`` is the search's identity (space, reward, strategy, seed, strategy settings); it is
    stored in ``out/config.json`` and must match when resuming. ``trials``, ``workers`` and the
    executor may change between runs of the same search. The reward (and its data) is checked
    before anything is written; the folder is locked while the search runs.

    A child whose architecture fails gets the documented failure reward
    (:data:`~keras_nasnet.search.workers.FAILED_REWARD`); one lost to an infrastructure failure
    (dead worker, lost node, a broken data file) is run again and never reaches the strategy, up to
    :data:`MAX_ATTEMPTS` times, after which it counts as failed. After ``max_consecutive_failures`` failures in a row the search stops
    with :class:`~keras_nasnet.search.errors.SearchFailed`; everything recorded so far is kept.

    Returns the summary written to ``out/summary.json``.
    """
    from .base import as_reward
    from .workers import make_reward

    check_run_settings(out, config, workers, executor)
    space = SearchSpace(**config["space"])
    reward_spec = {"reward": config["reward"], "space": config["space"], **config.get("reward_args", {})}
    # e.g. load the data once, before any child and before config.json is written
    as_reward(make_reward(reward_spec)).check()
    journal = Journal(out, config)
    try:
        summary = _run(journal, space, config, reward_spec, trials, workers, executor, progress,
                       executor_kwargs, max_consecutive_failures)
    finally:
        # run_search keeps the folder locked for its stages (it releases what lands in _hold_lock).
        lock = journal.close(keep_lock=_hold_lock is not None)
        if lock is not None:
            _hold_lock.append(lock)
    return summary


def _run(journal, space, config, reward_spec, trials, workers, executor, progress, executor_kwargs,
         max_failures):
    out = journal.out
    evolution = config.get("evolution")
    # Once the population's start has been proposed its cells are in the journal: no need to score
    # them again, even if warm_start.json was lost.
    if evolution and evolution.get("warm_start") and journal.next_trial < evolution["population"]:
        evolution = _warm_start(out, space, config, evolution, workers, progress)
    arrays, consumed = journal.load_state()
    seed = config["seed"]
    if arrays is None and journal.next_trial:
        # Rebuilt from the records (its state lost, damaged or stale): a generator started again
        # from the search's seed would draw the children already drawn, one for one (random and
        # evolution do); one seeded by the seed and the proposals so far draws new ones.
        seed = int(np.random.SeedSequence([config["seed"], journal.next_trial]).generate_state(1)[0])
    strategy = make_strategy(config["strategy"], space, seed, config.get("ppo", {}), evolution)
    if arrays is not None:
        try:
            strategy.restore(arrays)
        except Exception as e:  # another strategy's or space's state: its keys or shapes differ
            from .errors import StateCorrupt

            raise StateCorrupt(
                f"{out / 'strategy.npz'} is not this search's state ({type(e).__name__}: "
                f"{str(e)[:200]}): another search's file copied here? Put this search's own back, or "
                "delete it and run the same command again: the strategy is then rebuilt from the "
                f"{len(journal.finished)} trials recorded in trials.jsonl (none is lost).") from None
    elif journal.next_trial and hasattr(strategy, "proposed"):
        strategy.proposed = journal.next_trial  # evolution: its initial cells are in the journal
    # Results that finished after the last saved state are fed again, in the order they finished.
    replayed = journal.finished[consumed:]
    for rec in replayed:
        strategy.observe(rec["actions"], rec["logp"], rec["reward"])
    if replayed:
        journal.save_state(strategy.state(), len(journal.finished))
    if journal.finished and (not trials or len(journal.finished) < trials):
        # said even without a progress bar, so a log shows the run continued an earlier one
        of = f" of {trials:,}" if trials else ""
        print(f"Resuming {out}: {len(journal.finished):,}{of} trials recorded.", file=sys.stderr, flush=True)
    elif trials and len(journal.finished) > trials:
        # nothing is dropped: the records stand, and the results count all of them
        print(f"note: {out} already holds {len(journal.finished):,} trials, more than --trials "
              f"{trials:,}; no child is trained, and the results count all {len(journal.finished):,}.",
              file=sys.stderr, flush=True)
    ex_kwargs = {"batch_size": config.get("ppo", {}).get("batch_size", 20), "log_path": out / "workers.log",
                 "state_dir": out, "progress": progress, **(executor_kwargs or {})}
    ex = make_executor(executor, reward_spec, workers, **ex_kwargs)
    dispatch = Dispatcher(ex, journal, journal.unfinished())
    bar = _progress(trials, len(journal.finished), journal, progress)
    started = time.time()
    streak, last_error = 0, None
    outputs = _Outputs(out, space, config, trials, journal.finished, started)
    complete = False
    try:
        while len(journal.finished) < trials:
            remaining = trials - len(journal.finished) - dispatch.pending
            free = dispatch.free
            if free > 0 and remaining > 0:
                recs = []
                for actions, logp in strategy.propose(min(free, remaining)):
                    t = journal.next_trial + len(recs)
                    recs.append({"event": "proposed", "trial": t, "actions": actions, "logp": logp,
                                 "seed": config["seed"] * 1_000_003 + t, "proposed_at": time.time()})
                # The sampler advanced: its state is saved with the children it drew before they
                # are journaled, so a stop between the two neither draws them again nor loses them.
                journal.save_state(strategy.state(), len(journal.finished), pending=recs)
                for rec in recs:
                    journal.append(rec)
                    dispatch.add(rec)
            worst = 0  # the longest failure streak seen in this poll's results
            for _, res in dispatch.poll(timeout=1.0):
                if res["status"] == "ok":
                    streak = 0
                else:
                    streak, last_error = streak + 1, res.get("error", "")
                    worst = max(worst, streak)
                if res["event"] == "finished" and strategy.observe(res["actions"], res["logp"], res["reward"]):
                    journal.save_state(strategy.state(), len(journal.finished))
                if res["event"] == "finished":
                    outputs.finished(res)
                    if bar:
                        bar.update(1)
                        if outputs.best is not None:
                            bar.set_postfix(best=f"{outputs.best['reward']:.4f}")
            # After every result of this poll is journaled and observed: the streak counts them all.
            if worst >= max_failures:
                raise SearchFailed(
                    f"{worst} children in a row failed; the last: {last_error}. This looks like "
                    f"a broken setup rather than bad architectures (details of each in "
                    f"{out / 'trials.jsonl'}, worker output in {out / 'workers.log'}). The "
                    f"{len(journal.finished)} recorded trials are kept: fix the cause and run the "
                    "same command to resume (--max-failures changes the limit)."
                )
        complete = True
    finally:
        ex.close()
        if bar:
            bar.close()
        if not complete:
            # Stopped early (Ctrl-C, too many failures, a crash): what was found so far is still
            # written, so the folder's best_genotype.json and summary.json are usable right away.
            try:
                outputs.write(errors=len(journal.errors))
            except Exception as e:  # never hide the reason the search stopped
                print(f"warning: could not write the search's outputs: {e}", file=sys.stderr)
    journal.save_state(strategy.state(), len(journal.finished))
    extra = {"errors": len(journal.errors)}
    if hasattr(strategy, "controller"):
        extra["greedy_genotype"] = space.decode(strategy.controller.greedy()).to_dict()
    return outputs.write(**extra)


class _Outputs:
    """Keeps ``best_genotype.json``, ``summary.json`` and ``rewards.png`` up to date while the search
    runs: the best genotype as soon as a better child finishes, the summary at most every
    :data:`SUMMARY_SECONDS` and the plot (about a second's work) every :data:`PLOT_SECONDS`."""

    def __init__(self, out, space, config, trials, finished, started):
        self.out, self.space, self.config, self.trials = out, space, config, trials
        self.all, self.started = finished, started  # the journal's list: it grows as results come
        ok = [r for r in finished if r["status"] == "ok"]
        self.best = max(ok, key=lambda r: r["reward"]) if ok else None
        self._summary_at = self._plot_at = time.time()
        # A search whose stages ran (final.json) keeps their final cell in best_genotype.json when
        # it is extended: the best reward is not the search's result (run_search says what to do).
        self.final_cell = _final_cell(out)

    def finished(self, rec: dict) -> None:
        if rec["status"] == "ok" and (self.best is None or rec["reward"] > self.best["reward"]):
            self.best = rec
            if self.final_cell is None:
                write_text_atomic(self.out / "best_genotype.json",
                                  self.space.decode(rec["actions"]).to_json(indent=2))
        now = time.time()
        if now - self._plot_at > PLOT_SECONDS:
            self.write()
        elif now - self._summary_at > SUMMARY_SECONDS:
            self._summary_at = now
            write_outputs(self.out, self.space, self.config, self.all, now - self.started,
                          trials_planned=self.trials, plot=False, **self._final())

    def _final(self) -> dict:
        return {} if self.final_cell is None else {"write_best": False, "final_cell": self.final_cell}

    def write(self, **extra) -> dict:
        self._summary_at = self._plot_at = time.time()
        return write_outputs(self.out, self.space, self.config, self.all, time.time() - self.started,
                             trials_planned=self.trials, **self._final(), **extra)


def _stale_stages(out, final: dict | None, trials: int) -> str | None:
    """A sentence if ``final`` (the folder's ``final.json``) was chosen from fewer than ``trials``
    children."""
    done = final.get("search_trials") if final else None
    if done is None or done >= trials:
        return None
    return (f"{Path(out) / 'final.json'} holds the stages' final cell, chosen from the search's first "
            f"{done} children; it has {trials} now.")


def _final_cell(out) -> dict | None:
    """``final.json``'s final cell, if the folder's stages wrote one (an unreadable file: None;
    report names the damage, and the search goes on as without stages)."""
    from .report import _final

    final = _final(Path(out))
    return None if final is None else final["final_cell"]


#: Seconds between rewrites of ``summary.json`` while a search runs.
SUMMARY_SECONDS = 5.0
#: Seconds between redrawings of ``rewards.png`` while a search runs.
PLOT_SECONDS = 60.0


#: Where a search folder keeps its warm start's widths and CPU-seconds.
WARM_START_FILE = "warm_start.json"


def _warm_start(out, space, config, evolution, workers, progress) -> dict:
    """The evolution settings with the warm start's widest cells after ``initial``. The widths
    are kept in ``out/warm_start.json`` as they are scored: a search stopped during its warm
    start continues it, and a resumed search reads them instead of scoring again."""
    from .warmstart import widest_cells

    proxy = config["reward_args"]["proxy"]
    initial = list(evolution.get("initial", []))
    draws = evolution["warm_start"]
    path = Path(out) / WARM_START_FILE
    bar, done = None, 0
    try:
        done = len(json.loads(path.read_text())["widths"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    processes = max(1, min(workers, os.cpu_count() or 1))
    if done < draws:
        # said even without a progress bar: minutes pass before the first child
        print(f"Warm start: scoring the widths of {draws - done:,} of {draws:,} random cells in {processes} "
              f"process{'es' if processes > 1 else ''} (no training; about 1.8 CPU-seconds a cell on a 2-core "
              f"machine); kept in {path}.", file=sys.stderr, flush=True)
        if progress:
            from .._cli import progress_bar

            bar = progress_bar(draws, done, desc="warm start", unit="cell", units="cells")
    def advance(n):
        if bar is not None:
            bar.update(n - bar.n)  # n: cells scored in all, the cache's included

    keep = evolution["population"] - len(initial)
    try:
        cells = widest_cells(space, draws, keep, params=proxy["match_params"], num_cells=proxy["num_cells"],
                             seed=config["seed"], exclude=initial, cache=path, progress=advance,
                             # processes on this machine even for Ray (building models needs no
                             # cluster), never this one: the search's own process stays free of TensorFlow
                             workers=processes)
    except (ValueError, RuntimeError) as e:
        from .errors import SearchError

        raise SearchError(f"warm start: {e}") from None
    finally:
        if bar is not None:
            bar.close()
    if len(cells) < keep:
        print(f"note: the warm start's {draws} cells hold only {len(cells)} distinct ones for the "
              f"{keep} places; the rest of the population starts from uniform samples.", file=sys.stderr)
    return {**evolution, "initial": initial + [g.to_dict() for g, _ in cells]}


def _progress(total, initial, journal, enabled):
    if not enabled:
        return None
    from .._cli import progress_bar

    return progress_bar(total, initial, desc="search", unit="child", units="children")


def write_outputs(out: Path, space: SearchSpace, config: dict, finished: list[dict],
                  seconds: float | None, trials_planned: int | None = None, plot: bool = True,
                  write_best: bool = True, **extra) -> dict:
    """Writes ``best_genotype.json``, ``summary.json`` and ``rewards.png`` (if matplotlib is there),
    each atomically, from the finished trials so far; returns the summary.

    The best trial is the best child that succeeded; failed children never count as best.
    ``summary["complete"]`` says whether all ``trials_planned`` children are in (unknown: None).
    ``extra`` items are added to the summary; ``plot=False`` leaves ``rewards.png`` as it is, and
    ``write_best=False`` leaves ``best_genotype.json`` (the stages' final cell, once they ran).
    """
    finished = sorted(finished, key=lambda r: r["trial"])
    rewards = np.asarray([r["reward"] for r in finished], float)
    ok = [r for r in finished if r["status"] == "ok"]
    best = max(ok, key=lambda r: r["reward"]) if ok else None
    summary = {
        "trials": len(finished),
        "trials_planned": trials_planned,
        "complete": None if trials_planned is None else len(finished) >= trials_planned,
        "failed": len(finished) - len(ok),
        "best_reward": best["reward"] if best else None,
        "best_trial": best["trial"] if best else None,
        "strategy": config["strategy"],
        "reward": config["reward"],
        "seed": config["seed"],
        "mean_seconds_per_child": float(np.mean([r["seconds"] for r in finished])) if finished else None,
        "top5_mean": float(np.sort(rewards)[-5:].mean()) if len(rewards) else None,
        "top25_mean": float(np.sort(rewards)[-25:].mean()) if len(rewards) else None,
        "wall_seconds_this_run": None if seconds is None else round(seconds, 1),
    }
    if best:
        genotype = space.decode(best["actions"])
        if write_best:
            write_text_atomic(out / "best_genotype.json", genotype.to_json(indent=2))
        summary["best_genotype"] = genotype.to_dict()
    summary.update(extra)
    write_json_atomic(out / "summary.json", summary)
    if not plot:
        return summary
    try:
        plot_rewards(out / "rewards.png", rewards, title=f"{config['strategy']} / {config['reward']}",
                     trials=[r["trial"] for r in finished])
    except ImportError:
        print("matplotlib is not installed: no rewards.png (pip install 'keras_nasnet[plots]').",
              file=sys.stderr)
    return summary


def curves(rewards, ks=(1, 5, 25)):
    """Best-so-far (k=1) and running top-k means of a reward sequence."""
    out = {}
    for k in ks:
        vals, top = [], []
        import heapq

        for r in rewards:
            heapq.heappush(top, r)
            if len(top) > k:
                heapq.heappop(top)
            vals.append(np.mean(top) if len(top) == k else np.nan)
        out[k] = np.asarray(vals)
    return out


def plot_rewards(path, rewards, title="", others: dict | None = None, trials=None):
    """Reward of every trial, best-so-far and running top-5 / top-25 means; ``others`` instead
    compares several runs (name -> rewards): best so far and the mean of the last 500 rewards
    (what the strategy samples now) per run, such as PPO against random search.

    ``trials``: the trial numbers of ``rewards`` (the numbers ``report`` lists, from 0 in the order
    the children were proposed); by default 0, 1, 2, ...
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5) if others is None else (10, 4.8))
    runs = {"": np.asarray(rewards)} if others is None else others
    for i, (name, r) in enumerate(runs.items()):
        r = np.asarray(r)
        x = np.asarray(trials) if others is None and trials is not None else np.arange(len(r))
        color = f"C{i % 10}"
        c = curves(r)
        if others is None:
            ax.scatter(x, r, s=4, alpha=0.3, color="gray", label="trial reward")
            ax.plot(x, c[1], color=color, lw=2, label="best so far")
            ax.plot(x, c[5], color=color, lw=1.2, ls="--", label="top-5 mean")
            ax.plot(x, c[25], color=color, lw=1, ls=":", label="top-25 mean")
        else:
            window = min(500, len(r))
            recent = np.convolve(r, np.ones(window) / window, mode="valid")
            ax.plot(x, c[1], color=color, lw=2, label=f"{name}: best so far")
            ax.plot(x[window - 1:], recent, color=color, lw=1, ls=":", label=f"{name}: mean of last {window}")
    ax.set_xlabel("trial")
    ax.set_ylabel("reward")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if others is None:
        ax.legend(fontsize=8)
    else:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
