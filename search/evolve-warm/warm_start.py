"""A zero-cost warm start for regularized evolution (issue 20): the widest of N random cells.

Draws ``--draws`` cells uniformly from the add-only search space (fixed ``--seed``), gives each
the width its stand-alone child gets at the stages' parameter count
(``keras_nasnet.search.rewards.matched_units``: the ``penultimate_filters`` whose 1-cell
``NASNetCIFAR`` has about NASNet-A's 73,218 parameters; about 1.8 CPU-seconds per cell, no training),
and writes the ``--keep`` widest distinct cells (ties: the earlier draw) as a JSON list of
genotypes for ``python -m keras_nasnet.search --initial-cells``. The widths, the CPU-seconds
spent and the settings go beside it (``--out`` with ``.widths.json``: each draw's actions and width), so the cost can be
counted with the search's. Widths already computed there are kept: a killed run continues.

Why width: at equal parameters the cells that get more filters train better at the final
budget (Kendall tau 0.33 [0.21, 0.44] over the 137 cells trained there), and the one search
here that ended above NASNet-A (``../evolve/``) started from cells with a mean width of 94,
against 63 for uniform random cells; the search from random cells (``../evolve-scratch/``)
drifted to width 48. Zero-cost warm-up of aging evolution: Abdelfattah et al., "Zero-Cost
Proxies for Lightweight NAS", ICLR 2021.

    python search/evolve-warm/warm_start.py --out search/evolve-warm/initial-cells.json
"""

import argparse
import concurrent.futures
import json
import multiprocessing
import time
from pathlib import Path


def _widths(params, chunk):
    """``[(actions, width)]`` of a chunk of action lists, and the CPU-seconds it took (run in
    a worker process)."""
    t = time.process_time()  # before the imports: a fresh worker's import of TensorFlow counts too
    from keras_nasnet.search import SearchSpace
    from keras_nasnet.search import matched_units

    space, out = SearchSpace(combines=("add",)), []
    for actions in chunk:
        g = space.decode(actions)
        out.append([actions, matched_units(g, 1, params)])
    return out, time.process_time() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--draws", type=int, default=1000, help="uniform random cells to score (default 1000)")
    p.add_argument("--keep", type=int, default=50, help="the widest cells written (default 50: the population)")
    p.add_argument("--seed", type=int, default=0, help="the draw's seed (default 0)")
    p.add_argument("--params", type=int, default=73218,
                   help="the stand-alone children's parameter count (default 73218: NASNet-A's at the stages' width)")
    p.add_argument("--workers", type=int, default=2, help="processes (default 2)")
    p.add_argument("--out", required=True, help="the JSON list of initial cells to write")
    a = p.parse_args(argv)
    if a.keep < 1 or a.draws < a.keep:
        p.error(f"--draws ({a.draws}) must be at least --keep ({a.keep}), and --keep at least 1")
    if a.workers < 1 or a.params < 1:
        p.error("--workers and --params must be at least 1")

    import numpy as np

    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.search import SearchSpace

    space = SearchSpace(combines=("add",))
    out = Path(a.out)
    side = out.with_suffix(".widths.json")
    settings = {"draws": a.draws, "seed": a.seed, "params": a.params, "space": space.to_dict()}
    state = json.loads(side.read_text()) if side.exists() else {}
    if state.get("settings", settings) != settings:
        raise SystemExit(f"{side} was made with other settings ({state['settings']}); give another --out "
                         "or delete it.")
    widths, cpu = state.get("widths", []), state.get("cpu_seconds", 0.0)
    actions = space.sample_uniform(np.random.default_rng(a.seed), a.draws)
    if any(w[0] != actions[i].tolist() for i, w in enumerate(widths)):
        raise SystemExit(f"{side} holds cells that --seed {a.seed} does not draw (made by another version?); "
                         "give another --out or delete it.")
    todo = [actions[i:i + 25].tolist() for i in range(len(widths), a.draws, 25)]
    with concurrent.futures.ProcessPoolExecutor(a.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        for part, seconds in pool.map(_widths, [a.params] * len(todo), todo):  # in order: resumable
            widths += part
            cpu += seconds
            write_json_atomic(side, {"settings": settings, "widths": widths, "cpu_seconds": cpu})
            print(f"{len(widths)} of {a.draws} cells, {cpu:.0f} CPU-seconds", flush=True)
    cells = [[space.decode(act).to_dict(), w] for act, w in widths]
    seen, keep = set(), []
    for i in sorted(range(len(cells)), key=lambda i: (-cells[i][1], i)):  # widest first, ties: earlier draw
        k = json.dumps(cells[i][0], sort_keys=True)
        if k not in seen:
            seen.add(k)
            keep.append(cells[i])
        if len(keep) == a.keep:
            break
    if len(keep) < a.keep:
        print(f"warning: only {len(keep)} distinct cells among {a.draws} draws", flush=True)
    write_json_atomic(out, [g for g, _ in keep])
    all_w = [w for _, w in widths]
    print(f"{out}: the {len(keep)} widest of {a.draws} cells (widths {keep[-1][1]}-{keep[0][1]}; all draws: "
          f"mean {np.mean(all_w):.1f}, median {np.median(all_w):.0f}); {cpu:.0f} CPU-seconds")


if __name__ == "__main__":
    main()
