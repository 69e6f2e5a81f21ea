"""A zero-cost warm start for regularized evolution: the widest of many random cells.

At equal parameters (``--child-match-params``) a cell that gets more filters trains better at the
stages' final budget: Kendall tau 0.33 [0.21, 0.44] over the 137 cells trained there
(``search/evolve-warm/``). Evolution is local, each child one decision away from its parent, so
where it starts matters: from uniform random cells (``search/evolve-scratch/``) it drifted to the
narrowest cells and ended below NASNet-A; from the 50 widest of 1,000 random cells
(``search/evolve-warm/``) its screened pool was better beyond the noise. Scoring a cell costs no
training, only a few model builds (about 1.8 CPU-seconds): Abdelfattah et al., "Zero-Cost Proxies
for Lightweight NAS" (ICLR 2021) call this zero-cost warm-up.

:func:`widest_cells` is the library form; ``python -m keras_nasnet.search --strategy evolution
--warm-start 1000`` runs it before the search and keeps its widths in the search folder.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import time
from pathlib import Path

import numpy as np

from .space import SearchSpace

#: Cells scored per task of a worker process (and between two saves of the cache).
CHUNK = 25


def _widths(space: dict, num_cells: int, params: int, chunk: list) -> tuple[list, float]:
    """``[(actions, width)]`` for a chunk of action lists and the CPU-seconds it took (run in a
    worker process, or in this one)."""
    t = time.process_time()  # before the imports: a fresh worker's import of TensorFlow counts too
    from .rewards import matched_units

    import keras

    s = SearchSpace(**space)
    out = []
    for a in chunk:
        try:
            width = int(matched_units(s.decode(a), num_cells, params))
        except ValueError:  # a cell that cannot be built: the reward fails its child, so it ranks last
            width = 0
        out.append([list(a), width])
    keras.backend.clear_session()  # the models built are not needed again
    return out, time.process_time() - t


def widest_cells(space: SearchSpace, draws: int, keep: int, *, params: int, num_cells: int = 1,
                 seed: int = 0, exclude=(), workers: int = 0, cache=None, progress=None) -> list:
    """The ``keep`` widest distinct cells of ``draws`` drawn uniformly from ``space``.

    A cell's width is the ``penultimate_filters`` its :class:`~keras_nasnet.models.NASNetCIFAR`
    child (``num_cells`` cells per stack) gets at ``params`` parameters
    (:func:`~keras_nasnet.search.rewards.matched_units`; 0 for a cell that cannot be built); ties
    go to the earlier draw. Cells in ``exclude`` (genotypes or action lists, e.g. the search's own
    initial cells) are skipped, and fewer than ``keep`` come back when the draws hold fewer
    distinct cells. The
    draws are ``space.sample_uniform(np.random.default_rng(seed), draws)``, so the same arguments
    always give the same cells.

    Args:
        workers: processes that build the models (0: this process, which then imports
            TensorFlow and keeps it).
        cache: a JSON file for the widths and the CPU-seconds spent, written after every
            :data:`CHUNK` cells: a run stopped anywhere continues where it was. A file made with
            other settings raises ``ValueError``.
        progress: a callable given the number of cells scored so far, after every chunk.

    Returns a list of ``(genotype, width)`` pairs, widest first. The CPU-seconds are in the cache
    (``cpu_seconds``): :func:`~keras_nasnet.search.search_cost` counts them for a search folder.
    """
    from ..fileio import write_json_atomic

    for name, value, low in (("draws", draws, 1), ("keep", keep, 1), ("params", params, 1),
                             ("num_cells", num_cells, 1), ("workers", workers, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}; got {value!r}.")
    settings = {"draws": int(draws), "seed": int(seed), "params": int(params), "num_cells": int(num_cells),
                "space": space.to_dict()}
    actions = space.sample_uniform(np.random.default_rng(seed), draws).tolist()
    widths, cpu = [], 0.0
    cache = Path(cache) if cache is not None else None
    if cache is not None and cache.exists():
        try:
            state = json.loads(cache.read_text())
            stored, widths, cpu = state["settings"], state["widths"], float(state["cpu_seconds"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(f"{cache} is not a warm start's widths ({type(e).__name__}: {e}); delete "
                             "it to score the cells again.") from None
        if stored != settings or any(w[0] != actions[i] for i, w in enumerate(widths[:draws])):
            raise ValueError(f"{cache} holds the widths of another warm start (other cells, seed or "
                             "parameter count); delete it to score these cells.")

    def record(results):
        nonlocal widths, cpu
        for part, seconds in results:  # in order, so the cache always holds a prefix of the draws
            widths, cpu = widths + part, cpu + seconds
            if cache is not None:
                write_json_atomic(cache, {"settings": settings, "widths": widths, "cpu_seconds": cpu}, indent=None)
            if progress:
                progress(len(widths))

    todo = [actions[i:i + CHUNK] for i in range(len(widths), draws, CHUNK)]
    args = (space.to_dict(), int(num_cells), int(params))
    if todo and workers > 0:
        ctx = multiprocessing.get_context("spawn")  # no TensorFlow state forked into the workers
        try:
            with concurrent.futures.ProcessPoolExecutor(min(workers, len(todo)), mp_context=ctx) as pool:
                record(pool.map(_widths, *zip(*[(*args, c) for c in todo])))
        except concurrent.futures.process.BrokenProcessPool:
            raise RuntimeError(f"a process scoring the cells' widths died (out of memory?) after "
                               f"{len(widths)} of {draws} cells" + (f"; the next call continues from "
                               f"{cache}" if cache is not None else "")) from None
    else:
        record(_widths(*args, c) for c in todo)
    from ..genotypes import genotype_from

    skip = {tuple(map(int, g)) if isinstance(g, (list, tuple, np.ndarray)) else tuple(space.encode(genotype_from(g)))
            for g in exclude}
    chosen = []
    for i in sorted(range(draws), key=lambda i: (-widths[i][1], i)):
        a = tuple(widths[i][0])
        if a not in skip:
            skip.add(a)
            chosen.append((space.decode(list(a)), int(widths[i][1])))
            if len(chosen) == keep:
                break
    return chosen


def cache_cpu_seconds(path) -> float | None:
    """The CPU-seconds a warm start's cache file records (None when there is none or it is
    unreadable)."""
    try:
        return float(json.loads(Path(path).read_text())["cpu_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
