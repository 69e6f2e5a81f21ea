"""The stages after the controller (issue 20, part 2), on the synthetic reward's test device."""

import dataclasses
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from keras_nasnet.genotypes import NASNET_A, Genotype
from conftest import journal_records


def _flags(out, extra=()):
    return ["--reward", "synthetic", "--strategy", "random", "--trials", "20", "--seed", "3",
            "--out", str(out), "--no-progress", "--stages", "all", "--top-k", "6", "--stage-seeds", "3",
            "--cheap-budget", "1", "--final-budget", "4", "--halving-eta", "2", "--random-cells", "3",
            *extra]


def _stage_records(out):
    """Finished records of every stage journal: {folder name: [records]}."""
    found = {}
    for f in sorted((out / "stages").glob("*/trials.jsonl")):
        recs = journal_records(f)
        found[f.parent.name] = [r for r in recs if r["event"] == "finished"]
    return found


def _keys(recs):
    return [(json.dumps(r["actions"], sort_keys=True), r["budget"], r["seed"]) for r in recs]


def test_stages_run_end_to_end_and_best_genotype_is_the_final_cell(tmp_path):
    from keras_nasnet.search import SearchConfig, run_search
    from keras_nasnet.search.stages import StageConfig

    out = tmp_path / "s"
    stages = StageConfig(top_k=4, seeds=2, cheap_budget=1, final_budget=4, eta=2, random_cells=2)
    summary = run_search(SearchConfig(reward="synthetic", strategy="random", seed=1), out, trials=40,
                         progress=False, stages=stages)
    final = json.loads((out / "final.json").read_text())
    assert final["budgets"] == [1, 2, 4]
    # the halving's 4, 2, 1 cells, then the confirmation of the last one (default --confirm-top 4)
    assert [len(r["cells"]) for r in final["rounds"]] == [4, 2, 1, 1]
    names = [e["name"] for e in final["entries"]]
    assert names == ["finalist-1", "NASNet-A", "random-1", "random-2"]
    for e in final["entries"]:
        # the default --confirm-seeds 3 adds seeds for the final cell and NASNet-A only
        assert e["budget"] == 4 and e["seeds"] == ([1000, 1001] if e["kind"] == "random" else
                                                   [1000, 1001, 1002, 1003, 1004])
        assert len(e["val"]) == len(e["test"]) == len(e["seeds"]) and all(0 <= v <= 1.2 for v in e["val"] + e["test"])
    assert Genotype.from_dict(final["entries"][1]["genotype"]) == NASNET_A
    # NASNet-A is the synthetic optimum: it stands above every random cell on both splits.
    randoms = [e for e in final["entries"] if e["kind"] == "random"]
    assert all(final["entries"][1][s] > r[s] for r in randoms for s in ("val_mean", "test_mean"))
    best = Genotype.from_json((out / "best_genotype.json").read_text())
    assert best.to_dict() == final["final_cell"]["genotype"] == final["entries"][0]["genotype"]
    assert summary["final_cell"]["genotype"] == best.to_dict()
    assert json.loads((out / "summary.json").read_text())["final_cell"] == final["final_cell"]
    assert (out / "final.png").stat().st_size > 5000
    # Every child went through the executor's journal once: the 40 distinct cells screened with 2
    # seeds each (the defaults), 4x2 at budget 1, 2x2 at 2, (1+3)x2 at 4 and (1+1)x3 confirming.
    recs = _stage_records(out)
    assert {k: len(v) for k, v in recs.items()} == {"screen-15000": 80, "budget-1": 8, "budget-2": 4, "budget-4": 14}
    assert all(len(set(_keys(v))) == len(v) for v in recs.values())
    # Running again trains nothing and gives the same report.
    run_search(SearchConfig(reward="synthetic", strategy="random", seed=1), out, trials=40,
               progress=False, stages=stages)
    assert _stage_records(out) == recs
    assert json.loads((out / "final.json").read_text()) == final
    # `report` on the folder shows the final cell beside NASNet-A and leaves best_genotype.json as
    # the final cell (it used to write the best reward's cell over it).
    import contextlib
    import io

    from keras_nasnet.search.report import main as report

    kept = (out / "best_genotype.json").read_text()
    (out / "best_genotype.json").write_text(NASNET_A.to_json())  # a cell no trial of this run drew
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        assert report([str(out)]) == 0
    assert "The stages' final cell" in shown.getvalue() and "NASNet-A" in shown.getvalue()
    assert ("stages: screen-15000 80 of 80 children finished, budget-1 8 of 8 children finished, "
            "budget-2 4 of 4 children finished, budget-4 14 of 14 children finished (final.json written)"
            in shown.getvalue())
    assert Genotype.from_json((out / "best_genotype.json").read_text()) == NASNET_A
    assert json.loads((out / "summary.json").read_text())["final_cell"] == final["final_cell"]
    # A damaged final.json (cut short, a merge conflict) is said, and best_genotype.json is kept.
    whole = (out / "final.json").read_text()
    (out / "final.json").write_text(whole[:300])
    shown, said = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(shown), contextlib.redirect_stderr(said):
        assert report([str(out)]) == 0
    assert "final.json cannot be read" in said.getvalue() and "best_genotype.json is left" in said.getvalue()
    assert Genotype.from_json((out / "best_genotype.json").read_text()) == NASNET_A
    assert json.loads((out / "summary.json").read_text())["final_cell"] == final["final_cell"]
    # A stage's journal has the search's format but is no search: said, not a traceback.
    said = io.StringIO()
    with contextlib.redirect_stderr(said):
        assert report([str(out / "stages" / "budget-1")]) == 2
    assert f"run report on the search folder, {out}" in said.getvalue()
    (out / "final.json").unlink()  # without final.json, report writes the best reward's cell
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        assert report([str(out)]) == 0
    # ... and says it is only the best reward's cell while stage journals exist without a result.
    assert "Best reward's genotype" in shown.getvalue() and "the stages have not finished" in shown.getvalue()
    best_reward = Genotype.from_dict(summary["best_genotype"])
    assert Genotype.from_json((out / "best_genotype.json").read_text()) == best_reward
    assert Genotype.from_json(kept) != best_reward  # the screening picked another cell here


def test_extending_a_finished_search_without_stages_keeps_the_final_cell_and_says_it_is_out_of_date(
        tmp_path, capsys):
    from keras_nasnet.search import SearchConfig, run_search
    from keras_nasnet.search.report import main as report
    from keras_nasnet.search.stages import StageConfig

    out, config = tmp_path / "s", SearchConfig(reward="synthetic", strategy="random", seed=1)
    stages = StageConfig(screen_top=0, top_k=2, seeds=1, random_cells=1, confirm_seeds=0)
    run_search(config, out, trials=20, progress=False, stages=stages)
    final = json.loads((out / "final.json").read_text())
    assert final["search_trials"] == 20
    kept = (out / "best_genotype.json").read_text()
    capsys.readouterr()
    summary = run_search(config, out, trials=60, progress=False)  # more children, no stages
    assert summary["trials"] == 60 and summary["final_cell"] == final["final_cell"]
    assert summary["best_genotype"] != final["final_cell"]["genotype"]  # so the next line means something
    assert (out / "best_genotype.json").read_text() == kept  # not the best reward's cell
    assert "chosen from the search's first 20 children; it has 60 now" in capsys.readouterr().err
    assert report([str(out)]) == 0
    assert "out of date" in capsys.readouterr().out
    run_search(config, out, trials=60, progress=False, stages=stages)  # the stages on all 60
    assert json.loads((out / "final.json").read_text())["search_trials"] == 60
    assert report([str(out)]) == 0 and "out of date" not in capsys.readouterr().out


def test_confirmation_picks_the_final_cell_over_more_seeds_and_gives_nasnet_a_the_same(tmp_path):
    """The last round's best --confirm-top cells and NASNet-A get --confirm-seeds more seeds; the
    final cell is the best of them over all their seeds, which need not be the 2-seed best."""
    import statistics

    from keras_nasnet.search import InvalidSettings, SearchConfig, run_search
    from keras_nasnet.search.stages import StageConfig

    out = tmp_path / "s"
    stages = StageConfig(screen_top=0, top_k=5, seeds=2, cheap_budget=1, random_cells=1, confirm_top=3,
                         confirm_seeds=3)
    assert stages.trainings()[-1] == (1, (3 + 1) * 3)  # counted in the cost the help states
    run_search(SearchConfig(reward="synthetic", strategy="random", seed=2), out, trials=30, progress=False,
               stages=stages)
    final = json.loads((out / "final.json").read_text())
    first, confirmed = final["rounds"]
    assert len(first["cells"]) == 5
    assert confirmed["seeds"] == 5 and {c["trial"] for c in confirmed["cells"]} == {c["trial"] for c in first["cells"][:3]}
    assert final["confirmation"] == {"cells": 3, "seeds": [2002, 2003, 2004]}
    by_name = {e["name"]: e for e in final["entries"]}
    five = [e for e in final["entries"] if len(e["seeds"]) == 5]
    assert sorted(e["name"] for e in five) == ["NASNet-A", "finalist-1", "finalist-2", "finalist-3"]
    assert by_name["random-1"]["seeds"] == [2000, 2001] and by_name["finalist-4"]["seeds"] == [2000, 2001]
    # the final cell: the best of the confirmed three by the mean over all 5 seeds ...
    best = max((e for e in five if e["kind"] == "finalist"), key=lambda e: statistics.fmean(e["val"]))
    assert best["name"] == "finalist-1" and final["final_cell"]["trial"] == best["trial"]
    assert final["final_cell"]["seeds"] == [2000, 2001, 2002, 2003, 2004]
    # ... here not the first round's best over its 2 seeds (else this test would show nothing)
    assert first["cells"][0]["trial"] != best["trial"]
    assert Genotype.from_json((out / "best_genotype.json").read_text()).to_dict() == best["genotype"]
    # The fair test's report (search/fair/targets.py) reads the journals and picks the same final
    # cell, comparing it with NASNet-A over all 5 seeds, and the pool over the first 2 only.
    from pathlib import Path

    r = subprocess.run([sys.executable, "search/fair/targets.py", "--run", str(out), "--seeds", "2", "--top-k",
                        "5", "--random-cells", "1", "--out", str(tmp_path / "targets.json")],
                       cwd=Path(__file__).resolve().parents[1], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    targets = json.loads((tmp_path / "targets.json").read_text())["ppo"]
    assert targets["final"]["genotype"] == best["genotype"] and targets["final"]["confirmed"] == 3
    assert targets["final"]["minus_nasnet_a"]["seeds"] == [5, 5]
    assert sorted(targets["pool"]["finalists_val"]) == pytest.approx(sorted(
        statistics.fmean(e["val"][:2]) for e in final["entries"] if e["kind"] == "finalist"))
    # Resumed: nothing is trained again; without the confirmation the 2-seed best is the final cell.
    recs = _stage_records(out)
    run_search(SearchConfig(reward="synthetic", strategy="random", seed=2), out, trials=30, progress=False,
               stages=stages)
    assert _stage_records(out) == recs
    run_search(SearchConfig(reward="synthetic", strategy="random", seed=2), out, trials=30, progress=False,
               stages=StageConfig(screen_top=0, top_k=5, seeds=2, cheap_budget=1, random_cells=1, confirm_seeds=0))
    assert json.loads((out / "final.json").read_text())["final_cell"]["trial"] == first["cells"][0]["trial"]
    assert _stage_records(out) == recs
    with pytest.raises(InvalidSettings, match="--confirm-top"):
        StageConfig(confirm_top=0).validate()


def test_screening_orders_the_pool_by_a_short_training_with_its_own_seed(tmp_path):
    """--screen-top trains the top cells once, briefly, and the cheap budget takes the best of
    them by that score, not by the search's reward."""
    from keras_nasnet.search import InvalidSettings, SearchConfig, run_search
    from keras_nasnet.search.stages import StageConfig

    out = tmp_path / "s"
    stages = StageConfig(screen_top=8, screen_images=5000, screen_seeds=1, top_k=3, seeds=2, cheap_budget=1,
                         random_cells=1)
    run_search(SearchConfig(reward="synthetic", strategy="random", seed=2), out, trials=30, progress=False,
               stages=stages)
    final = json.loads((out / "final.json").read_text())
    recs = _stage_records(out)
    screened = recs["screen-5000"]
    # 8 children, one each, with a seed none of the stage's children (2000, 2001) has.
    assert len(screened) == 8 and {r["seed"] for r in screened} == {2010}
    assert final["screen"] == {"images": 5000, "cells": 8, "seed": 2010, "seeds": [2010], "epochs": 1}
    # The screening skips the CIFAR-10 test split (nothing reads it there); the stages' children
    # record it.
    assert all("test" not in r.get("metrics", {}) for r in screened)
    assert all("test" in r["metrics"] for r in recs["budget-1"])
    score = {json.dumps(r["actions"], sort_keys=True): r["reward"] for r in screened}
    best3 = sorted(score, key=lambda k: -score[k])[:3]
    cheap = {json.dumps(r["actions"], sort_keys=True) for r in recs["budget-1"]}
    assert set(best3) <= cheap  # the cheap budget trained the screening's top 3 ...
    finalists = [e for e in final["entries"] if e["kind"] == "finalist"]
    assert len(finalists) == 3 and all(e["screen"] == score[json.dumps(e["genotype"], sort_keys=True)]
                                       for e in finalists)
    # ... which are not the search's top 3 here (else this test would show nothing).
    from keras_nasnet.search.journal import read_records

    space = SearchConfig(reward="synthetic").space
    by_reward = []
    for r in sorted((r for r in read_records(out / "trials.jsonl")[0] if r["event"] == "finished"),
                    key=lambda r: (-r["reward"], r["trial"])):
        k = json.dumps(space.decode(r["actions"]).to_dict(), sort_keys=True)
        if k not in by_reward:
            by_reward.append(k)
    assert set(by_reward[:3]) != set(best3) and set(best3) <= set(by_reward[:8])
    # Resumed: nothing is trained again.
    run_search(SearchConfig(reward="synthetic", strategy="random", seed=2), out, trials=30, progress=False,
               stages=stages)
    assert _stage_records(out) == recs
    # --screen-seeds 2 on the same folder: one more short run per cell (seed 2011, still apart from
    # the stages' seeds), the first ones read back, and the cells ranked by the mean of the two.
    run_search(SearchConfig(reward="synthetic", strategy="random", seed=2), out, trials=30, progress=False,
               stages=dataclasses.replace(stages, screen_seeds=2))
    again = _stage_records(out)["screen-5000"]
    assert again[:8] == screened and len(again) == 16 and {r["seed"] for r in again[8:]} == {2011}
    final = json.loads((out / "final.json").read_text())
    assert final["screen"]["seeds"] == [2010, 2011]
    two = {}
    for r in again:
        two.setdefault(json.dumps(r["actions"], sort_keys=True), []).append(r["reward"])
    assert all(e["screen"] == pytest.approx(np.mean(two[json.dumps(e["genotype"], sort_keys=True)]))
               for e in final["entries"] if e["kind"] == "finalist")
    with pytest.raises(InvalidSettings, match="--screen-seeds"):
        StageConfig(screen_seeds=0).validate()
    with pytest.raises(InvalidSettings, match="--screen-top"):
        StageConfig(screen_top=2, top_k=3).validate()
    with pytest.raises(InvalidSettings, match="--screen-images"):
        StageConfig(screen_images=0).validate()


def test_screening_adds_the_searchs_widest_cells_at_equal_parameters(tmp_path, monkeypatch):
    """--screen-widest K screens, beside the top --screen-top, the K cells of the search's best
    --widest-from that get the most filters at the stages' parameter count (ties: the better
    reward); the widths are kept, so a resumed run builds no model again."""
    from keras_nasnet.genotypes import Genotype
    from keras_nasnet.search import InvalidSettings, SearchConfig, SearchSpace, run_search
    from keras_nasnet.search import rewards
    from keras_nasnet.search.journal import read_records
    from keras_nasnet.search.stages import StageConfig, width_rule

    target = {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"},
                         {"inputs": [2, 0], "ops": ["conv_3x3", "identity"], "combine": "add"}], "concat": [3]}
    config = SearchConfig(reward="synthetic", strategy="random", seed=1,
                          space=SearchSpace(num_blocks=2, ops=("identity", "sep_conv_3x3", "conv_3x3")),
                          target={"normal": target, "reduction": target})
    # Six cells' widths: each is a few model builds, the slow part of this test.
    stages = StageConfig(screen_top=2, screen_seeds=1, screen_widest=2, widest_from=6, top_k=2, seeds=1,
                         random_cells=0, confirm_seeds=0)
    out = tmp_path / "s"
    run_search(config, out, trials=40, progress=False, stages=stages)
    # The search's distinct cells in its order, as the stages rank them before screening.
    ranked = []
    for r in sorted((r for r in read_records(out / "trials.jsonl")[0] if r["event"] == "finished"),
                    key=lambda r: (-r["reward"], r["trial"])):
        k = json.dumps(config.space.decode(r["actions"]).to_dict(), sort_keys=True)
        if k not in ranked:
            ranked.append(k)
    num_cells, params = width_rule(config, "nasnet-a")
    width = {k: rewards.matched_units(Genotype.from_dict(json.loads(k)), num_cells, params) for k in ranked[:6]}
    expect = sorted(ranked[2:6], key=lambda k: -width[k])[:2]  # stable: the search's order on ties
    assert len(set(width.values())) > 1  # else the widest would be the search's order, and show nothing
    [screen] = [v for k, v in _stage_records(out).items() if k.startswith("screen")]
    screened = [json.dumps(r["actions"], sort_keys=True) for r in screen]
    assert len(screened) == 4 and set(screened) == set(ranked[:2]) | set(expect)
    final = json.loads((out / "final.json").read_text())
    assert final["widest"]["cells"] == 2 and final["widest"]["from"] == 6 and final["screen"]["cells"] == 4
    assert sorted(final["widest"]["widths"].values()) == sorted(width[k] for k in expect)
    assert all(e["width"] == width[json.dumps(e["genotype"], sort_keys=True)]
               for e in final["entries"] if e["kind"] == "finalist" and "width" in e)
    # Resumed: the widths are read back, not computed (no model is built), nothing is trained again.
    before = _stage_records(out)
    monkeypatch.setattr(rewards, "matched_units", lambda *a: pytest.fail("widths computed again"))
    run_search(config, out, trials=40, progress=False, stages=stages)
    assert _stage_records(out) == before and (out / "stages" / f"widths-{num_cells}-p{params}.json").exists()
    with pytest.raises(InvalidSettings, match="--stage-match-params"):
        StageConfig(screen_widest=5, match_params=None).validate()
    with pytest.raises(InvalidSettings, match="--screen-top"):
        StageConfig(screen_widest=5, screen_top=0).validate()


def test_children_another_search_finished_are_reused_not_trained_again(tmp_path):
    """The references (and any cell two searches share) are the same children in every search of
    a space: a study trains them once and the other searches copy them (--reuse-children)."""
    import dataclasses

    from keras_nasnet.search import InvalidSettings, SearchConfig, run_search
    from keras_nasnet.search.stages import StageConfig

    stages = StageConfig(top_k=2, seeds=2, cheap_budget=1, final_budget=2, eta=2, random_cells=2)
    run_search(SearchConfig(reward="synthetic", strategy="random", seed=1), tmp_path / "a", trials=20,
               progress=False, stages=stages)
    # Another search (more trials: other candidates, the same references and seeds).
    other = SearchConfig(reward="synthetic", strategy="random", seed=1)
    run_search(other, tmp_path / "trained", trials=60, progress=False, stages=stages)
    run_search(other, tmp_path / "reused", trials=60, progress=False,
               stages=dataclasses.replace(stages, reuse=(str(tmp_path / "a"),)))
    trained, reused = (json.loads((tmp_path / d / "final.json").read_text()) for d in ("trained", "reused"))
    assert reused["entries"] == trained["entries"]  # the same report as training them
    refs = {json.dumps(e["genotype"], sort_keys=True) for e in reused["entries"] if e["kind"] != "finalist"}
    final_round = _stage_records(tmp_path / "reused")["budget-2"]
    copied = [r for r in final_round if json.dumps(r["actions"], sort_keys=True) in refs]
    assert len(copied) == 3 * 2 + 3  # NASNet-A's confirmation seeds too
    # Copied from the other search's children at the same budget only (not its budget-1 round).
    assert all(r["reused_from"].endswith("budget-2") for r in copied)
    with pytest.raises(InvalidSettings, match="--reuse-children"):
        StageConfig(reuse=(str(tmp_path / "nowhere"),)).validate()
    # Paths of any kind are stored as strings (final.json is JSON); a folder without journals yet
    # (a study's first search) is fine.
    (tmp_path / "empty").mkdir()
    stages = StageConfig(reuse=[tmp_path / "a", tmp_path / "empty"])
    stages.validate()
    assert stages.reuse == (str(tmp_path / "a"), str(tmp_path / "empty"))


@pytest.mark.slow
def test_kill_in_the_middle_of_a_stage_resumes_without_training_a_child_twice(tmp_path):
    from keras_nasnet.search import SearchConfig, run_search
    from keras_nasnet.search.__main__ import build_parser, stage_config_from_args

    # The same stages uninterrupted, in this process (the test device is deterministic).
    whole = tmp_path / "whole"
    a = build_parser().parse_args(_flags(whole))
    run_search(SearchConfig.from_flags(_flags(whole)), whole, trials=20, progress=False,
               stages=stage_config_from_args(a))
    expected = json.loads((whole / "final.json").read_text())

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "keras_nasnet.search", *_flags(out, ["--synthetic-delay", "0.1"])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if len(_stage_records(out).get("budget-2", [])) >= 2 if (out / "stages").exists() else False:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed in the middle of a stage"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _stage_records(out)
    assert 2 <= len(before["budget-2"]) < 9 and "budget-4" not in before
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    after = _stage_records(out)
    for name, recs in after.items():
        assert len(set(_keys(recs))) == len(recs), f"{name}: a finished child was trained twice"
        assert recs[: len(before.get(name, []))] == before.get(name, [])  # nothing lost or redone
    assert json.loads((out / "final.json").read_text()) == expected
    assert (json.loads((out / "best_genotype.json").read_text())
            == json.loads((whole / "best_genotype.json").read_text()))


@pytest.mark.slow
def test_sigterm_during_the_stages_says_how_far_each_stage_got(tmp_path):
    # Once the controller's trials are all in, "20 of 20 trials are recorded" says nothing of
    # where the stages stand: the line names each stage journal's finished children.
    out = tmp_path / "t"
    cmd = [sys.executable, "-m", "keras_nasnet.search", *_flags(out, ["--synthetic-delay", "0.1"])]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (out / "stages").exists() and len(_stage_records(out).get("budget-2", [])) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be stopped in the middle of a stage"
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err[-2000:]
    from keras_nasnet.search import stage_progress

    progress = stage_progress(out)
    # in the order the stages ran, each with its finished children of those proposed so far
    assert list(progress) == ["screen-15000", "budget-1", "budget-2"]
    assert {k: p["finished"] for k, p in progress.items()} == {k: len(v) for k, v in _stage_records(out).items()}
    assert progress["screen-15000"]["finished"] == progress["screen-15000"]["planned"] > 0  # done
    assert progress["budget-2"]["planned"] == 9  # its 3 cells x 3 seeds, proposed before training
    counts = ", ".join(f"{k} {p['finished']} of {p['planned']}" for k, p in progress.items())
    assert [line for line in err.splitlines() if line.startswith("interrupted")] == [
        f"interrupted: search stopped during the stages; 20 of 20 trials and the stages' finished "
        f"children ({counts}) are recorded in {out}; run the same command to resume."], err


@pytest.mark.parametrize("extra, flag", [
    (["--stages", "all", "--cheap-budget", "3", "--final-budget", "2"], "--final-budget"),
    (["--stages", "all", "--halving-eta", "1"], "--halving-eta"),
    (["--stages", "all", "--confirm-top", "0"], "--confirm-top"),
    (["--confirm-seeds", "2"], "--confirm-seeds"),  # needs --stages all
    (["--stages", "all", "--top-k", "0"], "--top-k"),
    (["--top-k", "3"], "--top-k"),  # a stage size without --stages all would be ignored
    (["--stages", "all", "--rescore-top", "5"], "--rescore-top"),  # re-scoring is cifar10-shared's
    (["--stages", "some"], "--stages"),
    (["--stages", "all", "--stage-images", "100"], "--stage-images"),  # no training with synthetic
    (["--stages", "all", "--stage-match-params", "off"], "--stage-match-params"),  # no training here
    (["--stages", "all", "--screen-images", "100"], "--screen-images"),  # no training here either
    (["--stages", "all", "--screen-top", "2", "--top-k", "3"], "--screen-top"),
    (["--screen-top", "20"], "--screen-top"),
    (["--stages", "all", "--screen-seeds", "0"], "--screen-seeds"),
    (["--screen-seeds", "2"], "--screen-seeds"),  # needs --stages all
])
def test_bad_stage_flags_are_refused_up_front(tmp_path, capsys, extra, flag):
    from keras_nasnet.search.__main__ import main

    out = tmp_path / "bad"
    with pytest.raises(SystemExit) as e:
        main(["--reward", "synthetic", "--trials", "5", "--out", str(out), "--no-progress", *extra])
    assert e.value.code == 2 and flag in capsys.readouterr().err
    assert not out.exists()  # refused before anything was written


def test_shared_search_refuses_rescoring_more_images_than_held_out():
    from keras_nasnet.search import InvalidSettings, SearchConfig, SharedConfig
    from keras_nasnet.search.stages import StageConfig

    config = SearchConfig(reward="cifar10-shared")
    # The re-scoring uses the held-out images the reward did not (4,500 of 5,000 by default).
    StageConfig(rescore_images=4500).validate(config)
    with pytest.raises(InvalidSettings, match="--rescore-images"):
        StageConfig(rescore_images=4501).validate(config)
    with pytest.raises(InvalidSettings, match="lower --reward-images"):
        StageConfig().validate(SearchConfig(reward="cifar10-shared", shared=SharedConfig(reward_images=5000)))
    with pytest.raises(InvalidSettings, match="--rescore-top"):
        StageConfig(rescore_top=4, top_k=8).validate(config)
    # The screened cells are the top of the re-scored ones: --rescore-top 20 alone screens those 20
    # (the default --screen-top is 40), not an error about a flag the user did not give.
    StageConfig(rescore_top=20).validate(config)


def test_stand_alone_children_can_be_given_equal_parameters_instead_of_equal_width():
    from keras_nasnet.search import InvalidSettings, ProxyConfig, SearchConfig
    from keras_nasnet.search.stages import StageConfig, standalone_spec

    config = SearchConfig(reward="cifar10-shared")
    assert standalone_spec(config, 3, 45000, 73218)["proxy"]["match_params"] == 73218
    # Without it the proxy, and so every stage journal's identity, is as before.
    assert "match_params" not in standalone_spec(config, 3, 45000)["proxy"]
    # "off" (None) is one width for all, even for a cifar10 search whose own children matched.
    matched = SearchConfig(reward="cifar10", proxy=ProxyConfig.preset("cpu", match_params=5000))
    assert "match_params" not in standalone_spec(matched, 1, 45000)["proxy"]
    with pytest.raises(InvalidSettings, match="--stage-match-params"):
        StageConfig(match_params=0).validate()
    with pytest.raises(InvalidSettings, match="--stage-match-params"):
        StageConfig(match_params="nasnet").validate()


def test_stand_alone_children_default_to_nasnet_a_parameters_and_the_flag_can_turn_that_off():
    """The default compares every cell with NASNet-A at NASNet-A's size (73,218 parameters at the
    cpu proxy's width): the budget the calibration measured, so its journals are reusable."""
    from keras_nasnet.search import SearchConfig
    from keras_nasnet.search.__main__ import build_parser, stage_config_from_args
    from keras_nasnet.search.stages import StageConfig, standalone_spec

    assert StageConfig().match_params == "nasnet-a"
    config = SearchConfig(reward="cifar10-shared")
    assert standalone_spec(config, 1, 45000, "nasnet-a")["proxy"]["match_params"] == 73218
    parse_args = build_parser().parse_args
    base = ["--out", "x", "--reward", "cifar10-shared", "--stages", "all"]
    assert stage_config_from_args(parse_args(base)).match_params == "nasnet-a"
    assert stage_config_from_args(parse_args(base + ["--stage-match-params", "off"])).match_params is None
    assert stage_config_from_args(parse_args(base + ["--stage-match-params", "90000"])).match_params == 90000
    with pytest.raises(SystemExit):
        parse_args(base + ["--stage-match-params", "many"])


def test_a_shared_weights_search_trains_its_stand_alone_children_one_per_core():
    """The supernet's rewards run in the search's process (workers=0), but the stand-alone children
    are independent trainings: they get one local worker per core, one thread each."""
    import os

    from keras_nasnet.search import SearchConfig
    from keras_nasnet.search.stages import standalone_settings

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    inline = {"executor": "local", "workers": 0, "progress": False, "threads_per_worker": None}
    got = standalone_settings(SearchConfig(reward="cifar10-shared"), inline)
    assert got["workers"] == cores and got["threads_per_worker"] == 1
    # A thread count the user chose is kept, with fewer workers so the cores are not oversubscribed.
    got = standalone_settings(SearchConfig(reward="cifar10-shared"), {**inline, "threads_per_worker": 2})
    assert got["threads_per_worker"] == 2 and got["workers"] == max(1, cores // 2)
    # Workers, Ray and other rewards' executors are kept as they are.
    for config, settings in ((SearchConfig(reward="cifar10-shared"), {**inline, "workers": 3}),
                             (SearchConfig(reward="cifar10-shared"), {**inline, "executor": "ray", "workers": 1}),
                             (SearchConfig(reward="synthetic"), inline)):
        assert standalone_settings(config, settings) == settings


def test_the_final_budget_follows_the_cheap_one_unless_given():
    """--cheap-budget 2 alone is one round at 2 epochs, not a refusal about a flag never given."""
    from keras_nasnet.search import InvalidSettings
    from keras_nasnet.search.stages import StageConfig

    alone = StageConfig(cheap_budget=2)
    alone.validate()
    assert alone.budgets() == [2] and alone.trainings()[-1][0] == 2
    assert StageConfig(cheap_budget=1, final_budget=4).budgets() == [1, 2, 4]
    with pytest.raises(InvalidSettings, match="--final-budget .* leave it out"):
        StageConfig(cheap_budget=2, final_budget=1).validate()
    with pytest.raises(InvalidSettings, match="--stage-images"):
        StageConfig(images=50000).validate()  # more than the 45,000-image split holds
    # "off" means one width for all in Python too, as on the command line.
    off = StageConfig(match_params="off")
    off.validate()
    assert off.match_params is None


def test_stage_children_that_cannot_run_are_no_result_and_run_again(tmp_path, monkeypatch):
    """A child whose worker fails every attempt says nothing of its cell: it used to count as
    accuracy 0 (final.json all zeros, a finalist named), and a resumed run never ran it again."""
    from keras_nasnet.search import SearchConfig, SearchFailed, run_search
    from keras_nasnet.search.rewards import ChildFailed
    from keras_nasnet.search.stages import StageConfig, StandaloneReward

    out, config = tmp_path / "s", SearchConfig(reward="synthetic", strategy="random", seed=1)
    stages = StageConfig(screen_top=0, top_k=2, seeds=2, random_cells=1, confirm_seeds=0)
    trained = StandaloneReward.__call__

    def broken(self, actions, seed=0):
        raise OSError("disk gone")

    monkeypatch.setattr(StandaloneReward, "__call__", broken)
    # Each child is tried 3 times; once the stage is through, the command says what was lost.
    with pytest.raises(SearchFailed, match=r"budget 1: 4 of 4 children could not be run; the last error: "
                       r"3 attempts failed; the last: OSError: disk gone.*runs only these"):
        run_search(config, out, trials=20, progress=False, stages=stages, max_failures=100)
    assert not (out / "final.json").exists()
    # As in the search, --max-failures failures in a row stop at once.
    with pytest.raises(SearchFailed, match=r"budget 1: 10 children in a row failed"):
        run_search(config, out, trials=20, progress=False, stages=stages)

    # Fixed, the same command runs them again. A cell whose own training fails (NaN) is a result:
    # accuracy 0, and final.json lists the seed.
    def nasnet_diverges(self, actions, seed=0):
        if Genotype.from_dict(actions) == NASNET_A and seed == 1001:
            raise ChildFailed("loss became NaN")
        return trained(self, actions, seed)

    monkeypatch.setattr(StandaloneReward, "__call__", nasnet_diverges)
    run_search(config, out, trials=20, progress=False, stages=stages)
    final = json.loads((out / "final.json").read_text())
    by_name = {e["name"]: e for e in final["entries"]}
    assert all(v > 0.2 for e in final["entries"] for v in e["val"] if e["name"] != "NASNet-A")
    assert by_name["NASNet-A"]["failed"] == [1001] and by_name["NASNet-A"]["val"][1] == 0.0
    assert not any("failed" in e for e in final["entries"] if e["name"] != "NASNet-A")
    import contextlib
    import io

    from keras_nasnet.search.report import main as report

    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        assert report([str(out)]) == 0
    assert "NASNet-A" in shown.getvalue() and "(1 failed, counted as 0)" in shown.getvalue()
    recs = [r for v in _stage_records(out).values() for r in v]
    ok = [r for r in recs if r["status"] == "ok"]
    # 2 finalists and 2 references (NASNet-A, random-1) with 2 seeds each, once; NASNet-A's 1001 failed
    assert len(set(_keys(ok))) == len(ok) == 2 * 2 + 2 * 2 - 1


def test_each_width_rule_keeps_its_own_stage_journal():
    """A search whose stand-alone children were trained at one width (the earlier default) keeps
    them in stages/budget-<b>/ and resumes at the new rule in stages/budget-<b>-p<N>/, instead of
    stopping with a settings mismatch."""
    from keras_nasnet.search import SearchConfig
    from keras_nasnet.search.stages import budget_folder, standalone_spec

    config = SearchConfig(reward="cifar10-shared")
    assert budget_folder(1, standalone_spec(config, 1, 45000)) == "budget-1"
    assert budget_folder(1, standalone_spec(config, 1, 45000, "nasnet-a")) == "budget-1-p73218"
    assert budget_folder(2, standalone_spec(SearchConfig(reward="synthetic"), 2)) == "budget-2"
    # Another --stage-images: its own journal, not a settings mismatch that named a proxy key.
    assert budget_folder(1, standalone_spec(config, 1, 200, "nasnet-a")) == "budget-1-i200-p73218"


def test_the_folder_stays_locked_from_the_search_through_its_stages(tmp_path, monkeypatch):
    # A second command on the folder between the search and its stages (more trials, say) would
    # extend the journal the stages had just read; it must be refused until the stages end.
    from keras_nasnet.fileio import FolderLock, FolderLocked
    from keras_nasnet.search import SearchConfig, run_search
    from keras_nasnet.search import stages as stages_module
    from keras_nasnet.search.stages import StageConfig

    out, seen = tmp_path / "s", []
    real = stages_module.run_stages

    def run_stages_checking_the_lock(*args, **kwargs):
        try:
            FolderLock(out).release()
            seen.append("free")
        except FolderLocked:
            seen.append("locked")
        return real(*args, **kwargs)

    monkeypatch.setattr(stages_module, "run_stages", run_stages_checking_the_lock)
    stages = StageConfig(screen_top=0, top_k=2, seeds=1, random_cells=1, confirm_seeds=0)
    run_search(SearchConfig(reward="synthetic", strategy="random", seed=1), out, trials=10,
               progress=False, stages=stages)
    assert seen == ["locked"]
    FolderLock(out).release()  # and released when run_search returns


def test_the_lock_is_released_when_closing_the_journal_fails(tmp_path, monkeypatch):
    # run_search keeps the lock past the journal's close; a close that raises (a full disk while
    # it writes a replaced journal back) must not leave the folder locked for the process's life.
    from keras_nasnet.fileio import FolderLock
    from keras_nasnet.search import SearchConfig, run_search
    from keras_nasnet.search.journal import Journal

    real = Journal._check_file

    def full_disk_at_close(self, stopping=False):
        if stopping:
            raise OSError(28, "No space left on device")
        return real(self, stopping=stopping)

    monkeypatch.setattr(Journal, "_check_file", full_disk_at_close)
    out = tmp_path / "s"
    with pytest.raises(OSError, match="No space left"):
        run_search(SearchConfig(reward="synthetic", strategy="random", seed=1), out, trials=3, progress=False)
    FolderLock(out).release()  # free: it would raise FolderLocked naming this process
