"""Re-score a shared-weights search's top children on every held-out image before picking one.

A search's best reward is the largest of many noisy ones (500 held-out images: a standard
deviation of about 0.018 at 20% accuracy, about as large as the differences between children),
so the child with the highest reward is partly the luckiest. This script takes the ``--top``
children by reward (both strategies' journals if given), scores each as a path through the
trained supernet on all ``val_images`` held-out images, and writes the one with the highest
score as a genotype file, with the table.

    python search/shared/shared_reselect.py --run runs/shared/v4/ppo --top 10 \\
        --out search/shared/reselect_v4.json --genotype runs/shared/v4/reselected.json
"""

import argparse
import json
from pathlib import Path



def finished(run) -> list:
    """``(reward, trial, actions)`` of a search folder's successful children."""
    from keras_nasnet.search import load_trials

    return [(r["reward"], r["trial"], r["actions"]) for r in load_trials(run) if r["status"] == "ok"]

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True, help="a finished --reward cifar10-shared search folder")
    p.add_argument("--top", type=int, default=10)
    p.add_argument("--out", required=True, help="the table, JSON")
    p.add_argument("--genotype", required=True, help="the re-selected child's genotype file")
    a = p.parse_args()
    from keras_nasnet.fileio import write_json_atomic

    from keras_nasnet.search import SharedWeightsReward

    shared = SharedWeightsReward.from_run(a.run)
    top = sorted(finished(a.run), key=lambda r: -r[0])[: a.top]
    rows = []
    for reward, trial, actions in top:
        rows.append({"trial": trial, "search_reward": reward, "actions": actions,
                     "accuracy_all_val": shared.accuracy(actions, images=shared.config.val_images)})
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "actions"}), flush=True)
    best = max(rows, key=lambda r: r["accuracy_all_val"])
    Path(a.genotype).write_text(shared.space.decode(best["actions"]).to_json(indent=2))
    write_json_atomic(a.out, {"run": a.run, "val_images": shared.config.val_images, "chosen_trial": best["trial"],
                              "rows": rows})
    print("chosen: trial", best["trial"], "->", a.genotype)


if __name__ == "__main__":
    main()
