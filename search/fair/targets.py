"""The fair test's targets (issue 20, part 5), from the pipelines' stand-alone journals.

Reads a ``--stages all`` search folder's stand-alone journals (``stages/budget-<b>[-p<N>]/``; the
lowest budget is the cheap one, the highest the final one) as far as they have come, splits their
cells into the reference cells (NASNet-A and the space's fixed random cells,
``keras_nasnet.search.reference_cells``) and the search's finalists, and reports:

1. the pool: the finalists' mean held-out accuracy at the cheap budget minus the random cells'
   mean (target: at least +0.015), with a 95% interval from resampling the cells of each group;
2. the final cell (the finalist with the best held-out mean at the final budget, as the stages
   pick it: among the confirmed finalists, those with more seeds than the rest, when the stages
   ran a confirmation) against NASNet-A on the CIFAR-10 test split, mean over all their seeds
   (target: at or above), with a 95% interval from the seed noise pooled over every cell
   (normal approximation);
3. with ``--other``: the PPO pipeline's final cell against the other pipeline's on the test split
   (target: at or above), and its finalists' mean against the other's (held-out, cells resampled);
4. each pipeline's cost so far in CPU-hours (``keras_nasnet.search.search_cost``; target: at most
   12 end to end), children copied from other journals included, as a run from scratch trains them.

A reference cell's runs may also come from ``--references`` journals (e.g. the calibration's,
which the pipelines copy them from): any (cell, seed) the pipeline has not trained yet is taken
from there, at the same budget and recipe only.

    python search/fair/targets.py --run search/fair/ppo --other search/fair/random \\
        --references search/calibration/e1-45k-add-p73218/journal --out search/fair/targets.json
"""

import argparse
import json
import statistics
from pathlib import Path


def budget_journals(run) -> list[Path]:
    """The stand-alone journals of a search folder's stages, cheapest budget first."""
    def budget(p):
        return int(p.name.split("-")[1])

    found = [p for p in (Path(run) / "stages").glob("budget-*") if (p / "trials.jsonl").exists()]
    return sorted(found, key=budget)


def cells_of(journal, extra=(), keep=frozenset()) -> dict:
    """``{cell JSON: {"genotype", "val": {seed: acc}, "test": {seed: acc}}}`` of ``journal``, with
    the (cell, seed) pairs it lacks taken from the ``extra`` journals at the same budget (cells
    it has not trained at all only if their JSON is in ``keep``: the reference cells)."""
    from keras_nasnet.search import read_standalone_journal

    rows = read_standalone_journal(journal)
    cells: dict = {}
    budget = None
    for r in rows:
        budget = r["budget"]
        c = cells.setdefault(r["cell"], {"genotype": r["genotype"], "val": {}, "test": {}})
        c["val"][r["seed"]], c["test"][r["seed"]] = r["standalone_accuracy"], r["test_accuracy"]
    for other in extra:
        for r in read_standalone_journal(other):
            if budget is not None and r["budget"] != budget:
                continue  # another budget or recipe: never mixed
            if r["cell"] not in cells and r["cell"] in keep:
                cells[r["cell"]] = {"genotype": r["genotype"], "val": {}, "test": {}}
            c = cells.get(r["cell"])
            if c is not None and r["seed"] not in c["val"]:
                c["val"][r["seed"]], c["test"][r["seed"]] = r["standalone_accuracy"], r["test_accuracy"]
    return cells


def reference_keys(space, random_cells: int) -> dict:
    """``{cell JSON: (name, kind)}`` of the space's reference cells."""
    from keras_nasnet.search import reference_cells

    return {json.dumps(g, sort_keys=True): (name, kind) for name, kind, g in reference_cells(space, random_cells)}


def split(cells: dict, space, random_cells: int):
    """(NASNet-A's cell or None, the random reference cells, the finalists) of ``cells``."""
    refs = reference_keys(space, random_cells)
    nasnet, randoms, finalists = None, [], []
    for key, c in cells.items():
        name, kind = refs.get(key, (None, "finalist"))
        c = {**c, "name": name}
        if kind == "nasnet_a":
            nasnet = c
        elif kind == "random":
            randoms.append(c)
        else:
            finalists.append(c)
    return nasnet, randoms, finalists


def pipeline(run, references, random_cells: int, seeds: int, top_k: int) -> dict:
    """The figures of one search folder (see the module's docstring)."""
    from keras_nasnet.search import (SearchSpace, mean_difference, pooled_seed_sd, read_config, search_cost,
                                     seeds_difference)

    if not (Path(run) / "config.json").is_file():
        raise SystemExit(f"{run}: not a search folder (no config.json); give the --out folder of a "
                         "`python -m keras_nasnet.search ... --stages all` run.")
    config = read_config(Path(run) / "config.json")
    space = SearchSpace(**config["space"])
    # Sizes not given: the run's own, from its final.json (two runs compared may differ: 16 and 8
    # finalists), else the stages' defaults.
    try:
        ran = json.loads((Path(run) / "final.json").read_text())["stages"]
    except (OSError, ValueError, KeyError, TypeError):
        ran = {}
    from keras_nasnet.search import StageConfig

    defaults = StageConfig()
    top_k = ran.get("top_k", defaults.top_k) if top_k is None else top_k
    seeds = ran.get("seeds", defaults.seeds) if seeds is None else seeds
    random_cells = ran.get("random_cells", defaults.random_cells) if random_cells is None else random_cells
    journals = budget_journals(run)
    if not journals:
        raise SystemExit(f"{run}: no stand-alone stage journal yet (stages/budget-*/); run its "
                         "stages first (--stages all).")
    out = {"run": str(run), "reward": config["reward"], "journals": [str(j) for j in journals],
           "cost": search_cost(run)}
    done = lambda c: len(c["val"]) >= seeds  # noqa: E731
    mean = lambda d: statistics.fmean(d.values())  # noqa: E731
    # The pool is judged on the pipeline's own seeds (the first ``seeds``): a confirmation adds
    # seeds for a few finalists only, and with one budget its runs share the cheap journal.
    first = lambda d: statistics.fmean(d[s] for s in sorted(d)[:seeds])  # noqa: E731
    keep = frozenset(reference_keys(space, random_cells))

    cheap = cells_of(journals[0], references, keep)
    nasnet, randoms, finalists = split(cheap, space, random_cells)
    # a random cell's mean over the seeds it has so far (2 at least): unbiased, if noisier
    pool, rand = [c for c in finalists if done(c)], [c for c in randoms if len(c["val"]) >= 2]
    out["pool"] = {"finalists_done": len(pool), "finalists_expected": top_k,
                   "random_used": len(rand), "random_with_every_seed": sum(map(done, randoms)),
                   "budget_journal": str(journals[0]),
                   "finalists_mean": statistics.fmean(first(c["val"]) for c in pool) if pool else None,
                   "random_mean": statistics.fmean(first(c["val"]) for c in rand) if rand else None,
                   "finalists_val": [first(c["val"]) for c in pool]}
    if len(pool) >= 2 and len(rand) >= 2:
        out["pool"].update(mean_difference([first(c["val"]) for c in pool], [first(c["val"]) for c in rand]))

    final = cells_of(journals[-1], references, keep)
    nasnet, randoms, finalists = split(final, space, random_cells)
    ready = [c for c in finalists if done(c)]
    # with one budget (the default) every finalist reaches the final one; with halving, fewer
    out["final"] = {"finalists_done": len(ready), "finalists_expected": top_k if len(journals) == 1 else None,
                    "references_complete": nasnet is not None and done(nasnet) and sum(map(done, randoms)) == random_cells}
    if ready and nasnet is not None and done(nasnet):
        # The stages' pick: the held-out mean, among the finalists the confirmation gave more seeds
        # (all of them when there was none).
        most = max(len(c["val"]) for c in ready)
        confirmed = [c for c in ready if len(c["val"]) == most]
        best = max(confirmed, key=lambda c: mean(c["val"]))
        if most > seeds:
            out["final"]["confirmed"] = len(confirmed)
            out["final"]["references_complete"] &= len(nasnet["val"]) >= most
        sd = pooled_seed_sd([list(c["test"].values()) for c in final.values() if None not in c["test"].values()])
        out["final"].update(
            genotype=best["genotype"], val_mean=mean(best["val"]), test_mean=mean(best["test"]),
            nasnet_a_test_mean=mean(nasnet["test"]), seed_sd=sd, seeds=sorted(best["test"]),
            minus_nasnet_a=seeds_difference(list(best["test"].values()), list(nasnet["test"].values()), sd))
    return out


def main(argv=None) -> int:
    from keras_nasnet.search import StageConfig

    defaults = StageConfig()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="the PPO pipeline's search folder (--stages all)")
    p.add_argument("--other", default=None, help="the same pipeline with --strategy random")
    p.add_argument("--references", nargs="*", default=[], metavar="JOURNAL",
                   help="stand-alone journals to take the reference cells' missing seeds from")
    p.add_argument("--random-cells", type=int, default=None,
                   help="the stages' random reference cells (default: the run's, from its final.json, "
                        f"else {defaults.random_cells})")
    p.add_argument("--top-k", type=int, default=None,
                   help=f"the stages' finalists (default: the run's, else {defaults.top_k})")
    p.add_argument("--seeds", type=int, default=None,
                   help=f"seeds a cell needs to count (default: the run's, else {defaults.seeds})")
    p.add_argument("--out", default=None, help="JSON file to write (default: print only)")
    a = p.parse_args(argv)
    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.search import mean_difference, seeds_difference

    for j in a.references:
        if not (Path(j) / "config.json").is_file() or not (Path(j) / "trials.jsonl").is_file():
            p.error(f"--references {j}: not a stand-alone journal (config.json and trials.jsonl), e.g. "
                    "search/calibration/e1-45k-add-p73218/journal")
    result = {"ppo": pipeline(a.run, a.references, a.random_cells, a.seeds, a.top_k)}
    if a.other:
        result["other"] = pipeline(a.other, a.references, a.random_cells, a.seeds, a.top_k)
        f1, f2 = result["ppo"]["final"], result["other"]["final"]
        if "genotype" in f1 and "genotype" in f2:
            sd = (f1["seed_sd"] + f2["seed_sd"]) / 2  # each pipeline's seed noise, pooled over its cells
            ppo_test = _runs(a.run, f1["genotype"], a.references)
            other_test = _runs(a.other, f2["genotype"], a.references)
            result["ppo_minus_other"] = seeds_difference(ppo_test, other_test, sd)
        v1, v2 = result["ppo"]["pool"]["finalists_val"], result["other"]["pool"]["finalists_val"]
        if len(v1) >= 2 and len(v2) >= 2:
            result["ppo_pool_minus_other_pool"] = mean_difference(v1, v2)
    if a.out:
        write_json_atomic(Path(a.out), result, indent=1)
    report(result)
    return 0


def _runs(run, genotype, references) -> list:
    """The final cell's per-seed test accuracies in ``run``'s final journal."""
    cells = cells_of(budget_journals(run)[-1], references)  # a finalist: the journal has it
    return list(cells[json.dumps(genotype, sort_keys=True)]["test"].values())


def report(result) -> None:
    """Prints the targets, met or not, with the figures."""
    for name in ("ppo", "other"):
        r = result.get(name)
        if r is None:
            continue
        pool, final = r["pool"], r["final"]
        print(f"{name} ({r['run']}):")
        line = (f"  pool: {pool['finalists_done']} of {pool['finalists_expected']} finalists with every seed, "
                f"{pool['random_used']} random cells ({pool['random_with_every_seed']} with every seed)")
        if "difference" in pool:
            lo, hi = pool["difference_95"]
            line += (f"; finalists' mean {pool['finalists_mean']:.4f} minus random mean "
                     f"{pool['random_mean']:.4f} = {pool['difference']:+.4f} [{lo:+.4f}, {hi:+.4f}] "
                     f"(target +0.015: {'met' if pool['difference'] >= 0.015 else 'missed'}"
                     f"{'' if pool['finalists_done'] >= pool['finalists_expected'] else ', partial'})")
        print(line)
        if "minus_nasnet_a" in final:
            d = final["minus_nasnet_a"]
            print(f"  final cell: test {final['test_mean']:.4f} (held-out {final['val_mean']:.4f}) minus "
                  f"NASNet-A {final['nasnet_a_test_mean']:.4f} = {d['difference']:+.4f} "
                  f"[{d['difference_95'][0]:+.4f}, {d['difference_95'][1]:+.4f}] over seeds {final['seeds']} "
                  f"(target >= 0: {'met' if d['difference'] >= 0 else 'missed'}"
                  f"{'' if final['finalists_done'] == final['finalists_expected'] and final['references_complete'] else ', partial'})"
                  + (f", picked among {final['confirmed']} confirmed finalists" if "confirmed" in final else ""))
        else:
            print(f"  final cell: not yet ({final['finalists_done']} finalists with every seed; "
                  "NASNet-A needs every seed too)")
        cost = r["cost"]
        parts = []
        for k, v in cost["parts"].items():
            wall = f", {v['wall_only']} timed by the wall clock" if v["wall_only"] else ""
            parts.append(f"{k} {v['cpu_seconds'] / 3600:.2f} h ({v['children']} children{wall})")
        parts = ", ".join(parts)
        if cost["supernet_cpu_seconds"] is None:
            supernet = ("supernet not recorded (copied from another search, or trained by a version "
                        "that did not count it)" if r["reward"] == "cifar10-shared" else "no supernet")
        else:
            supernet = (f"supernet {cost['supernet_cpu_seconds'] / 3600:.2f} h"
                        + (" (partly counted)" if cost["supernet_partial"] else ""))
        print(f"  cost so far: {cost['cpu_hours']:.2f} CPU-hours: {supernet}, {parts} (target <= 12)")
    if "ppo_minus_other" in result:
        d = result["ppo_minus_other"]
        print(f"PPO's final cell minus the other pipeline's (test): {d['difference']:+.4f} "
              f"[{d['difference_95'][0]:+.4f}, {d['difference_95'][1]:+.4f}] "
              f"(target >= 0: {'met' if d['difference'] >= 0 else 'missed'})")
    if "ppo_pool_minus_other_pool" in result:
        d = result["ppo_pool_minus_other_pool"]
        print(f"PPO's finalists minus the other pipeline's (held-out, cell means): {d['difference']:+.4f} "
              f"[{d['difference_95'][0]:+.4f}, {d['difference_95'][1]:+.4f}]")


if __name__ == "__main__":
    raise SystemExit(main())
