"""Measures the cost of the cifar10-shared reward on this machine: supernet build, how a new child
gets its graph (one traced graph with tf.switch_case / eager / a new trace per child), supernet
training images/s and one child's reward. Images are random pixels (cost does not depend on them).

    python search/shared_cost.py --out search/shared/cost.json [--filters 16 --cells 1 --blocks 5]
"""

import argparse
import json
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--cells", type=int, default=1)
    p.add_argument("--filters", type=int, default=16)
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--reward-images", type=int, default=1000)
    a = p.parse_args()
    import tensorflow as tf

    from keras_nasnet.search.shared_reward import SharedConfig, SharedWeightsReward
    from keras_nasnet.search.space import SearchSpace

    space = SearchSpace(num_blocks=a.blocks, combines=("add",))
    rng = np.random.default_rng(0)
    n = 2000
    reward = SharedWeightsReward(space, SharedConfig(num_cells=a.cells, filters=a.filters, batch_size=a.batch,
                                                     warmup_epochs=0, reward_images=a.reward_images))
    reward.set_data(rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n),
                    rng.integers(0, 256, (a.reward_images, 32, 32, 3), dtype=np.uint8),
                    rng.integers(0, 10, a.reward_images))
    res = {"settings": vars(a), "machine": "2 shared CPU cores (5 other jobs running): noisy, compare ratios"}
    t = time.time()
    reward._ensure_built()
    res["build_seconds"] = round(time.time() - t, 1)
    paths = space.sample_uniform(rng, a.steps + 3)
    t = time.time()
    reward.train(1, path=paths[0])
    res["graph_first_step_incl_trace_seconds"] = round(time.time() - t, 1)
    t = time.time()
    for pth in paths[1:a.steps + 1]:
        reward.train(1, path=pth)
    step = (time.time() - t) / a.steps
    res["graph_step_seconds"] = round(step, 3)
    res["graph_train_images_per_second"] = round(a.batch / step, 1)
    # eager: the same code, each op dispatched from Python; tf.switch_case runs only the chosen branch
    net, opt = reward.net, reward.optimizer
    import keras

    def eager_step(x, y, path):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, net(x, path, training=True)))
        opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))

    x, y = reward._batch(0)
    times = []
    for pth in paths[:3]:
        t = time.time()
        eager_step(tf.constant(x), tf.constant(y), tf.constant(pth, tf.int32))
        times.append(time.time() - t)
    res["eager_step_seconds"] = round(float(np.median(times)), 3)

    # a new graph per child: the path is a Python value, so every child is a fresh trace
    @tf.function
    def per_child(x, y, path):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, net(x, path, training=True)))
        opt.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))

    times = []
    for pth in paths[:2]:
        t = time.time()
        per_child(tf.constant(x), tf.constant(y), tf.constant(pth, tf.int32).numpy().tolist() and
                  tf.constant(pth, tf.int32))  # same graph signature, but retraced below
        times.append(time.time() - t)
        per_child = tf.function(per_child.python_function)  # force a new trace for the next child
    res["new_trace_per_child_seconds"] = round(float(np.median(times)), 1)
    t = time.time()
    reward.accuracy(paths[-1])
    res["reward_first_call_incl_trace_seconds"] = round(time.time() - t, 1)
    times = []
    for pth in paths[-3:]:
        t = time.time()
        reward.accuracy(pth)
        times.append(time.time() - t)
    res["reward_seconds"] = round(float(np.median(times)), 3)
    print(json.dumps(res, indent=2))
    from keras_nasnet.fileio import write_json_atomic

    write_json_atomic(a.out, res)


if __name__ == "__main__":
    main()
