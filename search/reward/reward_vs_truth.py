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
  cells as another does (the ceiling against the mean of 2-3 seeds is somewhat higher);
* ``width-at-equal-params`` (a zero-cost baseline, no supernet): the width each cell gets at the
  truth's parameter count (``keras_nasnet.search.rewards.matched_units``): cells of cheaper ops
  get wider;

and, to tell a real difference from luck: tau on each 500-image chunk alone (``per_chunk``), how
well the supernet agrees with itself from one chunk to another (``chunk_vs_chunk``), and the
cross-entropy's tau minus the accuracy's with a paired bootstrap interval (``loss_minus_accuracy``).
``--reanalyse FILE`` recomputes all of it from a written JSON without scoring again (with the
truth journal's seeds as they are now, if the journal is here).

    python search/reward/reward_vs_truth.py --run search/fair/ppo --truth search/calibration/e1-45k-add-p73218/journal \\
        --out search/reward/supernet-10ep.json
    python search/reward/reward_vs_truth.py --reanalyse search/reward/supernet-10ep.json

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
    p.add_argument("--run", help="a --reward cifar10-shared search folder (trained supernet)")
    p.add_argument("--truth", help="a stand-alone journal folder (train_standalone's)")
    p.add_argument("--data", default=None, help="the CIFAR-10 source, if not where the search found it")
    p.add_argument("--out", help="JSON file to write")
    p.add_argument("--reanalyse", metavar="FILE", default=None,
                   help="recompute the statistics of a JSON this script wrote (no scoring) and rewrite it")
    a = p.parse_args(argv)
    from keras_nasnet.fileio import write_json_atomic

    if a.reanalyse:
        result = json.loads(Path(a.reanalyse).read_text())
        refresh_truth(result)
        add_widths(result["rows"], result["truth_budget"])
        result.update(analyse(result["rows"], result["shared"]["val_images"], result["shared"]["reward_images"]))
        write_json_atomic(Path(a.out or a.reanalyse), result, indent=1)
        report(result)
        return 0
    if not (a.run and a.truth and a.out):
        p.error("--run, --truth and --out are needed (or --reanalyse FILE)")

    from keras_nasnet.genotypes import Genotype
    from keras_nasnet.search import SharedWeightsReward, read_standalone_journal

    rows = read_standalone_journal(a.truth)
    if not rows:
        raise SystemExit(f"{a.truth}: no finished stand-alone child yet.")
    shared = SharedWeightsReward.from_run(a.run, data=a.data)
    cells: dict = {}
    for r in rows:
        c = cells.setdefault(r["cell"], {"genotype": r["genotype"], "seeds": {}})
        c["seeds"][r["seed"]] = r["standalone_accuracy"]
    val = shared.config.val_images
    chunks = _chunks(val)
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
    add_widths(out_rows, rows[0]["budget"])
    result = {"run": str(a.run), "supernet_steps": shared.step, "shared": dataclasses.asdict(shared.config),
              "truth": str(a.truth), "truth_budget": rows[0]["budget"], "cells": len(out_rows),
              **analyse(out_rows, val, shared.config.reward_images),
              "rows": sorted(out_rows, key=lambda r: -r["truth"])}
    write_json_atomic(Path(a.out), result, indent=1)
    report(result)
    return 0


def refresh_truth(result) -> None:
    """Takes the cells' stand-alone seeds again from the truth journal, if it is here: seeds that
    finished after the scoring count without scoring again (the supernet's scores stay)."""
    from keras_nasnet.search import read_standalone_journal

    if not (Path(result["truth"]) / "trials.jsonl").is_file():
        return
    seeds: dict = {}
    for r in read_standalone_journal(result["truth"]):
        seeds.setdefault(json.dumps(r["genotype"], sort_keys=True), {})[str(r["seed"])] = r["standalone_accuracy"]
    changed = 0
    for row in result["rows"]:
        new = seeds.get(json.dumps(row["genotype"], sort_keys=True))
        if new and new != {str(k): v for k, v in row["seeds"].items()}:
            row["seeds"], row["truth"], changed = new, statistics.fmean(new.values()), changed + 1
    if changed:
        result["rows"].sort(key=lambda r: -r["truth"])  # as written: best cell first
        print(f"{changed} cells' stand-alone seeds taken again from {result['truth']}")


def add_widths(rows, budget) -> None:
    """Gives each row ``matched_width``: its cell's width at the truth's parameter count (``budget``:
    the journal's proxy record, with ``match_params``), the zero-cost baseline; builds about ten
    small models per cell, once (the JSON keeps them)."""
    if not budget.get("match_params"):
        return  # a truth at one width: no such baseline
    from keras_nasnet.genotypes import Genotype
    from keras_nasnet.search import matched_units

    for r in rows:
        if "matched_width" not in r:
            r["matched_width"] = matched_units(Genotype.from_dict(r["genotype"]), budget["num_cells"],
                                               budget["match_params"])


def _chunks(val):
    return [(s, min(val, s + CHUNK)) for s in range(0, val, CHUNK)]


def analyse(rows, val: int, reward_images: int) -> dict:
    """The statistics of the scored ``rows`` (``variants``, ``per_chunk``, ``chunk_vs_chunk``,
    ``loss_minus_accuracy``, ``loss_minus_width``); rows of an older JSON without ``chunk_loss``
    get the accuracy statistics only."""
    import numpy as np

    from keras_nasnet.search import kendall_tau, rank_correlations, tau_difference

    chunks = _chunks(val)

    def score(lo, hi):  # accuracy on held-out images [lo, hi), whole chunks
        return [sum(h for (s, e), h in zip(chunks, r["chunk_hits"]) if lo <= s and e <= hi) / (hi - lo)
                for r in rows]

    def minus_loss(lo, hi):  # minus the mean cross-entropy on [lo, hi): higher ranks higher
        return [-sum(x * (e - s) for (s, e), x in zip(chunks, r["chunk_loss"]) if lo <= s and e <= hi)
                / (hi - lo) for r in rows]

    truth = [r["truth"] for r in rows]
    has_loss = all("chunk_loss" in r for r in rows)
    variants, spans = {}, {}
    for n in sorted({500, 1000, 2000, val}):
        if n <= val:
            spans[f"first-{n}"] = (0, n)
    if reward_images % CHUNK == 0 and reward_images < val:
        spans["rescore"] = (reward_images, val)
    for name, (lo, hi) in spans.items():
        variants[name] = {"images": [lo, hi], **rank_correlations(score(lo, hi), truth)}
        if has_loss:
            variants[f"{name}-loss"] = {"images": [lo, hi], **rank_correlations(minus_loss(lo, hi), truth)}
    both = [r for r in rows if _seed(r, 0) is not None and _seed(r, 1) is not None]
    if len(both) >= 5:
        variants["seed-vs-seed"] = rank_correlations([_seed(r, 0) for r in both], [_seed(r, 1) for r in both])
    if all("matched_width" in r for r in rows):
        width = [r["matched_width"] for r in rows]
        variants["width-at-equal-params"] = rank_correlations(width, truth)
    acc = np.array([r["chunk_hits"] for r in rows], float)
    per_chunk = {"accuracy": [kendall_tau(acc[:, k], truth) for k in range(len(chunks))]}
    pairs = [(i, j) for i in range(len(chunks)) for j in range(i + 1, len(chunks))]

    def agreement(m):  # mean tau between two chunks' scores; None with a single chunk
        return float(np.mean([kendall_tau(m[:, i], m[:, j]) for i, j in pairs])) if pairs else None

    out = {"variants": variants, "per_chunk": per_chunk, "chunk_vs_chunk": {"accuracy": agreement(acc)}}
    if has_loss:
        loss = -np.array([r["chunk_loss"] for r in rows], float)
        per_chunk["loss"] = [kendall_tau(loss[:, k], truth) for k in range(len(chunks))]
        out["chunk_vs_chunk"]["loss"] = agreement(loss)
        out["loss_minus_accuracy"] = {name: tau_difference(minus_loss(lo, hi), score(lo, hi), truth)
                                      for name, (lo, hi) in spans.items()}
        if "width-at-equal-params" in variants:  # the steadiest supernet score against the free baseline
            out["loss_minus_width"] = tau_difference(minus_loss(0, val), width, truth)
    return out


def _seed(row, seed):  # JSON keys are strings once written
    return row["seeds"].get(seed, row["seeds"].get(str(seed)))


def report(result) -> None:
    """Prints the statistics of :func:`analyse`."""
    for name, v in result["variants"].items():
        print(f"{name:>21}: tau {v['kendall_tau']:+.3f} [{v['kendall_tau_95'][0]:+.3f}, "
              f"{v['kendall_tau_95'][1]:+.3f}], rho {v['spearman']:+.3f} ({v['cells']} cells)")
    for metric, taus in result["per_chunk"].items():
        agree = result["chunk_vs_chunk"][metric]
        print(f"each 500-image chunk alone, by {metric}: tau {min(taus):+.3f} to {max(taus):+.3f} "
              f"(mean {statistics.fmean(taus):+.3f})"
              + ("" if agree is None else f"; two chunks agree with each other with tau {agree:+.3f} (mean over pairs)"))
    if "loss_minus_width" in result:
        d = result["loss_minus_width"]
        print(f"cross-entropy on all held-out images minus the width baseline: tau {d['difference']:+.3f} "
              f"[{d['difference_95'][0]:+.3f}, {d['difference_95'][1]:+.3f}] (paired bootstrap)")
    for name, d in result.get("loss_minus_accuracy", {}).items():
        print(f"{name:>16}: tau by cross-entropy minus tau by accuracy {d['difference']:+.3f} "
              f"[{d['difference_95'][0]:+.3f}, {d['difference_95'][1]:+.3f}] (paired bootstrap)")


if __name__ == "__main__":
    raise SystemExit(main())
