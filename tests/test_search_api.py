"""The search's library API: SearchConfig, PPO presets, run_search, the Reward interface, metrics,
and the scripts under search/ (which use only that API)."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SPACE_KW = {"num_blocks": 1, "ops": ("identity", "sep_conv_3x3")}


def test_committed_search_folders_read_and_write_the_same_config_json():
    from keras_nasnet.search import SearchConfig

    files = sorted(ROOT.glob("search/**/config.json"))
    assert files, "the committed search records are gone"
    for f in files:
        stored = json.loads(f.read_text())
        if "stage" in stored:
            continue  # a journal of stand-alone children (train_standalone, the stages), not a search
        config = SearchConfig.load(f.parent)
        # Byte for byte the identity the journal compares, so these folders still resume.
        assert config.to_dict() == stored, f


def test_ppo_config_defaults_are_the_cli_default_and_the_paper_is_a_preset():
    from keras_nasnet.search import PPO_PRESETS, PPOConfig
    from keras_nasnet.search.__main__ import build_parser, config_from_args

    cli = config_from_args(build_parser().parse_args(["--out", "x", "--reward", "synthetic"]))["ppo"]
    default = dataclasses.asdict(PPOConfig())
    assert {k: default[k] for k in cli} == cli and default["entropy_weight"] == 0.05
    assert PPOConfig.preset("paper").entropy_weight == 1e-5
    assert PPOConfig.preset("paper", lr=0.001).lr == 0.001
    assert set(PPO_PRESETS) == {"default", "paper"}


@pytest.mark.parametrize("kwargs,flag", [
    ({"reward": "cifar10-shared", "space": {"num_blocks": 2, "ops": ["identity"], "combines": ["add", "concat"]}}, "add-only"),
    ({"reward": "synthetic", "strategy": "random", "ppo": {}}, "ppo="),
    ({"reward": "synthetic", "target": "DARTS"}, "target"),
    ({"reward": "nope"}, "Unknown reward"),
    ({"reward": "synthetic", "seed": -1}, "seed"),
    ({"reward": "synthetic", "seed": 2**32}, r"seed must be an integer in \[0, 2\*\*32\)"),
    ({"reward": "synthetic", "space": "foo"}, "space must be a SearchSpace"),
    ({"reward": "cifar10", "target": "AMOEBANET_A"}, "target configures the synthetic reward"),
    ({"reward": "cifar10", "synthetic_delay": 5}, "synthetic_delay configures the synthetic reward"),
    ({"reward": "synthetic", "ppo": {"lrr": 0.1}}, r"ppo: unknown setting\(s\) 'lrr'; PPOConfig has lr, "),
    ({"reward": "synthetic", "ppo": {"normalize_advantages": "no"}}, "normalize_advantages must be True or False"),
    ({"reward": "synthetic", "strategy": "evolution", "evolution": {"size": 3}}, "evolution: unknown setting"),
    ({"reward": "synthetic", "strategy": "evolution", "evolution": {"population": 0}}, r"population\) must be an integer >= 2"),
    ({"reward": "synthetic", "ppo": {"clip": 5}}, r"ppo.clip \(--clip\) must be below 1"),
    # the schedules decay: a final value above the start is a swapped pair
    ({"reward": "synthetic", "ppo": {"entropy_weight": 0.01, "entropy_final": 0.05}},
     r"ppo.entropy_final \(0.05\) is above ppo.entropy_weight \(0.01\) \(--entropy-weight/--entropy-final\)"),
    ({"reward": "synthetic", "ppo": {"lr_final": 0.1}}, r"ppo.lr_final \(0.1\) is above ppo.lr"),
])
def test_search_config_refuses_what_cannot_work(kwargs, flag):
    from keras_nasnet.search import InvalidSettings, PPOConfig, SearchConfig

    if kwargs.get("ppo") == {}:
        kwargs = {**kwargs, "ppo": PPOConfig()}
    with pytest.raises(InvalidSettings, match=flag):
        SearchConfig(**kwargs)
    with pytest.raises(ValueError):  # InvalidSettings is a ValueError: callers may catch either
        SearchConfig(**kwargs)


def test_a_field_changed_after_construction_is_checked_by_validate_and_run_search(tmp_path):
    from keras_nasnet.search import InvalidSettings, PPOConfig, SearchConfig, run_search

    config = SearchConfig(reward="synthetic", strategy="random")
    config.seed = -5
    with pytest.raises(InvalidSettings, match="seed"):
        run_search(config, tmp_path / "s", trials=2, progress=False)
    assert not (tmp_path / "s").exists()  # refused before config.json was written
    config.seed = 0
    for kwargs, named in (({"max_failures": 0}, "max_failures"), ({"workers": 1.5}, "workers")):
        with pytest.raises(InvalidSettings, match=named):
            run_search(config, tmp_path / "s", trials=2, progress=False, **kwargs)
        assert not (tmp_path / "s").exists()
    with pytest.raises(InvalidSettings, match="unknown setting"):
        PPOConfig.preset("paper", foo=1)


def test_a_mistyped_subcommand_is_named_not_taken_for_a_search(capsys):
    from keras_nasnet.search.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(["reprot", "runs/s"])
    assert e.value.code == 2 and "unknown command 'reprot'" in capsys.readouterr().err


def test_shared_config_errors_name_the_flag():
    from keras_nasnet.search import InvalidSettings, SearchConfig, SharedConfig

    with pytest.raises(InvalidSettings, match="--reward-images"):
        SearchConfig(reward="cifar10-shared", shared=SharedConfig(reward_images=600, val_images=500))


def test_run_search_runs_and_resumes_a_config(tmp_path, capsys):
    from keras_nasnet.genotypes import genotype_from
    from keras_nasnet.search import SearchConfig, SearchSpace, run_search

    config = SearchConfig(reward="synthetic", strategy="random", space=SearchSpace(**SPACE_KW),
                          target={"normal": {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"],
                                                         "combine": "add"}], "concat": [2]},
                                  "reduction": {"blocks": [{"inputs": [0, 1], "ops": ["identity", "identity"],
                                                            "combine": "add"}], "concat": [2]}})
    s = run_search(config, tmp_path / "s", trials=30, progress=False)
    assert s["trials"] == 30 and s["complete"] is True
    assert SearchConfig.load(tmp_path / "s") == config
    capsys.readouterr()
    assert run_search(config, tmp_path / "s", trials=40, progress=False)["trials"] == 40
    # said even without a progress bar, so a log shows that the run continued an earlier one
    assert f"Resuming {tmp_path / 's'}: 30 of 40 trials recorded." in capsys.readouterr().err
    run_search(config, tmp_path / "s", trials=40, progress=False)  # nothing left: not "Resuming"
    assert "Resuming" not in capsys.readouterr().err
    genotype_from(str(tmp_path / "s" / "best_genotype.json"))


def test_executor_ray_without_ray_names_the_extra_that_installs_it(tmp_path, monkeypatch):
    import importlib.util

    from keras_nasnet.search import InvalidSettings, SearchConfig, run_search

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(InvalidSettings, match=r"pip install 'keras_nasnet\[distributed\]'"):
        run_search(SearchConfig(reward="cifar10"), tmp_path / "s", workers=1, executor="ray", progress=False)
    assert not (tmp_path / "s").exists()  # refused before writing anything

def test_stage_progress_counts_each_stage_in_the_order_the_stages_run(tmp_path):
    from keras_nasnet.search import stage_progress

    def journal(name, *records, tail=""):
        folder = tmp_path / "stages" / name
        folder.mkdir(parents=True)
        lines = [json.dumps({"logp": 0.0, "seed": 0, "actions": {}, "reward": 0.5, "status": "ok", **r})
                 for r in records]
        (folder / "trials.jsonl").write_text("".join(line + "\n" for line in lines) + tail)

    proposed = [{"event": "proposed", "trial": i} for i in range(3)]
    journal("budget-10-p7", *proposed)
    journal("budget-2-p7", *proposed, {"event": "error", "trial": 0}, {"event": "error", "trial": 1},
            {"event": "finished", "trial": 0}, {"event": "finished", "trial": 1, "status": "failed"},
            tail='{"event": "finished", "tri')  # a kill while the last record was written
    journal("screen-15000-p7", *proposed, *({"event": "finished", "trial": i} for i in range(3)))
    journal("rescore-500-5000", {"event": "proposed", "trial": 0}, {"event": "finished", "trial": 0})
    journal("budget-4-p7")  # opened, nothing proposed yet
    journal("budget-8-p7", *proposed, tail='not a record\n{"event": "proposed"}\n')
    got = stage_progress(tmp_path)
    # re-scoring, screening, then the budgets upward (not the names' sort order)
    assert list(got) == ["rescore-500-5000", "screen-15000-p7", "budget-2-p7", "budget-8-p7", "budget-10-p7"]
    assert got["screen-15000-p7"] == {"finished": 3, "planned": 3}
    assert got["budget-2-p7"] == {"finished": 2, "planned": 3}  # retried trials and failures count once
    assert got["budget-10-p7"] == {"finished": 0, "planned": 3}
    assert got["budget-8-p7"]["finished"] is None and "line 4" in got["budget-8-p7"]["damaged"]
    # The line printed on Ctrl-C or SIGTERM names every stage, the damaged one included.
    from keras_nasnet.search.__main__ import _stopped_message

    assert ("(rescore-500-5000 1 of 1, screen-15000-p7 3 of 3, budget-2-p7 2 of 3, budget-8-p7 unreadable, "
            "budget-10-p7 0 of 3)") in _stopped_message(tmp_path, 0)

def test_in_process_ppo_batches_are_drawn_after_the_previous_batch_is_in(tmp_path):
    """With --workers 0 every child is journaled as it finishes, but the controller still draws a
    batch of 20 only after it has seen (and learnt from) the whole previous batch."""
    from keras_nasnet.search import SearchConfig, SearchSpace, run_search

    target = {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"}], "concat": [2]}
    config = SearchConfig(reward="synthetic", strategy="ppo", space=SearchSpace(**SPACE_KW),
                          target={"normal": target, "reduction": target})
    run_search(config, tmp_path / "s", trials=60, progress=False)
    lines = (tmp_path / "s" / "trials.jsonl").read_text().splitlines()
    events = [(r["event"], r["trial"]) for r in map(json.loads, lines)]
    for batch in (0, 20, 40):
        assert events[2 * batch:2 * batch + 20] == [("proposed", t) for t in range(batch, batch + 20)]
        assert events[2 * batch + 20:2 * batch + 40] == [("finished", t) for t in range(batch, batch + 20)]


def test_rewards_implement_the_reward_interface():
    from keras_nasnet.search import (CIFARReward, FunctionReward, ProxyConfig, Reward, SearchSpace,
                                     SharedWeightsReward, SyntheticReward, as_reward)

    space = SearchSpace(**SPACE_KW)
    assert isinstance(SyntheticReward(space, target=space.decode([0, 1, 1, 0, 0] * 2)), Reward)
    assert isinstance(CIFARReward(space, ProxyConfig()), Reward)
    shared = SharedWeightsReward.new(SearchSpace(1, ("identity",), ("add",)), filters=4)
    assert isinstance(shared, Reward) and shared.in_process and not CIFARReward.in_process
    fn = as_reward(lambda actions, seed: 0.5)
    assert isinstance(fn, FunctionReward) and fn([0], 0) == 0.5
    fn.check(), fn.bind("unused"), fn.close()  # the hooks exist and do nothing
    with pytest.raises(TypeError, match="Reward"):
        as_reward(3)


def test_proxy_budget_names_round_trip_and_bad_names_say_the_form():
    from keras_nasnet.search import ProxyConfig

    base = ProxyConfig.preset("cpu", match_params=73218)
    p = base.with_budget("e2-30k")
    assert (p.epochs, p.train_images, p.budget_name) == (2, 30000, "e2-30k")
    # Every other setting is kept: the width rule and recipe are the truth's, only the budget moves.
    assert p.match_params == 73218 and p.lr == base.lr and p.num_cells == base.num_cells
    assert base.with_budget(base.budget_name) == base
    assert ProxyConfig(train_images=12345).budget_name == "e1-12345"
    for bad in ("e1-50k", "e0-15k", "1-15k", "e1-15", "e1-0k", " e1-15k", "e01-15k", 15):
        with pytest.raises(ValueError, match="eE-Nk"):
            base.with_budget(bad)


def test_rank_correlations_match_hand_worked_cases():
    from keras_nasnet.search import bootstrap_interval, kendall_tau, rank_correlations, spearman

    assert kendall_tau([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    # 1 discordant pair of 6: (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # tau-b with a tie in one list: pairs (C, D, ties in a only, in b only) = (4, 1, 0, 1)
    assert kendall_tau([1, 2, 3, 4], [1, 1, 3, 2]) == pytest.approx(3 / np.sqrt(5 * 6))
    assert np.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    # d = (0, 1, -1, 0): 1 - 6 * 2 / (4 * 15)
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    y = x + rng.normal(scale=0.5, size=30)
    lo, hi = bootstrap_interval(kendall_tau, x, y, reps=300)
    assert lo < kendall_tau(x, y) < hi and 0 < lo
    r = rank_correlations(x, y, reps=200)
    assert r["cells"] == 30 and r["spearman_95"][0] < r["spearman"] < r["spearman_95"][1]
    # Infinities are ordinary values (a zero-cost score of -inf): two tied -inf were counted as a
    # discordant pair (inf - inf is NaN). 5 concordant pairs, 1 tied in a only: 5 / sqrt(6 * 5).
    inf, nan = float("inf"), float("nan")
    assert kendall_tau([-inf, -inf, 1, 2], [1, 2, 3, 4]) == pytest.approx(5 / np.sqrt(6 * 5))
    # A NaN (an accuracy not measured) gives NaN, as SciPy does, not a number.
    assert np.isnan(kendall_tau([1, 2, nan, 4], [1, 2, 3, 4])) and np.isnan(spearman([nan] * 3, [1, 2, 3]))
    # Undefined everywhere (a constant list, one cell, none): NaN intervals, not an IndexError.
    for scores, truth in (([0.5] * 4, [1, 2, 3, 4]), ([1.0], [2.0]), ([], [])):
        r = rank_correlations(scores, truth, reps=50)
        assert np.isnan([r["kendall_tau"], *r["kendall_tau_95"], r["spearman"], *r["spearman_95"]]).all()


def test_tau_difference_tells_a_better_ranking_from_luck():
    from keras_nasnet.search import kendall_tau, tau_difference

    rng = np.random.default_rng(1)
    truth = rng.normal(size=40)
    good, poor = truth + rng.normal(scale=0.3, size=40), truth + rng.normal(scale=3.0, size=40)
    d = tau_difference(good, poor, truth, reps=300)
    assert d["difference"] == pytest.approx(kendall_tau(good, truth) - kendall_tau(poor, truth))
    assert 0 < d["difference_95"][0] < d["difference"] < d["difference_95"][1]
    # two equally noisy scores: the interval straddles 0
    other = truth + rng.normal(scale=0.3, size=40)
    lo, hi = tau_difference(good, other, truth, reps=300)["difference_95"]
    assert lo < 0 < hi
    with pytest.raises(ValueError, match="three lists of one length"):
        tau_difference(good, poor[:5], truth)


def test_pool_and_final_cell_comparisons_with_their_intervals():
    from keras_nasnet.search import mean_difference, pooled_seed_sd, seeds_difference

    rng = np.random.default_rng(2)
    pool, randoms = 0.58 + rng.normal(0, 0.01, 16), 0.55 + rng.normal(0, 0.02, 12)
    d = mean_difference(pool, randoms, reps=500)
    assert d["difference"] == pytest.approx(pool.mean() - randoms.mean()) and d["cells"] == [16, 12]
    assert 0.015 < d["difference_95"][0] < d["difference"] < d["difference_95"][1] < 0.045
    with pytest.raises(ValueError, match="at least 2 cells"):
        mean_difference([0.5], randoms)
    # two cells, 2 and 3 seeds: squares 0.0002 + 0.0008 over 1 + 2 degrees of freedom
    assert pooled_seed_sd([[0.50, 0.52], [0.60, 0.62, 0.64], [0.7]]) == pytest.approx(np.sqrt(0.001 / 3))
    with pytest.raises(ValueError, match="at least 2 seeds"):
        pooled_seed_sd([[0.5], [0.6]])
    s = seeds_difference([0.61, 0.62, 0.60], [0.59, 0.60, 0.58], seed_sd=0.01)
    assert s["difference"] == pytest.approx(0.02)
    assert s["difference_95"] == pytest.approx([0.02 - 1.96 * 0.01 * np.sqrt(2 / 3), 0.02 + 1.96 * 0.01 * np.sqrt(2 / 3)])


def test_ground_truth_records_load_by_budget(tmp_path):
    from keras_nasnet.search import read_standalone
    from keras_nasnet.search.metrics import seed_means, seed_table

    rows = [{"cell": "a", "seed": 0, "budget": {"epochs": 1}, "standalone_accuracy": 0.4},
            {"cell": "a", "seed": 1, "budget": {"epochs": 1}, "standalone_accuracy": 0.5},
            {"cell": "a", "seed": 0, "budget": {"epochs": 3}, "standalone_accuracy": 0.9}]
    f = tmp_path / "standalone.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + '\n{"cell": "b", "se')  # a cut last line
    assert read_standalone(f) == rows
    assert seed_means(seed_table(read_standalone(f))) == {"a": pytest.approx(0.45)}
    assert seed_table(rows, {"epochs": 3}) == {"a": {0: 0.9}}
    f.write_text('{"cell"\n' + json.dumps(rows[0]) + "\n")
    with pytest.raises(ValueError, match="line 1"):
        read_standalone(f)


def test_stand_alone_journals_load_as_ground_truth(tmp_path):
    """A train_standalone journal (e.g. search/calibration/<budget>/journal) is ground truth
    as it is, a run in progress included; failed children are left out."""
    from keras_nasnet.search import read_standalone_journal
    from keras_nasnet.search.metrics import seed_means, seed_table

    budget = {"epochs": 3, "train_images": 45000, "recipe_version": 2}
    (tmp_path / "config.json").write_text(json.dumps(
        {"space": None, "reward": "standalone", "strategy": None, "seed": None, "stage": "standalone",
         "budget": budget}))
    g = {"normal": {"blocks": []}, "reduction": {"blocks": []}}
    recs = [{"event": "finished", "trial": 0, "actions": g, "logp": 0.0, "seed": 0, "reward": 0.7,
             "status": "ok", "metrics": {"test": 0.69}},
            {"event": "finished", "trial": 1, "actions": g, "logp": 0.0, "seed": 1, "reward": 0.0,
             "status": "failed"},
            {"event": "finished", "trial": 2, "actions": g, "logp": 0.0, "seed": 2, "reward": 0.8,
             "status": "ok", "metrics": {"test": 0.75}}]
    (tmp_path / "trials.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + '\n{"event": "fin')
    rows = read_standalone_journal(tmp_path)
    assert [(r["seed"], r["standalone_accuracy"], r["test_accuracy"]) for r in rows] == [(0, 0.7, 0.69), (2, 0.8, 0.75)]
    assert all(r["budget"] == budget and r["genotype"] == g for r in rows)
    assert seed_means(seed_table(rows)) == {json.dumps(g, sort_keys=True): pytest.approx(0.75)}
    (tmp_path / "config.json").write_text(json.dumps({"space": None, "reward": "synthetic", "strategy": "ppo",
                                                      "seed": 0}))
    with pytest.raises(ValueError, match="not a stand-alone journal"):
        read_standalone_journal(tmp_path)
    with pytest.raises(ValueError, match="it has no config.json"):  # a mistyped path: not "damaged"
        read_standalone_journal(tmp_path / "missing")


SCRIPTS = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("search/**/*.py"))


@pytest.mark.parametrize("script", SCRIPTS)
def test_search_scripts_run_with_help(script):
    # Run as a user would, from the repository root without PYTHONPATH tricks in the script; the
    # installed (or PYTHONPATH-given) keras_nasnet is the only import path they may rely on.
    r = subprocess.run([sys.executable, script, "--help"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "usage:" in r.stdout
    text = (ROOT / script).read_text()
    assert "sys.path" not in text and "._" not in text.replace("__", "")


@pytest.mark.parametrize("flags,named", [
    (["--reward", "synthetic", "--supernet-epochs", "3"], "--supernet-epochs"),
    (["--reward", "cifar10", "--val-images", "100"], "--val-images"),
    (["--reward", "synthetic", "--strategy", "random", "--entropy-weight", "0.1"], "--entropy-weight"),
    (["--reward", "synthetic", "--data", "x.zip"], "--data"),
    # a prefix of a flag is not taken for it: it would slip past the check above
    (["--reward", "synthetic", "--child-ep", "3"], "--child-ep"),
    (["--reward", "synthetic", "--strategy", "random", "--pres", "paper"], "--pres"),
    # executor settings this run would not use
    (["--reward", "synthetic", "--ray-address", "1.2.3.4:6379"], "--ray-address"),
    (["--reward", "synthetic", "--gpus-per-child", "1"], "--gpus-per-child"),
    (["--reward", "synthetic", "--workers", "0", "--threads-per-worker", "2"], "--threads-per-worker"),
    (["--reward", "synthetic", "--out", ""], "--out is empty"),
    (["--reward", "synthetic", "--ops", "identity,sep_conv_3x3,identity"], "ops repeat identity"),
])
def test_flags_of_another_reward_or_strategy_are_refused_not_ignored(tmp_path, capsys, monkeypatch,
                                                                     flags, named):
    from keras_nasnet.search.__main__ import main

    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main([*flags, "--out", str(tmp_path / "s")] if "--out" not in flags else flags)
    assert e.value.code == 2 and named in capsys.readouterr().err
    assert not list(tmp_path.iterdir())  # nothing written


def _tiny_config(**kw):
    from keras_nasnet.search import SearchConfig, SearchSpace

    cell = {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"}],
            "concat": [2]}
    return SearchConfig(reward="synthetic", space=SearchSpace(**SPACE_KW),
                        target={"normal": cell, "reduction": cell}, **kw)


def test_another_configuration_is_named_setting_by_setting(tmp_path, capsys):
    from keras_nasnet.search import ConfigMismatch, PPOConfig, run_search
    from keras_nasnet.search.journal import read_config

    out = tmp_path / "s"
    run_search(_tiny_config(ppo=PPOConfig(batch_size=2)), out, trials=2, progress=False)
    with pytest.raises(ConfigMismatch) as e:
        run_search(_tiny_config(ppo=PPOConfig(batch_size=2, entropy_weight=0.1)), out, trials=2,
                   progress=False)
    assert "ppo.entropy_weight: stored 0.05, given 0.1." in str(e.value)
    assert "target" not in str(e.value)  # only what differs, not whole sections
    assert read_config(out) == read_config(out / "config.json")  # a folder or its file
    from keras_nasnet.search import SearchError

    with pytest.raises(FileNotFoundError, match="no search was started there") as e:
        read_config(tmp_path / "nowhere")
    assert isinstance(e.value, SearchError)  # handlers of the search's errors see it too
    # A scheduled search spans its trials: extending it is refused, saying why.
    sched = tmp_path / "sched"
    scheduled = _tiny_config(ppo=PPOConfig(batch_size=2, lr_final=1e-4, total_trials=2))
    run_search(scheduled, sched, trials=2, progress=False)
    longer = _tiny_config(ppo=PPOConfig(batch_size=2, lr_final=1e-4, total_trials=4))
    with pytest.raises(ConfigMismatch, match="ppo.total_trials: stored 2, given 4.*schedule.*spans its --trials"):
        run_search(longer, sched, trials=4, progress=False)
    # Fewer trials than recorded: nothing trained, and said.
    capsys.readouterr()
    assert run_search(_tiny_config(ppo=PPOConfig(batch_size=2)), out, trials=1, progress=False)["trials"] == 2
    assert "already holds 2 trials, more than --trials 1" in capsys.readouterr().err


def test_search_api_refuses_bad_spaces_executor_settings_and_unguarded_scripts(tmp_path, monkeypatch):
    import multiprocessing

    from keras_nasnet.search import InvalidSettings, SearchConfig, SearchSpace, run_search

    with pytest.raises(ValueError, match="combines repeat add"):
        SearchSpace(1, ("identity",), ("add", "add"))
    with pytest.raises(ValueError, match="sequences of names"):
        SearchSpace(1, "identity", ("add",))
    with pytest.raises(InvalidSettings, match="a mapping .* got list"):
        SearchConfig.from_dict([1, 2])
    for kw, match in (({"executor": "ray", "threads_per_worker": 2}, "--cpus-per-child"),
                      ({"cpus_per_child": 0}, "must be a number > 0"),
                      ({"threads_per_worker": 0, "workers": 1}, "integer >= 1")):
        with pytest.raises(InvalidSettings, match=match):
            run_search(_tiny_config(), tmp_path / "s", progress=False, **kw)
    assert not (tmp_path / "s").exists()
    # In a spawned worker importing an unguarded script: refused, saying what to write.
    monkeypatch.setattr(multiprocessing.current_process(), "_inheriting", True, raising=False)
    with pytest.raises(RuntimeError, match='if __name__ == "__main__":'):
        run_search(_tiny_config(), tmp_path / "s", progress=False)


def test_report_says_a_search_is_unfinished_and_refuses_an_empty_list(tmp_path, capsys):
    from keras_nasnet.search import run_search
    from keras_nasnet.search.report import main as report

    out = tmp_path / "s"
    run_search(_tiny_config(strategy="random"), out, trials=3, progress=False)
    summary = json.loads((out / "summary.json").read_text())
    # as a search stopped at 3 of 6 leaves it
    (out / "summary.json").write_text(json.dumps({**summary, "trials_planned": 6, "complete": False}))
    capsys.readouterr()
    assert report([str(out)]) == 0
    assert "3 trials of 6 planned (not finished" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        report([str(out), "--top", "0"])
    assert e.value.code == 2
    from keras_nasnet.search import search_cost

    with pytest.raises(FileNotFoundError, match="not a search folder"):
        search_cost(tmp_path / "nowhere")  # not a search that cost nothing


def test_report_on_a_hand_edited_config_names_the_setting(tmp_path, capsys):
    from keras_nasnet.search import run_search
    from keras_nasnet.search.report import main as report

    out = tmp_path / "s"
    run_search(_tiny_config(strategy="random"), out, trials=2, progress=False)
    config = json.loads((out / "config.json").read_text())
    for value, message in ((("num_blocks", "2"), "num_blocks must be an integer"),
                           (("ops", 3), "ops is a sequence of names"),
                           (("colour", "red"), "colour")):
        (out / "config.json").write_text(json.dumps({**config, "space": {**config["space"], value[0]: value[1]}}))
        capsys.readouterr()
        assert report([str(out)]) == 1
        err = capsys.readouterr().err
        assert "config.json" in err and message in err, err
