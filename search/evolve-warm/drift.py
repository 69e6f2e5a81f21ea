"""Width and reward of a search's children, block by block of trials: where evolution drifts.

For each block of ``--block`` trials (in trial order) of every search folder given, prints the
children's mean width (the filters a cell gets at NASNet-A's 73,218 parameters,
``matched_units``; about a second per cell, cached in ``--cache``) and their mean and best
reward. A search that keeps wide cells and one that drifts to narrow ones can then be compared
at the same trial numbers (same child seeds).

    python search/evolve-warm/drift.py search/evolve-warm/run search/evolve-scratch/run search/evolve/run

Writes ``--out`` (JSON: one list of blocks per folder) if given.
"""

import argparse
import json
import statistics
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="search folders (config.json + trials.jsonl)")
    p.add_argument("--block", type=int, default=50, help="trials per block")
    p.add_argument("--cache", default="search/evolve-warm/widths.json", help="widths already computed")
    p.add_argument("--out", default=None, help="write the blocks here (JSON)")
    a = p.parse_args(argv)
    if a.block < 1:
        p.error("--block must be at least 1")

    from keras_nasnet.fileio import write_json_atomic
    from keras_nasnet.search import SearchSpace, load_trials, read_config
    from keras_nasnet.search import matched_units

    params = 73218  # NASNet-A's parameter count with the cpu proxy (N=1, F=8): the stages' default
    cache_path = Path(a.cache)
    cache = json.loads(cache_path.read_text()) if cache_path.exists() else {}
    size = len(cache)
    result = {}
    for run in a.runs:
        space = SearchSpace(**read_config(Path(run) / "config.json")["space"])
        rows = []
        for r in sorted(load_trials(run), key=lambda r: r["trial"]):
            if r["status"] != "ok":
                continue
            genotype = space.decode(r["actions"])
            key = json.dumps(genotype.to_dict(), sort_keys=True)
            if key not in cache:
                cache[key] = matched_units(genotype, 1, params)
            rows.append((r["trial"], cache[key], r["reward"]))
        blocks = []
        for lo in range(0, max((t for t, _, _ in rows), default=-1) + 1, a.block):
            part = [(w, x) for t, w, x in rows if lo <= t < lo + a.block]
            if part:
                blocks.append({"trials": [lo, lo + a.block - 1], "children": len(part),
                               "mean_width": round(statistics.mean(w for w, _ in part), 1),
                               "mean_reward": round(statistics.mean(x for _, x in part), 4),
                               "best_reward": max(x for _, x in part)})
        result[run] = blocks
        print(run)
        for b in blocks:
            print(f"  trials {b['trials'][0]:>3}-{b['trials'][1]:<3} ({b['children']:>2} children): "
                  f"width {b['mean_width']:>5.1f}, reward mean {b['mean_reward']:.4f}, best {b['best_reward']:.4f}")
    if len(cache) > size:
        write_json_atomic(cache_path, cache)
    if a.out:
        write_json_atomic(a.out, result, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
