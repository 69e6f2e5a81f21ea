"""Search and training runs under kills, Ctrl-C, typos, damaged files and broken setups."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from keras_nasnet.genotypes import Genotype
from keras_nasnet.search.space import SearchSpace
from conftest import journal_records

_CELL = {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"}], "concat": [2]}
TARGET = Genotype.from_dict({"normal": _CELL, "reduction": _CELL}).to_json()
SPACE = {"num_blocks": 1, "ops": ["identity", "sep_conv_3x3"], "combines": ["add", "concat"]}
CONFIG = {"space": SPACE, "reward": "synthetic", "strategy": "random", "seed": 0,
          "reward_args": {"target": TARGET}}


def _cli_args(out, trials, extra=()):
    return ["--reward", "synthetic", "--strategy", "random", "--trials", str(trials), "--out", str(out),
            "--blocks", "1", "--ops", "identity,sep_conv_3x3", "--target", TARGET, "--no-progress", *extra]


def _records(out):
    return journal_records(out)


# ---------------------------------------------------------------- journal and folder


def test_damaged_journal_line_stops_with_its_number_and_keeps_the_file(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main
    from keras_nasnet.search.errors import JournalCorrupt
    from keras_nasnet.search.journal import Journal

    out = tmp_path / "s"
    assert main(_cli_args(out, 20)) == 0
    lines = (out / "trials.jsonl").read_text().splitlines(keepends=True)
    for damaged, problem in ((lines[4][:20] + "\n", "line 5: not valid JSON"),
                             ('{"trial": 3}\n', "line 5: not a trial record")):
        text = "".join(lines[:4] + [damaged] + lines[5:])
        (out / "trials.jsonl").write_text(text)
        with pytest.raises(JournalCorrupt, match=problem):
            Journal(out, CONFIG)
        assert (out / "trials.jsonl").read_text() == text  # untouched, nothing deleted
        assert main(["report", str(out)]) == 1 and problem in capsys.readouterr().err
        assert main(_cli_args(out, 20)) == 1
    # A cut last line is what a kill leaves: dropped, and the search resumes from there. (The
    # strategy's state, saved after each record, had not seen that one; the state here was saved
    # after the whole run, so it goes, and the strategy is rebuilt from the records.)
    (out / "trials.jsonl").write_text("".join(lines[:-1]) + lines[-1][:15])
    (out / "strategy.npz").unlink()
    assert main(_cli_args(out, 20)) == 0
    finished = [r for r in _records(out) if r["event"] == "finished"]
    assert sorted(r["trial"] for r in finished) == list(range(20))


def test_a_folder_of_other_files_or_of_a_training_run_is_not_taken_for_a_search(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main

    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "summary.json").write_text('{"my": "precious results"}')  # a name a search writes
    (mine / "notes.txt").write_text("notes")
    with pytest.raises(SystemExit) as e:
        main(_cli_args(mine, 3))
    assert e.value.code == 2
    assert "holds files (notes.txt, summary.json) but no search" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "summary.json"]  # nothing written
    assert (mine / "summary.json").read_text() == '{"my": "precious results"}'
    # A keras_nasnet.train folder is named as one, not called damaged (its config.json is fine).
    run = tmp_path / "trained"
    run.mkdir()
    train_config = {"genotype": "NASNET_A", "num_cells": 1, "epochs": 1, "seed": 0}
    (run / "config.json").write_text(json.dumps(train_config))
    assert main(_cli_args(run, 3)) == 1
    err = capsys.readouterr().err
    assert "holds a run of keras_nasnet.train, not a search" in err and "damaged" not in err
    assert json.loads((run / "config.json").read_text()) == train_config
    # An empty folder, or one holding only hidden files, is a new search's; so is one holding a
    # warm start's widths copied from a search with the same draws (read and checked, not overwritten).
    from keras_nasnet.search.run import check_run_settings

    warm = tmp_path / "warm"
    warm.mkdir()
    (warm / "warm_start.json").write_text("{}")
    check_run_settings(warm, CONFIG, 0, "local")
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / ".gitkeep").write_text("")
    assert main(_cli_args(empty, 3)) == 0


def test_a_second_run_on_one_folder_is_refused_and_a_killed_runs_lock_is_not(tmp_path):
    from keras_nasnet.fileio import FolderLocked
    from keras_nasnet.search.journal import Journal

    out = tmp_path / "s"
    out.mkdir()
    (out / ".lock").write_text("999999\n")  # left by a run killed with -9: the OS released it
    first = Journal(out, CONFIG)
    with pytest.raises(FolderLocked, match=f"process {os.getpid()}"):
        Journal(out, CONFIG)
    first.close()
    Journal(out, CONFIG).close()


def test_two_processes_caching_one_data_set_at_once(tmp_path, monkeypatch):
    # The race of two workers caching CIFAR-10: both write the cache before either renames it.
    import tensorflow as tf

    from keras_nasnet import data as D

    for split in ("train", "test"):
        for cls in D.CLASSES:
            (tmp_path / "imgs" / split / cls).mkdir(parents=True)
            img = np.full((32, 32, 3), D.CLASSES.index(cls) * 20, np.uint8)
            (tmp_path / "imgs" / split / cls / "0.png").write_bytes(tf.io.encode_png(img).numpy())
    savez, both_written = np.savez, threading.Barrier(2, timeout=20)

    def savez_then_wait(*args, **kwargs):
        savez(*args, **kwargs)
        both_written.wait()

    monkeypatch.setattr(np, "savez", savez_then_wait)
    results, errors = [], []

    def load():
        try:
            results.append(D.load_cifar10(tmp_path / "imgs"))
        except Exception as e:  # what the second writer got from a shared temporary name
            errors.append(e)

    threads = [threading.Thread(target=load) for _ in range(2)]
    [t.start() for t in threads]
    [t.join(60) for t in threads]
    assert not errors and len(results) == 2
    cached = list((tmp_path / "keras_home" / "datasets" / "keras_nasnet").iterdir())
    assert [p.suffix for p in cached] == [".npz"]  # one cache file, no temporary left over
    (x, y), _ = D.load_cifar10(tmp_path / "imgs")
    assert np.array_equal(x, results[0][0][0]) and sorted(y) == list(range(10))


# ---------------------------------------------------------------- failures


class _Flaky:
    """A reward that fails as told per trial (the seed of trial t is t with --seed 0)."""

    def __init__(self, plan):
        self.plan, self.calls = plan, []

    def __call__(self, actions, seed=0):
        from keras_nasnet.search.rewards import ChildFailed

        self.calls.append(seed)
        kind = self.plan(seed, self.calls.count(seed))
        if kind == "infra":
            raise OSError("data file vanished")
        if kind == "arch":
            raise ChildFailed("NaN loss")
        return 0.1 + seed / 1000


def _with_reward(monkeypatch, plan):
    from keras_nasnet.search import workers

    reward = _Flaky(plan)
    monkeypatch.setattr(workers, "make_reward", lambda spec: reward)
    return reward


def test_infrastructure_failures_are_rerun_and_architecture_failures_rewarded(tmp_path, monkeypatch):
    from keras_nasnet.search.run import search
    from keras_nasnet.search.workers import FAILED_REWARD

    # Trial 2 loses its data once (infrastructure), trial 3 cannot train (architecture), trial 5
    # fails every time it runs (counted as its own failure after 3 attempts).
    plan = {(2, 1): "infra", (3, 1): "arch", (5, 1): "infra", (5, 2): "infra", (5, 3): "infra"}
    reward = _with_reward(monkeypatch, lambda t, n: plan.get((t, n)))
    summary = search(tmp_path / "s", config=CONFIG, trials=12, progress=False)
    recs = _records(tmp_path / "s")
    finished = {r["trial"]: r for r in recs if r["event"] == "finished"}
    assert sorted(finished) == list(range(12)) and reward.calls.count(2) == 2
    assert [r["trial"] for r in recs if r["event"] == "error"] == [2, 5, 5]
    assert finished[2]["status"] == "ok"
    assert finished[3]["status"] == "failed" and finished[3]["reward"] == FAILED_REWARD
    assert finished[5]["status"] == "failed" and "3 attempts" in finished[5]["error"]
    assert summary["failed"] == 2 and summary["errors"] == 3 and summary["best_trial"] == 11


def test_a_broken_setup_stops_the_search_with_a_message(tmp_path, monkeypatch, capsys):
    from keras_nasnet.search.__main__ import main

    _with_reward(monkeypatch, lambda t, n: "infra")
    assert main(_cli_args(tmp_path / "a", 50, ["--max-failures", "4"])) == 1
    err = capsys.readouterr().err
    # The inline executor hands back each child's result before the next child runs: every one is
    # journaled (an infrastructure error, never an architecture's result), and the search stops
    # at the 4th in a row instead of running the rest of its batch of 20.
    assert "4 children in a row failed" in err and "data file vanished" in err
    events = [r["event"] for r in _records(tmp_path / "a")]
    assert events.count("error") == 4 and "finished" not in events
    # Every child failing by its architecture: nothing to call best, and the exit code says so.
    _with_reward(monkeypatch, lambda t, n: "arch")
    assert main(_cli_args(tmp_path / "b", 5)) == 1
    assert "no child succeeded" in capsys.readouterr().err
    assert not (tmp_path / "b" / "best_genotype.json").exists()
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["best_trial"] is None


def test_missing_data_fails_before_anything_is_written(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main

    out = tmp_path / "s"
    assert main(["--reward", "cifar10", "--data", str(tmp_path / "nope.zip"), "--out", str(out)]) == 1
    assert "does not exist" in capsys.readouterr().err and not (out / "config.json").exists()


def test_ctrl_c_says_how_many_trials_are_kept_and_how_to_resume(tmp_path, monkeypatch, capsys):
    from keras_nasnet.search import workers
    from keras_nasnet.search.__main__ import main

    def interrupted(actions, seed=0):
        # In the second batch of 20: every child before it is recorded (each child's result is
        # journaled as it finishes; a kill or Ctrl-C used to lose the batch's 5 finished ones).
        if seed == 25:
            raise KeyboardInterrupt
        return 0.5

    monkeypatch.setattr(workers, "make_reward", lambda spec: interrupted)
    assert main(_cli_args(tmp_path / "s", 30)) == 130
    err = capsys.readouterr().err
    assert "25 of 30 trials are recorded" in err and "same command to resume" in err


def test_a_stopped_search_leaves_its_best_genotype_and_summary(tmp_path, monkeypatch, capsys):
    from keras_nasnet.genotypes import genotype_from
    from keras_nasnet.search import workers
    from keras_nasnet.search.__main__ import main

    def interrupted(actions, seed=0):
        if seed == 25:
            raise KeyboardInterrupt
        return 0.1 + 0.01 * (seed % 7)  # trial 6's child is the first of the best (6, 13, 20)

    monkeypatch.setattr(workers, "make_reward", lambda spec: interrupted)
    out = tmp_path / "s"
    assert main(_cli_args(out, 30)) == 130
    best = genotype_from(str(out / "best_genotype.json"))  # the README's snippet works at once
    finished = [r for r in _records(out) if r["event"] == "finished"]
    assert best.to_dict() == SearchSpace(**SPACE).decode(finished[6]["actions"]).to_dict()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trials"] == len(finished) == 25 and summary["best_trial"] == 6
    assert summary["complete"] is False and summary["trials_planned"] == 30
    (out / "summary.json").unlink()
    (out / "best_genotype.json").unlink()
    # `report` writes them from the journal too (here: after they were deleted).
    from keras_nasnet.search.report import main as report

    capsys.readouterr()
    assert report([str(out)]) == 0
    assert json.loads((out / "summary.json").read_text())["best_trial"] == 6
    assert genotype_from(str(out / "best_genotype.json")).to_dict() == best.to_dict()


def test_damaged_state_files_are_named_with_what_to_do(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main

    out = tmp_path / "s"
    assert main(_cli_args(out, 25)) == 0
    capsys.readouterr()
    (out / "strategy.npz").write_bytes(b"PK\x03\x04 cut")
    assert main(_cli_args(out, 30)) == 1
    err = capsys.readouterr().err
    assert "strategy.npz is damaged" in err and "delete it" in err and "Traceback" not in err
    (out / "strategy.npz").unlink()  # as the message says: the controller is rebuilt from the journal
    assert main(_cli_args(out, 30)) == 0
    assert sum(r["event"] == "finished" for r in _records(out)) == 30
    capsys.readouterr()
    (out / "config.json").write_text('{"space": ')
    assert main(_cli_args(out, 30)) == 1
    err = capsys.readouterr().err
    assert "config.json is damaged" in err and "another --out" in err
    from keras_nasnet.search.report import main as report

    assert report([str(out)]) == 1 and "config.json is damaged" in capsys.readouterr().err


class _Stop(BaseException):
    """A stop no handler catches: what kill -9 leaves, short of a process to kill."""


def _proposed(out):
    return [r["actions"] for r in _records(out) if r["event"] == "proposed"]


@pytest.mark.parametrize("strategy", ["random", "evolution"])
def test_a_stop_between_drawing_children_and_journaling_them_resumes_as_if_never_stopped(
        tmp_path, monkeypatch, strategy):
    """The strategy's state is saved with the children it just drew, before they are journaled:
    a stop between the two writes used to leave the old state, which drew the same children
    again (20 repeated cells after such a stop, where an uninterrupted run had none)."""
    from keras_nasnet.search import EvolutionConfig, SearchConfig, run_search
    from keras_nasnet.search.journal import Journal

    config = SearchConfig(reward="synthetic", strategy=strategy, seed=0,
                          **({"evolution": EvolutionConfig(population=10, tournament_size=3)}
                             if strategy == "evolution" else {}))
    run_search(config, tmp_path / "clean", trials=60, workers=0, progress=False)
    append = Journal.append

    def stop_at_trial_40(self, record):
        if record["event"] == "proposed" and record["trial"] == 40:
            raise _Stop
        append(self, record)

    monkeypatch.setattr(Journal, "append", stop_at_trial_40)
    with pytest.raises(_Stop):
        run_search(config, tmp_path / "cut", trials=60, workers=0, progress=False)
    monkeypatch.setattr(Journal, "append", append)
    assert len(_proposed(tmp_path / "cut")) == 40  # the state holds trial 40 on; the journal not
    run_search(config, tmp_path / "cut", trials=60, workers=0, progress=False)
    assert _proposed(tmp_path / "cut") == _proposed(tmp_path / "clean")


def test_a_lost_or_stale_state_is_rebuilt_without_drawing_the_same_children_again(tmp_path, capsys):
    """Rebuilt from the journal, a generator started again from the seed drew the children
    already drawn, one for one (100 of 100 for random search)."""
    import shutil

    from keras_nasnet.search.__main__ import main

    out = tmp_path / "s"
    args = ["--reward", "synthetic", "--strategy", "random", "--out", str(out), "--no-progress", "--workers", "0"]
    assert main([*args, "--trials", "20"]) == 0
    shutil.copy(out / "strategy.npz", tmp_path / "old.npz")
    (out / "strategy.npz").unlink()  # what the message for a damaged state says to do
    assert main([*args, "--trials", "40"]) == 0
    drawn = [json.dumps(a) for a in _proposed(out)]
    assert len(set(drawn)) == len(drawn) == 40
    # An older copy put back (it drew 20 of the 40): said, and rebuilt, not drawn again.
    shutil.copy(tmp_path / "old.npz", out / "strategy.npz")
    capsys.readouterr()
    assert main([*args, "--trials", "60"]) == 0
    assert "it is an older copy" in capsys.readouterr().err
    drawn = [json.dumps(a) for a in _proposed(out)]
    assert len(set(drawn)) == len(drawn) == 60
    # Another search's state (another seed's, here): one line naming the file, not a silent
    # continuation on the other run's generator (nor, for another strategy, a KeyError).
    other = tmp_path / "other"
    assert main(["--reward", "synthetic", "--strategy", "random", "--trials", "20", "--seed", "7",
                 "--out", str(other), "--no-progress", "--workers", "0"]) == 0
    shutil.copy(other / "strategy.npz", out / "strategy.npz")
    capsys.readouterr()
    assert main([*args, "--trials", "70"]) == 1
    err = capsys.readouterr().err
    assert "strategy.npz is another search's state (strategy random, seed 7" in err and "Traceback" not in err


def test_a_journal_without_its_config_is_not_adopted_by_other_settings(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main
    from keras_nasnet.search.report import main as report

    out = tmp_path / "s"
    assert main(_cli_args(out, 10)) == 0
    (out / "config.json").unlink()
    journal = (out / "trials.jsonl").read_bytes()
    capsys.readouterr()
    # another space and strategy: it used to write its own config.json and append to the journal
    assert main(["--reward", "synthetic", "--strategy", "ppo", "--trials", "12", "--out", str(out),
                 "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "no config.json" in err and "Restore config.json" in err and "Traceback" not in err
    assert (out / "trials.jsonl").read_bytes() == journal and not (out / "config.json").exists()
    assert report([str(out)]) == 2 and "no config.json" in capsys.readouterr().err


def test_a_journal_cut_short_behind_the_strategy_stops_the_search_until_the_user_chooses(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main

    out = tmp_path / "s"
    assert main(_cli_args(out, 20)) == 0
    lines = (out / "trials.jsonl").read_text().splitlines(keepends=True)
    (out / "trials.jsonl").write_text("".join(lines[:len(lines) // 2]))  # an older, shorter copy
    kept = sum('"finished"' in line for line in lines[:len(lines) // 2])
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}
    capsys.readouterr()
    # Going on would retrain the lost children and append after the gap: stopped, nothing changed.
    assert main(_cli_args(out, 20)) == 1
    err = capsys.readouterr().err
    assert f"had learned from 20 results, but trials.jsonl holds only {kept}" in err
    assert "Put the full trials.jsonl back" in err and "delete" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"} == before
    # The user's choice to go on: the strategy's state deleted, it is rebuilt from the records.
    (out / "strategy.npz").unlink()
    assert main(_cli_args(out, 20)) == 0
    finished = [r["trial"] for r in _records(out) if r["event"] == "finished"]
    assert len(finished) == len(set(finished)) == 20


def test_a_finished_record_copied_into_the_journal_counts_once(tmp_path):
    from keras_nasnet.search import load_trials
    from keras_nasnet.search.__main__ import main

    out = tmp_path / "s"
    assert main(_cli_args(out, 10)) == 0
    first = next(line for line in (out / "trials.jsonl").read_text().splitlines() if '"finished"' in line)
    with open(out / "trials.jsonl", "a") as f:
        f.write(first + "\n")
    assert len(load_trials(out)) == 10
    assert main(_cli_args(out, 14)) == 0
    finished = [r["trial"] for r in load_trials(out)]
    assert len(finished) == len(set(finished)) == 14


def test_out_that_is_a_file_is_refused(tmp_path, capsys):
    from keras_nasnet.search.__main__ import main

    (tmp_path / "f").write_text("not a folder")
    with pytest.raises(SystemExit) as e:
        main(_cli_args(tmp_path / "f", 5))
    assert e.value.code == 2 and "--out" in capsys.readouterr().err
    assert (tmp_path / "f").read_text() == "not a folder"


# ---------------------------------------------------------------- worker processes


def test_workers_start_ignoring_ctrl_c_with_quiet_logs_in_the_log_file(tmp_path, monkeypatch):
    from keras_nasnet.search.workers import _child_start_environment

    # Workers also get TensorFlow's oneDNN kernels unless the user chose (docs/performance.md),
    # and the driver's own environment is left as it was.
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
    child = ("import os, signal, sys; print(signal.getsignal(signal.SIGINT) == signal.SIG_IGN, "
             "os.environ['TF_CPP_MIN_LOG_LEVEL'], os.environ.get('TF_ENABLE_ONEDNN_OPTS')); "
             "print('tensorflow says hello', file=sys.stderr)")
    # The driver's handler is set here: a pytest started in the background (nohup, `cmd &`)
    # inherits SIGINT ignored, and then Python installs no handler of its own.
    original = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with _child_start_environment(tmp_path / "workers.log"):
            p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        assert p.communicate(timeout=60)[0].split() == ["True", "3", "1"]
        assert "tensorflow says hello" in (tmp_path / "workers.log").read_text()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the driver's is back
        assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ
        monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")  # a user's choice stands
        with _child_start_environment(None):
            p = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
        assert p.communicate(timeout=60)[0].split() == ["True", "3", "0"]
    finally:
        signal.signal(signal.SIGINT, original)


def test_a_supernet_step_under_way_finishes_before_a_sigterm_stops_the_search():
    # With SIGTERM made a Ctrl-C (as the command lines do), it is held like one until the step
    # under way has ended, so the checkpoint written on the way out holds whole steps only.
    from keras_nasnet._cli import _terminate_as_interrupt
    from keras_nasnet.search.shared_reward import _interrupts_held

    original = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    steps = []
    try:
        with pytest.raises(KeyboardInterrupt):
            with _interrupts_held():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                steps.append("the step went on")
        assert steps == ["the step went on"]
        assert signal.getsignal(signal.SIGTERM) is _terminate_as_interrupt  # restored after the block
    finally:
        signal.signal(signal.SIGTERM, original)


def test_sigterm_is_left_alone_in_a_library_user_process():
    # Importing keras_nasnet in one's own script changes no signal handler; only the package's
    # command lines make SIGTERM stop as Ctrl-C does.
    code = ("import signal, keras_nasnet; print(signal.getsignal(signal.SIGTERM) == signal.SIG_DFL)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.stdout.split() == ["True"], r.stderr[-2000:]


def test_a_worker_killed_while_writing_breaks_only_its_own_channel():
    import multiprocessing as mp

    from keras_nasnet.search.workers import receive

    theirs_r, theirs_w = mp.Pipe(duplex=False)
    other_r, other_w = mp.Pipe(duplex=False)
    # A worker writing a result far larger than the pipe's buffer, killed in the middle.
    writer = ("import sys; from multiprocessing.connection import Connection; "
              "Connection(int(sys.argv[1])).send(b'x' * 50_000_000)")
    p = subprocess.Popen([sys.executable, "-c", writer, str(theirs_w.fileno())], pass_fds=[theirs_w.fileno()])
    theirs_w.close()
    assert theirs_r.poll(60)  # it started writing
    time.sleep(0.2)
    p.kill()
    p.wait()
    assert receive(theirs_r) is None  # a broken channel, not a hang or a crash
    other_w.send({"trial": 1})
    assert receive(other_r) == {"trial": 1}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork for a throw-away driver")
def test_workers_exit_when_the_driver_is_killed():
    psutil = pytest.importorskip("psutil")
    ready_r, ready_w = os.pipe()
    driver = os.fork()
    if driver == 0:  # a throw-away driver: gives a worker a 10-minute child, then is killed
        try:
            from keras_nasnet.search.workers import LocalExecutor

            ex = LocalExecutor({"reward": "synthetic", "space": SPACE, "target": TARGET, "delay": 600},
                               workers=1)
            ex.submit({"trial": 0, "actions": [0, 1, 1, 0, 0] * 2, "logp": [0.0] * 10, "seed": 0})
            os.write(ready_w, str(ex.worker_pids()[0]).encode())
            time.sleep(600)
        finally:
            os._exit(0)
    os.close(ready_w)
    worker = psutil.Process(int(os.read(ready_r, 32)))
    os.kill(driver, signal.SIGKILL)  # kill -9: no clean-up code runs in the driver
    os.waitpid(driver, 0)
    # A worker still starting (importing under a loaded CPU) acts on its parent's death once its
    # first line runs: minutes on a starved machine, so the wait is long; a healthy run takes seconds.
    gone, alive = psutil.wait_procs([worker], timeout=300)
    assert not alive


# ---------------------------------------------------------------- command-line settings


@pytest.mark.parametrize("flag,value", [("--workers", "-1"), ("--batch-size", "0"), ("--clip", "-1"),
                                        ("--lr", "nan"), ("--synthetic-delay", "-1"), ("--target", "DARTS")])
def test_bad_search_settings_are_refused_before_anything_is_written(tmp_path, capsys, flag, value):
    from keras_nasnet.search.__main__ import main

    args = _cli_args(tmp_path / "s", 10)
    args = [a for i, a in enumerate(args) if a != "--target" and (i == 0 or args[i - 1] != "--target")]
    with pytest.raises(SystemExit) as e:
        main(args + [flag, value])
    assert e.value.code == 2 and flag.lstrip("-") in capsys.readouterr().err.replace("target", "target")
    assert not (tmp_path / "s").exists()


def test_default_ppo_settings_are_the_ones_that_work_and_the_paper_is_one_flag_away():
    from keras_nasnet.search.__main__ import build_parser, config_from_args

    def ppo(*flags):
        return config_from_args(build_parser().parse_args(["--out", "x", "--reward", "synthetic", *flags]))["ppo"]

    assert ppo()["entropy_weight"] == 0.05 and ppo()["lr"] == 0.00035
    assert ppo("--preset", "paper")["entropy_weight"] == 1e-5
    assert ppo("--preset", "paper", "--entropy-weight", "0.01")["entropy_weight"] == 0.01



def test_trial_budget_defaults_to_one_that_fits_the_reward():
    from keras_nasnet.search.__main__ import build_parser, config_from_args, trials_of

    def parsed(*flags):
        return build_parser().parse_args(["--out", "x", *flags])

    assert trials_of(parsed("--reward", "synthetic")) == 20000  # the paper's
    assert trials_of(parsed("--reward", "cifar10-shared")) == 2000  # 20,000 would take ~7 h more
    assert trials_of(parsed("--reward", "cifar10-shared", "--trials", "300")) == 300
    # a decaying schedule spans the budget the search will run
    shared = parsed("--reward", "cifar10-shared", "--data", "d", "--entropy-final", "0")
    assert config_from_args(shared)["ppo"]["total_trials"] == 2000

# ---------------------------------------------------------------- training runs


@pytest.fixture
def image_folder(tmp_path):
    from conftest import write_image_folder

    return write_image_folder(tmp_path / "imgs", 2, 1, np.random.default_rng(0))


def _train_args(out, data, *extra):
    return ["--out", str(out), "--data", str(data), "--num-cells", "1", "--penultimate-filters", "48",
            "--epochs", "2", "--batch-size", "10", "--drop-path", "0", "--aux-weight", "0",
            "--verbose", "0", *extra]


def test_training_settings_and_data_are_checked_before_anything_sticks(image_folder, tmp_path, capsys):
    from keras_nasnet.train import main

    out = tmp_path / "run"
    assert main(_train_args(out, image_folder, "--split", "full", "--genotype", "NASNET_B")) == 2
    assert "NASNET_B" in capsys.readouterr().err
    assert main(_train_args(out, image_folder)) == 1  # 20 images: too few to hold out 5,000
    assert "--split full" in capsys.readouterr().err
    assert main(_train_args(out, tmp_path / "nope.zip", "--split", "full")) == 1
    for flag, value in (("--batch-size", "0"), ("--lr", "nan"), ("--epochs", "-1")):
        with pytest.raises(SystemExit) as e:
            main(_train_args(out, image_folder, flag, value))
        assert e.value.code == 2 and flag in capsys.readouterr().err
    assert not (out / "config.json").exists()  # so the corrected command is not "another run"
    assert not out.exists()  # not even an empty folder with a lock file


def test_an_invalid_architecture_is_refused_before_anything_is_written(image_folder, tmp_path, capsys):
    from types import SimpleNamespace

    from keras_nasnet.train import check_model_settings, main

    out = tmp_path / "run"
    # 7 is no valid width for PNASNet-5's 5-wide cell: one line naming the flag, nothing written.
    assert main(_train_args(out, image_folder, "--genotype", "PNASNET_5", "--penultimate-filters", "7")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --num-cells/--penultimate-filters: ") and "Traceback" not in err
    assert not out.exists()
    # Left out, it is the valid value nearest to 768: 760 for PNASNet-5, 768 for NASNet-A.
    for genotype, want in (("PNASNET_5", 760), ("NASNET_A", 768)):
        args = SimpleNamespace(genotype=genotype, num_cells=1, penultimate_filters=None, aux_weight=0.4,
                               drop_path=0.4)
        check_model_settings(args)
        assert args.penultimate_filters == want


def test_a_diverged_run_stops_and_keeps_its_last_good_checkpoint(image_folder, tmp_path, monkeypatch, capsys):
    from keras_nasnet import train

    real = train.data_lib.make_dataset

    def nan_in_epoch_2(x, y, batch_size, training, seed=0, epoch=0, *args, **kwargs):
        ds = real(x, y, batch_size, training, seed, epoch, *args, **kwargs)
        return ds.map(lambda a, b: (a * float("nan"), b)) if training and epoch == 1 else ds

    def tiny_model(args, steps_per_epoch, replicas=1):  # the run's logic is under test, not NASNet
        import keras

        model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Rescaling(1 / 255),
                                  keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10, "softmax")])
        model.compile(keras.optimizers.SGD(args.lr), "sparse_categorical_crossentropy", jit_compile=False)
        return model

    monkeypatch.setattr(train.data_lib, "make_dataset", nan_in_epoch_2)
    monkeypatch.setattr(train, "build_training_model", tiny_model)
    out = tmp_path / "run"
    args = _train_args(out, image_folder, "--split", "full")
    assert train.main(args) == 1
    err = capsys.readouterr().err
    assert "loss became nan in epoch 2" in err and "after epoch 1" in err
    with np.load(out / "checkpoint.npz") as z:
        assert int(z["epochs_done"]) == 1 and all(np.isfinite(z[k]).all() for k in z.files)
    assert json.loads((out / "state.json").read_text())["epochs_done"] == 1
    assert not (out / "result.json").exists()
    # Other data (here a subset) is another run, not a resume of this one.
    assert train.main(args + ["--limit", "8"]) == 2  # invalid settings
    assert "another configuration" in capsys.readouterr().err


def test_files_are_flushed_to_disk_before_they_replace_the_old_ones(tmp_path, monkeypatch):
    # A rename reaches the disk independently of the data: after a power cut, a state file renamed
    # before its data was flushed can be empty, and the search or training it held cannot resume.
    from keras_nasnet.fileio import atomic_write

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append(("fsync", os.fstat(fd).st_size)) or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append(("replace", Path(b).name)) or real_replace(a, b))
    target = tmp_path / "state.json"
    target.write_text("old")
    with atomic_write(target) as tmp:
        tmp.write_text("new state")
    assert events == [("fsync", len("new state")), ("replace", "state.json")]
    assert target.read_text() == "new state" and [p.name for p in tmp_path.iterdir()] == ["state.json"]
    events.clear()
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:  # a failed write replaces nothing
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert events == [] and target.read_text() == "new state" and [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_journal_replaced_while_the_search_runs_loses_no_record(tmp_path, capsys):
    # `git stash` or `git checkout` in a checkout holding a running search put the committed (older)
    # trials.jsonl in place of the live one, and the search kept appending to the deleted file.
    from keras_nasnet.search import SearchConfig
    from keras_nasnet.search.errors import JournalCorrupt
    from keras_nasnet.search.journal import Journal, read_records

    config = SearchConfig(reward="synthetic", strategy="random", seed=0).to_dict()
    out = tmp_path / "s"
    journal = Journal(out, config)
    rec = lambda t: {"event": "proposed", "trial": t, "actions": [0] * 10, "logp": [0.0] * 10, "seed": t}  # noqa: E731
    trials = lambda f: [r["trial"] for r in read_records(f)[0]]  # noqa: E731
    for t in range(3):
        journal.append(rec(t))
    older = (out / "trials.jsonl").read_bytes()
    for t in range(3, 5):
        journal.append(rec(t))
    (tmp_path / "older").write_bytes(older)
    os.replace(tmp_path / "older", out / "trials.jsonl")  # what git does: a new file at the path
    journal.append(rec(5))
    assert trials(out / "trials.jsonl") == [0, 1, 2, 3, 4, 5]
    err = capsys.readouterr().err
    assert "replaced by an older copy" in err and "the 2 records it lacked were written back" in err
    journal.append(rec(6))  # and it appends to the file at the path from then on
    assert trials(out / "trials.jsonl") == list(range(7))
    # Cut short in place (the same file: `cp` of a backup over it, `> trials.jsonl`).
    with open(out / "trials.jsonl", "r+b") as f:
        f.truncate(len(older) - 5)
    journal.append(rec(7))
    assert trials(out / "trials.jsonl") == list(range(8))
    # Put back to an older copy after the last record: the journal repairs it as it closes.
    (tmp_path / "older").write_bytes(older)
    os.replace(tmp_path / "older", out / "trials.jsonl")
    journal.close()
    assert trials(out / "trials.jsonl") == list(range(8)) and "the 5 records it lacked were" in capsys.readouterr().err

    # Another file in its place (or none) is left alone, and this run's records are kept beside it.
    journal = Journal(out, config)
    (tmp_path / "other").write_text('{"event": "proposed", "trial": 0, "actions": [1], "logp": [0.0], "seed": 0}\n')
    os.replace(tmp_path / "other", out / "trials.jsonl")
    with pytest.raises(JournalCorrupt, match="replaced by another file while the search ran; this run's"):
        journal.append(rec(8))
    journal.close()  # said once: closing keeps no second copy
    [kept] = out.glob("trials.jsonl.this-run-*")
    assert trials(kept) == list(range(8)) and '"actions": [1]' in (out / "trials.jsonl").read_text()
    # Resumed before the kept records are put back: refused, naming them (it would start over);
    # `report` on the folder without its journal names them too.
    with pytest.raises(JournalCorrupt, match=f"{kept.name} holds the records of a run"):
        Journal(out, config)
    from keras_nasnet.search.report import main as report

    (out / "trials.jsonl").unlink()
    assert report([str(out)]) == 2 and f"{kept.name} there holds the records" in capsys.readouterr().err
    os.replace(kept, out / "trials.jsonl")
    journal = Journal(out, config)
    assert journal.next_trial == 8
    journal.close()

    # Deleted with its folder: the records are kept in a folder made again at its place.
    import shutil

    journal = Journal(tmp_path / "t", config)
    journal.append(rec(0))
    shutil.rmtree(tmp_path / "t")
    with pytest.raises(JournalCorrupt, match="was deleted while the search ran; this run's records"):
        journal.append(rec(1))
    journal.close()
    [kept] = (tmp_path / "t").glob("trials.jsonl.this-run-*")
    assert trials(kept) == [0]
    # Moved with its folder: nothing is kept (the moved file is whole); the message says where to look.
    journal = Journal(tmp_path / "u", config)
    journal.append(rec(0))
    os.rename(tmp_path / "u", tmp_path / "moved")
    with pytest.raises(JournalCorrupt, match="moved or renamed"):
        journal.append(rec(1))
    journal.close()
    assert not (tmp_path / "u").exists() and trials(tmp_path / "moved" / "trials.jsonl") == [0]
