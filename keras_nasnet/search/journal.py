"""The search's persistent record in ``--out``: configuration, trials and controller state.

* ``config.json``: the search's identity; a different configuration on the same folder is refused.
* ``trials.jsonl``: one line per event, appended and flushed as it happens: ``proposed`` (trial id,
  actions, log-probability, seed) and ``finished`` (reward, status, timings, worker). A kill can
  only cut the last line, which is ignored on reading.
* ``strategy.npz``: the strategy's state (controller and optimiser variables, sampler state,
  baseline, buffered results) and how many finished trials it has consumed; replaced atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np


class ConfigMismatch(SystemExit):
    """An existing ``--out`` holds a search with another configuration."""


class Journal:
    """Reads and appends the records of one search folder."""

    def __init__(self, out, config: dict):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        cfg_file = self.out / "config.json"
        if cfg_file.exists():
            old = json.loads(cfg_file.read_text())
            if old != config:
                diff = {k: {"stored": old.get(k), "given": config.get(k)}
                        for k in sorted(set(old) | set(config)) if old.get(k) != config.get(k)}
                raise ConfigMismatch(
                    f"{self.out} holds a search with another configuration: {json.dumps(diff)}. "
                    "Run with the same settings to resume it, or choose a new --out."
                )
        else:
            tmp = cfg_file.with_name("config.json.part")
            tmp.write_text(json.dumps(config, indent=2, sort_keys=True))
            os.replace(tmp, cfg_file)
        self.config = config
        self.trials_file = self.out / "trials.jsonl"
        self.proposed: dict[int, dict] = {}
        self.finished: list[dict] = []
        self._read()
        self._fh = open(self.trials_file, "a")

    def _read(self):
        if not self.trials_file.exists():
            return
        lines = self.trials_file.read_text().split("\n")
        good = []
        for line in lines:
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # a line cut by a kill; everything before it is intact
            good.append(line)
            if rec["event"] == "proposed":
                self.proposed[rec["trial"]] = rec
            elif rec["event"] == "finished":
                self.finished.append(rec)
        # Drop a cut last line so new records start on a fresh line.
        text = "".join(g + "\n" for g in good)
        if text != self.trials_file.read_text():
            tmp = self.trials_file.with_name("trials.jsonl.part")
            tmp.write_text(text)
            os.replace(tmp, self.trials_file)

    @property
    def next_trial(self) -> int:
        """The id the next proposal gets."""
        return max(self.proposed, default=-1) + 1

    def unfinished(self) -> list[dict]:
        """Proposed trials without a result (in flight when the search stopped), in id order."""
        done = {r["trial"] for r in self.finished}
        return [r for t, r in sorted(self.proposed.items()) if t not in done]

    def append(self, record: dict) -> None:
        """Appends one event and flushes it to the OS (it survives a kill of this process)."""
        self._fh.write(json.dumps(record) + "\n")
        self._fh.flush()
        if record["event"] == "proposed":
            self.proposed[record["trial"]] = record
        else:
            self.finished.append(record)

    def save_state(self, arrays: dict, consumed: int) -> None:
        """Atomically writes the strategy state after ``consumed`` finished trials were fed to it."""
        os.fsync(self._fh.fileno())  # the trials it reflects are on disk before it is
        path = self.out / "strategy.npz"
        tmp = self.out / "strategy.part.npz"
        np.savez(tmp, consumed=np.asarray(consumed), **arrays)
        os.replace(tmp, path)

    def load_state(self):
        """Returns ``(arrays, consumed)`` or ``(None, 0)`` for a new search."""
        path = self.out / "strategy.npz"
        if not path.exists():
            return None, 0
        with np.load(path) as z:
            arrays = {k: z[k] for k in z.files}
        return arrays, int(arrays.pop("consumed"))

    def close(self):
        """Closes the trials file."""
        self._fh.close()
