"""The search's persistent record in ``--out``: configuration, trials and controller state.

* ``config.json``: the search's identity; a different configuration on the same folder is refused.
* ``trials.jsonl``: one line per event, appended and flushed as it happens: ``proposed`` (trial id,
  actions, log-probability, seed), ``finished`` (reward, status, timings, worker) and ``error`` (a
  child lost to an infrastructure failure; it is run again). A kill can only cut the last line,
  which is dropped on reading; damage anywhere else stops with a message naming the line, and the
  file is left as it is.
* ``strategy.npz``: the strategy's state (controller and optimiser variables, sampler state,
  baseline, buffered results) and how many finished trials it has consumed; replaced atomically.
* ``.lock``: held while a search runs, so two runs cannot write one folder.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from ..fileio import FolderLock, atomic_write, savez_atomic, write_json_atomic
from .errors import ConfigMismatch, JournalCorrupt, NotASearch, StateCorrupt

#: Keys every ``config.json`` has.
_CONFIG_KEYS = ("space", "reward", "strategy", "seed")


def read_config(path) -> dict:
    """The configuration stored in a search folder's ``config.json`` (``path`` is the file or the
    folder); a damaged file raises :class:`StateCorrupt` naming it, a missing one
    :class:`~keras_nasnet.search.errors.NotASearch` (a ``FileNotFoundError``)."""
    path = Path(path)
    if path.is_dir():
        path = path / "config.json"
    if not path.exists():
        raise NotASearch(f"{path} does not exist: no search was started there (a search "
                                "folder holds config.json from its first run).")
    config = None
    try:
        config = json.loads(path.read_text())
        problem = None if isinstance(config, dict) and all(k in config for k in _CONFIG_KEYS) else \
            f"not a search configuration (it needs {', '.join(_CONFIG_KEYS)})"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problem = f"not readable JSON ({e})"
    if problem and isinstance(config, dict) and "genotype" in config and "epochs" in config:
        # A keras_nasnet.train folder: its config.json is intact, only not a search's.
        raise NotASearch(f"{path.parent} holds a run of keras_nasnet.train, not a search: give a new or "
                         "empty folder as --out (or the folder of a search to resume it).")
    if problem:
        raise StateCorrupt(
            f"{path} is damaged: {problem}. It holds the search's settings: restore it from a copy "
            "(or write it again from the command that started the search), or start a new search "
            "with another --out."
        )
    return config

def config_differences(stored: dict, given: dict, prefix: str = "") -> list[str]:
    """What differs between two ``config.json`` dicts, one readable line per differing setting
    (``ppo.entropy_weight: stored 0.05, given 0.1``), nested settings by their dotted path."""
    def shown(value):
        text = "(not set)" if value is _UNSET else json.dumps(value, sort_keys=True)
        return text if len(text) <= 120 else text[:117] + "..."

    lines = []
    for key in sorted(set(stored) | set(given)):
        a, b = stored.get(key, _UNSET), given.get(key, _UNSET)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            lines.extend(config_differences(a, b, f"{prefix}{key}."))
        else:
            lines.append(f"{prefix}{key}: stored {shown(a)}, given {shown(b)}")
    return lines


_UNSET = object()

#: Fields every record of an event type must have.
_REQUIRED = {"proposed": ("trial", "actions", "logp", "seed"),
             "finished": ("trial", "actions", "logp", "reward", "status"),
             "error": ("trial",)}


def read_records(path) -> tuple[list[dict], int]:
    """The records of a ``trials.jsonl`` and the byte length of its intact part.

    A cut last line (a kill during its write) is left out. Any other line that is not a record
    raises :class:`JournalCorrupt` naming the line; nothing is changed on disk. A second
    ``finished`` record of the same trial (a line copied by hand) is left out: the first one counts,
    so no child is counted or shown to the strategy twice.
    """
    path = Path(path)
    data = path.read_bytes()
    lines = data.split(b"\n")
    records, intact, offset = [], 0, 0
    finished = set()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, line in enumerate(lines):
        end = offset + len(line) + 1
        if line.strip():
            problem = None
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or rec.get("event") not in _REQUIRED:
                    problem = "not a trial record (no known 'event')"
                elif any(k not in rec for k in _REQUIRED[rec["event"]]):
                    missing = [k for k in _REQUIRED[rec["event"]] if k not in rec]
                    problem = f"a {rec['event']} record without {', '.join(missing)}"
            except (json.JSONDecodeError, UnicodeDecodeError):
                if i == last:
                    break  # cut by a kill while it was written; everything before it is intact
                problem = "not valid JSON"
            if problem:
                raise JournalCorrupt(
                    f"{path}, line {i + 1}: {problem}. Only a cut last line can come from a crash, "
                    "so the file was damaged otherwise; it was left untouched. Restore it from a "
                    "copy, or start a new search in another folder."
                )
            if rec["event"] == "finished":
                if rec["trial"] in finished:
                    intact, offset = min(end, len(data)), end
                    continue
                finished.add(rec["trial"])
            records.append(rec)
        intact = min(end, len(data))
        offset = end
    return records, intact


class Journal:
    """Reads and appends the records of one search folder."""

    def __init__(self, out, config: dict):
        self.out = Path(out)
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock = FolderLock(self.out)
        try:
            self._open(config)
        except BaseException:
            self._lock.release()
            raise

    def _open(self, config: dict):
        cfg_file = self.out / "config.json"
        trials_file = self.out / "trials.jsonl"
        if not cfg_file.exists() and trials_file.is_file() and trials_file.stat().st_size:
            # Writing this run's settings would adopt records made with unknown ones (another
            # space, strategy or reward) and mix them for good.
            raise StateCorrupt(
                f"{self.out} holds a journal (trials.jsonl, {trials_file.stat().st_size:,} bytes) but no "
                "config.json, so the settings its records were made with are unknown; nothing was "
                "changed. Restore config.json (from a copy or a commit) to resume that search, or "
                "choose a new --out."
            )
        if cfg_file.exists():
            old = read_config(cfg_file)
            if old != config:
                lines = config_differences(old, config)
                hint = ""
                if any(line.startswith("ppo.total_trials:") for line in lines):
                    hint = (" A search with a learning-rate or entropy schedule (--lr-final, "
                            "--entropy-final) spans its --trials, so it keeps them: run it with its "
                            "own --trials, or start a new --out to search longer.")
                raise ConfigMismatch(
                    f"{self.out} holds a search with another configuration: {'; '.join(lines)}. "
                    "Run with the same settings to resume it, or choose a new --out." + hint
                )
        else:
            write_json_atomic(cfg_file, config, indent=2, sort_keys=True)
        self.config = config
        self.trials_file = self.out / "trials.jsonl"
        self.proposed: dict[int, dict] = {}
        self.finished: list[dict] = []
        self.errors: list[dict] = []
        kept = sorted(self.out.glob("trials.jsonl.this-run-*"))
        if kept:
            # A run stopped because its journal was replaced or deleted left its records there:
            # resuming without them would draw and train those children again, as new trials.
            raise JournalCorrupt(
                f"{kept[0]} holds the records of a run whose {self.trials_file.name} was replaced or "
                f"deleted while it ran. If it is this search's journal, move it to "
                f"{self.trials_file} (replacing what is there); if not, move it out of {self.out}. "
                "Then run the same command again."
            )
        self._read()
        # Every byte of the journal, as this process read and wrote it: what puts it back if the
        # file is replaced, truncated or deleted while the search runs (see _check_file).
        self._bytes = bytearray(self.trials_file.read_bytes() if self.trials_file.exists() else b"")
        self._fh = open(self.trials_file, "ab")
        self._stopped_by = None

    def _read(self):
        if not self.trials_file.exists():
            return
        records, intact = read_records(self.trials_file)
        for rec in records:
            if rec["event"] == "proposed":
                self.proposed[rec["trial"]] = rec
            elif rec["event"] == "finished":
                self.finished.append(rec)
            else:
                self.errors.append(rec)
        if intact < self.trials_file.stat().st_size:
            # Drop a cut last line so new records start on a fresh line.
            os.truncate(self.trials_file, intact)
        with open(self.trials_file, "rb+") as f:
            if f.seek(0, 2) and (f.seek(-1, 2), f.read(1))[1] != b"\n":
                f.write(b"\n")  # an intact last record whose newline did not make it to disk

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
        self._check_file()
        line = (json.dumps(record) + "\n").encode()
        self._fh.write(line)
        self._fh.flush()
        self._bytes += line
        if record["event"] == "proposed":
            self.proposed[record["trial"]] = record
        elif record["event"] == "finished":
            self.finished.append(record)
        else:
            self.errors.append(record)

    def _check_file(self, stopping: bool = False) -> None:
        """Makes sure ``trials.jsonl`` still holds exactly what this process read and wrote.

        Tools that rewrite files replace or overwrite them: ``git stash``, ``git checkout``, ``cp``
        of a backup or a restore of the folder put an older ``trials.jsonl`` where the search's
        was, and a search appending through its open handle then wrote every later record into a
        deleted file (a study lost nine finished children that way until they were copied back
        from the process). Checked before each record, before the strategy's state is saved and
        when the journal closes. An older copy (what the journal was at some point: a prefix of
        this process's bytes, cut or not) is brought up to date and the search goes on, saying
        so. Anything else in its place, or nothing, is left alone: this run's records are kept
        beside it in ``trials.jsonl.this-run-*``, and the search stops with
        :class:`JournalCorrupt` (``stopping``: while it closes, a warning says so instead)."""
        path = self.trials_file.resolve()  # a symlinked journal is repaired where it points
        mine = os.fstat(self._fh.fileno())
        try:
            there = os.stat(path)
        except FileNotFoundError:
            there = None
        same_file = there is not None and (there.st_ino, there.st_dev) == (mine.st_ino, mine.st_dev)
        if same_file and there.st_size == len(self._bytes):
            return
        ours = bytes(self._bytes)
        if there is None and mine.st_nlink > 0:
            # Moved with its folder (or renamed): the file this run appends to holds every record.
            message = (f"{self.trials_file} was moved or renamed (with its folder?) while the search ran; the "
                       "file this run appended to is intact wherever it went, with every record: run the "
                       "same command with --out at its new place to resume.")
            if stopping:
                print(f"warning: {message}", file=sys.stderr)
                return
            raise JournalCorrupt(message)
        try:
            theirs = path.read_bytes() if there is not None else None
        except OSError:
            theirs = None
        if theirs is not None and ours.startswith(theirs):
            if theirs != ours:
                with atomic_write(path) as tmp:
                    tmp.write_bytes(ours)
            self._fh.close()
            self._fh = open(self.trials_file, "ab")
            lacked = ours[len(theirs):].count(b"\n")
            if not lacked:
                return  # an identical copy: nothing was lost
            print(f"warning: {self.trials_file} was replaced by an older copy or cut short while the search "
                  f"ran (git stash or checkout, a copy or restore of the folder?); the {lacked} "
                  f"record{'' if lacked == 1 else 's'} it lacked {'was' if lacked == 1 else 'were'} written back"
                  f"{'' if stopping else ' and the search goes on'}.", file=sys.stderr)
            return
        if self._stopped_by:  # said, and kept, once
            if stopping:
                return
            raise JournalCorrupt(self._stopped_by)
        if there is None:
            what = "deleted"
        else:
            what = "replaced by another file" if not same_file else "overwritten with other records"
        keep = self.trials_file.with_name(f"trials.jsonl.this-run-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
        try:
            keep.parent.mkdir(parents=True, exist_ok=True)
            with open(keep, "xb") as f:  # never over an earlier run's
                f.write(ours)
            kept = (f"this run's records (the whole journal as it should be) are in {keep}; move it to "
                    f"{self.trials_file} and run the same command to resume")
        except OSError as e:
            kept = f"this run's records could not be kept ({e})"
        message = self._stopped_by = f"{self.trials_file} was {what} while the search ran; {kept}."
        if stopping:
            print(f"warning: {message}", file=sys.stderr)
            return
        raise JournalCorrupt(message)

    def save_state(self, arrays: dict, consumed: int, pending: list | None = None) -> None:
        """Atomically writes the strategy state after ``consumed`` finished trials were fed to it.

        ``pending``: ``proposed`` records the strategy has just drawn and the journal does not hold
        yet. They are saved with the state that drew them, before they are journaled: a stop in
        between leaves either the old state and none of them, or the new state and them
        (:meth:`load_state` journals the missing ones), never a state that would draw them again.
        The state also records how many proposals it accounts for (``proposals``)."""
        pending = list(pending or [])
        self._check_file()
        os.fsync(self._fh.fileno())  # the trials it reflects are on disk before it is
        savez_atomic(self.out / "strategy.npz", consumed=np.asarray(consumed),
                     proposals=np.asarray(self.next_trial + len(pending)),
                     pending=np.asarray(json.dumps(pending)),
                     search=np.asarray(json.dumps(self._identity(), sort_keys=True)), **arrays)

    def _identity(self) -> dict:
        """What makes a strategy state this search's: its strategy, seed and space."""
        return {k: self.config.get(k) for k in ("strategy", "seed", "space")}

    def load_state(self):
        """Returns ``(arrays, consumed)`` or ``(None, 0)`` for a new search (or a state to rebuild
        from the journal: see the warnings printed). Proposals the state drew but the journal
        lacks (a stop between the two writes) are journaled here."""
        path = self.out / "strategy.npz"
        if not path.exists():
            return None, 0
        try:
            with np.load(path) as z:
                arrays = {k: z[k] for k in z.files}
            consumed = int(arrays.pop("consumed"))
            # Absent from states written before session 36: nothing to reconcile then.
            proposals = int(arrays.pop("proposals")) if "proposals" in arrays else None
            pending = json.loads(str(arrays.pop("pending"))) if "pending" in arrays else []
            owner = json.loads(str(arrays.pop("search"))) if "search" in arrays else None
        except Exception as e:  # a zip, pickle or key error: any of them means a damaged file
            raise StateCorrupt(
                f"{path} is damaged ({type(e).__name__}: {e}). It holds the controller's state only: "
                f"delete it and run the same command again, and the controller is rebuilt from the "
                f"{len(self.finished)} trials recorded in {self.trials_file.name} (none is lost; "
                "the children it proposes next differ from those an undamaged run would)."
            ) from None
        if owner is not None and owner != json.loads(json.dumps(self._identity(), sort_keys=True)):
            raise StateCorrupt(
                f"{path} is another search's state (strategy {owner.get('strategy')}, seed "
                f"{owner.get('seed')}; this search: {self.config.get('strategy')}, seed "
                f"{self.config.get('seed')}, or another space): copied here by mistake? Put this "
                "search's own back, or delete it and run the same command again: the strategy is "
                f"then rebuilt from the {len(self.finished)} trials recorded in "
                f"{self.trials_file.name} (none is lost).")
        if consumed > len(self.finished):
            # Results are journaled before the strategy sees them, so its state is never ahead of
            # the journal unless records were lost from it (a file cut short, an older copy put
            # back). Going on would train those children again and append after the gap, so the
            # full journal could no longer be put back: stop, change nothing, and say both ways on.
            raise StateCorrupt(
                f"{path} had learned from {consumed} results, but {self.trials_file.name} holds only "
                f"{len(self.finished)}: records were lost from the journal (cut short, or an older copy "
                f"put back). Nothing was changed. Put the full {self.trials_file.name} back and run the "
                f"same command again; or, to go on without the lost records, delete {path}: the "
                f"strategy is then rebuilt from the {len(self.finished)} recorded trials.")
        for rec in pending:
            if rec["trial"] == self.next_trial:  # drawn and saved, not yet journaled: journal it
                self.append(rec)
        if proposals is not None and proposals < self.next_trial:
            # The journal holds children this state never drew (an older copy put back): from it
            # the strategy would draw them again. Rebuilt from the records instead.
            print(f"warning: {path} accounts for {proposals} proposed children, but "
                  f"{self.trials_file.name} holds {self.next_trial}: it is an older copy. The "
                  f"strategy is rebuilt from the {len(self.finished)} recorded trials.", file=sys.stderr)
            return None, 0
        return arrays, consumed

    def close(self, *, keep_lock: bool = False):
        """Closes the trials file and releases the folder; with ``keep_lock``, returns the folder's
        :class:`~keras_nasnet.fileio.FolderLock` still held instead (the caller releases it)."""
        try:
            self._check_file(stopping=True)
        except BaseException:
            # Not returned to the caller, so released here (else held until the process exits).
            self._fh.close()
            self._lock.release()
            raise
        self._fh.close()
        if not keep_lock:
            self._lock.release()
        return self._lock if keep_lock else None
