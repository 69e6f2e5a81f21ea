"""Does the shared-weights reward rank cells as stand-alone training does?

Scores every cell of ``standalone.jsonl`` (``shared_standalone.py``: NASNet-A, AmoebaNet-A, random
and searched cells, each trained alone at one fixed budget) as a path through the supernet a
``--reward cifar10-shared`` search trained (its ``supernet.npz``), and reports Kendall's tau and
Spearman's rho between the two accuracies: on the search's own reward (its ``reward_images``
held-out images) and on all held-out images.

    python search/shared/shared_ranking.py --run runs/shared/ppo \\
        --standalone search/shared/standalone.jsonl --out search/shared/ranking.json
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a --reward cifar10-shared search folder")
    p.add_argument("--standalone", required=True, help="shared_standalone.py's JSON-lines file")
    p.add_argument("--out", required=True)
    a = p.parse_args()
    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.search import SharedWeightsReward, kendall_tau, spearman
    from keras_nasnet.search import read_standalone as read_rows

    shared = SharedWeightsReward.from_run(a.run)
    by_cell = {}
    for r in read_rows(a.standalone):
        by_cell.setdefault(r["cell"], {"actions": r["actions"], "runs": []})["runs"].append(r["standalone_accuracy"])
    rows = []
    for name, c in by_cell.items():
        t = time.time()
        reward = shared.accuracy(c["actions"])  # what the search sees
        full = shared.accuracy(c["actions"], images=shared.config.val_images)
        rows.append({"cell": name, "standalone_accuracy": float(np.mean(c["runs"])), "standalone_runs": c["runs"],
                     "shared_reward": reward, "shared_accuracy_all_val": full,
                     "shared_seconds": round(time.time() - t, 2), "actions": c["actions"]})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "actions"}), flush=True)
    alone = [r["standalone_accuracy"] for r in rows]
    res = {
        "cells": len(rows),
        "kendall_tau_search_reward": kendall_tau([r["shared_reward"] for r in rows], alone),
        "kendall_tau_all_val": kendall_tau([r["shared_accuracy_all_val"] for r in rows], alone),
        "spearman_search_reward": spearman([r["shared_reward"] for r in rows], alone),
        "spearman_all_val": spearman([r["shared_accuracy_all_val"] for r in rows], alone),
        "shared_budget": {**json.loads((Path(a.run) / "config.json").read_text())["reward_args"]["shared"],
                          "supernet_steps": shared.step},
        "standalone_budget": read_rows(a.standalone)[0]["budget"],
        "rows": sorted(rows, key=lambda r: -r["standalone_accuracy"]),
    }
    write_json_atomic(a.out, res)
    print({k: v for k, v in res.items() if k.startswith(("kendall", "spearman", "cells"))})


if __name__ == "__main__":
    main()
