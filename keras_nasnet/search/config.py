"""A search's settings as one typed, validated object, and the PPO presets.

:class:`SearchConfig` is what ``python -m keras_nasnet.search`` builds from its flags and what
:func:`keras_nasnet.search.run_search` runs. It is the search's identity: it is stored as
``config.json`` in the search folder (in the format earlier versions wrote, so their folders
resume) and a folder refuses a different one. How long to run (``trials``) and where children run
(workers, executor) are not part of it; they are arguments of ``run_search`` and may change
between runs of one search.

This module imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from ..genotypes import OPS
from .errors import InvalidSettings
from .space import SearchSpace

#: The rewards a search can use (see :mod:`keras_nasnet.search.rewards`).
REWARDS = ("cifar10", "cifar10-shared", "synthetic")
#: The strategies: the paper's PPO-trained controller, uniform random sampling, or regularized
#: evolution (Real et al. 2019, the search behind AmoebaNet-A).
STRATEGIES = ("ppo", "random", "evolution")

#: Children per search when ``trials`` is not given: the paper's 20,000, but 2,000 with shared
#: weights: about 40 minutes of rewards on one CPU core here after the supernet's 104 minutes
#: (20,000 would be about 7 hours more, beyond a one-machine search).
DEFAULT_TRIALS = {"cifar10": 20000, "synthetic": 20000, "cifar10-shared": 2000}


@dataclasses.dataclass
class PPOConfig:
    """PPO settings of the controller.

    The defaults are the ``default`` preset: the paper's settings (appendix A.3: Adam with learning
    rate 0.00035, batches of 20 children, baseline EMA 0.95; clip 0.2 and 4 epochs are this
    project's choices) with an entropy bonus of 0.05 per decision instead of the paper's 1e-5. On the
    synthetic reward 0.05 found NASNet-A exactly in 5 of 5 seeds where 1e-5 matched 7 of its 10
    blocks (``search/synthetic/``). ``PPOConfig.preset("paper")`` gives the paper's exact settings.
    """

    lr: float = 0.00035
    lr_final: float | None = None  # linear schedule from lr to this, over total_trials
    clip: float = 0.2
    epochs: int = 4
    entropy_weight: float = 0.05
    entropy_final: float | None = None  # linear schedule from entropy_weight to this
    baseline_decay: float = 0.95
    batch_size: int = 20
    normalize_advantages: bool = True
    units: int = 100
    temperature: float = 1.0
    tanh_constant: float | None = None
    total_trials: int = 20000  # the span of the schedules

    @classmethod
    def preset(cls, name: str, **overrides) -> "PPOConfig":
        """``default`` or ``paper`` (see :data:`PPO_PRESETS`); ``overrides`` that are not None
        replace the preset's values."""
        if name not in PPO_PRESETS:
            raise InvalidSettings(f"Unknown PPO preset {name!r}; choose from {', '.join(PPO_PRESETS)}.")
        return _settings(cls, {**PPO_PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}, "ppo")

    @property
    def scheduled(self) -> bool:
        """Whether the learning rate or the entropy bonus changes over the run."""
        return self.lr_final is not None or self.entropy_final is not None

    def validate(self) -> None:
        """Raises :class:`InvalidSettings` for a value PPO cannot use."""
        for name in ("lr", "clip", "temperature"):
            _positive(f"ppo.{name}", getattr(self, name))
        if self.clip >= 1:  # the ratio is clipped to [1 - clip, 1 + clip]: a clip of 1 or more clips nothing below
            raise InvalidSettings(f"ppo.clip (--clip) must be below 1 (PPO's epsilon, 0.2 by default); "
                                  f"got {self.clip}.")
        for name in ("entropy_weight", "entropy_final", "lr_final"):
            if getattr(self, name) is not None:
                _nonnegative(f"ppo.{name}", getattr(self, name))
        # The schedules decay (the flags say so): a final value above the start is a swapped pair.
        for start, final, flags in (("entropy_weight", "entropy_final", "--entropy-weight/--entropy-final"),
                                    ("lr", "lr_final", "--lr/--lr-final")):
            if getattr(self, final) is not None and getattr(self, final) > getattr(self, start):
                raise InvalidSettings(
                    f"ppo.{final} ({getattr(self, final)}) is above ppo.{start} ({getattr(self, start)}) "
                    f"({flags}): the schedule decays linearly from {start} to {final}; give a final "
                    f"value at or below the start, or leave it out for a constant one.")
        if self.tanh_constant is not None:
            _positive("ppo.tanh_constant", self.tanh_constant)
        if not 0 <= self.baseline_decay < 1:
            raise InvalidSettings(f"ppo.baseline_decay must be in [0, 1); got {self.baseline_decay}.")
        for name in ("epochs", "batch_size", "units", "total_trials"):
            _positive_int(f"ppo.{name}", getattr(self, name))
        if not isinstance(self.normalize_advantages, bool):  # "no" would read as True
            raise InvalidSettings(f"ppo.normalize_advantages must be True or False; got "
                                  f"{self.normalize_advantages!r}.")


#: The paper's PPO settings (appendix A.3; clip and epochs are this project's choices).
PAPER_PPO = {"lr": 0.00035, "lr_final": None, "entropy_weight": 1e-5, "entropy_final": None, "epochs": 4,
             "clip": 0.2, "tanh_constant": None, "batch_size": 20}

#: Named PPO settings; ``default`` differs from the paper only in the entropy bonus (measured on
#: the synthetic reward, see :class:`PPOConfig` and docs/search-results.md). ``PPOConfig()`` is
#: the default preset.
PPO_PRESETS = {"default": {**PAPER_PPO, "entropy_weight": 0.05}, "paper": PAPER_PPO}

#: The PPO fields config.json always records (earlier versions wrote exactly these).
_PPO_RECORDED = tuple(PAPER_PPO)


@dataclasses.dataclass
class EvolutionConfig:
    """Settings of regularized evolution (:mod:`keras_nasnet.search.evolution`).

    Args:
        population: children the population keeps (the most recent ones). Default 100, with
            ``tournament_size`` 25: the values of Real et al.'s AmoebaNet search.
        tournament_size: members drawn at random from the population; the best of them is the
            parent of the next child.
        initial: cells the search starts from, proposed before any random one (a pool of an earlier
            search, say): genotypes, their names or JSON. Kept as genotype dicts. At most
            ``population``.
        warm_start: draw this many cells uniformly before the search (with its seed); the widest
            distinct ones fill the ``population - len(initial)`` places after ``initial`` (0: none). A cell's width is the ``penultimate_filters``
            its child gets at the reward's parameter count (``ProxyConfig.match_params``, so the
            ``cifar10`` reward with ``--child-match-params``): no training, about 1.8
            CPU-seconds a cell (:func:`~keras_nasnet.search.warmstart.widest_cells`). At equal
            parameters wider cells train better at the stages' final budget, and evolution
            started from the 50 widest of 1,000 random cells gave a better screened pool than
            from random cells (``search/evolve-warm/``).
    """

    population: int = 100
    tournament_size: int = 25
    initial: tuple = ()
    warm_start: int = 0

    def __post_init__(self):
        from ..genotypes import GenotypeError, genotype_from

        try:
            self.initial = tuple(genotype_from(g).to_dict() for g in self.initial)
        except (GenotypeError, ValueError, TypeError, OSError) as e:
            raise InvalidSettings(f"evolution.initial (--initial-cells): {e}") from None

    def genotypes(self) -> list:
        """The initial cells as :class:`~keras_nasnet.genotypes.Genotype` objects."""
        from ..genotypes import genotype_from

        return [genotype_from(g) for g in self.initial]

    def validate(self, space: SearchSpace | None = None) -> None:
        """Raises :class:`InvalidSettings` for settings evolution cannot use (with ``space``: also
        an initial cell outside it)."""
        # The messages name the field and its flag, since most users set them on the command line.
        p = self.population
        if isinstance(p, bool) or not isinstance(p, int) or p < 2:  # two to compare, at least
            raise InvalidSettings(f"evolution.population (--population) must be an integer >= 2; "
                                  f"got {p!r}.")
        _positive_int("evolution.tournament_size (--tournament-size)", self.tournament_size)
        if self.tournament_size > self.population:
            raise InvalidSettings(f"evolution.tournament_size (--tournament-size {self.tournament_size}) is "
                                  f"larger than the population ({self.population}); draw at most the whole "
                                  "population.")
        if len(self.initial) > self.population:
            raise InvalidSettings(f"{len(self.initial)} initial cells (--initial-cells) do not fit a population "
                                  f"of {self.population}; raise --population or give fewer cells.")
        if isinstance(self.warm_start, bool) or not isinstance(self.warm_start, int) or self.warm_start < 0:
            raise InvalidSettings(f"evolution.warm_start (--warm-start) must be an integer >= 0 (cells to "
                                  f"draw; 0 for none); got {self.warm_start!r}.")
        places = self.population - len(self.initial)
        if self.warm_start and places == 0:
            raise InvalidSettings(f"the {len(self.initial)} initial cells (--initial-cells) fill the population "
                                  f"of {self.population}, so --warm-start has no place to fill; leave it out "
                                  "or raise --population.")
        if 0 < self.warm_start < places:
            raise InvalidSettings(f"--warm-start {self.warm_start} draws fewer cells than the {places} places "
                                  f"it fills (--population {self.population}"
                                  + (f" minus {len(self.initial)} --initial-cells" if self.initial else "")
                                  + f"); draw more (e.g. --warm-start {20 * places}).")
        if space is not None:
            for i, g in enumerate(self.genotypes()):
                try:
                    space.encode(g)
                except (ValueError, KeyError, IndexError) as e:
                    raise InvalidSettings(f"initial cell {i} (--initial-cells) is not in the search space "
                                          f"({e}); give cells with the space's --blocks, --ops and "
                                          "--combines.") from None
                # The space's cells concatenate the block outputs no block reads (the paper's
                # rule); a cell with another concat list (NASNet-A's keeps h[i-1]) would be
                # searched, and trained, as another cell.
                searched = space.decode(space.encode(g))
                if searched != g:
                    diff = "; ".join(
                        f"{kind} concat {tuple(mine.concat)} becomes {tuple(theirs.concat)}"
                        for kind, mine, theirs in (("normal", g.normal, searched.normal),
                                                   ("reduction", g.reduction, searched.reduction))
                        if mine != theirs)
                    raise InvalidSettings(
                        f"initial cell {i} (--initial-cells) is not one the search space can hold: the "
                        f"space's cells concatenate the block outputs no block reads, so it would be "
                        f"searched as another cell ({diff}). Give cells whose concat lists are their "
                        "unused block outputs (any cell a search found is one).")

    def record(self) -> dict:
        """The form stored in ``config.json``."""
        rec = {"population": self.population, "tournament_size": self.tournament_size,
               "initial": list(self.initial)}
        if self.warm_start:  # only then: folders of earlier versions keep their identity
            rec["warm_start"] = self.warm_start
        return rec


@dataclasses.dataclass
class SearchConfig:
    """Everything that defines a search (its identity, stored in ``config.json``).

    Args:
        reward: ``cifar10`` (train each child stand-alone), ``cifar10-shared`` (score each child as
            a path through one trained weight-sharing supernet) or ``synthetic`` (a cheap reward
            whose optimum is ``target``, to check the controller).
        strategy: ``ppo``, ``random`` or ``evolution`` (regularized evolution).
        seed: seed of the controller, the sampler and the children.
        space: the search space; default: B=5 and all 13 ops, with ``add`` and ``concat`` combines
            (``add`` only for ``cifar10-shared``).
        target: the synthetic reward's optimum (a genotype, its name, JSON or a JSON file; kept as
            a :class:`~keras_nasnet.genotypes.Genotype`).
        synthetic_delay: seconds each synthetic child sleeps (executor tests, sizing).
        proxy: the ``cifar10`` reward's child training (default: ``ProxyConfig.preset("cpu")``).
        shared: the ``cifar10-shared`` reward's supernet (default: ``SharedConfig()``).
        ppo: the controller's PPO settings with ``strategy="ppo"`` (default: ``PPOConfig()``).
        evolution: the settings of ``strategy="evolution"`` (default: ``EvolutionConfig()``).

    Settings of another reward or strategy than the chosen one are refused rather than ignored.
    Invalid values raise :class:`~keras_nasnet.search.errors.InvalidSettings` (a ``ValueError``).
    """

    reward: str = "cifar10"
    strategy: str = "ppo"
    seed: int = 0
    space: SearchSpace | None = None
    target: Any = "NASNET_A"
    synthetic_delay: float = 0.0
    proxy: Any = None  # ProxyConfig
    shared: Any = None  # SharedConfig
    ppo: PPOConfig | None = None
    evolution: EvolutionConfig | None = None

    def __post_init__(self):
        from .rewards import ProxyConfig
        from .shared_reward import SharedConfig

        if self.reward not in REWARDS:
            raise InvalidSettings(f"Unknown reward {self.reward!r}; choose from {', '.join(REWARDS)}.")
        if self.strategy not in STRATEGIES:
            raise InvalidSettings(f"Unknown strategy {self.strategy!r}; choose from {', '.join(STRATEGIES)}.")
        if self.space is None:
            combines = ("add",) if self.reward == "cifar10-shared" else ("add", "concat")
            self.space = SearchSpace(5, OPS, combines)
        elif isinstance(self.space, dict):
            self.space = _space(self.space)
        for field, reward, default in (("proxy", "cifar10", lambda: ProxyConfig.preset("cpu")),
                                       ("shared", "cifar10-shared", SharedConfig)):
            value = getattr(self, field)
            if value is None and self.reward == reward:
                setattr(self, field, default())
            elif value is not None and self.reward != reward:
                raise InvalidSettings(f"{field}= configures the {reward} reward; this search uses "
                                      f"{self.reward}.")
        if self.ppo is None and self.strategy == "ppo":
            self.ppo = PPOConfig()
        elif self.ppo is not None and self.strategy != "ppo":
            raise InvalidSettings(f"ppo= configures the ppo strategy; this search uses {self.strategy}.")
        if isinstance(self.ppo, dict):
            self.ppo = _settings(PPOConfig, self.ppo, "ppo")
        if self.evolution is None and self.strategy == "evolution":
            self.evolution = EvolutionConfig()
        elif self.evolution is not None and self.strategy != "evolution":
            raise InvalidSettings(f"evolution= configures the evolution strategy; this search uses "
                                  f"{self.strategy}.")
        if isinstance(self.evolution, dict):
            self.evolution = _settings(EvolutionConfig, self.evolution, "evolution")
        self.validate()

    def validate(self) -> None:
        """Checks every setting (called on construction; call again after changing a field)."""
        # numpy seeds take 0 .. 2**32 - 1; the children's seeds are derived from it
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or not 0 <= self.seed < 2**32:
            raise InvalidSettings(f"seed must be an integer in [0, 2**32); got {self.seed!r}.")
        if not isinstance(self.space, SearchSpace):
            raise InvalidSettings(f"space must be a SearchSpace (or its config.json dict); got "
                                  f"{type(self.space).__name__} {self.space!r}.")
        if self.reward != "synthetic":
            # the synthetic reward's settings: refused rather than dropped from config.json
            if self.synthetic_delay:
                raise InvalidSettings(f"synthetic_delay configures the synthetic reward; this search uses "
                                      f"{self.reward}.")
            if not (isinstance(self.target, str) and self.target == "NASNET_A"):
                raise InvalidSettings(f"target configures the synthetic reward (its optimum); this search "
                                      f"uses {self.reward}.")
        if self.reward == "synthetic":
            from ..genotypes import GenotypeError, genotype_from

            _nonnegative("synthetic_delay", self.synthetic_delay)
            try:
                target = self.target = genotype_from(self.target)  # one form, so configs compare
            except (GenotypeError, ValueError, OSError) as e:
                raise InvalidSettings(f"target: {e}") from None
            try:
                self.space.encode(target)
            except (ValueError, KeyError, IndexError) as e:
                raise InvalidSettings(
                    f"the synthetic reward's target (--target, default NASNET_A) is not in the "
                    f"search space ({e}): give a --target with {self.space.num_blocks} block(s) a "
                    "cell that uses only the space's ops and combines.") from None
        if self.reward == "cifar10-shared":
            self.shared.validate(self.space)
        if self.reward == "cifar10":
            p = self.proxy
            for name in ("num_cells", "penultimate_filters", "epochs", "batch_size", "train_images",
                         "val_images"):
                _positive_int(f"proxy.{name}", getattr(p, name))
            _positive("proxy.lr", p.lr)
            _nonnegative("proxy.weight_decay", p.weight_decay)
            _nonnegative("proxy.aux_weight", p.aux_weight)
            if isinstance(p.cutout, bool) or not isinstance(p.cutout, int) or p.cutout < 0:
                raise InvalidSettings(f"proxy.cutout must be an integer >= 0; got {p.cutout!r}.")
            if not 0 <= p.drop_path < 1:
                raise InvalidSettings(f"proxy.drop_path must be in [0, 1); got {p.drop_path!r}.")
            if p.match_params is not None:
                _positive_int("proxy.match_params", p.match_params)
            try:
                p.training_recipe()
            except ValueError as e:
                raise InvalidSettings(f"proxy.recipe_version: {e}") from None
        if self.ppo is not None:
            self.ppo.validate()
        if self.evolution is not None:
            self.evolution.validate(self.space)
            if self.evolution.warm_start and (self.reward != "cifar10" or self.proxy.match_params is None):
                raise InvalidSettings("evolution.warm_start (--warm-start) ranks cells by the width their "
                                      "children get at equal parameters; it needs the cifar10 reward with "
                                      "matched children (--reward cifar10 --child-match-params nasnet-a).")

    @property
    def default_trials(self) -> int:
        """The trial budget when none is given (:data:`DEFAULT_TRIALS`)."""
        return DEFAULT_TRIALS[self.reward]

    # -- config.json ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The JSON-able form stored as ``config.json`` (the format of earlier versions)."""
        from ..genotypes import genotype_from

        cfg = {"space": {"num_blocks": self.space.num_blocks, "ops": list(self.space.ops),
                         "combines": list(self.space.combines)},
               "reward": self.reward, "strategy": self.strategy, "seed": self.seed}
        if self.reward == "synthetic":
            cfg["reward_args"] = {"target": genotype_from(self.target).to_json()}
            if self.synthetic_delay:
                cfg["reward_args"]["delay"] = self.synthetic_delay
        elif self.reward == "cifar10":
            cfg["reward_args"] = {"proxy": self.proxy.record()}
        else:
            cfg["reward_args"] = {"shared": dataclasses.asdict(self.shared), "seed": self.seed}
        if self.ppo is not None:
            ppo = dataclasses.asdict(self.ppo)
            defaults = dataclasses.asdict(PPOConfig())
            # The preset's fields always, others only where they differ from the default, and the
            # schedules' span only when there is a schedule: what earlier versions wrote.
            cfg["ppo"] = {k: v for k, v in ppo.items()
                          if k in _PPO_RECORDED or (k != "total_trials" and v != defaults[k])}
            if self.ppo.scheduled:
                cfg["ppo"]["total_trials"] = self.ppo.total_trials
        if self.evolution is not None:
            cfg["evolution"] = self.evolution.record()
        return cfg

    @classmethod
    def from_dict(cls, cfg: dict) -> "SearchConfig":
        """The config of a ``config.json`` (see :meth:`to_dict`)."""
        from .rewards import ProxyConfig
        from .shared_reward import SharedConfig

        if not isinstance(cfg, dict):
            raise InvalidSettings(f"not a search configuration: a mapping (the contents of a "
                                  f"config.json) is needed; got {type(cfg).__name__}.")
        try:
            args = cfg.get("reward_args", {})
            kw = {"reward": cfg["reward"], "strategy": cfg["strategy"], "seed": cfg["seed"],
                  "space": _space(cfg["space"])}
            if cfg["reward"] == "synthetic":
                kw["target"] = args.get("target", "NASNET_A")
                kw["synthetic_delay"] = args.get("delay", 0.0)
            elif cfg["reward"] == "cifar10":
                kw["proxy"] = ProxyConfig.from_record(args["proxy"])
            elif cfg["reward"] == "cifar10-shared":
                kw["shared"] = SharedConfig(**args["shared"])
            if cfg.get("ppo") is not None:
                kw["ppo"] = PPOConfig(**cfg["ppo"])
            if cfg.get("evolution") is not None:
                kw["evolution"] = EvolutionConfig(**cfg["evolution"])
        except (KeyError, TypeError) as e:
            raise InvalidSettings(f"not a search configuration: {type(e).__name__}: {e}") from None
        return cls(**kw)

    @classmethod
    def from_flags(cls, flags) -> "SearchConfig":
        """The config ``python -m keras_nasnet.search`` builds from these command-line flags
        (``--out`` may be left out). Bad flags raise
        :class:`~keras_nasnet.search.errors.InvalidSettings` with the message the command line
        prints (a library call does not exit the interpreter)."""
        import contextlib
        import io

        from .__main__ import _check_flags_apply, build_parser, search_config_from_args

        flags = [str(f) for f in flags]
        parser = build_parser()
        said = io.StringIO()
        try:
            with contextlib.redirect_stderr(said):
                a = parser.parse_args(flags if "--out" in flags else [*flags, "--out", "-"])
                _check_flags_apply(parser, flags, a)  # a flag the search would ignore is refused, as the CLI does
        except SystemExit as e:
            if e.code == 0:  # --help: printed, as asked
                raise
            lines = said.getvalue().strip().splitlines()
            message = lines[-1].split(" error: ", 1)[-1] if lines else f"exit {e.code}"
            raise InvalidSettings(f"flags {' '.join(flags)}: {message}") from None
        try:
            return search_config_from_args(a)
        except InvalidSettings:
            raise
        except ValueError as e:  # e.g. SearchSpace's: --ops names an op that does not exist
            raise InvalidSettings(f"flags {' '.join(flags)}: {e}") from None

    @classmethod
    def load(cls, path) -> "SearchConfig":
        """Reads a ``config.json`` (or the one in a search folder); a damaged file raises
        :class:`~keras_nasnet.search.errors.StateCorrupt` naming it, a missing one
        :class:`~keras_nasnet.search.errors.NotASearch` (a ``FileNotFoundError``)."""
        from .journal import read_config

        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        try:
            return cls.from_dict(read_config(path))
        except InvalidSettings as e:
            from .errors import StateCorrupt

            raise StateCorrupt(f"{path}: {e}") from None

    def save(self, path) -> None:
        """Writes :meth:`to_dict` to ``path`` atomically."""
        from ..fileio import write_json_atomic

        write_json_atomic(path, self.to_dict(), indent=2, sort_keys=True)

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


def _space(d: dict) -> SearchSpace:
    try:
        return SearchSpace(**d)
    except (TypeError, ValueError) as e:
        raise InvalidSettings(f"space: {e}") from None


def _positive(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
        raise InvalidSettings(f"{name} must be a finite number > 0; got {v!r}.")


def _nonnegative(name, v):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
        raise InvalidSettings(f"{name} must be a finite number >= 0; got {v!r}.")


def _settings(cls, values: dict, name: str):
    """``cls(**values)``, with an unknown key named among the known ones (not a bare TypeError)."""
    known = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise InvalidSettings(f"{name}: unknown setting(s) {', '.join(map(repr, unknown))}; "
                              f"{cls.__name__} has {', '.join(known)}.")
    return cls(**values)


def _positive_int(name, v):
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise InvalidSettings(f"{name} must be an integer >= 1; got {v!r}.")
