"""A training-free score against the final budget's ground truth (issue 20, part 4).

The literature's cheapest alternative to a supernet: score each cell at initialisation, before any
training. This script measures NASWOT (Mellor et al., "Neural Architecture Search without
Training", ICML 2021): for a batch of N images, every ReLU unit of the untrained network gives
each image a bit (active or not); the kernel K[i, j] counts the units on which images i and j
agree, and the score is log|det K|. Networks that separate the images' activation patterns score
higher. Mellor et al. report Kendall tau about 0.57 on NAS-Bench-201's CIFAR-10 (Spearman 0.74-0.78).

For every cell of the given stand-alone journals (the ground truths: e.g. the calibration's 25
cells, each pipeline's 29), the network is built as its stand-alone child was (``NASNetCIFAR`` at
the journal's cells and the width that gives the journal's parameter count,
``keras_nasnet.search.rewards.matched_units``) and scored on ``--images`` CIFAR-10 training images
(a fixed draw from the 45,000-image split), averaged over ``--inits`` initialisations. Reported per
journal, each with its 95% bootstrap interval over cells: Kendall's tau of NASWOT, of the width
baseline, and of the two ranks' mean, against the cells' mean held-out accuracy; NASWOT's tau
minus the width's (paired bootstrap); and, for a journal sharing cells with an earlier one (a
pipeline's references), the taus over its own cells alone (its finalists).

    python search/reward/zero_cost.py --data ../shared/datasets/cifar10-jpeg.zip \\
        --truth search/calibration/e1-45k-add-p73218/journal search/fair/ppo/stages/budget-1-p73218 \\
                search/fair/random/stages/budget-1-p73218 --out search/reward/zero-cost.json

Cells already scored in ``--out`` are kept (the file is written after every cell), so an
interrupted run continues where it stopped.
"""

import argparse
import json
import statistics
import time
from pathlib import Path


def naswot(model, x) -> float:
    """log|det K| of the ReLU activation codes of ``model`` on the batch ``x`` (training-mode
    batch statistics, as the untrained network sees it)."""
    import keras
    import numpy as np

    relus = [layer.output for layer in model.layers
             if isinstance(layer, keras.layers.Activation) and layer.get_config()["activation"] == "relu"]
    if not relus:
        raise ValueError("the model has no ReLU activation layers")
    probe = keras.Model(model.inputs, relus)
    kernel = np.zeros((len(x), len(x)), np.float64)
    for a in probe(x, training=True):
        codes = (keras.ops.convert_to_numpy(a).reshape(len(x), -1) > 0).astype(np.float32)
        kernel += codes @ codes.T + (1 - codes) @ (1 - codes).T
    sign, logdet = np.linalg.slogdet(kernel)
    return float(logdet) if sign > 0 else float("-inf")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--truth", nargs="+", required=True, metavar="JOURNAL",
                   help="stand-alone journals (config.json and trials.jsonl) with their cells' accuracies")
    p.add_argument("--data", default=None, help="CIFAR-10 source (see keras_nasnet.data); default tfds")
    p.add_argument("--images", type=int, default=128, help="images per batch (Mellor et al.: 128)")
    p.add_argument("--inits", type=int, default=3, help="initialisations to average per cell")
    p.add_argument("--out", required=True, help="JSON file: written after every cell, resumed from")
    a = p.parse_args(argv)

    import keras
    import numpy as np

    from keras_nasnet import NASNetCIFAR
    from keras_nasnet.data import load_cifar10
    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.genotypes import Genotype
    from keras_nasnet.search import rank_correlations, read_standalone_journal, tau_difference
    from keras_nasnet.search import ranks
    from keras_nasnet.search import matched_units

    truths = {}
    for j in a.truth:
        if not (Path(j) / "config.json").is_file():
            p.error(f"--truth {j}: not a stand-alone journal (no config.json)")
        rows = read_standalone_journal(j)
        if not rows:
            p.error(f"--truth {j}: no finished stand-alone child yet")
        truths[j] = rows
    out = Path(a.out)
    result = json.loads(out.read_text()) if out.is_file() else {}
    if result and (result.get("images"), result.get("inits")) != (a.images, a.inits):
        raise SystemExit(f"{out} was scored with --images {result['images']} --inits {result['inits']}; "
                         "give those or another --out.")
    result.update(images=a.images, inits=a.inits)
    scores = result.setdefault("scores", {})  # cell key (genotype JSON and width) -> mean NASWOT

    (xtr, _), _ = load_cifar10(a.data)
    # a fixed draw from the 45,000 training images the children train on (the last 5,000 are held out)
    x = xtr[np.random.default_rng(0).permutation(45_000)[:a.images]].astype("float32")

    tables = {}
    for j, rows in truths.items():
        budget = rows[0]["budget"]
        if not budget.get("match_params"):
            raise SystemExit(f"{j}: its children are not at one parameter count; give journals made "
                             "with match_params (e.g. search/calibration/e1-45k-add-p73218/journal).")
        cells: dict = {}
        for r in rows:
            cells.setdefault(r["cell"], {"genotype": r["genotype"], "seeds": []})["seeds"].append(r["standalone_accuracy"])
        table = []
        for key, c in cells.items():
            g = Genotype.from_dict(c["genotype"])
            width = matched_units(g, budget["num_cells"], budget["match_params"])
            skey = json.dumps([key, budget["num_cells"], width])
            if skey not in scores:
                t = time.time()
                values = []
                for init in range(a.inits):
                    keras.utils.set_random_seed(init)
                    model = NASNetCIFAR(budget["num_cells"], width, genotype=g)
                    values.append(naswot(model, x))
                    keras.backend.clear_session()
                scores[skey] = statistics.fmean(values)
                write_json_atomic(out, result, indent=1)
                print(f"{j}: cell {len(table) + 1}/{len(cells)}: NASWOT {scores[skey]:.1f}, width {width}, "
                      f"{time.time() - t:.0f} s", flush=True)
            table.append({"cell": key, "truth": statistics.fmean(c["seeds"]), "seeds": len(c["seeds"]),
                          "width": width, "naswot": scores[skey]})
        truth = [t["truth"] for t in table]
        nw, wd = [t["naswot"] for t in table], [t["width"] for t in table]
        both = list((ranks(nw) + ranks(wd)) / 2)  # the mean of the two ranks
        tables[j] = {"cells": len(table), "naswot": rank_correlations(nw, truth),
                     "width": rank_correlations(wd, truth), "naswot_and_width": rank_correlations(both, truth),
                     "naswot_minus_width": tau_difference(nw, wd, truth), "rows": table}
        # the cells no earlier journal has (a pipeline's finalists beside the shared references):
        # can a score rank good cells among good ones?
        seen = {t["cell"] for k in tables if k != j for t in tables[k]["rows"]}
        new = [t for t in table if t["cell"] not in seen]
        if seen and len(new) >= 3:
            tables[j]["new_cells"] = {"cells": len(new),
                                      "naswot": rank_correlations([t["naswot"] for t in new], [t["truth"] for t in new]),
                                      "width": rank_correlations([t["width"] for t in new], [t["truth"] for t in new])}
    result["truths"] = tables
    if len(tables) > 1:  # every journal's cells once (a cell in several: the row with most seeds)
        union: dict = {}
        for t in tables.values():
            for row in t["rows"]:
                if row["cell"] not in union or row["seeds"] > union[row["cell"]]["seeds"]:
                    union[row["cell"]] = row
        rows = list(union.values())
        truth = [r["truth"] for r in rows]
        result["all_cells"] = {"cells": len(rows), **{k: rank_correlations([r[k] for r in rows], truth)
                                                     for k in ("naswot", "width")},
                               "naswot_minus_width": tau_difference([r["naswot"] for r in rows],
                                                                    [r["width"] for r in rows], truth)}
    write_json_atomic(out, result, indent=1)
    for j, t in tables.items():
        print(f"{j} ({t['cells']} cells):")
        for k in ("naswot", "width", "naswot_and_width"):
            lo, hi = t[k]["kendall_tau_95"]
            print(f"  {k}: tau {t[k]['kendall_tau']:+.2f} [{lo:+.2f}, {hi:+.2f}]")
        d = t["naswot_minus_width"]
        print(f"  naswot minus width: {d['difference']:+.2f} [{d['difference_95'][0]:+.2f}, {d['difference_95'][1]:+.2f}]")
        if "new_cells" in t:
            for k in ("naswot", "width"):
                c = t["new_cells"][k]
                lo, hi = c["kendall_tau_95"]
                print(f"  {k}, the {c['cells']} cells no earlier journal has: tau {c['kendall_tau']:+.2f} [{lo:+.2f}, {hi:+.2f}]")
    if "all_cells" in result:
        t = result["all_cells"]
        print(f"all {t['cells']} cells:")
        for k in ("naswot", "width"):
            lo, hi = t[k]["kendall_tau_95"]
            print(f"  {k}: tau {t[k]['kendall_tau']:+.2f} [{lo:+.2f}, {hi:+.2f}]")
        d = t["naswot_minus_width"]
        print(f"  naswot minus width: {d['difference']:+.2f} [{d['difference_95'][0]:+.2f}, {d['difference_95'][1]:+.2f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
