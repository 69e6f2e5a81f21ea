"""How fast this machine trains a search child, against the record of the same child.

Costs in this folder are CPU-seconds measured on whatever machine each session got, and those
machines differ (session 22's trained the same child 1.8-2.1 times slower than session 21's). This script
trains one recorded child of a ``--reward cifar10`` search again, in this process with one
TensorFlow thread as the search's workers use, and prints its CPU-seconds now against the
record's and the ratio; the reward must come out as recorded (the child's training is
deterministic on one thread), which shows the same work was timed. The first training warms the
process up (data, tracing), the second is timed, as a worker's children after its first are.

    python search/evolve-scratch/speed_check.py --run search/evolve/run --trial 258

Run it with nothing else on the machine for a clean figure; beside a running search it
measures the machine as the search's children see it.
"""

import argparse
import json
import os
import time
from pathlib import Path

# As the search's workers run since session 33 (every `python -m keras_nasnet...` command turns
# oneDNN on unless the variable is set; docs/performance.md): TF_ENABLE_ONEDNN_OPTS=0 times
# TensorFlow's own default instead. Set before TensorFlow is imported, which reads it once.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="search/evolve/run", help="a --reward cifar10 search folder")
    p.add_argument("--trial", type=int, default=258, help="the recorded child to train again")
    p.add_argument("--data", default=None, help="the CIFAR-10 source (default: the one the search used)")
    a = p.parse_args(argv)
    from keras_nasnet.search import CIFARReward, ProxyConfig, SearchSpace, load_trials, read_config

    run = Path(a.run)
    if not (run / "config.json").is_file():
        p.error(f"--run {run}: not a search folder (no config.json).")
    config = read_config(run / "config.json")
    if config["reward"] != "cifar10":
        p.error(f"--run {run}: its reward is {config['reward']!r}; this check trains --reward cifar10 children.")
    record = next((r for r in load_trials(run) if r["trial"] == a.trial), None)
    if record is None or record.get("status") != "ok" or not record.get("cpu_seconds"):
        p.error(f"--trial {a.trial}: no finished child with its CPU-seconds in {run}.")
    proxy = dict(config["reward_args"]["proxy"])
    if a.data:
        proxy["data"] = a.data
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)  # as a worker of --threads-per-worker 1
    tf.config.threading.set_inter_op_parallelism_threads(1)
    reward = CIFARReward(SearchSpace(**config["space"]), ProxyConfig.from_record(proxy))
    reward(record["actions"], seed=record["seed"])  # warm-up: data, graphs
    cpu, wall = time.process_time(), time.time()
    value = reward(record["actions"], seed=record["seed"])
    cpu, wall = time.process_time() - cpu, time.time() - wall
    ratio = cpu / record["cpu_seconds"]
    print(json.dumps({"trial": a.trial, "reward_then": record["reward"], "reward_now": round(float(value), 4),
                      "cpu_seconds_then": round(record["cpu_seconds"], 1), "cpu_seconds_now": round(cpu, 1),
                      "wall_seconds_now": round(wall, 1), "now_over_then": round(ratio, 2),
                      "onednn": os.environ["TF_ENABLE_ONEDNN_OPTS"]}))
    if round(float(value), 4) != round(record["reward"], 4):
        print("warning: the reward differs from the record, so the work timed may differ too.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
