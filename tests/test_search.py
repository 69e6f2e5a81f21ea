"""The search: space encoding, masking, controller probabilities, PPO, journal resume, failures, CLI."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_nasnet import NASNET_A, NASNet
from keras_nasnet.genotypes import Genotype
from keras_nasnet.search.space import SearchSpace
from conftest import journal_records

TINY = SearchSpace(num_blocks=2, ops=("identity", "sep_conv_3x3", "max_pool_3x3"))


def test_space_sizes_and_masks():
    s = SearchSpace()
    assert s.num_decisions == 50
    counts = s.num_choices()
    # Per block: 2 input choices growing with the block, 13 ops twice, 2 combines.
    assert counts[:10].tolist() == [2, 2, 13, 13, 2, 3, 3, 13, 13, 2]
    assert counts[20:25].tolist() == [6, 6, 13, 13, 2]
    assert np.array_equal(counts[:25], counts[25:])


@pytest.mark.parametrize("kw, message", [
    ({"num_blocks": "5"}, "num_blocks must be an integer"),
    ({"num_blocks": 2.5}, "num_blocks must be an integer"),
    ({"num_blocks": 0}, "num_blocks must be an integer of at least 1"),
    ({"ops": 3}, "ops is a sequence of names"),
    ({"ops": "identity"}, "not a single string"),
])
def test_a_space_with_wrong_settings_says_which_and_how(kw, message):
    # A config.json edited by hand reaches SearchSpace(**space): the error must name the setting.
    with pytest.raises(ValueError, match=message):
        SearchSpace(**kw)
    assert SearchSpace(num_blocks=np.int64(3)).num_blocks == 3


def test_encode_decode_and_the_papers_concat_rule():
    s = SearchSpace()
    actions = s.encode(NASNET_A)
    g = s.decode(actions)
    assert g.normal.blocks == NASNET_A.normal.blocks and g.reduction.blocks == NASNET_A.reduction.blocks
    # Unused block outputs are concatenated: the reduction cell's blocks 1 and 2 feed others.
    assert g.normal.concat == (2, 3, 4, 5, 6) and g.reduction.concat == (4, 5, 6)
    assert s.encode(g) == actions


def test_every_uniform_sample_decodes_and_builds():
    rng = np.random.default_rng(0)
    samples = TINY.sample_uniform(rng, 200)
    masks = TINY.masks()
    assert all(masks[np.arange(TINY.num_decisions), a].all() for a in samples)
    g = TINY.decode(samples[0])
    m = NASNet(g, num_cells=1, penultimate_filters=64 * len(g.normal.concat), stem="cifar", classes=10,
               input_shape=(32, 32, 3))
    assert m.output_shape == (None, 10)
    with pytest.raises(ValueError, match="not a valid choice"):
        bad = samples[0].copy()
        bad[0] = 5
        TINY.decode(bad)


@pytest.fixture(scope="module")
def controller():
    from keras_nasnet.search.controller import Controller

    return Controller(TINY, units=16, seed=0)


def test_controller_log_probs_are_a_distribution(controller):
    import itertools

    from keras_nasnet.search.controller import Controller

    # A space small enough to enumerate: probabilities of all valid sequences sum to one.
    micro = SearchSpace(num_blocks=1, ops=("identity", "max_pool_3x3"), combines=("add",))
    c = Controller(micro, units=8, seed=2)
    choices = [range(n) for n in micro.num_choices()]
    every = np.asarray(list(itertools.product(*choices)))
    assert len(every) == 256
    assert c.probability_of(every).sum() == pytest.approx(1.0, abs=1e-4)
    # Sampled log-probabilities are those of the sampled sequences.
    actions, logp = controller.sample(64)
    assert logp.shape == (64, TINY.num_decisions)
    assert np.allclose(logp.sum(1), np.log(controller.probability_of(actions)), atol=1e-4)
    # The PPO step scores sequences with a compact graph (one softmax per decision type): per
    # decision, its log-probabilities and entropies are the step-by-step sampler's, with
    # temperature and tanh squashing too.
    import tensorflow as tf

    squashed = Controller(TINY, units=8, temperature=2.0, tanh_constant=2.5, seed=3)
    some, logp = squashed.sample(16)
    scored, entropy = squashed.log_prob(some)
    _, stepwise, stepwise_entropy = squashed._run(tf.constant(some))
    assert np.allclose(scored.numpy(), logp, atol=1e-5) and np.allclose(scored.numpy(), stepwise.numpy(), atol=1e-5)
    assert np.allclose(entropy.numpy(), stepwise_entropy.numpy(), atol=1e-5) and entropy.numpy().min() >= 0
    # Masked choices are never sampled.
    masks = TINY.masks()
    many, _ = controller.sample(500)
    assert all(masks[np.arange(TINY.num_decisions), row].all() for row in many)


def test_ppo_update_raises_probability_of_rewarded_architecture():
    from keras_nasnet.search.ppo import PPOConfig, PPOStrategy

    s = PPOStrategy(TINY, PPOConfig(lr=0.01, units=16, batch_size=8), seed=1)
    props = s.propose(8)
    target = props[0][0]
    before = s.controller.probability_of([target])[0]
    for actions, logp in props:
        s.observe(actions, logp, 1.0 if actions == target else 0.0)
    assert s.updates == 1
    assert s.controller.probability_of([target])[0] > before


def test_a_ppo_update_moves_the_weights_as_differentiating_the_sampler_would():
    # The PPO step scores sequences with a compact graph of its own; its updates must be those of
    # differentiating the step-by-step sampler (the graph earlier searches were trained with),
    # optimiser included: a step embedding broadcast instead of looked up gave Adam a dense
    # gradient where it had a sparse one, and moved those weights up to 2x further per update.
    import tensorflow as tf

    from keras_nasnet.search.ppo import PPOConfig, PPOStrategy

    compact, stepwise = (PPOStrategy(TINY, PPOConfig(units=16, batch_size=8, epochs=2), seed=4) for _ in range(2))
    c = stepwise.controller
    c.log_prob = lambda actions: c._run(tf.convert_to_tensor(actions, tf.int64))[1:]
    props = compact.propose(8)
    assert [p[0] for p in stepwise.propose(8)] == [p[0] for p in props]
    rewards = np.linspace(0, 1, 8)
    for s in (compact, stepwise):
        s.update([p[0] for p in props], [p[1] for p in props], rewards)
    for a, b in zip(compact.controller.variables, stepwise.controller.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-6, err_msg=a.path)


def test_state_roundtrip_restores_sampling():
    from keras_nasnet.search.ppo import PPOConfig, PPOStrategy, RandomStrategy

    a = PPOStrategy(TINY, PPOConfig(units=16), seed=3)
    a.propose(5)
    state = a.state()
    b = PPOStrategy(TINY, PPOConfig(units=16), seed=99)
    b.restore(state)
    assert [p[0] for p in a.propose(4)] == [p[0] for p in b.propose(4)]
    r = RandomStrategy(TINY, seed=0)
    r.propose(3)
    r2 = RandomStrategy(TINY, seed=5)
    r2.restore(r.state())
    assert [p[0] for p in r.propose(3)] == [p[0] for p in r2.propose(3)]


def test_synthetic_reward_known_optimum():
    from keras_nasnet.search.rewards import SyntheticReward

    s = SearchSpace()
    rew = SyntheticReward(s)
    best = s.encode(NASNET_A)
    assert rew(best) == 1.0 and rew.solved(best)
    swapped = np.asarray(best).reshape(-1, 5)[:, [1, 0, 3, 2, 4]].ravel()
    assert rew(swapped) == 1.0  # each block up to swapping its halves
    worse = list(best)
    worse[2] = (worse[2] + 1) % 13
    # One wrong decision costs its share and the whole block's bonus: not separable.
    assert rew(worse) == pytest.approx(0.8 * 49 / 50 + 0.2 * 9 / 10)


def test_a_childs_cpu_time_leaves_out_the_rewards_one_off_setup_and_the_cost_report_adds_it_up(tmp_path):
    from keras_nasnet.search import Reward, search_cost
    from keras_nasnet.search.workers import evaluate

    class Busy(Reward):  # spends CPU on a one-off setup in its first call, then on each child
        setup = 0.0

        def __call__(self, actions, seed=0):
            if not self.setup:
                start = time.process_time()
                while time.process_time() - start < 0.3:
                    pass
                self.setup = time.process_time() - start
            start = time.process_time()
            while time.process_time() - start < 0.05:
                pass
            return 0.5

        def take_setup_cost(self):
            cost, self.setup = ({"setup_cpu_seconds": self.setup, "supernet_cpu_seconds": self.setup}
                                if self.setup > 0 else {}), -1.0
            return cost

    task = {"trial": 0, "actions": [0] * 10, "logp": 0.0, "seed": 0}
    reward = Busy()
    first, second = evaluate(reward, task, "t"), evaluate(reward, {**task, "trial": 1}, "t")
    assert first["setup_cpu_seconds"] >= 0.3 and "setup_cpu_seconds" not in second
    assert 0.04 < first["cpu_seconds"] < 0.2 and 0.04 < second["cpu_seconds"] < 0.2
    plain = evaluate(lambda a, s: 0.1, task, "t")  # a plain function: its own cost, no setup
    assert "cpu_seconds" in plain and "setup_cpu_seconds" not in plain and "supernet_cpu_seconds" not in plain

    # The report: the search's children, each stage's (copied ones too), the supernet once; wall
    # seconds where an older version recorded no CPU time.
    (tmp_path / "stages" / "budget-1").mkdir(parents=True)
    lines = [first, second, {"event": "proposed", "trial": 2, "actions": [0] * 10, "logp": 0.0, "seed": 2}]
    (tmp_path / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    child = {"event": "finished", "actions": [0] * 10, "logp": 0.0, "reward": 0.5, "status": "ok"}
    stage = [{**child, "trial": 0, "seconds": 100.0, "cpu_seconds": 90.0},
             {**child, "trial": 1, "seconds": 200.0, "reused_from": "x"}]
    (tmp_path / "stages" / "budget-1" / "trials.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stage))
    cost = search_cost(tmp_path)
    assert cost["parts"]["search"] == {"children": 2, "reused": 0, "wall_only": 0, "errors": 0,
                                       "cpu_seconds": pytest.approx(first["cpu_seconds"] + second["cpu_seconds"])}
    assert cost["parts"]["budget-1"] == {"children": 2, "reused": 1, "wall_only": 1, "errors": 0, "cpu_seconds": 290.0}
    assert cost["supernet_cpu_seconds"] == pytest.approx(first["setup_cpu_seconds"], abs=1e-3)
    assert cost["cpu_seconds"] == pytest.approx(290.0 + first["cpu_seconds"] + second["cpu_seconds"]
                                                + first["setup_cpu_seconds"], abs=2e-3)
    assert cost["supernet_partial"] is False

    # A child lost to an infrastructure error counts apart; a supernet checkpoint whose training
    # went on after the last record (a warm-up whose child never finished) gives the total; a
    # warm-up resumed from a checkpoint that did not count is flagged as partly counted.
    lost = {"event": "error", "trial": 2, "actions": [0] * 10, "logp": 0.0, "seed": 2, "status": "error",
            "error": "worker died", "cpu_seconds": 5.0, "setup_cpu_seconds": 1.0}
    with (tmp_path / "trials.jsonl").open("a") as f:
        f.write(json.dumps(lost) + "\n")
    np.savez(tmp_path / "supernet.npz", step=np.asarray(3), cpu_seconds=np.asarray(1000.0))
    cost = search_cost(tmp_path)
    assert cost["parts"]["search"]["errors"] == 1 and cost["parts"]["search"]["children"] == 2
    assert cost["supernet_cpu_seconds"] == 1000.0 and cost["supernet_partial"] is True
    assert cost["cpu_seconds"] == pytest.approx(290.0 + 5.0 + first["cpu_seconds"] + second["cpu_seconds"] + 1000.0,
                                                abs=2e-3)


def test_architecture_failures_get_the_failure_reward_and_infrastructure_failures_are_errors():
    from keras_nasnet.search.rewards import ChildFailed
    from keras_nasnet.search.workers import FAILED_REWARD, LocalExecutor, evaluate

    task = {"trial": 0, "actions": [0] * 10, "logp": 0.0, "seed": 0}

    def cannot_build(actions, seed):
        raise ChildFailed("cannot build")

    def no_memory(actions, seed):
        raise MemoryError("out of memory")

    rec = evaluate(cannot_build, task, "t")
    assert rec["event"] == "finished" and rec["status"] == "failed" and rec["reward"] == FAILED_REWARD
    assert evaluate(lambda a, s: float("nan"), task, "t")["status"] == "failed"
    rec = evaluate(no_memory, task, "t")
    assert rec["event"] == "error" and "reward" not in rec and "out of memory" in rec["error"]

    spec = {"reward": "synthetic", "space": {"num_blocks": 1, "ops": ["identity", "sep_conv_3x3"]},
            "target": TINY_TARGET.to_json()}
    ex = LocalExecutor(spec, workers=1)
    try:
        pid = ex.worker_pids()[0]
        import os

        os.kill(pid, signal.SIGKILL)
        time.sleep(1)
        ex.submit(task | {"actions": [0, 1, 0, 1, 0, 0, 0, 1, 1, 0]})
        got = []
        deadline = time.time() + 60
        while not got and time.time() < deadline:
            got = ex.poll(timeout=1)
        assert got[0]["event"] == "error" and "died" in got[0]["error"]
        # The replacement worker evaluates the next child normally.
        ex.submit(task | {"trial": 1, "actions": [0, 1, 0, 1, 0, 0, 0, 1, 1, 0]})
        got = []
        deadline = time.time() + 120
        while not got and time.time() < deadline:
            got = ex.poll(timeout=1)
        assert got[0]["status"] == "ok" and got[0]["trial"] == 1
    finally:
        ex.close()


_CELL = {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"}], "concat": [2]}
TINY_TARGET = Genotype.from_dict({"normal": _CELL, "reduction": _CELL})


_CELL2 = {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"},
                     {"inputs": [2, 0], "ops": ["max_pool_3x3", "sep_conv_3x3"], "combine": "add"}],
          "concat": [3]}
TWO_BLOCK_TARGET = Genotype.from_dict({"normal": _CELL2, "reduction": _CELL2})


def _cli(out, trials, strategy="ppo", extra=()):
    return [sys.executable, "-m", "keras_nasnet.search", "--reward", "synthetic", "--strategy", strategy,
            "--trials", str(trials), "--out", str(out), "--blocks", "2",
            "--ops", "identity,sep_conv_3x3,max_pool_3x3", "--no-progress",
            "--target", TWO_BLOCK_TARGET.to_json(), *extra]


def _finished(out):
    recs = journal_records(out)
    return [r for r in recs if r["event"] == "finished"]


@pytest.mark.slow
def test_cli_synthetic_outputs(tmp_path, capsys):
    out = tmp_path / "s"
    r = subprocess.run(_cli(out, 60), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == 60 and summary["strategy"] == "ppo" and 0 < summary["best_reward"] <= 1
    g = Genotype.from_json((out / "best_genotype.json").read_text())
    NASNet(g, num_cells=1, penultimate_filters=8 * 8 * len(g.normal.concat), stem="cifar",
           input_shape=(32, 32, 3), classes=10)
    assert (out / "rewards.png").stat().st_size > 1000
    # The report and the refusal below run in this process (the same entry point, without
    # another TensorFlow start).
    from keras_nasnet.search.__main__ import main

    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    rep = capsys.readouterr().out
    assert "Best genotype" in rep and (out / "best_cells.png").exists()
    assert "cost so far: " in rep and "over 60 children" in rep
    # Another configuration on the same folder is refused; more trials of the same one resume.
    assert main(_cli(out, 60, strategy="random")[3:]) == 2  # invalid settings
    assert "another configuration" in capsys.readouterr().err


@pytest.mark.slow
def test_resume_after_kill_loses_and_repeats_nothing(tmp_path):
    out = tmp_path / "k"
    proc = subprocess.Popen(_cli(out, 400), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline:
        if (out / "trials.jsonl").exists() and len(_finished(out)) >= 100:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _finished(out)
    assert 100 <= len(before) < 400
    # The best genotype so far is written as the search goes: usable after a kill -9 too.
    best = Genotype.from_json((out / "best_genotype.json").read_text())
    space = SearchSpace(**json.loads((out / "config.json").read_text())["space"])
    assert best.to_dict() in [space.decode(r["actions"]).to_dict() for r in before]
    r = subprocess.run(_cli(out, 400), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    after = _finished(out)
    ids = [x["trial"] for x in after]
    assert len(ids) == 400 and len(set(ids)) == 400  # nothing lost, nothing run twice
    assert after[: len(before)] == before
    assert json.loads((out / "summary.json").read_text())["trials"] == 400


@pytest.mark.slow
def test_sigterm_stops_like_ctrl_c_and_the_search_resumes(tmp_path):
    # `kill PID`, `timeout` and batch schedulers send SIGTERM: the search keeps what it recorded,
    # says how to resume in one line and exits 130, as on Ctrl-C.
    out = tmp_path / "t"
    proc = subprocess.Popen(_cli(out, 200), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "trials.jsonl").exists() and len(_finished(out)) >= 40:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and [l for l in err.splitlines() if l.startswith("interrupted")] == [
        f"interrupted: search stopped; {len(_finished(out))} of 200 trials are recorded in {out}; "
        "run the same command to resume."], err
    before = _finished(out)
    assert 40 <= len(before) < 200
    r = subprocess.run(_cli(out, 200), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    after = _finished(out)
    assert sorted(x["trial"] for x in after) == list(range(200)) and after[:len(before)] == before


def test_cell_figure_is_a_layered_graph_numbered_as_the_genotype(tmp_path):
    from keras_nasnet.genotypes import NASNET_A
    from keras_nasnet.search.cellplot import _layout, plot_genotype

    for cell in (NASNET_A.normal, NASNET_A.reduction):
        columns, edges = _layout(cell)
        where = {n: c for c, col in enumerate(columns) for n in col}
        states = sorted(n[1] for n in where if n[0] == "s")
        assert states == list(range(2 + len(cell.blocks)))  # h[i], h[i-1], then 2..6 as in the genotype
        # Every edge joins neighbouring columns (long edges go through lanes of their own), so none
        # runs through a box; every block's two ops stand in the column just before its node.
        assert all(where[b] == where[a] + 1 for a, b in edges)
        for k, block in enumerate(cell.blocks):
            for side, i in enumerate(block.inputs):
                assert where[("op", 2 + k, side)] == where[("s", 2 + k)] - 1
        assert where[("out",)] == len(columns) - 1
    # NASNet-A's reduction cell: blocks 5 and 6 read blocks 2 and 3, so they stand one block deeper.
    columns = _layout(NASNET_A.reduction)[0]
    assert len(columns) == 6 and sorted(n for n in columns[4] if n[0] == "s") == [("s", 5), ("s", 6)]
    plot_genotype(NASNET_A, tmp_path / "cells.png", "NASNet-A")
    assert (tmp_path / "cells.png").stat().st_size > 10000


def test_report_keeps_what_only_the_search_knows(tmp_path):
    """`report DIR` rewrites summary.json from the records; the PPO controller's greedy cell and
    the count of infrastructure errors are not in the records, so they are kept as they were."""
    import contextlib
    import io

    from keras_nasnet.search import SearchConfig, run_search
    from keras_nasnet.search.report import main as report

    out = tmp_path / "s"
    run_search(SearchConfig(reward="synthetic", strategy="ppo", seed=0), out, trials=20, progress=False)
    before = json.loads((out / "summary.json").read_text())
    assert "greedy_genotype" in before and before["errors"] == 0
    with contextlib.redirect_stdout(io.StringIO()):
        assert report([str(out)]) == 0
    after = json.loads((out / "summary.json").read_text())
    assert after["greedy_genotype"] == before["greedy_genotype"] and after["errors"] == 0
    assert after["best_trial"] == before["best_trial"]
