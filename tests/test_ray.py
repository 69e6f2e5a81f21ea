"""Child evaluation on a real local Ray runtime (started by the test), worker deaths included."""

import json
import time

import psutil
import pytest

ray = pytest.importorskip("ray")

from keras_nasnet.search.ray_executor import RayExecutor  # noqa: E402

SPACE = {"num_blocks": 1, "ops": ["identity", "sep_conv_3x3"], "combines": ["add", "concat"]}
CELL = {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"}], "concat": [2]}
TARGET = json.dumps({"normal": CELL, "reduction": CELL})


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _task(trial):
    return {"trial": trial, "actions": [0, 1, 1, 0, 0] * 2, "logp": [0.0] * 10, "seed": trial}


def _spec(delay):
    return {"reward": "synthetic", "space": SPACE, "target": TARGET, "delay": delay}


def _wait(ex, n, limit=400):
    got, deadline = [], time.time() + limit
    while len(got) < n and time.time() < deadline:
        got += ex.poll(timeout=1)
    return got


def _kill_running_child(limit=300):
    deadline = time.time() + limit
    while time.time() < deadline:
        for p in psutil.process_iter(["cmdline"]):
            if " ".join(p.info["cmdline"] or []).startswith("ray::_evaluate_remote"):
                p.kill()
                return True
        time.sleep(0.2)
    return False


def test_children_run_as_ray_tasks(local_ray):
    ex = RayExecutor(_spec(0.0), workers=2)
    for t in range(4):
        ex.submit(_task(t))
    got = _wait(ex, 4)
    ex.close()
    assert sorted(r["trial"] for r in got) == [0, 1, 2, 3]
    assert all(r["status"] == "ok" and r["reward"] == 1.0 for r in got)
    assert ray.is_initialized()  # an executor does not shut down a runtime it did not start


@pytest.mark.parametrize("driver,worker", [("1", "1"), ("0", "0")], ids=["command-line-default", "user-choice"])
def test_child_workers_get_the_drivers_onednn_choice(local_ray, monkeypatch, driver, worker):
    # TensorFlow reads the variable at import, in the worker: Ray workers (on other nodes too)
    # take their environment from Ray, so the executor sends the driver's value with each task
    # (the command lines set 1 unless the user chose; the test's Ray runtime started without it).
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", driver)
    ex = RayExecutor(_spec(1.5), workers=1)
    ex.submit(_task(3))
    seen, deadline = None, time.time() + 300
    while seen is None and time.time() < deadline:
        for p in psutil.process_iter(["cmdline"]):
            if " ".join(p.info["cmdline"] or []).startswith("ray::_evaluate_remote"):
                seen = p.environ().get("TF_ENABLE_ONEDNN_OPTS", "unset")
                break
        time.sleep(0.2)
    got = _wait(ex, 1)
    ex.close()
    assert got[0]["status"] == "ok"
    assert seen == worker


@pytest.mark.parametrize("retries,status", [(2, "ok"), (0, "error")], ids=["retried", "beyond-retries"])
def test_worker_killed_mid_child(local_ray, retries, status):
    # Killed once: with retries Ray runs the child again; without, it is an infrastructure error
    # (the search runs the trial again; the controller does not see it).
    ex = RayExecutor(_spec(2.0), workers=1, max_retries=retries)
    ex.submit(_task(7))
    assert _kill_running_child()
    got = _wait(ex, 1)
    ex.close()
    assert got[0]["trial"] == 7 and got[0]["status"] == status
    assert status == "ok" or (got[0]["event"] == "error" and "reward" not in got[0])


@pytest.mark.slow
def test_search_on_ray_matches_the_local_record_format(local_ray, tmp_path):
    from keras_nasnet.search.__main__ import main

    out = tmp_path / "ray_search"
    args = ["--reward", "synthetic", "--executor", "ray", "--workers", "2", "--trials", "30",
            "--blocks", "1", "--ops", "identity,sep_conv_3x3", "--target", TARGET, "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    recs = [json.loads(l) for l in (out / "trials.jsonl").read_text().splitlines()]
    finished = [r for r in recs if r["event"] == "finished"]
    assert sorted(r["trial"] for r in finished) == list(range(30))
    # The same search extended to 40 trials resumes: the first 30 results stay as they were.
    assert main([a if a != "30" else "40" for a in args]) == 0
    recs2 = [json.loads(l) for l in (out / "trials.jsonl").read_text().splitlines()]
    finished2 = [r for r in recs2 if r["event"] == "finished"]
    assert sorted(r["trial"] for r in finished2) == list(range(40))
    assert finished2[:30] == finished


@pytest.mark.slow
def test_sigterm_stops_a_ray_search_like_ctrl_c_and_it_resumes(tmp_path):
    """Ray's core worker installs a fatal-signal handler for SIGTERM (stack dump, exit 134); the
    command line puts its own back, so `kill`/`timeout` stop a Ray search as they stop a local one."""
    import signal
    import subprocess
    import sys

    out = tmp_path / "s"
    cmd = [sys.executable, "-m", "keras_nasnet.search", "--reward", "synthetic", "--strategy", "random",
           "--executor", "ray", "--workers", "1", "--blocks", "1", "--ops", "identity,sep_conv_3x3",
           "--target", TARGET, "--synthetic-delay", "0.05", "--trials", "100000", "--no-progress",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        journal = out / "trials.jsonl"
        if journal.exists() and '"finished"' in journal.read_text():
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    err = proc.communicate(timeout=120)[1]
    assert proc.returncode == 130, err[-2000:]
    assert "run the same command to resume" in err and "SIGTERM received" not in err
