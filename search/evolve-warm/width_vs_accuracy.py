"""Does a cell's width at equal parameters predict its accuracy, and where do searches drift?

Reads every stand-alone child recorded under ``search/`` (the stages' journals, the calibration's
and the studies' ``journal/`` folders, and the children of searches rewarded by ``cifar10``
stand-alone training), keeps those trained for 1 epoch at NASNet-A's parameter count (recipe 2),
and gives each cell its width (``keras_nasnet.search.rewards.matched_units``: the
``penultimate_filters`` of the 1-cell ``NASNetCIFAR`` with about 73,218 parameters). For 45,000
and 15,000 training images it prints Kendall's tau of width against the cells' mean held-out
accuracy (with its 95% bootstrap interval over cells; at 15,000 images most cells are the
evolution searches' own children, one seed each, which the searches selected on) and the mean accuracy at each width; for
each evolution study, the mean width of its first 50 and last 100 children.

Widths are cached in ``--cache`` (building about five small models per cell, 1-2 CPU-seconds).

    python search/evolve-warm/width_vs_accuracy.py --out search/evolve-warm/width-vs-accuracy.json
"""

import argparse
import json
from pathlib import Path


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="search", help="the folder of studies to read (default search)")
    p.add_argument("--cache", default="search/evolve-warm/widths.json", help="widths already computed")
    p.add_argument("--runs", nargs="+", default=["search/evolve/run", "search/evolve-scratch/run",
                                                 "search/evolve-30k/run", "search/evolve-warm/run"],
                   help="evolution searches whose width drift is printed (missing ones are skipped)")
    p.add_argument("--exclude", nargs="*", default=["search/evolve-warm", "search/evolve-warm-s1"],
                   help="folders left out (default: this study's folders and its replication, whose "
                        "children were picked for width; the figures quoted in its README are from "
                        "before them)")
    p.add_argument("--out", default=None, help="a JSON file for the figures")
    a = p.parse_args(argv)

    import numpy as np

    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.genotypes import Genotype
    from keras_nasnet.search import SearchSpace, load_trials, rank_correlations, read_config, \
        read_standalone_journal
    from keras_nasnet.search import matched_units

    params = 73218
    cache_path = Path(a.cache)
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}

    def width(genotype: dict) -> int:
        key = json.dumps(Genotype.from_dict(genotype).to_dict(), sort_keys=True)
        if key not in cache:
            cache[key] = matched_units(Genotype.from_dict(genotype), 1, params)
            if len(cache) % 25 == 0:
                write_json_atomic(cache_path, cache)
        return cache[key]

    def genotypes(folder, config):
        """A search's finished children as (trial, genotype dict, seed, accuracy)."""
        space = SearchSpace(**config["space"])
        for r in load_trials(folder):
            if r.get("status") == "ok" and r.get("reward") is not None:
                g = r["actions"]
                g = space.decode(g).to_dict() if isinstance(g, list) else g
                yield r["trial"], g, r.get("seed"), r["reward"]

    def same_budget(b) -> bool:
        return b.get("epochs") == 1 and b.get("match_params") == params and b.get("recipe_version") == 2

    accuracy = {15000: {}, 45000: {}}  # images -> {cell: {seed: accuracy}}
    for cfg in sorted(Path(a.root).glob("**/config.json")):
        folder = cfg.parent
        if not (folder / "trials.jsonl").exists() or any(folder.resolve().is_relative_to(Path(x).resolve())
                                                        for x in a.exclude):
            continue
        config = read_config(cfg)
        if config.get("stage") == "standalone":
            rows = read_standalone_journal(folder)
            items = [(r["genotype"], r["seed"], r["standalone_accuracy"], r["budget"]) for r in rows]
        elif config.get("reward") == "cifar10":
            budget = config["reward_args"]["proxy"]
            items = [(g, s, acc, budget) for _, g, s, acc in genotypes(folder, config)]
        else:
            continue
        for g, seed, acc, budget in items:
            if same_budget(budget) and budget.get("train_images") in accuracy:
                key = json.dumps(Genotype.from_dict(g).to_dict(), sort_keys=True)
                accuracy[budget["train_images"]].setdefault(key, {})[seed] = acc

    figures = {}
    for images, table in accuracy.items():
        cells = sorted(table)
        w = np.array([width(json.loads(c)) for c in cells])
        y = np.array([np.mean(list(table[c].values())) for c in cells])
        by_width = {int(v): {"cells": int((w == v).sum()), "mean": round(float(y[w == v].mean()), 4)}
                    for v in sorted(set(w.tolist()))}
        figures[f"e1-{images // 1000}k"] = {"correlation": rank_correlations(w, y), "by_width": by_width}
        c = figures[f"e1-{images // 1000}k"]["correlation"]
        print(f"1 epoch on {images:,} images: {len(cells)} cells, width vs mean held-out accuracy: Kendall tau "
              f"{c['kendall_tau']:.2f} [{c['kendall_tau_95'][0]:.2f}, {c['kendall_tau_95'][1]:.2f}]")
        print("  " + ", ".join(f"{v}: {d['mean']:.4f} ({d['cells']})" for v, d in by_width.items()))

    drift = {}
    for run in a.runs:
        if not (Path(run) / "config.json").exists():
            continue
        children = sorted(genotypes(run, read_config(Path(run) / "config.json")), key=lambda x: x[0])
        w = np.array([width(g) for _, g, _, _ in children])
        drift[run] = {"children": len(w), "first_50_mean_width": round(float(w[:50].mean()), 1),
                      "last_100_mean_width": round(float(w[-100:].mean()), 1) if len(w) >= 150 else None,
                      "median_width": float(np.median(w)), "at_48": int((w == 48).sum())}
        print(f"{run}: {drift[run]}")
    write_json_atomic(cache_path, cache)
    if a.out:
        write_json_atomic(a.out, {"params": params, "budgets": figures, "drift": drift})


if __name__ == "__main__":
    main()
