"""How well a reward ranks cells: rank correlations with bootstrap intervals, and the loaders of the
stand-alone ground-truth records that the studies under ``search/`` use.

A ``standalone.jsonl`` holds one JSON object per (cell, seed) trained stand-alone at one budget:
at least ``cell`` (a name), ``seed``, ``budget`` (the training settings) and
``standalone_accuracy``. :func:`read_standalone_journal` reads a stand-alone journal
(:func:`~keras_nasnet.search.train_standalone`'s folder, or a search's ``stages/budget-<b>[-p<N>]/``)
as rows of the same form. Kendall's tau-b and Spearman's rho are computed here without SciPy (SciPy
gives the same values; the tests check both against hand-worked cases).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def kendall_tau(a, b) -> float:
    """Kendall's tau-b of two score lists (ties in either list handled as tau-b does; NaN when
    one list is constant or holds a NaN, as SciPy gives; infinities are ordinary, tied values)."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) != len(b):
        raise ValueError(f"kendall_tau needs two lists of one length; got {len(a)} and {len(b)}.")
    if np.isnan(a).any() or np.isnan(b).any():
        return float("nan")
    i, j = np.triu_indices(len(a), k=1)
    # Compared, not subtracted: inf - inf is NaN, which would count a tie as discordant.
    da = (a[i] > a[j]).astype(int) - (a[i] < a[j])
    db = (b[i] > b[j]).astype(int) - (b[i] < b[j])
    both = (da != 0) & (db != 0)
    conc = int(np.sum(both & (da == db)))
    disc = int(np.sum(both & (da != db)))
    ta = int(np.sum((da == 0) & (db != 0)))  # tied in a only
    tb = int(np.sum((db == 0) & (da != 0)))  # tied in b only
    denom = np.sqrt((conc + disc + ta) * (conc + disc + tb))
    return float((conc - disc) / denom) if denom else float("nan")


def ranks(values) -> np.ndarray:
    """Ranks from 0, ties sharing their mean rank."""
    v = np.asarray(values, float)
    order = np.argsort(v, kind="stable")
    r = np.empty(len(v))
    r[order] = np.arange(len(v))
    for x in np.unique(v):
        r[v == x] = r[v == x].mean()
    return r


def spearman(a, b) -> float:
    """Spearman's rank correlation (mean ranks for ties; NaN when one list is constant or holds a
    NaN, as SciPy gives)."""
    if len(a) != len(b):
        raise ValueError(f"spearman needs two lists of one length; got {len(a)} and {len(b)}.")
    if np.isnan(np.asarray(a, float)).any() or np.isnan(np.asarray(b, float)).any():
        return float("nan")
    ra, rb = ranks(a), ranks(b)
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def bootstrap_interval(statistic, a, b, reps: int = 2000, seed: int = 0, level: float = 0.95) -> list:
    """The ``level`` percentile interval of ``statistic(a, b)`` over cells resampled with
    replacement (resamples where it is undefined, NaN, are left out; ``[nan, nan]`` when it is
    undefined on every one, e.g. for a constant list or fewer than 2 cells)."""
    rng = np.random.default_rng(seed)
    a, b = np.asarray(a, float), np.asarray(b, float)
    n = len(a)
    values = np.asarray([statistic(a[i], b[i]) for i in (rng.integers(0, n, n) for _ in range(reps))])
    values = values[np.isfinite(values)]
    if not len(values):
        return [float("nan"), float("nan")]
    tail = 100 * (1 - level) / 2
    return [float(np.percentile(values, tail)), float(np.percentile(values, 100 - tail))]


def rank_correlations(scores, truth, reps: int = 2000, seed: int = 0) -> dict:
    """Kendall's tau and Spearman's rho of ``scores`` against ``truth``, each with its 95%
    bootstrap interval over cells."""
    return {"cells": len(scores),
            "kendall_tau": kendall_tau(scores, truth),
            "kendall_tau_95": bootstrap_interval(kendall_tau, scores, truth, reps, seed),
            "spearman": spearman(scores, truth),
            "spearman_95": bootstrap_interval(spearman, scores, truth, reps, seed)}


def tau_difference(first, second, truth, reps: int = 2000, seed: int = 0) -> dict:
    """How much better ``first`` ranks the cells than ``second`` does: Kendall's tau of ``first``
    against ``truth`` minus that of ``second``, with its 95% interval from one paired bootstrap
    over cells (each resample scores both with the same cells, so their shared luck cancels)."""
    first, second, truth = (np.asarray(x, float) for x in (first, second, truth))
    if not len(first) == len(second) == len(truth):
        raise ValueError(f"tau_difference needs three lists of one length; got {len(first)}, "
                         f"{len(second)} and {len(truth)}.")
    rng, n = np.random.default_rng(seed), len(truth)
    values = []
    for _ in range(reps):
        i = rng.integers(0, n, n)
        values.append(kendall_tau(first[i], truth[i]) - kendall_tau(second[i], truth[i]))
    values = np.asarray(values)
    values = values[np.isfinite(values)]
    interval = ([float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))] if len(values)
                else [float("nan"), float("nan")])
    return {"cells": n, "difference": kendall_tau(first, truth) - kendall_tau(second, truth),
            "difference_95": interval}


def mean_difference(a, b, reps: int = 4000, seed: int = 0) -> dict:
    """The mean of group ``a`` minus the mean of group ``b`` (one value per cell, e.g. each
    cell's mean accuracy over its seeds), with a 95% interval from resampling each group's
    cells with replacement: how a pool of searched cells compares with random ones."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"mean_difference needs at least 2 cells per group; got {len(a)} and {len(b)}.")
    rng = np.random.default_rng(seed)
    values = [a[rng.integers(0, len(a), len(a))].mean() - b[rng.integers(0, len(b), len(b))].mean()
              for _ in range(reps)]
    return {"difference": float(a.mean() - b.mean()),
            "difference_95": [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))],
            "cells": [len(a), len(b)]}


def pooled_seed_sd(cells) -> float:
    """The standard deviation of one training run around its cell's mean, pooled over ``cells``
    (lists of per-seed accuracies; cells with one seed add nothing)."""
    num, dof = 0.0, 0
    for values in cells:
        v = np.asarray(values, float)
        if len(v) > 1:
            num += float(np.sum((v - v.mean()) ** 2))
            dof += len(v) - 1
    if not dof:
        raise ValueError("pooled_seed_sd needs a cell with at least 2 seeds.")
    return float(np.sqrt(num / dof))


def seeds_difference(a, b, seed_sd: float) -> dict:
    """Mean of the runs ``a`` of one cell minus that of the runs ``b`` of another, with a 95%
    interval from the seed noise ``seed_sd`` (:func:`pooled_seed_sd`; normal approximation):
    how a final cell compares with NASNet-A over a few seeds each."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    half = 1.96 * seed_sd * float(np.sqrt(1 / len(a) + 1 / len(b)))
    d = float(a.mean() - b.mean())
    return {"difference": d, "difference_95": [d - half, d + half], "seeds": [len(a), len(b)]}


def read_standalone(path) -> list[dict]:
    """The rows of a ``standalone.jsonl``; a missing file is empty, and a cut last line (a kill
    while it was written) is left out. Any other damaged line raises ``ValueError`` naming it."""
    p = Path(path)
    if not p.exists():
        return []
    lines = p.read_text().splitlines()
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(lines):
                break
            raise ValueError(f"{p}, line {n}: not valid JSON; only a cut last line can come from a "
                             "crash. Restore the file from its copy in git.") from None
    return rows


def seed_table(rows, budget=None) -> dict:
    """``{cell: {seed: accuracy}}`` of ground-truth rows at one ``budget`` (default: the first
    row's), so records of different training budgets are never mixed."""
    if not rows:
        return {}
    budget = rows[0]["budget"] if budget is None else budget
    out: dict = {}
    for r in rows:
        if r["budget"] == budget:
            out.setdefault(r["cell"], {})[r["seed"]] = r["standalone_accuracy"]
    return out


def seed_means(table: dict) -> dict:
    """``{cell: mean accuracy over its seeds}`` of a :func:`seed_table`."""
    return {c: float(np.mean(list(s.values()))) for c, s in table.items()}


def read_standalone_journal(folder) -> list[dict]:
    """The finished, successful children of a stand-alone journal as ground-truth rows:
    ``cell`` (the genotype's JSON, keys sorted: one name per cell), ``genotype``, ``seed``,
    ``budget`` (the journal's training settings: epochs, images, recipe), ``standalone_accuracy``
    (held-out split), ``test_accuracy`` (CIFAR-10 test split, None if not measured) and
    ``train_loss`` (the last epoch's mean training loss, None if not recorded). A run in
    progress is read as far as it got."""
    from .journal import read_config, read_records

    folder = Path(folder)
    if not (folder / "config.json").is_file():  # a wrong path, not a damaged journal
        raise ValueError(f"{folder} is not a stand-alone journal: it has no config.json. Give a "
                         "train_standalone folder or a search's stages/budget-<b>[-p<N>]/ folder.")
    config = read_config(folder / "config.json")
    if config.get("stage") != "standalone":
        raise ValueError(f"{folder} is not a stand-alone journal (its config.json has stage "
                         f"{config.get('stage')!r}); give a train_standalone folder or a search's "
                         "stages/budget-<b>[-p<N>]/ folder.")
    budget = config["budget"] if isinstance(config["budget"], dict) else \
        {**{k: v for k, v in config.get("proxy", {}).items() if k != "data"}, "epochs": config["budget"]}
    rows = []
    for r in read_records(folder / "trials.jsonl")[0]:
        if r["event"] == "finished" and r["status"] == "ok":
            rows.append({"cell": json.dumps(r["actions"], sort_keys=True), "genotype": r["actions"],
                         "seed": r["seed"], "budget": budget, "standalone_accuracy": r["reward"],
                         "test_accuracy": r.get("metrics", {}).get("test"),
                         "train_loss": r.get("metrics", {}).get("train_loss")})
    return rows
