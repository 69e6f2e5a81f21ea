"""How well does a trained supernet rank cells at the final stand-alone budget, and on how many
held-out images should it score them? (issue 20, part 4)

Scores every cell of a stand-alone ground truth (a ``train_standalone`` journal, e.g.
``search/calibration/e1-45k-add-p73218/journal``: NASNet-A and the add-only space's reference random
cells with 2-3 seeds at the final budget) as a path through the supernet of a
``--reward cifar10-shared`` search folder, on each 500-image chunk of the held-out split, and
reports Kendall's tau and Spearman's rho against the cells' mean stand-alone accuracy, each with
its 95% bootstrap interval over cells, for:

* ``first-N``: the first N held-out images (N = 500, the search's default reward; 1000; 2000;
  all of them);
* ``rescore``: the held-out images after the search's ``reward_images``, the split the stages
  re-score on;
* ``...-loss``: the same images ranked by minus the mean cross-entropy of the true labels
  instead of accuracy (a continuous score);
* ``seed-vs-seed``: the ground truth's own seed 0 against seed 1: how well one training run ranks
  cells as another does (the ceiling against the mean of 2-3 seeds is somewhat higher).

    python search/reward/reward_vs_truth.py --run search/fair/ppo --truth search/calibration/e1-45k-add-p73218/journal \\
        --out search/reward/supernet-10ep.json

The truth's cells must be in the search's (add-only) space; NASNet-A's path is its encoding there
(its ``concat`` lists, which are not decisions of the space, may differ from the stand-alone
cell's).
"""

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

CHUNK = 500  # the supernet scores with BatchNorm on each 500-image chunk's statistics


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a --reward cifar10-shared search folder (trained supernet)")
    p.add_argument("--truth", required=True, help="a stand-alone journal folder (train_standalone's)")
    p.add_argument("--data", default=None, help="the CIFAR-10 source, if not where the search found it")
    p.add_argument("--out", required=True, help="JSON file to write")
    a = p.parse_args(argv)
    import numpy as np

    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.genotypes import Genotype
    from keras_nasnet.search import SharedWeightsReward, rank_correlations, read_standalone_journal

    rows = read_standalone_journal(a.truth)
    if not rows:
        raise SystemExit(f"{a.truth}: no finished stand-alone child yet.")
    shared = SharedWeightsReward.from_run(a.run, data=a.data)
    cells: dict = {}
    for r in rows:
        c = cells.setdefault(r["cell"], {"genotype": r["genotype"], "seeds": {}})
        c["seeds"][r["seed"]] = r["standalone_accuracy"]
    val = shared.config.val_images
    chunks = [(s, min(val, s + CHUNK)) for s in range(0, val, CHUNK)]
    out_rows = []
    for key, c in cells.items():
        try:
            actions = shared.space.encode(Genotype.from_dict(c["genotype"]))
        except (ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"A ground-truth cell is not in the search's space ({e}); use a journal of "
                             "that space (calibrate.py --space add).") from None
        t = time.time()
        scored = [shared.evaluate(actions, images=e - s, start=s) for s, e in chunks]
        hits = [round(m["accuracy"] * (e - s)) for m, (s, e) in zip(scored, chunks)]
        losses = [round(m["loss"], 5) for m in scored]
        out_rows.append({"genotype": c["genotype"], "seeds": c["seeds"],
                         "truth": statistics.fmean(c["seeds"].values()), "chunk_hits": hits,
                         "chunk_loss": losses,
                         "seconds": round(time.time() - t, 1)})
        print(json.dumps({k: v for k, v in out_rows[-1].items() if k != "genotype"}), flush=True)

    def score(lo, hi):  # accuracy on held-out images [lo, hi), whole chunks
        return [sum(h for (s, e), h in zip(chunks, r["chunk_hits"]) if lo <= s and e <= hi) / (hi - lo)
                for r in out_rows]

    def minus_loss(lo, hi):  # minus the mean cross-entropy on [lo, hi): higher ranks higher
        return [-sum(x * (e - s) for (s, e), x in zip(chunks, r["chunk_loss"]) if lo <= s and e <= hi)
                / (hi - lo) for r in out_rows]

    truth = [r["truth"] for r in out_rows]
    variants = {}
    for n in sorted({500, 1000, 2000, val}):
        if n <= val:
            variants[f"first-{n}"] = {"images": [0, n], **rank_correlations(score(0, n), truth)}
            variants[f"first-{n}-loss"] = {"images": [0, n], **rank_correlations(minus_loss(0, n), truth)}
    start = shared.config.reward_images
    if start % CHUNK == 0 and start < val:
        variants["rescore"] = {"images": [start, val], **rank_correlations(score(start, val), truth)}
        variants["rescore-loss"] = {"images": [start, val],
                                    **rank_correlations(minus_loss(start, val), truth)}
    both = [r for r in out_rows if 0 in r["seeds"] and 1 in r["seeds"]]
    if len(both) >= 5:
        s0, s1 = [r["seeds"][0] for r in both], [r["seeds"][1] for r in both]
        variants["seed-vs-seed"] = rank_correlations(s0, s1)
    result = {"run": str(a.run), "supernet_steps": shared.step, "shared": dataclasses.asdict(shared.config),
              "truth": str(a.truth), "truth_budget": rows[0]["budget"], "cells": len(out_rows),
              "variants": variants, "rows": sorted(out_rows, key=lambda r: -r["truth"])}
    write_json_atomic(Path(a.out), result, indent=1)
    for name, v in variants.items():
        print(f"{name:>14}: tau {v['kendall_tau']:+.3f} [{v['kendall_tau_95'][0]:+.3f}, "
              f"{v['kendall_tau_95'][1]:+.3f}], rho {v['spearman']:+.3f} ({v['cells']} cells)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
