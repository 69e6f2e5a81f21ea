"""The cifar10-shared reward: a weight-sharing supernet whose paths are the stand-alone children."""

import json
import pickle
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from keras_nasnet.search.space import SearchSpace
from keras_nasnet.search.supernet import Supernet, inherit_weights
from conftest import journal_records

SPACE = SearchSpace(num_blocks=2, ops=("identity", "avg_pool_3x3", "sep_conv_3x3"), combines=("add",))


def _child(normal, reduction):
    """Actions from per-block (in1, in2, op1, op2) tuples (combine: add)."""
    return [v for blk in normal + reduction for v in (*blk, 0)]


# Reduction cell with 2 unused blocks: the next reduction passes h_(i-1) through (no projection).
PASS_THROUGH = _child([(0, 1, 2, 1), (2, 0, 0, 2)], [(0, 1, 0, 1), (1, 0, 2, 0)])
# Every block used but the last: projections everywhere, identity-with-stride and pools on inputs.
PROJECTED = _child([(1, 1, 1, 2), (0, 2, 2, 0)], [(1, 0, 1, 2), (2, 0, 2, 1)])
# Normal cells read only h_(i-1): the cell before each (a reduction) feeds nothing the output
# depends on, so the child's graph leaves it out while the supernet has it (inherit_weights failed).
PRUNED = _child([(0, 0, 0, 1), (2, 0, 2, 1)], [(1, 1, 1, 2), (1, 1, 2, 2)])


@pytest.fixture(scope="module")
def net():
    import keras

    keras.utils.set_random_seed(1)
    return Supernet(SPACE, num_cells=1, filters=4)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (6, 32, 32, 3)).astype("float32")


@pytest.mark.parametrize("actions", [PASS_THROUGH, PROJECTED, PRUNED], ids=["pass-through", "projected", "pruned"])
def test_a_path_computes_what_the_stand_alone_child_computes(net, images, actions):
    child = inherit_weights(net, actions)
    assert child.count_params() < sum(int(np.prod(v.shape)) for v in net.variables)
    for training in (False, True):
        expected = net(images, tf.constant(actions), training=training).numpy()
        got = child(images, training=training).numpy()
        np.testing.assert_allclose(got, expected, atol=2e-6)


def test_children_that_share_an_op_share_its_weights(net, images):
    import keras

    # Same op at normal block 1's left side (sep_conv_3x3 on h_i); everything else differs.
    a = _child([(0, 1, 2, 1), (2, 0, 0, 2)], [(0, 1, 0, 1), (1, 0, 2, 0)])
    b = _child([(0, 0, 2, 0), (0, 1, 1, 1)], [(1, 1, 1, 1), (0, 2, 1, 0)])
    shared = net.branches[(0, 0, 0, 1)][2].trainable_weights
    before_b = net(images, tf.constant(b), training=False).numpy()
    before_w = [w.numpy() for w in shared]
    child_b = inherit_weights(net, b)
    opt = keras.optimizers.SGD(0.5)
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(
            np.arange(6) % 10, net(images, tf.constant(a), training=True)))
    grads = tape.gradient(loss, net.trainable_variables)
    opt.apply_gradients([(g, v) for g, v in zip(grads, net.trainable_variables) if g is not None])
    assert all(not np.allclose(w.numpy(), w0) for w, w0 in zip(shared, before_w))
    assert not np.allclose(net(images, tf.constant(b), training=False).numpy(), before_b)
    # b's stand-alone copy taken before the step still computes b's old output; a new copy the new.
    np.testing.assert_allclose(child_b(images, training=False).numpy(), before_b, atol=2e-6)
    np.testing.assert_allclose(inherit_weights(net, b)(images, training=False).numpy(),
                               net(images, tf.constant(b), training=False).numpy(), atol=2e-6)


def test_rescoring_scores_the_held_out_images_the_reward_did_not_use(images):
    """The stages re-score the search's best cells on held-out images after the reward's own:
    a cell picked for a lucky reward would otherwise be re-scored on the same luck."""
    from keras_nasnet.search.workers import make_reward

    shared = {"filters": 4, "val_images": 6, "reward_images": 3, "warmup_epochs": 0.0}
    spec = {"reward": "cifar10-shared", "space": SPACE.to_dict(), "shared": shared, "seed": 0}
    reward, rescoring = make_reward(spec), make_reward({**spec, "score_from": 3})
    for r in (reward, rescoring):
        r.build()  # seeded: the same supernet weights
    # Labels the path gets right on the first 3 held-out images and wrong on the last 3 (batch
    # statistics per scored chunk, as the reward computes them).
    predict = lambda x: np.argmax(reward.net(x, tf.constant(PROJECTED), training=True).numpy(), -1)  # noqa: E731
    yval = np.concatenate([predict(images[:3]), (predict(images[3:]) + 1) % 10])[:, None]
    for r in (reward, rescoring):
        r.set_data(images, yval, images, yval)
    assert reward(PROJECTED) == 1.0
    assert rescoring(PROJECTED) == 0.0


def test_evaluate_gives_the_accuracy_and_the_cross_entropy_of_the_held_out_images():
    import keras

    from keras_nasnet.search import SharedWeightsReward

    # 600 images: two scored chunks (500 + 100), each on its own batch statistics
    x = np.random.default_rng(3).uniform(0, 255, (600, 32, 32, 3)).astype("float32")
    reward = SharedWeightsReward.new(SPACE, filters=4, val_images=600, reward_images=600, warmup_epochs=0.0)
    reward.build()
    path = tf.constant(PROJECTED)
    probs = [reward.net(x[:500], path, training=True).numpy(), reward.net(x[500:], path, training=True).numpy()]
    guess = np.concatenate([np.argmax(p, -1) for p in probs])
    right = np.r_[np.arange(250), 500 + np.arange(50)]  # 300 of 600 labelled as the path predicts
    labels = (guess + 1) % 10
    labels[right] = guess[right]
    reward.set_data(x, labels[:, None], x, labels[:, None])
    got = reward.evaluate(PROJECTED)
    assert got["accuracy"] == reward.accuracy(PROJECTED) == 0.5
    ce = [keras.losses.sparse_categorical_crossentropy(labels[:500], probs[0]),
          keras.losses.sparse_categorical_crossentropy(labels[500:], probs[1])]
    assert got["loss"] == pytest.approx(float(np.sum(ce[0]) + np.sum(ce[1])) / 600, rel=1e-4)
    # images 500-599 alone: the slice a re-scoring from image 500 on takes
    tail = reward.evaluate(PROJECTED, images=100, start=500)
    assert tail["accuracy"] == 0.5 and tail["loss"] == pytest.approx(float(np.mean(ce[1])), rel=1e-4)


def test_compiling_many_parts_does_not_warn_of_retracing(images, caplog):
    # Every part is traced once; TF's detector used to count them all as one function retracing
    # ("5 out of the last 5 calls ... triggered tf.function retracing") in every search log.
    import keras

    keras.utils.set_random_seed(2)
    fresh = Supernet(SPACE, num_cells=1, filters=4, compile_after=0)  # compiled on first call
    rng = np.random.default_rng(0)
    with caplog.at_level("WARNING", logger="tensorflow"):
        for actions in SPACE.sample_uniform(rng, 3):
            fresh(images, tf.constant(actions), training=True)
    assert len(fresh._compiled) > 10
    assert "retracing" not in caplog.text


def test_concat_spaces_are_refused():
    with pytest.raises(ValueError, match="add-only"):
        Supernet(SearchSpace(num_blocks=2, ops=("identity",)), filters=4)


def test_bad_supernet_settings_are_refused_before_anything_is_written(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main

    for flag, value in (("--supernet-filters", "7"), ("--reward-images", "61")):
        args = _cli(tmp_path / "s", tmp_path / "no-data-needed", 2)
        args[args.index(flag) + 1] = value
        with pytest.raises(SystemExit) as e:
            main(args[3:])
        assert e.value.code == 2 and flag in capsys.readouterr().err
        assert not (tmp_path / "s").exists()


def test_settings_that_cannot_work_are_refused_before_anything_is_written(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main

    data = _batches(tmp_path / "cifar-10-batches-py")  # 300 training images
    out = tmp_path / "s"
    # More held-out images than the data set has: every child used to fail, an untrained
    # supernet.npz was written and the corrected command was refused as "another configuration".
    args = _cli(out, data, 4)[3:]
    args[args.index("--val-images") + 1] = "400"
    with pytest.raises(SystemExit) as e:
        main(args)
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--val-images 400" in err and "300 training images" in err
    assert not out.exists()
    # Workers cannot share the supernet: refused up front, without a traceback.
    with pytest.raises(SystemExit) as e:
        main(_cli(out, data, 4)[3:] + ["--workers", "2"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--workers 0" in err and "Traceback" not in err
    assert not out.exists()


def test_a_damaged_supernet_checkpoint_is_named_with_what_to_do(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main

    data, out = _batches(tmp_path / "cifar-10-batches-py"), tmp_path / "s"
    out.mkdir()
    # A supernet copied into a new folder is reused (search/fair/README.md's recipe), so a new
    # folder holding only supernet.npz is a search's; this one is cut.
    (out / "supernet.npz").write_bytes(b"PK\x03\x04 cut by a full disk")
    assert main(_cli(out, data, 2)[3:] + ["--child-train-images", "128"]) == 1
    err = capsys.readouterr().err
    assert "supernet.npz is damaged" in err and "delete it" in err and "Traceback" not in err


def test_cifar10_reward_on_too_small_data_is_invalid_settings(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main

    # The cifar10 reward holds out 5,000 images: a smaller data set is a settings error (exit 2,
    # naming --data), like --val-images above, not a failed search (exit 1); nothing is written.
    data = _batches(tmp_path / "cifar-10-batches-py")
    out = tmp_path / "s"
    with pytest.raises(SystemExit) as e:
        main(["--reward", "cifar10", "--data", str(data), "--trials", "2", "--workers", "0",
              "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--data" in err and "300 training images" in err and "5,000" in err
    assert not out.exists()
    # The error is the last line, not buried under the search's ~60-line usage.
    assert len(err.strip().splitlines()) <= 3 and "--help" in err


def _batches(d, n=60):
    d.mkdir()
    r = np.random.default_rng(0)
    for i in range(1, 7):
        x = r.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        blob = {b"data": x.transpose(0, 3, 1, 2).reshape(n, -1), b"labels": list(map(int, np.arange(n) % 10))}
        (d / ("test_batch" if i == 6 else f"data_batch_{i}")).write_bytes(pickle.dumps(blob))
    return d


def _cli(out, data, trials, filters=4):
    return [sys.executable, "-m", "keras_nasnet.search", "--reward", "cifar10-shared", "--data", str(data),
            "--out", str(out), "--trials", str(trials), "--blocks", "2", "--ops",
            "identity,avg_pool_3x3,sep_conv_3x3", "--supernet-filters", str(filters),
            "--supernet-epochs", "1", "--reward-images", "60", "--val-images", "60", "--batch-size", "4", "--no-progress"]


def _finished(out):
    recs = journal_records(out)
    return [r for r in recs if r["event"] == "finished"]


@pytest.mark.slow
def test_resume_after_kill_continues_supernet_and_controller(tmp_path, monkeypatch, capsys):
    from keras_nasnet.search.__main__ import main
    from keras_nasnet.search import SharedWeightsReward

    data, out = _batches(tmp_path / "cifar-10-batches-py"), tmp_path / "s"
    cmd = _cli(out, data, 100000) + ["--child-train-images", "128"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None:
        if (out / "trials.jsonl").exists() and len(_finished(out)) >= 8:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # Without progress bars the supernet's phase still reports each epoch (logs of long runs).
    assert "supernet: step 2/2 (epoch 1.00)" in proc.stderr.read().decode()
    before = _finished(out)
    updates_before = json.loads(str(np.load(out / "strategy.npz")["meta"]))["updates"]
    assert updates_before >= 1
    assert (out / "supernet.npz").exists()  # written when the supernet's phase ended
    with np.load(out / "supernet.npz") as z:
        step = int(z["step"])
    assert step == 2  # one epoch of 64-image steps on 128 images
    main(cmd[3:cmd.index("--trials")] + ["--trials", str(len(before) + 8)] + cmd[cmd.index("--trials") + 2:])
    after = _finished(out)
    assert [r["trial"] for r in after] == list(range(len(before) + 8))  # nothing lost or repeated
    assert after[:len(before)] == before
    state = dict(np.load(out / "strategy.npz"))
    # The controller went on from its saved state (a fresh one would count from 0 again).
    assert json.loads(str(state["meta"]))["updates"] >= updates_before + 2
    with np.load(out / "supernet.npz") as z:
        assert int(z["step"]) == step  # the resumed search did not train the supernet again
    # The resumed supernet is the one that scored the first children (it was not retrained).
    again = SharedWeightsReward.from_run(out)
    assert again.step == step and again.space == SPACE
    assert again(before[0]["actions"]) == before[0]["reward"]
    # The reward itself gives its path's weights to a stand-alone child (docs/search.md's way).
    assert inherit_weights(again, before[0]["actions"]).count_params() == \
        inherit_weights(again.net, before[0]["actions"]).count_params()
    # A changed supernet setting on the same folder is refused.
    capsys.readouterr()
    assert main(_cli(out, data, 200, filters=6)[3:] + ["--child-train-images", "128"]) == 2  # invalid settings
    assert "another configuration" in capsys.readouterr().err


@pytest.mark.slow
def test_ctrl_c_during_supernet_training_resumes_exactly_like_an_uninterrupted_run(tmp_path, monkeypatch):
    """A Ctrl-C that lands in the middle of a supernet step (after the weights moved, before the
    step counter did) used to save that half-done step, and the resumed run, which counts calls of
    each compiled part from zero again, ran eagerly where the uninterrupted one ran compiled: 11 of
    12 rewards differed. The interrupted step now finishes first, and the checkpoint records where
    each part stands."""
    import os

    from keras_nasnet.search import supernet as supernet_module
    from keras_nasnet.search.__main__ import main

    class QuickCompile(supernet_module.Supernet):  # parts compile after 2 calls, as in long runs after 20
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **{**kwargs, "compile_after": 2})

    monkeypatch.setattr(supernet_module, "Supernet", QuickCompile)
    data = _batches(tmp_path / "cifar-10-batches-py")
    args = lambda out: _cli(out, data, 2)[3:] + ["--child-train-images", "128", "--supernet-epochs", "3",  # noqa: E731
                                                 "--batch-size", "2"]

    assert main(args(tmp_path / "a")) == 0  # uninterrupted: 6 supernet steps, then 2 children

    minimize, calls = supernet_module.PathSGD.minimize, []

    def interrupted(self, *a, **kw):  # Ctrl-C right after the 3rd step's update
        minimize(self, *a, **kw)
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)

    original = signal.signal(signal.SIGINT, signal.default_int_handler)  # pytest in the background ignores it
    try:
        monkeypatch.setattr(supernet_module.PathSGD, "minimize", interrupted)
        assert main(args(tmp_path / "b")) == 130
        monkeypatch.setattr(supernet_module.PathSGD, "minimize", minimize)
    finally:
        signal.signal(signal.SIGINT, original)
    with np.load(tmp_path / "b" / "supernet.npz") as z:
        assert int(z["step"]) == 3  # the step under way finished and counts
    assert main(args(tmp_path / "b")) == 0
    assert [(r["trial"], r["reward"]) for r in _finished(tmp_path / "b")] == \
        [(r["trial"], r["reward"]) for r in _finished(tmp_path / "a")]
    with np.load(tmp_path / "a" / "supernet.npz") as a, np.load(tmp_path / "b" / "supernet.npz") as b:
        assert int(a["step"]) == int(b["step"]) == 6
        for k in a.files:
            if k.startswith(("w", "o")):
                np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        # The supernet's CPU time is counted across the interruption, and kept out of the first
        # child's own cost: the search's cost report reads the total from the journal.
        assert float(b["cpu_seconds"]) > 0 and float(a["cpu_seconds"]) > 0
        total_b = float(b["cpu_seconds"])
    from keras_nasnet.search import search_cost

    first = _finished(tmp_path / "b")[0]
    assert 0 < first["setup_cpu_seconds"] < first["supernet_cpu_seconds"] == pytest.approx(total_b, abs=1e-3)
    assert "setup_cpu_seconds" not in _finished(tmp_path / "b")[1]
    cost = search_cost(tmp_path / "b")
    assert cost["supernet_cpu_seconds"] == pytest.approx(total_b, abs=1e-3)
    assert cost["parts"]["search"]["children"] == 2 and cost["parts"]["search"]["wall_only"] == 0
