"""How much ranking can the stand-alone ground truth show, and how much do the shared rewards show?

The stand-alone proxy (``shared_standalone.py``: 1 epoch on 10,000 images) is itself noisy: two
seeds of one cell differ by a few points, about as much as cells differ from one another. This
script measures that noise on every cell trained with two or more seeds, and from it the best
Kendall tau any reward could reach against the seed mean (the ceiling a perfect, noise-free
ranker would get); then it re-scores each ``shared_ranking.py`` result against the seed means of
the current ``standalone.jsonl``, with a bootstrap interval over cells. No training or scoring is
run: it reads the JSON files only.

    python search/shared/shared_reliability.py --standalone search/shared/standalone.jsonl \\
        --ranking search/shared/ranking_v3.json search/shared/ranking_v4.json \\
        --out search/shared/reliability.json

The ceiling assumes cells' true accuracies and the seed noise are normal and independent: one
seed's reliability R1 is the Pearson correlation between seeds across cells, the mean of k seeds
has R_k = k R1 / (1 + (k - 1) R1) (Spearman-Brown), its correlation with the truth is sqrt(R_k),
and for a bivariate normal Kendall's tau is (2 / pi) arcsin(r).
"""

import argparse
import json
from pathlib import Path

import numpy as np


def kendall_tau(a, b) -> float:
    """Kendall's tau-b (keras_nasnet's, imported on use so --help stays quick)."""
    from keras_nasnet.search import kendall_tau as tau

    return tau(a, b)


def spearman(a, b) -> float:
    """Spearman's rho (keras_nasnet's)."""
    from keras_nasnet.search import spearman as rho

    return rho(a, b)


def read_rows(path) -> list:
    """The rows of a ``standalone.jsonl`` (keras_nasnet's loader)."""
    from keras_nasnet.search import read_standalone

    return read_standalone(path)


def seed_table(rows) -> dict:
    """``{cell: {seed: accuracy}}`` of a ``standalone.jsonl`` (one budget: the first row's)."""
    budget = rows[0]["budget"]
    out = {}
    for r in rows:
        if r["budget"] == budget:
            out.setdefault(r["cell"], {})[r["seed"]] = r["standalone_accuracy"]
    return out


def noise(table: dict) -> dict:
    """Seed noise against differences between cells, on the cells with seeds 0 and 1."""
    both = sorted(c for c, s in table.items() if 0 in s and 1 in s)
    a = np.array([table[c][0] for c in both])
    b = np.array([table[c][1] for c in both])
    within_sd = float(np.sqrt(np.mean((a - b) ** 2) / 2))  # per-seed noise, pooled over cells
    r1 = float(np.corrcoef(a, b)[0, 1])
    out = {"cells_with_two_seeds": len(both),
           "seed_sd": within_sd,
           "largest_seed_difference": float(np.max(np.abs(a - b))),
           "between_cell_sd_of_seed_means": float(np.std((a + b) / 2, ddof=1)),
           "pearson_seed0_seed1": r1,
           "kendall_tau_seed0_seed1": kendall_tau(a, b),
           "spearman_seed0_seed1": spearman(a, b)}
    for k in (1, 2, 4):
        rk = k * r1 / (1 + (k - 1) * r1) if r1 > 0 else 0.0
        out[f"ceiling_tau_vs_mean_of_{k}_seeds"] = float(2 / np.pi * np.arcsin(np.sqrt(max(rk, 0.0))))
    return out


def bootstrap_tau(x, y, reps=2000, seed=0) -> list:
    """2.5th and 97.5th percentiles of Kendall's tau over cells resampled with replacement."""
    from keras_nasnet.search import bootstrap_interval, kendall_tau as tau

    return bootstrap_interval(tau, x, y, reps, seed)


def rescore(ranking: dict, table: dict) -> dict:
    """A ``shared_ranking.py`` result's shared scores against seed 0 and against the seed means."""
    rows = [r for r in ranking["rows"] if r["cell"] in table and 0 in table[r["cell"]]]
    seed0 = [table[r["cell"]][0] for r in rows]
    mean = [float(np.mean(list(table[r["cell"]].values()))) for r in rows]
    out = {"cells": len(rows), "seeds_per_cell": sorted({len(table[r["cell"]]) for r in rows}),
           "supernet_steps": ranking["shared_budget"].get("supernet_steps")}
    for key, name in (("shared_reward", "search_reward"), ("shared_accuracy_all_val", "all_val")):
        s = [r[key] for r in rows]
        out[f"kendall_tau_{name}_vs_seed0"] = kendall_tau(s, seed0)
        out[f"kendall_tau_{name}_vs_seed_mean"] = kendall_tau(s, mean)
        out[f"kendall_tau_{name}_vs_seed_mean_95"] = bootstrap_tau(s, mean)
        out[f"spearman_{name}_vs_seed_mean"] = spearman(s, mean)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--standalone", required=True, help="shared_standalone.py's JSON-lines file")
    p.add_argument("--ranking", nargs="*", default=[], help="shared_ranking.py results to re-score")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    from keras_nasnet.fileio import write_json_atomic

    table = seed_table(read_rows(a.standalone))
    res = {"standalone_budget": read_rows(a.standalone)[0]["budget"], "noise": noise(table),
           "rankings": {Path(f).name: rescore(json.loads(Path(f).read_text()), table) for f in a.ranking}}
    write_json_atomic(a.out, res)
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
