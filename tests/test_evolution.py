"""Regularized evolution: the population, the tournament, mutations, resume, and its settings."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_nasnet import NASNET_A
from keras_nasnet.genotypes import Genotype
from keras_nasnet.search import EvolutionConfig, InvalidSettings, SearchConfig, SearchSpace, run_search
from keras_nasnet.search.evolution import EvolutionStrategy
from conftest import journal_records

SPACE = SearchSpace(num_blocks=2, ops=("identity", "sep_conv_3x3", "max_pool_3x3"), combines=("add",))


def _cell(op):
    blocks = [{"inputs": [0, 1], "ops": [op, op], "combine": "add"}] * 2
    return {"normal": {"blocks": blocks, "concat": [2, 3]}, "reduction": {"blocks": blocks, "concat": [2, 3]}}


def test_initial_cells_then_random_then_mutations_of_the_tournament_winner():
    initial = [_cell("sep_conv_3x3"), _cell("identity")]
    s = EvolutionStrategy(SPACE, EvolutionConfig(population=4, tournament_size=4, initial=initial), seed=0)
    first = [a for a, _ in s.propose(4)]
    assert first[:2] == [SPACE.encode(Genotype.from_dict(g)) for g in initial]
    for a, r in zip(first, [0.9, 0.1, 0.2, 0.3]):
        s.observe(a, None, r)
    # A tournament over the whole population picks the best (0.9): each child is it with exactly
    # one decision changed to another valid choice.
    valid = SPACE.masks()
    for child, _ in s.propose(20):
        diff = [i for i, (x, y) in enumerate(zip(child, first[0])) if x != y]
        assert len(diff) == 1 and valid[diff[0], child[diff[0]]]
    # Aging: the oldest member leaves, however good it was.
    s.observe(first[1], None, 0.0)
    assert [r for _, r in s.population] == [0.1, 0.2, 0.3, 0.0]


def _cli(out, trials):
    return [sys.executable, "-m", "keras_nasnet.search", "--reward", "synthetic", "--strategy", "evolution",
            "--population", "8", "--tournament-size", "3", "--trials", str(trials), "--out", str(out),
            "--blocks", "2", "--ops", "identity,sep_conv_3x3,max_pool_3x3", "--combines", "add",
            "--target", json.dumps(_cell("sep_conv_3x3")), "--synthetic-delay", "0.05", "--no-progress"]


def _finished(out):
    recs = journal_records(out)
    return [(r["trial"], r["actions"]) for r in recs if r["event"] == "finished"]


@pytest.mark.slow
def test_an_evolution_killed_anywhere_resumes_as_if_never_stopped(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main

    assert main(_cli(tmp_path / "whole", 80)[3:]) == 0  # uninterrupted, in this process
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(out, 80), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not ((out / "trials.jsonl").exists() and len(_finished(out)) >= 30):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 30 <= len(_finished(out)) < 80
    subprocess.run(_cli(out, 80), check=True, capture_output=True, timeout=600)
    # The same children in the same order: the population, the generator and the count of
    # proposals all came back from the journal, so no child was drawn differently or twice.
    assert _finished(out) == _finished(tmp_path / "whole")
    assert json.loads((out / "config.json").read_text())["evolution"]["population"] == 8


def test_evolution_finds_the_synthetic_optimum_that_random_search_misses(tmp_path):
    # The check the controller gets (search/synthetic/), in a space small enough for a test.
    space = SearchSpace(num_blocks=2, ops=("identity", "sep_conv_3x3", "sep_conv_5x5", "max_pool_3x3",
                                            "avg_pool_3x3"), combines=("add",))
    target = Genotype.from_dict(_cell("sep_conv_5x5"))
    best = {}
    for strategy in ("evolution", "random"):
        config = SearchConfig(reward="synthetic", strategy=strategy, space=space, target=target,
                              evolution=EvolutionConfig(population=30, tournament_size=10)
                              if strategy == "evolution" else None)
        best[strategy] = run_search(config, tmp_path / strategy, trials=1000, progress=False)["best_reward"]
    # (seeds 0-3 all reach 1.0 at these settings; random search 0.65-0.74 after 600)
    assert best["evolution"] == pytest.approx(1.0) and best["random"] < 0.9


@pytest.mark.parametrize("kwargs, named", [
    ({"population": 1}, "population"),
    ({"population": 10, "tournament_size": 11}, "tournament_size"),
    ({"population": 2, "tournament_size": 2, "initial": [NASNET_A] * 3}, "initial cells"),
    ({"initial": ["NOT_A_CELL"]}, "evolution.initial"),
])
def test_evolution_settings_that_cannot_work_are_refused(kwargs, named):
    with pytest.raises(InvalidSettings, match=named):
        SearchConfig(reward="synthetic", strategy="evolution", evolution=EvolutionConfig(**kwargs))


def test_initial_cells_outside_the_space_are_refused():
    with pytest.raises(InvalidSettings, match=r"initial cell 0 \(--initial-cells\) is not in the search space"):
        SearchConfig(reward="synthetic", strategy="evolution", space=SPACE, target=_cell("identity"),
                     evolution=EvolutionConfig(initial=[NASNET_A], population=4, tournament_size=2))
    # In the space, but with a concat list the space's cells never have (NASNet-A's keeps h[i-1]):
    # it would be searched, and trained, as another cell.
    with pytest.raises(InvalidSettings, match=r"initial cell 0 \(--initial-cells\) is not one the search space "
                       r"can hold.*normal concat \(1, 2, 3, 4, 5, 6\) becomes \(2, 3, 4, 5, 6\)"):
        SearchConfig(reward="synthetic", strategy="evolution",
                     evolution=EvolutionConfig(initial=[NASNET_A], population=4, tournament_size=2))


def test_the_cli_builds_evolution_and_matched_children(tmp_path):
    from keras_nasnet.search.rewards import nasnet_a_params

    cells = tmp_path / "cells.json"
    cells.write_text(json.dumps(["KNAS_EVOLVE_B"]))  # an add-only cell a search found
    c = SearchConfig.from_flags(["--strategy", "evolution", "--population", "8", "--tournament-size", "2",
                                 "--initial-cells", cells, "--combines", "add",
                                 "--child-match-params", "nasnet-a", "--child-train-images", "15000"])
    assert (c.evolution.population, c.evolution.tournament_size, len(c.evolution.initial)) == (8, 2, 1)
    assert c.space.combines == ("add",) and c.proxy.train_images == 15000
    assert c.proxy.match_params == nasnet_a_params(1, 192)
    assert SearchConfig.from_dict(c.to_dict()).to_dict() == c.to_dict()
    with pytest.raises(InvalidSettings, match="--population"):  # a library call does not exit
        SearchConfig.from_flags(["--population", "8"])  # PPO has no population
    with pytest.raises(InvalidSettings, match="Unknown or no ops"):  # found after the parsing
        SearchConfig.from_flags(["--ops", "identity,bogus"])
    cells.write_text("{}")
    with pytest.raises(InvalidSettings, match="non-empty JSON list"):
        SearchConfig.from_flags(["--strategy", "evolution", "--initial-cells", cells])
    # One genotype, as a search's best_genotype.json holds it, is a list of one.
    from keras_nasnet import KNAS_EVOLVE_B

    cells.write_text(KNAS_EVOLVE_B.to_json())
    c = SearchConfig.from_flags(["--strategy", "evolution", "--population", "8", "--tournament-size", "2",
                                 "--initial-cells", cells, "--combines", "add"])
    assert len(c.evolution.initial) == 1


# -- the warm start: the widest of many random cells ------------------------------------------

WIDE_SPACE = SearchSpace(num_blocks=2, ops=("identity", "sep_conv_3x3", "max_pool_3x3", "conv_1x1"),
                         combines=("add",))


def test_widest_cells_keeps_the_widest_distinct_draws_and_continues_a_stopped_run(tmp_path, monkeypatch):
    from keras_nasnet.search import warmstart, widest_cells
    from keras_nasnet.search.rewards import matched_units

    five = WIDE_SPACE.sample_uniform(np.random.default_rng(3), 5).tolist()
    widths5 = [matched_units(WIDE_SPACE.decode(a), 1, 6000) for a in five]
    widest = max(range(5), key=lambda i: (widths5[i], -i))
    # The widest cell drawn twice (kept once); the second widest excluded (an initial cell, say).
    draws = five + [five[widest]]
    widths = widths5 + [widths5[widest]]

    class Drawn(SearchSpace):  # the draws, fixed: what the generator gives is not under test
        def sample_uniform(self, rng, n=1):
            return np.asarray(draws[:n])

    space = Drawn(WIDE_SPACE.num_blocks, WIDE_SPACE.ops, WIDE_SPACE.combines)
    order = sorted(range(6), key=lambda i: (-widths[i], i))
    second = next(i for i in order if draws[i] != draws[widest])
    expected = [(draws[i], widths[i]) for i in order if i not in (second, 5)][:3]
    monkeypatch.setattr(warmstart, "CHUNK", 2)
    cache = tmp_path / "widths.json"
    got = widest_cells(space, 6, 3, params=6000, exclude=[draws[second]], cache=cache)
    assert [(space.encode(g), w) for g, w in got] == expected and expected[0][0] == draws[widest]
    state = json.loads(cache.read_text())
    assert [w for _, w in state["widths"]] == widths and state["cpu_seconds"] > 0

    # Stopped after the first chunk: the next call scores only the rest, and agrees.
    cache.write_text(json.dumps({**state, "widths": state["widths"][:2]}))
    scored = []
    real = warmstart._widths
    monkeypatch.setattr(warmstart, "_widths", lambda *a: (scored.append(len(a[-1])), real(*a))[1])
    assert widest_cells(space, 6, 3, params=6000, exclude=[draws[second]], cache=cache) == got
    assert scored == [2, 2]
    # A finished cache is read, not scored again; one made with other settings is refused.
    scored.clear()
    assert widest_cells(space, 6, 3, params=6000, exclude=[draws[second]], cache=cache) == got
    assert scored == []
    # Fewer distinct cells than asked for: all of them, widest first.
    assert len(widest_cells(space, 6, 6, params=6000, cache=cache)) == 5
    with pytest.raises(ValueError, match="another warm start"):
        widest_cells(space, 6, 3, params=7000, cache=cache)
    cache.write_text("{")
    with pytest.raises(ValueError, match="delete it"):
        widest_cells(space, 6, 3, params=6000, cache=cache)


def test_warm_start_flag_settings_and_refusals():
    base = ["--strategy", "evolution", "--population", "8", "--tournament-size", "2", "--combines", "add",
            "--child-match-params", "nasnet-a"]
    c = SearchConfig.from_flags(base + ["--warm-start", "100"])
    assert c.evolution.warm_start == 100 and c.to_dict()["evolution"]["warm_start"] == 100
    assert SearchConfig.from_dict(c.to_dict()).to_dict() == c.to_dict()
    # Without it the record is what earlier versions wrote, so their folders still resume.
    assert "warm_start" not in SearchConfig.from_flags(base).to_dict()["evolution"]
    with pytest.raises(InvalidSettings, match="--child-match-params"):
        SearchConfig.from_flags(["--strategy", "evolution", "--population", "8", "--tournament-size", "2",
                                 "--warm-start", "100"])
    with pytest.raises(InvalidSettings, match="cifar10 reward"):
        SearchConfig(reward="synthetic", strategy="evolution", space=SPACE, target=_cell("identity"),
                     evolution=EvolutionConfig(population=4, tournament_size=2, warm_start=10))
    with pytest.raises(InvalidSettings, match=r"fewer cells than the 8 places.*--warm-start 160"):
        SearchConfig.from_flags(base + ["--warm-start", "5"])
    with pytest.raises(InvalidSettings, match="fill the population"):
        EvolutionConfig(population=2, tournament_size=2, initial=[NASNET_A, NASNET_A], warm_start=10).validate()


@pytest.mark.slow
def test_a_warm_started_search_starts_from_the_widest_cells_and_counts_their_cost(tmp_path, capsys):
    import pickle

    from keras_nasnet.search import ProxyConfig, search_cost, widest_cells
    from keras_nasnet.search.__main__ import main

    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    r = np.random.default_rng(0)
    for i, n in enumerate((1010,) * 5 + (20,), 1):  # the reward holds out 5,000 training images
        x = r.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        blob = {b"data": x.transpose(0, 3, 1, 2).reshape(n, -1), b"labels": list(map(int, np.arange(n) % 10))}
        (d / ("test_batch" if i == 6 else f"data_batch_{i}")).write_bytes(pickle.dumps(blob))
    first = WIDE_SPACE.decode(WIDE_SPACE.sample_uniform(np.random.default_rng(9), 1)[0])
    proxy = ProxyConfig(batch_size=16, train_images=32, val_images=16, data=str(d), match_params=6000)
    config = SearchConfig(reward="cifar10", strategy="evolution", space=WIDE_SPACE, proxy=proxy,
                          evolution=EvolutionConfig(population=3, tournament_size=2, initial=[first],
                                                    warm_start=6))
    out = tmp_path / "s"
    run_search(config, out, trials=1, workers=0, progress=False)  # the widths in a worker process
    assert "Warm start: scoring the widths of 6 of 6 random cells in 1 process" in capsys.readouterr().err
    warm = out / "warm_start.json"
    scored = warm.stat().st_mtime_ns, warm.read_text()
    cost = search_cost(out)
    assert cost["warm_start_cpu_seconds"] == json.loads(scored[1])["cpu_seconds"] > 0
    assert cost["cpu_seconds"] == pytest.approx(cost["warm_start_cpu_seconds"] + cost["parts"]["search"]["cpu_seconds"])
    # Resumed before the population's start is proposed: the widths are read, not scored again.
    run_search(config, out, trials=3, workers=0, progress=False)
    assert (warm.stat().st_mtime_ns, warm.read_text()) == scored
    assert "Warm start" not in capsys.readouterr().err
    widest = widest_cells(WIDE_SPACE, 6, 2, params=6000, seed=0, exclude=[first])
    recs = [json.loads(l) for l in (out / "trials.jsonl").read_text().splitlines()]
    proposed = [r["actions"] for r in recs if r["event"] == "proposed"]
    assert proposed == [WIDE_SPACE.encode(first)] + [WIDE_SPACE.encode(g) for g, _ in widest]
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    assert "the warm start" in capsys.readouterr().out
