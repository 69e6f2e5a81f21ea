"""Does the search proxy rank cells like a longer training does?

    python search/cifar10_ppo/proxy_ranking.py search/cifar10_ppo --data ../shared/datasets/cifar10-jpeg.zip

Trains three cells -- the search's best, NASNet-A, and a uniformly random cell -- with the search's
own proxy and with a longer proxy (more images, more epochs, wider), each rewarded on the same
5,000 held-out images, and writes ``proxy_ranking.json`` into the search folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("search_dir")
    p.add_argument("--data", default=None)
    p.add_argument("--epochs", type=int, default=3, help="epochs of the longer proxy")
    p.add_argument("--train-images", type=int, default=None, help="default: the search proxy's")
    p.add_argument("--filters", type=int, default=None, help="default: the search proxy's")
    p.add_argument("--only-reference", action="store_true",
                   help="measure NASNet-A and the random cell only (while the search still runs)")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    from keras_nasnet import NASNET_A
    from keras_nasnet.search import CIFARReward, ProxyConfig, SearchSpace, load_trials

    out = Path(a.search_dir)
    config = json.loads((out / "config.json").read_text())
    space = SearchSpace(**config["space"])
    search_proxy = ProxyConfig(**config["reward_args"]["proxy"])
    if a.data:
        search_proxy.data = a.data
    longer = dataclasses.replace(search_proxy, epochs=a.epochs,
                                 train_images=a.train_images or search_proxy.train_images,
                                 penultimate_filters=a.filters or search_proxy.penultimate_filters)
    trials = load_trials(out)
    best = max(trials, key=lambda t: t["reward"])
    cells = {
        "search best (trial %d)" % best["trial"]: best["actions"],
        "NASNet-A": space.encode(NASNET_A),
        "random": space.sample_uniform(np.random.default_rng(a.seed), 1)[0].tolist(),
    }
    # Measurements of an earlier run with the same proxies are reused (keyed by the cell's actions),
    # so the script can run while the search is still going and again when it has finished.
    done = {}
    result_file = out / "proxy_ranking.json"
    if result_file.exists():
        old = json.loads(result_file.read_text())
        if old["longer_proxy"] == dataclasses.asdict(longer):
            done = {json.dumps(r["actions"]): r for r in old["cells"]}
    if a.only_reference:
        cells = {k: v for k, v in cells.items() if not k.startswith("search best")}
    rows = []
    for name, actions in cells.items():
        if json.dumps(actions) in done:
            rows.append({**done[json.dumps(actions)], "cell": name})
            continue
        row = {"cell": name, "actions": actions, "genotype": space.decode(actions).to_dict()}
        for label, proxy in (("search_proxy", search_proxy), ("longer_proxy", longer)):
            if label == "search_proxy" and name.startswith("search best"):
                row[label] = best["reward"]  # measured during the search, same seed rule
                continue
            t = time.time()
            row[label] = CIFARReward(space, proxy)(actions, seed=a.seed)
            row[label + "_seconds"] = round(time.time() - t, 1)
            print(name, label, row[label], flush=True)
        rows.append(row)
    order = lambda key: [r["cell"] for r in sorted(rows, key=lambda r: -r[key])]
    result = {"search_proxy": dataclasses.asdict(search_proxy), "longer_proxy": dataclasses.asdict(longer),
              "cells": rows, "rank_by_search_proxy": order("search_proxy"),
              "rank_by_longer_proxy": order("longer_proxy")}
    result["same_ranking"] = result["rank_by_search_proxy"] == result["rank_by_longer_proxy"]
    result_file.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: result[k] for k in ("rank_by_search_proxy", "rank_by_longer_proxy", "same_ranking")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
