"""The stages after the controller: from a search's rewards to one cell worth keeping.

A weight-sharing supernet (or a cheap proxy) filters out bad cells but does not pick the best one,
so, as NASNet itself did, the top candidates are retrained stand-alone at rising budgets:

1. **re-score** (``cifar10-shared`` only): the top ``rescore_top`` distinct cells of the search are
   scored again by the supernet on ``rescore_images`` held-out images that the search's reward
   did not use (default: all of them, 4,500 of 5,000 beside the reward's 500): the candidates
   were picked for their rewards, so scoring them again on the same images would repeat the luck
   that picked them. The ``cifar10`` reward already is a stand-alone held-out accuracy
   and the ``synthetic`` reward has no noise, so for them this stage is skipped and the search's
   own rewards rank the candidates;
2. **screen**: the top ``screen_top`` cells are trained stand-alone for one epoch on
   ``screen_images`` training images with each of ``screen_seeds`` seeds apart from the stages'
   seeds, at the stages' parameter count, and reordered by the mean held-out accuracy; with
   ``screen_widest``, the cells among the search's best ``widest_from`` that get the most filters
   at that parameter count are screened beside them (the search's reward judges every cell at one
   width, the stages at equal parameters, so it passes over light cells). Neither the
   supernet nor a training-free score ranks the candidates as the stand-alone budget does (Kendall
   tau 0.26-0.35 on 57 cells); this short training of the stand-alone child itself does (0.63 at
   the defaults; ``search/reward/``: measured there);
3. **cheap budget**: the top ``top_k`` cells are trained stand-alone at ``cheap_budget`` with each
   of ``seeds`` seeds;
4. **successive halving**: the best ``1/eta`` (by mean held-out accuracy over the seeds) go on at
   ``eta`` times the budget, until ``final_budget``;
5. **confirmation**: the best ``confirm_top`` cells of the last round, and NASNet-A, are trained
   with ``confirm_seeds`` more seeds at the final budget, and the final cell is the best of them by
   the mean over all their seeds. The last round's top cells are often within one run's seed noise
   of each other (about 0.011 at the defaults), so a pick on 3 seeds is close to a coin toss, and
   the final cell is compared with NASNet-A on as many seeds as it was picked on;
6. **report**: the finalists (the cells trained at the final budget), NASNet-A and
   ``random_cells`` random cells of the search space (drawn with a fixed seed) at the final budget
   and the same seeds go to ``final.json`` and ``final.png``; ``best_genotype.json`` becomes the
   finalist with the best mean held-out accuracy (the CIFAR-10 test split is recorded, never used
   to choose).

A *budget* is a number of training epochs of the stand-alone child (the search's ``cifar10`` proxy,
or the ``cpu`` proxy for a ``cifar10-shared`` search) on ``images`` training images (default: all
45,000 of the split: at 1 epoch on 10,000 images NASNet-A ranked below most random cells; see
``search/calibration/`` for the budgets measured since). With the ``synthetic`` reward it is a test
device: the synthetic reward plus seeded Gaussian noise of standard deviation
:data:`SYNTHETIC_NOISE` / sqrt(budget), so the stages run end to end in milliseconds.

Every child runs through the search's executor (inline, local workers or Ray). Each budget has its
own journal folder ``stages/budget-<b>[-p<N>]/`` (``stages/rescore-<first>-<end>/`` for re-scoring,
``stages/screen-<images>[-p<N>]/`` for screening) with the
format of the search's ``trials.jsonl``; a child is identified by (genotype, budget, seed), so a
run killed anywhere resumes with no finished child trained twice, and changing the stage sizes
reuses every child already trained.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import time
import zlib
from pathlib import Path

import numpy as np

from .base import Reward
from .errors import ConfigMismatch, InvalidSettings, SearchError, SearchFailed
from .rewards import MATCH_NASNET_A

#: Seed of the random reference cells (the same cells in every search of one space).
RANDOM_CELLS_SEED = 2020
#: CIFAR-10's training images after the 5,000 held out: ``--stage-images``' default and maximum.
FULL_SPLIT = 45000
#: A screening child's seed is ``search seed * 1000 + max(SCREEN_SEED_OFFSET, stage seeds +
#: confirmation seeds)``: apart from every stage child's (``search seed * 1000 + i``, ``i`` below
#: that sum).
SCREEN_SEED_OFFSET = 10
#: CPU-minutes of one stand-alone child-epoch at the defaults (N=1, NASNet-A's parameter count,
#: 45,000 images, one thread): the mean CPU time of the 13 children search/fair/ppo's records
#: measured it for (161-268 s). The calibration's median of 4.9 minutes was wall time beside
#: other jobs.
CHILD_CPU_MINUTES = 3.6
#: CPU-hours of a cifar10-shared search before its stages at the defaults: the 10-epoch supernet
#: (0.86 CPU-seconds a step, 7,040 steps) and 2,000 rewards (1.04 CPU-seconds each), measured for
#: search/fair/.
SHARED_SEARCH_CPU_HOURS = 2.3
#: CPU-seconds of one screening child at the defaults (1 epoch on 15,000 images, NASNet-A's
#: parameter count, one thread, held-out prediction included, no test split): the 114 children of
#: search/reward/short-e1-15k took 87 on average (45-114 s; session 18). At 5,000 images: 39.
SCREEN_CHILD_CPU_SECONDS = 87
#: Standard deviation of the synthetic stand-alone "accuracy" noise at budget 1.
SYNTHETIC_NOISE = 0.05


@dataclasses.dataclass
class StageConfig:
    """Sizes of the stages after the controller (see the module docstring).

    Args:
        rescore_top: distinct cells the supernet re-scores (``cifar10-shared`` only).
        rescore_images: held-out images of the re-scoring, after the reward's ``reward_images``
            (default: all of the rest, ``val_images - reward_images``).
        screen_top: cells (the top of the re-scored ones, or of the search's rewards) trained
            stand-alone for one epoch on ``screen_images`` images and reordered by that accuracy
            before the cheap budget (at most the ``rescore_top`` re-scored ones); 0: no screening.
        screen_images: training images of a screening child (the first of the 45,000-image split).
        screen_seeds: seeds per screened cell; the cells are reordered by the mean held-out
            accuracy over them (a short run's seed noise is the screening's main error,
            ``search/reward/``).
        screen_widest: cells screened beside the ``screen_top``: those of the search's best
            ``widest_from`` distinct cells (by its reward) not among them that get the most filters
            at the stages' parameter count (ties: the better reward); 0: none. Needs
            ``match_params`` (at one width for all every cell has the same width).
        widest_from: how many of the search's best distinct cells ``screen_widest`` chooses from;
            their widths are computed once (about a second each) and kept in
            ``stages/widths-<cells>-p<params>.json``.
        top_k: cells trained stand-alone at the cheap budget.
        seeds: seeds per cell and budget (the same seeds for every cell).
        cheap_budget: epochs of the first stand-alone round.
        final_budget: epochs of the last round, at which the references are trained too
            (``None``: ``cheap_budget``, one round without halving).
        eta: successive halving keeps the best ``1/eta`` and multiplies the budget by ``eta``.
        confirm_top: cells of the last round (its best) trained with ``confirm_seeds`` more seeds
            at the final budget, beside NASNet-A with the same seeds; the final cell is the best
            of them over all their seeds.
        confirm_seeds: seeds added in the confirmation (0: no confirmation; the final cell is
            the last round's best over ``seeds`` seeds).
        random_cells: random reference cells (fixed seed :data:`RANDOM_CELLS_SEED`).
        images: training images of every stand-alone child (the first ``images`` of the
            45,000-image split; ``search/calibration/`` measures budgets on all of them);
            ``None``: as many as the search's own child proxy.
        reuse: folders of stand-alone journals (a :func:`train_standalone` folder, another
            search's folder with its ``stages/``, or a study folder holding either): a child
            (cell, seed) that one of them finished at the same budget, training images and recipe
            is copied into this search's journal instead of being trained again. The references
            are the same cells with the same seeds in every search of a space, so a study trains
            them once. A child recorded with the fingerprint of other CIFAR-10 data (another
            source, or another order of its images) is trained again instead; children recorded before the
            fingerprint existed are reused without that check.
        match_params: ``"nasnet-a"`` (default): each stand-alone child's width gives it about as
            many parameters as NASNet-A has at the proxy's width (73,218 for the ``cpu`` proxy;
            :func:`~keras_nasnet.search.rewards.nasnet_a_params`), so cells are compared at equal
            capacity: at one width, random cells carry up to 55 times NASNet-A's parameters, and
            a budget then rewards size (``search/calibration/``). A number: that many parameters
            (:attr:`~keras_nasnet.search.ProxyConfig.match_params`). ``None``: every child has the
            proxy's width.
    """

    # The defaults come from search/calibration/ (e1-45k-add-p73218): at NASNet-A's parameter
    # count, 1 epoch on 45,000 images puts NASNet-A above all 12 random cells, at about
    # CHILD_CPU_MINUTES per child. So the cheap budget is also the final one (no halving round
    # unless --final-budget is raised), 3 seeds give the final cell's mean, and 12 random cells
    # are the median the final cell is judged against.
    rescore_top: int = 40
    rescore_images: int | None = None
    # search/reward/: 1 epoch on 5,000 images ranked the final budget's 57 cells with Kendall tau
    # 0.42-0.50 (one seed), 0.51 (the mean of two), the supernet with 0.1-0.3. Its seed noise was
    # the main error, so the screening runs 1 epoch on 15,000 images with 2 seeds (short-e1-15k):
    # tau 0.63 [0.50, 0.74] on all 57, 0.64-0.74 on each ground truth; 40 x 2 children at
    # SCREEN_CHILD_CPU_SECONDS, about 1.9 CPU-hours.
    screen_top: int = 40
    screen_images: int = 15000
    screen_seeds: int = 2
    screen_widest: int = 0
    widest_from: int = 300
    top_k: int = 16
    seeds: int = 3
    cheap_budget: int = 1
    final_budget: int | None = None
    eta: int = 2
    # search/confirm/: the top 3-4 of 16 finalists were 0.002-0.006 apart on 3 seeds, under one
    # run's seed noise (0.011), so 3 more seeds each for the best 4 and NASNet-A: 15 children,
    # about 0.9 CPU-hours at the defaults.
    confirm_top: int = 4
    confirm_seeds: int = 3
    random_cells: int = 12
    images: int | None = FULL_SPLIT
    reuse: tuple[str, ...] = ()
    match_params: int | str | None = "nasnet-a"

    def validate(self, search_config=None) -> None:
        """Raises :class:`InvalidSettings` naming the command-line flag of a bad value."""
        for flag, name, low in (("--rescore-top", "rescore_top", 1), ("--top-k", "top_k", 1),
                                ("--stage-seeds", "seeds", 1), ("--cheap-budget", "cheap_budget", 1),
                                ("--final-budget", "last_budget", 1), ("--halving-eta", "eta", 2),
                                ("--random-cells", "random_cells", 0), ("--screen-top", "screen_top", 0),
                                ("--screen-seeds", "screen_seeds", 1), ("--screen-widest", "screen_widest", 0),
                                ("--widest-from", "widest_from", 1),
                                ("--confirm-top", "confirm_top", 1), ("--confirm-seeds", "confirm_seeds", 0)):
            v = self.last_budget if name == "last_budget" else getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < low:
                raise InvalidSettings(f"{flag} must be an integer >= {low}; got {v!r}.")
        for flag, v in (("--stage-images", self.images), ("--screen-images", self.screen_images)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= FULL_SPLIT):
                raise InvalidSettings(f"{flag} must be an integer from 1 to 45000 (the training split); got {v!r}.")
        if self.screen_top and self.screen_top < self.top_k:
            raise InvalidSettings(f"--screen-top ({self.screen_top}) must be at least --top-k ({self.top_k}): "
                                  "the cells trained at the cheap budget come from the screened ones (or "
                                  "--screen-top 0: no screening).")
        if self.screen_widest and not self.screen_top:
            raise InvalidSettings("--screen-widest adds cells to the screening; it needs --screen-top "
                                  "of at least 1 (the screening stage).")
        reuse = self.reuse
        if isinstance(reuse, (str, Path)) or reuse is None:
            reuse = () if reuse is None else (reuse,)
        if not isinstance(reuse, (list, tuple)) or not all(isinstance(p, (str, Path)) for p in reuse):
            raise InvalidSettings(f"--reuse-children takes folders (paths); got {self.reuse!r}.")
        self.reuse = tuple(str(p) for p in reuse)  # final.json records them as JSON strings
        for folder in self.reuse:
            # A folder without journals yet is fine (a study whose first search has not run).
            if not Path(folder).is_dir():
                raise InvalidSettings(f"--reuse-children {folder}: no such folder; give folders that "
                                      "hold stand-alone journals (train_standalone's, a search's).")
        if self.match_params == "off":  # the command line's word for one width for all
            self.match_params = None
        m = self.match_params
        if m is not None and m != MATCH_NASNET_A and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise InvalidSettings(f"--stage-match-params must be an integer >= 1, {MATCH_NASNET_A!r} "
                                  f"(NASNet-A's parameters at the proxy's width) or 'off' (one width "
                                  f"for all); got {m!r}.")
        if self.screen_widest and m is None:
            raise InvalidSettings("--screen-widest picks the cells that get the most filters at equal "
                                  "parameters; with --stage-match-params off every cell has the same "
                                  "width. Leave --stage-match-params at nasnet-a or give a number.")
        if self.last_budget < self.cheap_budget:
            raise InvalidSettings(f"--final-budget ({self.final_budget}) must be at least "
                                  f"--cheap-budget ({self.cheap_budget}); leave it out for one round "
                                  "at the cheap budget.")
        if self.rescore_images is not None and (isinstance(self.rescore_images, bool) or
                                                not isinstance(self.rescore_images, int) or
                                                self.rescore_images < 1):
            raise InvalidSettings(f"--rescore-images must be an integer >= 1; got {self.rescore_images!r}.")
        if search_config is None:
            return
        if search_config.reward == "cifar10-shared":
            if self.rescore_top < self.top_k:
                raise InvalidSettings(f"--rescore-top ({self.rescore_top}) must be at least --top-k "
                                      f"({self.top_k}): the cells trained stand-alone come from the "
                                      "re-scored ones.")
            # The re-scoring uses the held-out images the search's rewards did not.
            val, used = search_config.shared.val_images, search_config.shared.reward_images
            if val - used < 1:
                raise InvalidSettings(f"--reward-images ({used}) uses all --val-images ({val}), leaving "
                                      "no held-out images for the re-scoring: lower --reward-images or "
                                      "raise --val-images.")
            if self.rescore_images is not None and self.rescore_images > val - used:
                raise InvalidSettings(f"--rescore-images ({self.rescore_images}) cannot exceed the "
                                      f"{val - used} held-out images the search's rewards do not use "
                                      f"(--val-images {val} minus --reward-images {used}).")

    @property
    def last_budget(self) -> int:
        """The final budget: ``final_budget``, or ``cheap_budget`` when that is ``None``."""
        return self.cheap_budget if self.final_budget is None else self.final_budget

    def budgets(self) -> list[int]:
        """The budget of each round: ``cheap_budget`` times powers of ``eta``, then the final budget."""
        out = [self.cheap_budget]
        while out[-1] < self.last_budget:
            out.append(min(out[-1] * self.eta, self.last_budget))
        return out

    def trainings(self) -> list[tuple[int, int]]:
        """``(budget, children)`` of every round, references and confirmation included: the
        stages' cost."""
        out, n = [], self.top_k
        for i, b in enumerate(self.budgets()):
            if i:
                n = max(1, math.ceil(n / self.eta))
            out.append((b, n * self.seeds))
        out.append((self.last_budget, (1 + self.random_cells) * self.seeds))
        if self.confirm_seeds:
            out.append((self.last_budget, (min(self.confirm_top, n) + 1) * self.confirm_seeds))
        return out

    def child_epochs(self) -> int:
        """Stand-alone child-epochs of the stages at most (fewer if the pool has fewer cells)."""
        return sum(b * n for b, n in self.trainings())


# -- the stand-alone reward -------------------------------------------------------------------------
class _GenotypeSpace:
    """Duck-types :class:`SearchSpace` for :class:`CIFARReward`: stand-alone children are named
    by their genotype (NASNet-A and other references need not be in the search space)."""

    @staticmethod
    def decode(genotype_dict):
        from ..genotypes import Genotype

        return Genotype.from_dict(genotype_dict)


class StandaloneReward(Reward):
    """Trains a cell (given as a genotype dict) stand-alone at ``budget`` epochs; returns
    ``{"reward": held-out accuracy, "test": CIFAR-10 test-split accuracy, "train_loss": the last
    epoch's mean training loss}`` (the ``synthetic`` test device: no ``train_loss``; a spec with
    ``"test": False``, the screening's: no ``test``).

    ``base="cifar10"`` trains with the ``cifar10`` reward's code (:class:`CIFARReward`, its
    ``proxy`` with ``epochs=budget``); ``base="synthetic"`` is the test device described in the
    module docstring.
    """

    def __init__(self, spec: dict):
        from .space import SearchSpace

        self.spec = spec
        self._data = None  # the data's fingerprint, taken at the first cifar10 child
        self.base = spec["base"]
        self.budget = int(spec["budget"])
        # The screening leaves the CIFAR-10 test split out: nothing reads it there, and predicting
        # its 10,000 images took about a fifth of a screening child's time
        # (benchmarks/screen_child.py).
        self.test = spec.get("test", True)
        if self.base == "synthetic":
            from ..genotypes import genotype_from
            from .rewards import SyntheticReward

            self.space = SearchSpace(**spec["space"])
            self.synthetic = SyntheticReward(self.space, genotype_from(spec.get("target", "NASNET_A")),
                                             delay=spec.get("delay", 0.0))
        elif self.base == "cifar10":
            from .rewards import CIFARReward, ProxyConfig

            self.cifar = CIFARReward(_GenotypeSpace(), ProxyConfig.from_record({**spec["proxy"], "epochs": self.budget}))
        else:
            raise ValueError(f"Unknown stand-alone base {self.base!r}; use synthetic or cifar10.")

    def check(self) -> None:
        """Loads the data of the ``cifar10`` base (nothing for ``synthetic``)."""
        if self.base == "cifar10":
            self.cifar.check()

    def __call__(self, actions, seed: int = 0) -> dict:
        from ..genotypes import Genotype

        if self.base == "cifar10":
            from .rewards import cifar10_test_accuracy

            if self._data is None:
                from ..data import data_fingerprint
                from .rewards import _reward_data

                # The data's fingerprint tells another copy of CIFAR-10 from this one (--reuse-children,
                # a resumed journal). Taken once, before the first training, so that a failure here
                # costs no child; loading the data first fingerprints the arrays it reads.
                _reward_data(self.cifar.proxy)
                self._data = data_fingerprint(self.cifar.proxy.data)
            val = self.cifar(actions, seed)
            out = {"reward": val, "train_loss": self.cifar.last_train_loss, "data": self._data}
            if self.test:
                out["test"] = cifar10_test_accuracy(self.cifar)
            return out
        from .rewards import ChildFailed

        try:
            decisions = self.space.encode(Genotype.from_dict(actions))
        except (ValueError, KeyError, IndexError) as e:
            raise ChildFailed(f"not in the synthetic reward's space: {e}") from None
        base = self.synthetic(decisions, seed)
        key = zlib.crc32(json.dumps(actions, sort_keys=True).encode())
        noise = np.random.default_rng([seed, self.budget, key]).normal(size=2)
        sd = SYNTHETIC_NOISE / math.sqrt(self.budget)
        return {"reward": float(base + sd * noise[0]), **({"test": float(base + sd * noise[1])} if self.test else {})}


# -- running one stage's children through the executor ----------------------------------------------
def _key(rec) -> tuple:
    return json.dumps(rec["actions"], sort_keys=True), rec["budget"], rec["seed"]


def _journals_under(folder) -> list[Path]:
    """The stand-alone journal folders at or under ``folder`` (``config.json`` of stage
    ``standalone`` beside a ``trials.jsonl``)."""
    from .journal import read_config

    folder, out = Path(folder), []
    if not folder.is_dir():
        return out
    for cfg in sorted([folder / "config.json", *folder.rglob("*/config.json")]):
        if cfg.exists() and (cfg.parent / "trials.jsonl").exists():
            try:
                if read_config(cfg).get("stage") == "standalone":
                    out.append(cfg.parent)
            except SearchError:  # a search folder's damaged config: not a journal to reuse
                continue
    return out


_FROM_IDENT = object()  # reusable_children: the data source of the stage identity's proxy


def _budget_identity(ident: dict):
    """What makes two stand-alone journals' children interchangeable: the base reward, the
    budget and the recipe (the data set's path left out), from a journal's ``config.json``."""
    if isinstance(ident.get("budget"), dict):  # train_standalone: the proxy record, epochs = budget
        return "cifar10", json.dumps(ident["budget"], sort_keys=True)
    if "proxy" in ident:  # a search's stage: the child proxy, trained for ``budget`` epochs
        proxy = {k: v for k, v in ident["proxy"].items() if k != "data"}
        return "cifar10", json.dumps({**proxy, "epochs": ident["budget"]}, sort_keys=True)
    if "target" in ident:  # the synthetic test device
        return "synthetic", json.dumps([ident["target"], ident["space"], ident["budget"]], sort_keys=True)
    return None


def reusable_children(folders, ident: dict, data=_FROM_IDENT) -> dict:
    """The finished ``ok`` children of the stand-alone journals under ``folders`` that were
    trained as the stage ``ident`` trains them (same base, budget and recipe), keyed as
    :func:`run_children` keys its tasks; each record gains ``reused_from`` (its journal).

    ``data``: the CIFAR-10 source this stage trains on (default: the one in ``ident``'s proxy).
    A child whose record carries the fingerprint of other data (another source of CIFAR-10, or
    its images in another order: :func:`~keras_nasnet.data.data_fingerprint`) is left out, with a
    message; records written before children were fingerprinted are reused as they were."""
    from .journal import read_config, read_records

    want, found = _budget_identity(ident), {}
    if want is None:
        return found
    if data is _FROM_IDENT:
        data = ident.get("proxy", {}).get("data")
    ours, other_data = None, {}  # other_data: journal -> keys of its children on other data
    for folder in folders:
        for journal in _journals_under(folder):
            try:
                other = read_config(journal / "config.json")
                if _budget_identity(other) != want:
                    continue
                records = read_records(journal / "trials.jsonl")[0]
            except SearchError as e:  # someone else's damaged journal must not stop this search
                import sys

                print(f"--reuse-children: {journal} is left out: {e}", file=sys.stderr)
                continue
            budget = other["budget"]["epochs"] if isinstance(other["budget"], dict) else other["budget"]
            for r in records:
                if r["event"] == "finished" and r["status"] == "ok":
                    theirs = (r.get("metrics") or {}).get("data")
                    if theirs is not None:
                        if ours is None:
                            from ..data import data_fingerprint

                            ours = data_fingerprint(data)
                        if theirs != ours:
                            other_data.setdefault(str(journal), set()).add(_key(r | {"budget": int(budget)}))
                            continue
                    rec = {**r, "budget": int(budget), "reused_from": str(journal)}
                    found.setdefault(_key(rec), rec)
    for journal, keys in other_data.items():
        missing = len(keys - found.keys())  # those that no journal on this data supplies
        if missing:
            import sys

            print(f"--reuse-children: {missing} children of {journal} were trained on other CIFAR-10 data "
                  "(another source, or its images in another order) and are not reused.", file=sys.stderr)
    return found


def _check_data(journal, reward_spec: dict) -> None:
    """Refuses to resume a stand-alone journal whose children were trained on other CIFAR-10 data
    than ``reward_spec``'s (their recorded fingerprints differ): mixed, its accuracies would
    compare cells on two data sets. Children recorded before fingerprints existed pass."""
    if reward_spec.get("base") != "cifar10":
        return
    theirs = {(r.get("metrics") or {}).get("data") for r in journal.finished} - {None}
    if not theirs:
        return
    from ..data import data_fingerprint

    source = reward_spec["proxy"].get("data")
    ours = data_fingerprint(source)
    if theirs - {ours}:
        raise ConfigMismatch(
            f"{journal.out} holds children trained on other CIFAR-10 data (fingerprint "
            f"{', '.join(sorted(theirs - {ours}))}; {source or 'tfds'} is {ours}): resume it with "
            "the data it was made with, or give another folder.")


def _gave_up(rec) -> bool:
    """Whether a ``finished`` record is an infrastructure failure the executor stopped retrying
    (:class:`~keras_nasnet.search.run.Dispatcher`): it says nothing of the cell, so it is no
    result. Records written before ``gave_up`` existed are told by their error's words."""
    from .run import MAX_ATTEMPTS

    return rec.get("status") == "failed" and bool(
        rec.get("gave_up") or str(rec.get("error", "")).startswith(f"{MAX_ATTEMPTS} attempts failed"))


def run_children(stage_dir, ident: dict, tasks: list[dict], reward_spec: dict, run_settings: dict,
                 label: str = "stage", reuse: dict | None = None,
                 max_failures: int | None = None) -> dict:
    """Runs the children ``tasks`` (dicts with ``actions``, ``budget``, ``seed``) that the journal
    in ``stage_dir`` has no result for, through the search's executor; returns every task's
    ``finished`` record keyed by (actions JSON, budget, seed). A task found in ``reuse`` (see
    :func:`reusable_children`) is copied into the journal instead of trained.

    ``ident`` is the stage's identity (its ``config.json``; a folder with another one is refused).
    An infrastructure error runs the child again, up to :data:`~keras_nasnet.search.run.MAX_ATTEMPTS`
    times (:class:`~keras_nasnet.search.run.Dispatcher`, as in the search). A child still not run
    after that is no result: once the others are done, :class:`SearchFailed` says so, and the
    same command runs it again. ``max_failures`` (the search's ``--max-failures``) children failing
    in a row stop the stage at once, as they stop the search.
    """
    from .journal import Journal

    journal = Journal(stage_dir, ident)
    try:
        _check_data(journal, reward_spec)
        done = {_key(r): r for r in journal.finished if not _gave_up(r)}
        # A child the executor gave up on is proposed again under a new trial number (the journal
        # keeps one result per trial), with its attempts counted afresh.
        retry = {_key(r) for r in journal.finished if _gave_up(r)} - set(done)
        proposed = {_key(r): r for r in journal.proposed.values() if _key(r) not in retry}
        queue = collections.deque()
        reused = 0
        for t in tasks:
            k = _key(t)
            if k in done or any(_key(q) == k for q in queue):
                continue
            if reuse and k in reuse:
                rec = proposed.get(k)
                if rec is None:
                    rec = {"event": "proposed", "trial": journal.next_trial, "actions": t["actions"],
                           "logp": 0.0, "seed": t["seed"], "budget": t["budget"], "proposed_at": time.time()}
                    journal.append(rec)
                done[k] = {**reuse[k], "trial": rec["trial"], "finished_at": time.time()}
                journal.append(done[k])
                reused += 1
                continue
            rec = proposed.get(k)
            if rec is None:
                rec = {"event": "proposed", "trial": journal.next_trial, "actions": t["actions"],
                       "logp": 0.0, "seed": t["seed"], "budget": t["budget"], "proposed_at": time.time()}
                journal.append(rec)
            queue.append(rec)
        if reused:
            import sys

            print(f"{label}: {reused} children copied from other journals at the same budget and recipe, "
                  f"{len(queue)} to train.", file=sys.stderr, flush=True)
        if queue:
            _drain(journal, queue, done, reward_spec, run_settings, label, max_failures)
        results = {_key(t): done[_key(t)] for t in tasks}
        lost = [r for r in results.values() if _gave_up(r)]
        if lost:
            raise SearchFailed(
                f"{label}: {len(lost)} of {len(results)} children could not be run; the last error: "
                f"{lost[-1].get('error', '')}. The {len(results) - len(lost)} finished ones are kept in "
                f"{journal.out}: fix the cause (worker output in "
                f"{journal.out.parent.parent / 'workers.log'}) and run the same command again, which "
                "runs only these.")
        return results
    finally:
        journal.close()


def _drain(journal, queue, done, spec, settings, label, max_failures=None):
    from .run import Dispatcher, make_executor

    s = dict(settings)
    kind, workers, progress = s.pop("executor"), s.pop("workers"), s.pop("progress")
    if workers > len(queue):  # no idle worker processes (each loads TensorFlow and the data)
        workers = max(1, len(queue)) if workers else 0
    ex = make_executor(kind, spec, workers, log_path=journal.out.parent.parent / "workers.log",
                       progress=progress, **s)
    bar = None
    if progress:
        from .._cli import progress_bar

        bar = progress_bar(len(queue), desc=label, unit="child", units="children")
    dispatch = Dispatcher(ex, journal, queue, annotate=lambda task, res: {**res, "budget": task["budget"]})
    streak = 0
    try:
        while dispatch.pending:
            for _, res in dispatch.poll(timeout=1.0):
                streak = 0 if res["status"] == "ok" else streak + 1
                if res["event"] == "finished":
                    done[_key(res)] = res
                    if bar:
                        bar.update(1)
                if max_failures and streak >= max_failures:
                    raise SearchFailed(
                        f"{label}: {streak} children in a row failed; the last: {res.get('error', '')}. "
                        "This looks like a broken setup rather than bad cells (details in "
                        f"{journal.out / 'trials.jsonl'}, worker output in "
                        f"{journal.out.parent.parent / 'workers.log'}). The finished children are kept: "
                        "fix the cause and run the same command to resume (--max-failures changes "
                        "the limit).")
    finally:
        ex.close()
        if bar:
            bar.close()


# -- the stages -----------------------------------------------------------------------------------
def standalone_spec(config, budget: int, images: int | None = None, match_params: int | str | None = None) -> dict:
    """The executor's reward description of stand-alone training at ``budget`` epochs on ``images``
    training images (``None``: the child proxy's) for the search ``config`` (a
    :class:`~keras_nasnet.search.SearchConfig`); ``match_params``: see :class:`StageConfig`."""
    spec = {"reward": "standalone", "space": config.space.to_dict(), "budget": int(budget)}
    if config.reward == "synthetic":
        from ..genotypes import genotype_from

        spec.update(base="synthetic", target=genotype_from(config.target).to_dict(),
                    delay=config.synthetic_delay)
    else:
        from .rewards import ProxyConfig, nasnet_a_params

        proxy = config.proxy if config.reward == "cifar10" else ProxyConfig.preset("cpu", data=config.shared.data)
        if images is not None:
            proxy = dataclasses.replace(proxy, train_images=int(images))
        if match_params == MATCH_NASNET_A:
            match_params = nasnet_a_params(proxy.num_cells, proxy.penultimate_filters)
        # None is one width for all, even when the search's own proxy matched parameters.
        proxy = dataclasses.replace(proxy, match_params=None if match_params is None else int(match_params))
        spec.update(base="cifar10", proxy=proxy.record())
    return spec


def standalone_settings(config, run_settings: dict) -> dict:
    """The executor settings of the stand-alone children: the search's, except that a
    ``cifar10-shared`` search evaluating in its own process (``workers=0``, the supernet's
    executor) trains them in one local worker per core, one TensorFlow thread each unless
    ``threads_per_worker`` is given: they are independent trainings, and one per core is how
    ``search/calibration/`` measured their cost."""
    if config.reward != "cifar10-shared" or run_settings.get("workers") or run_settings.get("executor") != "local":
        return run_settings
    import os

    # The cores this process may use (a container's or taskset's limit), not the host's.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = run_settings.get("threads_per_worker") or 1
    return {**run_settings, "workers": max(1, cores // threads), "threads_per_worker": threads}


def _ident(config, stage: str, **extra) -> dict:
    c = config.to_dict()
    return {"space": c["space"], "reward": c["reward"], "strategy": c["strategy"], "seed": c["seed"],
            "stage": stage, **extra}


def _mean(xs):
    return float(np.mean(xs)) if xs else None


def run_stages(config, out, stages: StageConfig, run_settings: dict, max_failures: int | None = None) -> dict:
    """Runs (or resumes) the stages after the search in folder ``out``; writes ``final.json``,
    ``final.png`` and ``best_genotype.json`` (the final cell) and returns ``final.json``'s content.

    ``run_settings``: ``executor``, ``workers``, ``progress`` and the executor's keyword arguments,
    as the search used them; ``max_failures``: stop after this many children in a row failed (the
    search's ``--max-failures``).
    """
    from ..fileio import write_json_atomic, write_text_atomic
    from ..genotypes import Genotype
    from .journal import read_records

    out = Path(out)
    stages.validate(config)
    space = config.space
    finished = [r for r in read_records(out / "trials.jsonl")[0] if r["event"] == "finished"]
    records = [r for r in finished if r["status"] == "ok"]
    # Distinct cells, best reward first (a cell sampled twice keeps its first record's order).
    pool, seen = [], set()
    for r in sorted(records, key=lambda r: (-r["reward"], r["trial"])):
        g = space.decode(r["actions"]).to_dict()
        k = json.dumps(g, sort_keys=True)
        if k not in seen:
            seen.add(k)
            pool.append({"actions": r["actions"], "genotype": g, "trial": r["trial"], "reward": r["reward"]})
    if not pool:
        raise SearchFailed("no child of the search succeeded, so the stages have no candidate.")
    ranked = list(pool)  # the search's order, before the re-scoring keeps its top
    # search_trials: the search's children the stages chose from; a search extended later has more
    # (report and run_search say so: these stages' result is then out of date).
    report = {"stages": dataclasses.asdict(stages), "budgets": stages.budgets(), "reward": config.reward,
              "search_trials": len(finished)}
    if config.reward != "synthetic":  # the resolved width rule ("nasnet-a" is a number per proxy)
        report["standalone_proxy"] = standalone_spec(config, stages.cheap_budget, stages.images,
                                                     stages.match_params)["proxy"]

    # 1. re-score (cifar10-shared only).
    if config.reward == "cifar10-shared":
        # The held-out images after the search's reward images: the candidates were picked for
        # their rewards on the first ones, and a second look at the same images repeats their luck.
        start = config.shared.reward_images
        images = stages.rescore_images or config.shared.val_images - start
        pool = pool[:stages.rescore_top]
        shared = {**dataclasses.asdict(config.shared), "reward_images": images, "steps_per_child": 0}
        spec = {"reward": "cifar10-shared", "space": space.to_dict(), "shared": shared, "seed": config.seed,
                "score_from": start}
        tasks = [{"actions": c["actions"], "budget": images, "seed": 0} for c in pool]
        res = run_children(out / "stages" / f"rescore-{start}-{start + images}",
                           _ident(config, "rescore", images=[start, start + images]),
                           tasks, spec, {**run_settings, "state_dir": out}, label="re-score",
                           max_failures=max_failures)
        for c, t in zip(pool, tasks):
            c["rescore"] = res[_key(t)]["reward"]
        pool.sort(key=lambda c: -c["rescore"])  # stable: ties keep the search's order
        report["rescore"] = {"images": images, "first_image": start, "cells": len(pool)}

    run_settings = standalone_settings(config, run_settings)
    seeds = [config.seed * 1000 + i for i in range(stages.seeds)]
    # 2. screen: one short stand-alone training per cell.
    if stages.screen_top:
        pool = pool[:stages.screen_top]
        if stages.screen_widest:
            widest = _widest(out, config, stages, ranked[:stages.widest_from], pool)
            pool += widest
            report["widest"] = {"from": min(stages.widest_from, len(ranked)), "cells": len(widest),
                                "widths": {str(c["trial"]): c["width"] for c in widest}}
        # A seed no stage child uses: a screening child sharing its initialisation and first
        # batches with a cheap-budget child would pick cells whose seed-0 run is lucky, and that
        # luck would then count again in the cheap budget's mean.
        first = config.seed * 1000 + max(SCREEN_SEED_OFFSET, stages.seeds + stages.confirm_seeds)
        screen_seeds = [first + j for j in range(stages.screen_seeds)]
        spec = {**standalone_spec(config, 1, stages.screen_images, stages.match_params), "test": False}
        ident = _ident(config, "standalone", budget=1, base=spec["base"],
                       **({"proxy": spec["proxy"]} if "proxy" in spec else {"target": spec["target"]}))
        params = spec.get("proxy", {}).get("match_params")
        tasks = [{"actions": c["genotype"], "budget": 1, "seed": s} for c in pool for s in screen_seeds]
        res = run_children(out / "stages" / (f"screen-{stages.screen_images}" + (f"-p{params}" if params else "")),
                           ident, tasks, spec, run_settings, label="screen",
                           reuse=reusable_children(stages.reuse, ident) if stages.reuse else None,
                           max_failures=max_failures)
        for c in pool:
            c["screen"] = float(np.mean(_val_test(res, c["genotype"], 1, screen_seeds)[0]))
        pool.sort(key=lambda c: -c["screen"])  # stable: ties keep the earlier order
        report["screen"] = {"images": stages.screen_images, "cells": len(pool), "seed": first,
                            "seeds": screen_seeds, "epochs": 1}

    # 3 and 4. stand-alone training at rising budgets.
    candidates = pool[:stages.top_k]
    rounds = []
    for i, budget in enumerate(stages.budgets()):
        if i:
            candidates = candidates[:max(1, math.ceil(len(candidates) / stages.eta))]
        results = _train(out, config, budget, [(c["genotype"], seeds) for c in candidates], run_settings,
                         label=f"budget {budget}", images=stages.images, reuse=stages.reuse,
                         match_params=stages.match_params, max_failures=max_failures)
        for c in candidates:
            c["val"], c["test"] = _val_test(results, c["genotype"], budget, seeds)
            c["seeds"], c["failed"] = list(seeds), _failed(results, c["genotype"], budget, seeds)
        candidates.sort(key=lambda c: -np.mean(c["val"]))  # stable: ties keep the earlier order
        rounds.append({"budget": budget, "cells": [{"trial": c["trial"], "val_mean": _mean(c["val"])}
                                                   for c in candidates]})

    # 4 and 5. the references at the final budget and the confirmation (more seeds for the last
    # round's best and for NASNet-A), in one executor run: neither waits for the other.
    refs = reference_cells(space, stages.random_cells)
    final = stages.last_budget
    nasnet = refs[0][2]
    more = [config.seed * 1000 + i for i in range(stages.seeds, stages.seeds + stages.confirm_seeds)]
    top = candidates[:stages.confirm_top]
    results = _train(out, config, final, [(g, seeds) for _, _, g in refs] +
                     [(c["genotype"], more) for c in top] + [(nasnet, more)], run_settings, label="references" + (" and confirmation" if more else ""),
                     images=stages.images, reuse=stages.reuse, match_params=stages.match_params,
                     max_failures=max_failures)
    ref_seeds = {name: list(seeds) + (more if g is nasnet else []) for name, _, g in refs}
    if more:
        for c in top:
            val, test = _val_test(results, c["genotype"], final, more)
            c["val"], c["test"], c["seeds"] = c["val"] + val, c["test"] + test, c["seeds"] + more
            c["failed"] += _failed(results, c["genotype"], final, more)
        top.sort(key=lambda c: -np.mean(c["val"]))  # stable: ties keep the last round's order
        candidates = top + candidates[len(top):]
        rounds.append({"budget": final, "seeds": len(seeds) + len(more),
                       "cells": [{"trial": c["trial"], "val_mean": _mean(c["val"])} for c in top]})
        report["confirmation"] = {"cells": len(top), "seeds": more}
    report["rounds"] = rounds

    # 6. the report.
    entries = []
    for rank, c in enumerate(candidates):
        entries.append({"name": f"finalist-{rank + 1}", "kind": "finalist", "trial": c["trial"],
                        "search_reward": c["reward"], **({"rescore": c["rescore"]} if "rescore" in c else {}),
                        **({"screen": c["screen"]} if "screen" in c else {}),
                        **({"width": c["width"]} if "width" in c else {}),
                        "genotype": c["genotype"], "budget": final, "seeds": c["seeds"], "val": c["val"],
                        "test": c["test"], "val_mean": _mean(c["val"]), "test_mean": _mean(_known(c["test"])),
                        **({"failed": c["failed"]} if c["failed"] else {})})
    for name, kind, g in refs:
        val, test = _val_test(results, g, final, ref_seeds[name])
        failed = _failed(results, g, final, ref_seeds[name])
        entries.append({"name": name, "kind": kind, "genotype": g, "budget": final, "seeds": ref_seeds[name],
                        "val": val, "test": test, "val_mean": _mean(val), "test_mean": _mean(_known(test)),
                        **({"failed": failed} if failed else {})})
    best = candidates[0]
    report.update(final_cell={"name": "finalist-1", "trial": best["trial"], "genotype": best["genotype"],
                              "budget": final, "val_mean": _mean(best["val"]), "seeds": best["seeds"]},
                  seeds=seeds, entries=entries)
    write_json_atomic(out / "final.json", report, indent=2)
    write_text_atomic(out / "best_genotype.json", Genotype.from_dict(best["genotype"]).to_json(indent=2))
    try:
        plot_final(out / "final.png", entries, f"{config.strategy} / {config.reward}: budget {final}",
                   synthetic=config.reward == "synthetic")
    except ImportError:
        import sys

        print("matplotlib is not installed: no final.png (pip install 'keras_nasnet[plots]').", file=sys.stderr)
    return report


def width_rule(config, match_params) -> tuple[int, int]:
    """``(num_cells, params)``: the stand-alone children's cells per stack and parameter count
    (``match_params`` as :class:`StageConfig` takes it, not ``None``), at which
    :func:`~keras_nasnet.search.rewards.matched_units` gives each cell its width. The synthetic
    test device has no children to build, so it takes the ``cpu`` proxy's."""
    from .rewards import ProxyConfig, nasnet_a_params

    proxy = config.proxy if config.reward == "cifar10" else ProxyConfig.preset("cpu")
    if match_params == MATCH_NASNET_A:
        match_params = nasnet_a_params(proxy.num_cells, proxy.penultimate_filters)
    return proxy.num_cells, int(match_params)


def _widest(out, config, stages, ranked: list[dict], pool: list[dict]) -> list[dict]:
    """The ``stages.screen_widest`` cells of ``ranked`` (the search's best, in its order) not in
    ``pool`` that get the most filters at the stages' parameter count, ties to the better reward;
    each gains ``width``. The widths are kept in ``stages/widths-<cells>-p<params>.json``, so a
    resumed run does not build the models again."""
    from ..fileio import write_json_atomic
    from ..genotypes import Genotype
    from .rewards import matched_units

    num_cells, params = width_rule(config, stages.match_params)
    path = out / "stages" / f"widths-{num_cells}-p{params}.json"
    try:
        known = json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        known = {}  # a cache only: a damaged one is computed again
    changed = False
    for i, c in enumerate(ranked):
        k = json.dumps(c["genotype"], sort_keys=True)
        if k not in known:
            known[k] = matched_units(Genotype.from_dict(c["genotype"]), num_cells, params)
            changed = True
            if i % 50 == 49:  # a kill during the first pass keeps what was computed
                write_json_atomic(path, known)
        c["width"] = known[k]
    if changed:
        write_json_atomic(path, known)
    have = {json.dumps(c["genotype"], sort_keys=True) for c in pool}
    rest = [c for c in ranked if json.dumps(c["genotype"], sort_keys=True) not in have]
    return sorted(rest, key=lambda c: -c["width"])[:stages.screen_widest]  # stable: the search's order


def reference_cells(space, random_cells: int) -> list[tuple[str, str, dict]]:
    """The reference cells of a search space: ``(name, kind, genotype dict)`` of NASNet-A
    (``"nasnet_a"``) and ``random_cells`` uniformly drawn cells (``"random"``, named
    ``random-1``...; drawn with the fixed seed :data:`RANDOM_CELLS_SEED`, so the same cells in every
    search, study and calibration of that space)."""
    from ..genotypes import NASNET_A

    refs = [("NASNet-A", "nasnet_a", NASNET_A.to_dict())]
    if random_cells:
        rng = np.random.default_rng(RANDOM_CELLS_SEED)
        for j, a in enumerate(space.sample_uniform(rng, random_cells)):
            refs.append((f"random-{j + 1}", "random", space.decode(a.tolist()).to_dict()))
    return refs


def _known(xs):
    return [x for x in xs if x is not None]


def budget_folder(budget: int, spec: dict) -> str:
    """The journal folder (under ``stages/``) of the stand-alone children of ``spec`` (a
    :func:`standalone_spec`) at ``budget``: ``budget-<b>``, with ``-i<M>`` when they train on
    ``M`` images other than the whole split's 45,000 (``--stage-images``), and ``-p<N>`` when
    every child is given ``N`` parameters. One journal per budget, image count and width rule, so
    a search run again with another of them keeps the children it has and trains the others,
    without a settings mismatch."""
    proxy = spec.get("proxy", {})
    params, images = proxy.get("match_params"), proxy.get("train_images")
    return (f"budget-{budget}" + (f"-i{images}" if images not in (None, FULL_SPLIT) else "")
            + (f"-p{params}" if params else ""))


def _train(out, config, budget, cells, run_settings, label, images=None, reuse=(), match_params=None,
           max_failures=None):
    """Trains (or finds in the journal) each ``(genotype, seeds)`` of ``cells`` at ``budget``;
    returns :func:`run_children`'s records."""
    spec = standalone_spec(config, budget, images, match_params)
    ident = _ident(config, "standalone", budget=int(budget), base=spec["base"],
                   **({"proxy": spec["proxy"]} if "proxy" in spec else {"target": spec["target"]}))
    tasks = [{"actions": g, "budget": int(budget), "seed": s} for g, seeds in cells for s in seeds]
    return run_children(out / "stages" / budget_folder(budget, spec), ident, tasks, spec, run_settings, label=label,
                        reuse=reusable_children(reuse, ident) if reuse else None, max_failures=max_failures)


def _val_test(results, genotype, budget, seeds) -> tuple[list, list]:
    """The held-out and the test-split accuracies (None where not measured) of ``genotype``'s
    children with ``seeds`` at ``budget`` in ``results`` (:func:`run_children`'s records)."""
    recs = [results[(json.dumps(genotype, sort_keys=True), budget, s)] for s in seeds]
    return [r["reward"] for r in recs], [r.get("metrics", {}).get("test") for r in recs]


def _failed(results, genotype, budget, seeds) -> list:
    """The seeds of ``genotype``'s children at ``budget`` whose training failed (the loss became
    NaN, say): their held-out accuracy counts as
    :data:`~keras_nasnet.search.workers.FAILED_REWARD`, and ``final.json`` lists them."""
    return [s for s in seeds if results[(json.dumps(genotype, sort_keys=True), budget, s)]["status"] != "ok"]


def train_standalone(out, cells: dict, seeds, proxy, *, executor: str = "local", workers: int = 2,
                     progress: bool = False, reuse=(), test: bool = True, **executor_kwargs) -> list[dict]:
    """Trains every cell of ``cells`` (``{name: genotype}``; a :class:`~keras_nasnet.genotypes.Genotype`,
    its dict, or a name such as ``"NASNET_A"``) stand-alone with every seed of ``seeds``, at the
    budget and with the recipe of ``proxy`` (a :class:`~keras_nasnet.search.ProxyConfig`), through
    the search's executors (``local`` worker processes, ``workers=0`` inline, or ``ray``).

    The children are journaled in folder ``out`` (``config.json`` holds the proxy, so another
    budget or recipe on the same folder is refused): run it again after a kill and no finished
    child is trained twice. Returns one row per (cell, seed), in the order asked::

        {"cell", "seed", "val", "test", "train_loss", "seconds", "cpu_seconds", "status", "genotype", "budget"}

    ``val`` is the accuracy on the proxy's held-out images, ``test`` on the CIFAR-10 test split,
    ``train_loss`` the mean training loss of the last epoch (None in journals written before it was recorded);
    ``budget`` is the proxy's record (data source left out), the key that keeps ground truths of
    different budgets or recipes apart. ``reuse``: folders whose stand-alone journals' children at
    the same budget and recipe are copied instead of trained (see :class:`StageConfig`).
    ``test=False`` skips the CIFAR-10 test split (``test`` is then None): a ranking that reads only
    the held-out split saves about a fifth of each child's time (``benchmarks/screen_child.py``).
    """
    from ..genotypes import genotype_from

    genotypes = {name: (g if isinstance(g, dict) else genotype_from(g).to_dict()) for name, g in cells.items()}
    seeds = [int(s) for s in seeds]
    record = proxy.record()
    spec = {"reward": "standalone", "base": "cifar10", "budget": int(proxy.epochs), "proxy": record,
            "space": {"num_blocks": 5}, **({} if test else {"test": False})}
    budget = {k: v for k, v in record.items() if k != "data"}
    tasks = [{"actions": g, "budget": int(proxy.epochs), "seed": s} for g in genotypes.values() for s in seeds]
    settings = {"executor": executor, "workers": workers, "progress": progress, **executor_kwargs}
    StandaloneReward(spec).check()  # the data, read (and cached for the workers) once, here
    # The journal's identity has a search's keys (read_config checks them): no space, strategy or
    # seed of a search, since these children come from no search.
    ident = {"space": None, "reward": "standalone", "strategy": None, "seed": None,
             "stage": "standalone", "budget": budget}
    results = run_children(out, ident, tasks, spec, settings, label="stand-alone",
                           reuse=reusable_children(reuse, ident, data=proxy.data) if reuse else None)
    rows = []
    for name, g in genotypes.items():
        for s in seeds:
            r = results[(json.dumps(g, sort_keys=True), int(proxy.epochs), s)]
            rows.append({"cell": name, "seed": s, "val": r["reward"],
                         "test": r.get("metrics", {}).get("test"),
                         "train_loss": r.get("metrics", {}).get("train_loss"), "seconds": r.get("seconds"),
                         "cpu_seconds": r.get("cpu_seconds"), "status": r["status"], "genotype": g, "budget": budget})
    return rows


def plot_final(path, entries: list[dict], title: str = "", synthetic: bool = False) -> None:
    """Per-seed accuracies (dots) and their means (bars) of every entry of ``final.json``, held-out
    split and CIFAR-10 test split side by side (``synthetic``: the test device's two draws)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # the two splits one above the other, sharing the cells' axis: 30 entries side by side in two
    # panels made a figure seven times as wide as high
    fig, axes = plt.subplots(2, 1, figsize=(max(6.0, 0.3 * len(entries) + 2), 7.5), sharex=True, sharey=True)
    colors = {"finalist": "C0", "nasnet_a": "C3", "random": "C7"}
    test = "test draw (synthetic test device)" if synthetic else "CIFAR-10 test split"
    for ax, split, what in ((axes[0], "val", "held-out split"), (axes[1], "test", test)):
        for x, e in enumerate(entries):
            ys = _known(e[split])
            if not ys:
                continue
            c = colors[e["kind"]]
            ax.scatter([x] * len(ys), ys, s=18, color=c, alpha=0.7, zorder=3)
            ax.hlines(np.mean(ys), x - 0.3, x + 0.3, color=c, lw=2.5, zorder=4)
        ax.set_title(what, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
        ax.set_ylabel("accuracy (dots: seeds, bar: mean)", fontsize=8)
    axes[1].set_xticks(range(len(entries)))
    axes[1].set_xticklabels([e["name"] for e in entries], rotation=60, ha="right", fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
