"""The Dispatcher both the search loop and the stages run their children through."""

class _Executor:
    """Evaluates in submit() like the inline executor; ``fail`` maps trial -> how many times it
    fails with an infrastructure error first."""

    capacity = 20

    def __init__(self, fail=None):
        self.fail, self.done, self.runs = dict(fail or {}), [], []

    def submit(self, task):
        t = task["trial"]
        self.runs.append(t)
        if self.fail.get(t, 0) > 0:
            self.fail[t] -= 1
            self.done.append({"event": "error", "trial": t, "status": "error", "error": "worker died"})
        else:
            self.done.append({"event": "finished", "trial": t, "actions": task["actions"], "logp": 0.0,
                              "reward": 0.5, "status": "ok"})

    def poll(self, timeout=0.0):
        done, self.done = self.done, []
        return done


def _journal(tmp_path, n):
    from keras_nasnet.search.journal import Journal

    j = Journal(tmp_path / "j", {"space": None, "reward": "test", "strategy": None, "seed": None})
    recs = []
    for _ in range(n):
        rec = {"event": "proposed", "trial": j.next_trial, "actions": [0], "logp": 0.0, "seed": 0}
        j.append(rec)
        recs.append(rec)
    return j, recs


def test_infrastructure_errors_run_again_then_count_as_failed(tmp_path):
    from keras_nasnet.search.run import MAX_ATTEMPTS, Dispatcher
    from keras_nasnet.search.workers import FAILED_REWARD

    journal, recs = _journal(tmp_path, 2)
    ex = _Executor(fail={0: 1, 1: MAX_ATTEMPTS})
    dispatch = Dispatcher(ex, journal, recs)
    results = []
    while dispatch.pending:
        results += dispatch.poll(timeout=0)
    finished = {r["trial"]: r for _, r in results if r["event"] == "finished"}
    assert finished[0]["status"] == "ok"  # one error, then it ran again and succeeded
    assert finished[1]["status"] == "failed" and finished[1]["reward"] == FAILED_REWARD
    assert ex.runs.count(1) == MAX_ATTEMPTS and ex.runs.count(0) == 2
    assert len(journal.errors) == 1 + (MAX_ATTEMPTS - 1)
    journal.close()
