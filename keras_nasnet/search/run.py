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

from .journal import Journal
from .space import SearchSpace


def make_strategy(name: str, space: SearchSpace, seed: int, ppo_kwargs: dict):
    """``ppo`` (the paper's controller) or ``random`` (uniform search)."""
    from .ppo import PPOConfig, PPOStrategy, RandomStrategy

    if name == "ppo":
        return PPOStrategy(space, PPOConfig(**ppo_kwargs), seed=seed)
    if name == "random":
        return RandomStrategy(space, seed=seed)
    raise ValueError(f"Unknown strategy {name!r}; use ppo or random.")


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
        return w.LocalExecutor(reward_spec, workers, kw.get("threads_per_worker"))
    if kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(reward_spec, max(1, workers), address=kw.get("ray_address"),
                           num_cpus=kw.get("cpus_per_child", 1), num_gpus=kw.get("gpus_per_child", 0),
                           max_retries=kw.get("max_retries", 2))
    raise ValueError(f"Unknown executor {kind!r}; use local or ray.")


def search(out, *, config: dict, trials: int, workers: int = 0, executor: str = "local",
           progress: bool = True, executor_kwargs: dict | None = None) -> dict:
    """Runs (or resumes) the search described by ``config`` in folder ``out``.

    ``config`` is the search's identity (space, reward, strategy, seed, strategy settings); it is
    stored in ``out/config.json`` and must match when resuming. ``trials``, ``workers`` and the
    executor may change between runs of the same search.

    Returns the summary written to ``out/summary.json``.
    """
    space = SearchSpace(**config["space"])
    journal = Journal(out, config)
    strategy = make_strategy(config["strategy"], space, config["seed"], config.get("ppo", {}))
    arrays, consumed = journal.load_state()
    if arrays is not None:
        strategy.restore(arrays)
    # Results that finished after the last saved state are fed again, in the order they finished.
    replayed = journal.finished[consumed:]
    for rec in replayed:
        strategy.observe(rec["actions"], rec["logp"], rec["reward"])
    if replayed:
        journal.save_state(strategy.state(), len(journal.finished))
    queue = collections.deque(journal.unfinished())
    reward_spec = {"reward": config["reward"], "space": config["space"], **config.get("reward_args", {})}
    ex_kwargs = {"batch_size": config.get("ppo", {}).get("batch_size", 20), "state_dir": out,
                 "progress": progress, **(executor_kwargs or {})}
    ex = make_executor(executor, reward_spec, workers, **ex_kwargs)
    in_flight: dict[int, dict] = {}
    bar = _progress(trials, len(journal.finished), journal, progress)
    started = time.time()
    try:
        while len(journal.finished) < trials:
            remaining = trials - len(journal.finished) - len(in_flight) - len(queue)
            free = ex.capacity - len(in_flight) - len(queue)
            if free > 0 and remaining > 0:
                for actions, logp in strategy.propose(min(free, remaining)):
                    t = journal.next_trial
                    rec = {"event": "proposed", "trial": t, "actions": actions, "logp": logp,
                           "seed": config["seed"] * 1_000_003 + t, "proposed_at": time.time()}
                    journal.append(rec)
                    queue.append(rec)
                # The sampler advanced: save it, so a resume does not draw the same children again.
                journal.save_state(strategy.state(), len(journal.finished))
            while queue and len(in_flight) < ex.capacity:
                rec = queue.popleft()
                in_flight[rec["trial"]] = rec
                ex.submit(rec)
            for res in ex.poll(timeout=1.0):
                if in_flight.pop(res["trial"], None) is None:
                    continue  # a late duplicate (e.g. a retried Ray task); the first result counts
                journal.append(res)
                if strategy.observe(res["actions"], res["logp"], res["reward"]):
                    journal.save_state(strategy.state(), len(journal.finished))
                if bar:
                    bar.update(1)
                    bar.set_postfix(best=f"{max(r['reward'] for r in journal.finished):.4f}")
    finally:
        ex.close()
        if bar:
            bar.close()
    journal.save_state(strategy.state(), len(journal.finished))
    journal.close()
    summary = write_outputs(Path(out), space, config, journal.finished, time.time() - started)
    if hasattr(strategy, "controller"):
        summary["greedy_genotype"] = space.decode(strategy.controller.greedy()).to_dict()
        _write_json(Path(out) / "summary.json", summary)
    return summary


def _progress(total, initial, journal, enabled):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, unit="child", desc="search", dynamic_ncols=True,
                file=sys.stderr)


def _write_json(path: Path, data) -> None:
    tmp = path.with_name(path.name + ".part")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def write_outputs(out: Path, space: SearchSpace, config: dict, finished: list[dict], seconds: float) -> dict:
    """Writes ``best_genotype.json``, ``summary.json`` and ``rewards.png`` (if matplotlib is there)."""
    rewards = np.asarray([r["reward"] for r in finished], float)
    ok = [r for r in finished if r["status"] == "ok"]
    best = max(finished, key=lambda r: r["reward"]) if finished else None
    summary = {
        "trials": len(finished),
        "failed": len(finished) - len(ok),
        "best_reward": float(rewards.max()) if len(rewards) else None,
        "best_trial": best["trial"] if best else None,
        "strategy": config["strategy"],
        "reward": config["reward"],
        "seed": config["seed"],
        "mean_seconds_per_child": float(np.mean([r["seconds"] for r in finished])) if finished else None,
        "top5_mean": float(np.sort(rewards)[-5:].mean()) if len(rewards) else None,
        "top25_mean": float(np.sort(rewards)[-25:].mean()) if len(rewards) else None,
        "wall_seconds_this_run": round(seconds, 1),
    }
    if best:
        genotype = space.decode(best["actions"])
        (out / "best_genotype.json").write_text(genotype.to_json(indent=2))
        summary["best_genotype"] = genotype.to_dict()
    _write_json(out / "summary.json", summary)
    try:
        plot_rewards(out / "rewards.png", rewards, title=f"{config['strategy']} / {config['reward']}")
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


def plot_rewards(path, rewards, title="", others: dict | None = None):
    """Reward of every trial, best-so-far and running top-5 / top-25 means; ``others`` instead
    compares several runs (name -> rewards): best so far and the mean of the last 500 rewards
    (what the strategy samples now) per run, such as PPO against random search."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5) if others is None else (10, 4.8))
    runs = {"": np.asarray(rewards)} if others is None else others
    for i, (name, r) in enumerate(runs.items()):
        r = np.asarray(r)
        x = np.arange(1, len(r) + 1)
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
    ax.set_xlabel("trials")
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
