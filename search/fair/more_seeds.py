"""More seeds for the fair test's final comparison (issue 20, part 5): the pipelines' final
cells (of two, PPO's and random search's, or of one) and NASNet-A, trained again with seeds the
pipelines did not use, at the same budget and recipe, so the final cell's difference from
NASNet-A has a narrower interval than 3 seeds give.

The targets are judged on the pipelines' own 3 seeds (``targets.py``); these seeds were added after
that result was known, so they are a second look, reported beside it, not in its place.

Reads each ``--runs`` folder's ``final.json`` (the final cell, NASNet-A's genotype and the
stand-alone proxy, i.e. the budget and recipe), trains the cells with ``--seeds`` through
the search's executors (``keras_nasnet.search.train_standalone``; resumes after a kill, no
finished child trained twice; ``--reuse-children`` copies the runs already in other
stand-alone journals at the same budget and recipe) into ``--out/journal``, and writes
``--out/more-seeds.json``: each cell's per-seed test and held-out accuracy over the pipelines'
seeds and the new ones, and the differences (final cell minus NASNet-A, PPO's minus random's) with
their 95% intervals from the seed noise pooled over every cell of the ``final.json`` files and
these runs. With one run, its final cell is named ``final``; with two, ``ppo-final`` and
``random-final``.

    python search/fair/more_seeds.py --runs search/fair/ppo search/fair/random \\
        --data ../shared/datasets/cifar10-jpeg.zip --seeds 3 4 5 --out search/fair/more-seeds
    python search/fair/more_seeds.py --runs search/fair/ppo search/fair/random --report-only \\
        --out search/fair/more-seeds      # the figures again from the journal, no training
    python search/fair/more_seeds.py --runs search/evolve/run --data ../shared/datasets/cifar10-jpeg.zip \\
        --seeds 6 7 8 --reuse-children search/confirm/more-seeds --out search/evolve/more-seeds
"""

import argparse
import json
import statistics
from pathlib import Path


def final_of(run) -> dict:
    """A pipeline's ``final.json``, or a one-line exit saying what is missing."""
    path = Path(run) / "final.json"
    if not path.is_file():
        raise SystemExit(f"{run}: no final.json; give the --out folder of a finished `python -m "
                         "keras_nasnet.search ... --stages all` run.")
    return json.loads(path.read_text())


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, metavar="RUN",
                   help="the PPO pipeline's and the random pipeline's search folders, or one search folder")
    p.add_argument("--seeds", nargs="+", type=int, default=[3, 4, 5],
                   help="seeds to add (default 3 4 5: the pipelines used 0 1 2)")
    p.add_argument("--data", default=None, help="the CIFAR-10 source (default: the one the runs used)")
    p.add_argument("--out", required=True, help="folder for the journal and more-seeds.json")
    p.add_argument("--workers", type=int, default=1, help="local worker processes (default 1)")
    p.add_argument("--reuse-children", nargs="+", default=[], metavar="FOLDER",
                   help="stand-alone journals (or folders holding them) whose runs at the same budget and "
                        "recipe are copied instead of trained, e.g. search/confirm/more-seeds")
    p.add_argument("--report-only", action="store_true", help="no training: the figures from the journal")
    a = p.parse_args(argv)
    if len(a.runs) > 2:
        p.error(f"--runs takes one search folder or two (PPO's and random search's), not {len(a.runs)}.")
    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.search import ProxyConfig, pooled_seed_sd, seeds_difference, train_standalone

    finals = [final_of(r) for r in a.runs]
    proxies = [f["standalone_proxy"] for f in finals]
    strip = lambda r: {k: v for k, v in r.items() if k != "data"}  # noqa: E731
    if any(strip(x) != strip(proxies[0]) for x in proxies):
        raise SystemExit("the two runs' final budgets or recipes differ; their cells cannot be compared.")
    names = ["ppo-final", "random-final"] if len(finals) == 2 else ["final"]
    entries = [{e["name"]: e for e in f["entries"]} for f in finals]
    cells = {n: f["final_cell"]["genotype"] for n, f in zip(names, finals)}
    cells["NASNet-A"] = entries[0]["NASNet-A"]["genotype"]
    old = {n: e[f["final_cell"]["name"]] for n, e, f in zip(names, entries, finals)}
    old["NASNet-A"] = entries[0]["NASNet-A"]
    if any(s in old["NASNet-A"]["seeds"] for s in a.seeds):
        raise SystemExit(f"--seeds {a.seeds}: the pipelines already used {old['NASNet-A']['seeds']}; give others.")
    record = dict(proxies[0])
    if a.data:
        record["data"] = a.data
    proxy = ProxyConfig(**record)
    out = Path(a.out)
    key = lambda g: json.dumps(g, sort_keys=True)  # noqa: E731  (a cell's name in the journals)
    if a.report_only:
        from keras_nasnet.search import read_standalone_journal

        try:
            rows = [r for r in read_standalone_journal(out / "journal") if r["seed"] in a.seeds]
        except ValueError as e:  # no journal there yet: nothing was trained
            p.error(f"--report-only: {e} Run without --report-only first to train the seeds.")
        by_genotype = {key(g): n for n, g in cells.items()}
        rows = [{"cell": by_genotype.get(r["cell"]), "seed": r["seed"], "val": r["standalone_accuracy"],
                 "test": r["test_accuracy"]} for r in rows]
    else:
        rows = train_standalone(out / "journal", cells, a.seeds, proxy, workers=a.workers,
                                threads_per_worker=1, reuse=a.reuse_children)

    result = {"runs": list(a.runs), "budget": strip(record), "pipeline_seeds": old["NASNet-A"]["seeds"],
              "new_seeds": a.seeds, "cells": {}}
    for name in cells:
        new = {r["seed"]: r for r in rows if r.get("cell") == name and r.get("status", "ok") == "ok"}
        result["cells"][name] = {
            "seeds": old[name]["seeds"] + sorted(new),
            "test": old[name]["test"] + [new[s]["test"] for s in sorted(new)],
            "val": old[name]["val"] + [new[s]["val"] for s in sorted(new)]}
    # seed noise: every cell of both pipelines' final.json once (the reference cells and a cell
    # both pipelines found stand in both), these three cells with all their seeds
    noise = {key(e["genotype"]): e["test"] for f in finals for e in f["entries"]}
    noise.update({key(cells[n]): v["test"] for n, v in result["cells"].items()})
    noise = list(noise.values())
    sd = pooled_seed_sd(noise)
    result["seed_sd"] = sd
    c = result["cells"]
    n_old = len(old["NASNet-A"]["seeds"])
    result["differences"] = {}
    pairs = [(n, "NASNet-A") for n in names] + ([tuple(names)] if len(names) == 2 else [])
    for x, y in pairs:
        label = f"{x} minus {y}"
        result["differences"][label] = {
            "pipeline_seeds": seeds_difference(c[x]["test"][:n_old], c[y]["test"][:n_old], sd),
            "all_seeds": seeds_difference(c[x]["test"], c[y]["test"], sd)}
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "more-seeds.json", result)
    print(f"seed sd (pooled): {sd:.4f}")
    for name, v in c.items():
        print(f"{name:13s} test mean over {len(v['test'])} seeds {statistics.fmean(v['test']):.4f}  "
              f"(first {n_old}: {statistics.fmean(v['test'][:n_old]):.4f})  per seed {v['test']}")
    for label, d in result["differences"].items():
        for k, v in d.items():
            lo, hi = v["difference_95"]
            print(f"{label:30s} {k:14s} {v['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}]  seeds {v['seeds']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
