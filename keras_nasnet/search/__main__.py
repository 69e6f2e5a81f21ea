"""``python -m keras_nasnet.search``: the paper's architecture search, and ``report DIR``.

Examples::

    # check the controller without training anything (seconds per thousand children)
    python -m keras_nasnet.search --reward synthetic --trials 20000 --out runs/synthetic

    # a CIFAR-10 proxy search with two worker processes
    python -m keras_nasnet.search --reward cifar10 --data cifar-10-python.tar.gz \\
        --proxy cpu --trials 60 --workers 2 --out runs/cifar

    # one CPU or GPU: children scored as paths through one shared-weights supernet
    python -m keras_nasnet.search --reward cifar10-shared --data cifar-10-python.tar.gz \\
        --trials 2000 --out runs/shared

    # what did it find?
    python -m keras_nasnet.search report runs/cifar

Run the same command again with the same --out to resume a stopped (Ctrl-C) or killed search.
PPO settings: the defaults (--preset default) are the paper's with an entropy bonus of 0.05 per
decision, which found NASNet-A exactly on the synthetic reward in 5 of 5 seeds where the paper's
1e-5 did not; --preset paper gives the paper's exact settings. Explicit flags override a preset.
Exit codes: 0 done, 1 failed (message on stderr), 2 invalid settings, 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .._cli import interrupted
from ..cliargs import ArgumentParser, nonnegative_float, nonnegative_int, positive_float, positive_int
from .config import DEFAULT_TRIALS, PPO_PRESETS  # the library's presets and budgets
from .stages import CHILD_CPU_MINUTES, SCREEN_CHILD_CPU_SECONDS, SHARED_SEARCH_CPU_HOURS, StageConfig


#: The stages' defaults, named in the help.
_SD = StageConfig()
_SCREEN_H = _SD.screen_top * _SD.screen_seeds * SCREEN_CHILD_CPU_SECONDS / 3600


def build_parser() -> argparse.ArgumentParser:
    """The search command's argument parser."""
    p = ArgumentParser(prog="python -m keras_nasnet.search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="search folder (records, state, results); reused to resume")
    p.add_argument("--reward", choices=["cifar10", "cifar10-shared", "synthetic"], default="cifar10",
                   help="cifar10: train each child and use its held-out accuracy; cifar10-shared: "
                        "score each child as a path through one trained weight-sharing supernet "
                        "(add-only cells, runs in this process; experimental: the default 10-epoch "
                        "supernet ranks cells with Kendall tau 0.1-0.3 against the stages' "
                        "stand-alone budget, so use it with --stages all, see "
                        "search/reward/README.md); "
                        "synthetic: a cheap reward whose optimum is NASNet-A, to check the controller")
    p.add_argument("--strategy", choices=["ppo", "random", "evolution"], default="ppo",
                   help="ppo: the paper's LSTM controller trained with PPO; random: uniform sampling; "
                        "evolution: regularized evolution (Real et al. 2019, AmoebaNet's search)")
    p.add_argument("--trials", type=positive_int, default=None,
                   help="children to evaluate in total (default: the paper's 20,000; 2,000 with "
                        "--reward cifar10-shared)")
    p.add_argument("--workers", type=nonnegative_int, default=None,
                   help="parallel child workers (processes or Ray tasks); 0 evaluates in this process. "
                        "Default: 1 for cifar10, 0 for synthetic and cifar10-shared (its rewards are scored in "
                        "this process; its stages train stand-alone children one per core)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where workers run: local processes or a Ray cluster")
    p.add_argument("--ray-address", default=None, help="address of an existing Ray cluster (default: start one)")
    p.add_argument("--threads-per-worker", type=positive_int, default=None,
                   help="TensorFlow threads of each local worker (default: all cores each; for the "
                        "stand-alone stage children of a --workers 0 search: 1, one worker per core)")
    p.add_argument("--cpus-per-child", type=positive_float, default=1,
                   help="CPUs Ray reserves for each child (--executor ray; default 1)")
    p.add_argument("--gpus-per-child", type=nonnegative_float, default=0,
                   help="GPUs Ray reserves for each child, fractions allowed (--executor ray; default 0)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="seed of the controller, sampler and children")
    p.add_argument("--data", default=None,
                   help="CIFAR-10 source for --reward cifar10 and cifar10-shared (default: tfds)")
    p.add_argument("--target", default="NASNET_A",
                   help="synthetic reward's optimum: a genotype name, JSON or JSON file with --blocks blocks")
    p.add_argument("--synthetic-delay", type=nonnegative_float, default=0.0,
                   help="seconds each synthetic child sleeps, to simulate training (executor tests, sizing)")
    p.add_argument("--blocks", type=positive_int, default=5, help="B, blocks per cell")
    p.add_argument("--ops", default=None, help="comma-separated op subset (default: all 13)")
    p.add_argument("--combines", default=None,
                   help="comma-separated combine methods of a block: add, concat (default: both, the "
                        "paper's; add only with --reward cifar10-shared). add alone is the space of "
                        "NASNet-A and of the stages' random reference cells")
    g = p.add_argument_group("child proxy (cifar10 reward)")
    g.add_argument("--proxy", choices=["cpu", "paper"], default="cpu",
                   help="cpu: N=1, F=8, 1 epoch on 10,000 images; paper: N=2, F=32, 20 epochs on 45,000")
    g.add_argument("--child-cells", type=positive_int, default=None, help="override N of the child")
    g.add_argument("--child-filters", type=positive_int, default=None, help="override the child's penultimate filters")
    g.add_argument("--child-epochs", type=positive_int, default=None, help="override the child's epochs")
    g.add_argument("--child-train-images", type=positive_int, default=None, metavar="N",
                   help="training images: of each child (cifar10; default the --proxy preset's) or of "
                        "the supernet (cifar10-shared; default all 45,000)")
    g.add_argument("--child-match-params", type=match_target, default=None, metavar="N|nasnet-a|off",
                   help="give every child the width at which it has about N parameters (nasnet-a: "
                        "NASNet-A's at the child's size, 73218 for the cpu proxy), as the stages do; "
                        "default off: one width for all, which favours cells with full convolutions")
    g = p.add_argument_group("shared-weights supernet (cifar10-shared reward)")
    g.add_argument("--supernet-cells", type=positive_int, default=None, help="N of the supernet (default 1)")
    g.add_argument("--supernet-filters", type=positive_int, default=None, help="F of the supernet (default 8)")
    g.add_argument("--supernet-epochs", type=positive_float, default=None,
                   help="epochs of uniform-path training before the first reward (default 10)")
    g.add_argument("--steps-per-child", type=nonnegative_int, default=None,
                   help="supernet steps on each child's path before its reward (ENAS-style "
                        "alternation; default 0: a frozen supernet)")
    g.add_argument("--reward-images", type=positive_int, default=None,
                   help="held-out images each reward is measured on (default 500)")
    g.add_argument("--val-images", type=positive_int, default=None,
                   help="training images held out for rewards (default 5000, the paper's split)")
    g = p.add_argument_group(
        "PPO", "--preset default: the paper's settings (Adam 0.00035, batches of 20, clip 0.2,\n"
        "4 epochs) with an entropy bonus of 0.05 per decision; it rediscovered NASNet-A on the\n"
        "synthetic reward in 5 of 5 seeds. --preset paper: the paper's exact settings (entropy\n"
        "bonus 1e-5; matched 7 of NASNet-A's 10 blocks). Flags below override the preset.")
    g.add_argument("--preset", choices=sorted(PPO_PRESETS), default="default",
                   help="PPO settings to start from (default: %(default)s)")
    g.add_argument("--lr", type=positive_float, default=None, help="controller Adam learning rate (paper: 0.00035)")
    g.add_argument("--lr-final", type=nonnegative_float, default=None, help="decay the learning rate linearly to this")
    g.add_argument("--entropy-weight", type=nonnegative_float, default=None,
                   help="entropy bonus per decision (default preset: 0.05; paper: 1e-5)")
    g.add_argument("--entropy-final", type=nonnegative_float, default=None, help="decay the entropy bonus linearly to this")
    g.add_argument("--ppo-epochs", type=positive_int, default=None, help="gradient passes over each batch")
    g.add_argument("--clip", type=positive_float, default=None, help="PPO clip ratio")
    g.add_argument("--tanh-constant", type=positive_float, default=None,
                   help="squash logits to c*tanh(logits) (ENAS); keeps the controller exploring")
    g.add_argument("--batch-size", type=positive_int, default=None, help="children per update (paper: 20)")
    g = p.add_argument_group(
        "regularized evolution (--strategy evolution)",
        "Each child is a mutation (one input, op or combine of one block changed) of the best of\n"
        "--tournament-size members drawn from the --population most recent children; the first\n"
        "--population children are the --initial-cells, then the widest of --warm-start random\n"
        "cells, then uniform samples.")
    g.add_argument("--population", type=positive_int, default=None,
                   help="children the population keeps (default 100, as in the AmoebaNet search)")
    g.add_argument("--tournament-size", type=positive_int, default=None,
                   help="members drawn per tournament (default 25, as in the AmoebaNet search)")
    g.add_argument("--initial-cells", default=None, metavar="FILE",
                   help="JSON file: a list of genotypes (JSON objects or names) to start the "
                        "population from, e.g. an earlier search's best cells")
    g.add_argument("--warm-start", type=nonnegative_int, default=None, metavar="N",
                   help="draw N cells uniformly; the widest at --child-match-params fill the "
                        "population's places after any --initial-cells (no training, about 1.8 "
                        "CPU-seconds a cell; e.g. 1000 for a population of 50)")
    g = p.add_argument_group(
        "stages after the controller (--stages all)",
        "Once all --trials are in: re-score the top --rescore-top cells on more held-out images\n"
        "(cifar10-shared only), screen the top --screen-top by one short stand-alone training each\n"
        "(1 epoch on --screen-images images, mean of --screen-seeds seeds), train the best\n"
        "--top-k stand-alone for --cheap-budget epochs with --stage-seeds seeds on\n"
        "--stage-images training images, keep the best 1/--halving-eta and multiply the\n"
        "budget by it up to --final-budget, where NASNet-A and --random-cells random cells are\n"
        "trained too; then the best --confirm-top and NASNet-A get --confirm-seeds more seeds,\n"
        "and the best of them over all their seeds is the final cell; writes final.json and\n"
        "final.png, and best_genotype.json becomes the final cell.\n"
        f"Every child gets NASNet-A's parameter count (--stage-match-params). The\n"
        f"defaults (calibrated in search/calibration/) train {sum(n for _, n in _SD.trainings())} stand-alone children, "
        f"{_SD.child_epochs()} child-epochs on\n45,000 images: at about {CHILD_CPU_MINUTES} CPU-minutes per child-epoch, "
        f"about {_SD.child_epochs() * CHILD_CPU_MINUTES / 60:.1f} CPU-hours,\none worker per core; with a cifar10-shared search's "
        f"supernet and 2,000 rewards\n({SHARED_SEARCH_CPU_HOURS} CPU-hours), about "
        f"{_SD.child_epochs() * CHILD_CPU_MINUTES / 60 + SHARED_SEARCH_CPU_HOURS + 0.2 + _SCREEN_H:.1f} CPU-hours end to end with the "
        f"re-scoring and\nthe screening ({_SCREEN_H:.1f}; measured per part in search/fair/ and search/reward/;\n"
        "`report DIR` prints a search's own cost).\nWith --reward "
        "synthetic a budget adds seeded noise (0.05/sqrt(budget))\nto the reward: a test device.")
    g.add_argument("--stages", choices=["none", "all"], default="none",
                   help="run the stages after the controller (default: %(default)s)")
    g.add_argument("--rescore-top", type=positive_int, default=None,
                   help="distinct cells the supernet re-scores (cifar10-shared; default 40)")
    g.add_argument("--rescore-images", type=positive_int, default=None,
                   help="held-out images of the re-scoring, none of them the reward's (default: all "
                        "--val-images after the first --reward-images)")
    g.add_argument("--screen-top", type=nonnegative_int, default=None,
                   help=f"cells (the top re-scored ones) trained stand-alone for one epoch on --screen-images "
                        f"images and reordered by it before the cheap budget (default {_SD.screen_top}; 0: none)")
    g.add_argument("--screen-images", type=positive_int, default=None,
                   help=f"training images of a screening child (default {_SD.screen_images})")
    g.add_argument("--screen-seeds", type=positive_int, default=None,
                   help=f"seeds per screened cell, ranked by their mean (default {_SD.screen_seeds})")
    g.add_argument("--screen-widest", type=nonnegative_int, default=None,
                   help="also screen this many cells of the search's best --widest-from that get the "
                        "most filters at equal parameters (the search's reward judges every cell at one "
                        f"width and passes over light ones; search/widepool/; default {_SD.screen_widest})")
    g.add_argument("--widest-from", type=positive_int, default=None,
                   help=f"the search's best distinct cells --screen-widest picks from (default {_SD.widest_from})")
    g.add_argument("--top-k", type=positive_int, default=None, help=f"cells trained at the cheap budget (default {_SD.top_k})")
    g.add_argument("--stage-seeds", type=positive_int, default=None, help=f"seeds per cell and budget (default {_SD.seeds})")
    g.add_argument("--cheap-budget", type=positive_int, default=None, help=f"epochs of the first round (default {_SD.cheap_budget})")
    g.add_argument("--final-budget", type=positive_int, default=None, help="epochs of the last round (default: --cheap-budget, one round; above it: "
                        "successive-halving rounds in between)")
    g.add_argument("--reuse-children", nargs="+", metavar="DIR", default=None,
                   help="stand-alone journals (search/calibration/<budget>, another search's folder) "
                        "whose children at the same budget and recipe are copied, not trained again")
    g.add_argument("--stage-match-params", type=match_target, default=None, metavar="N|nasnet-a|off",
                   help="give every stand-alone child the width at which it has about N parameters "
                        "(default nasnet-a: NASNet-A's at the proxy's width, 73218 for the cpu proxy); "
                        "off: one width for all, which favours cells with full convolutions")
    g.add_argument("--halving-eta", type=positive_int, default=None,
                   help="keep the best 1/eta, multiply the budget by eta (default 2; at least 2)")
    g.add_argument("--confirm-top", type=positive_int, default=None,
                   help=f"best cells of the last round trained with --confirm-seeds more seeds, beside "
                        f"NASNet-A (default {_SD.confirm_top})")
    g.add_argument("--confirm-seeds", type=nonnegative_int, default=None,
                   help=f"seeds added for them at the final budget (default {_SD.confirm_seeds}; 0: none, the "
                        "final cell is the last round's best)")
    g.add_argument("--random-cells", type=nonnegative_int, default=None,
                   help=f"random reference cells at the final budget (default {_SD.random_cells})")
    g.add_argument("--stage-images", type=positive_int, default=None,
                   help="training images of every stand-alone child (default 45000, the whole split)")
    p.add_argument("--max-failures", type=positive_int, default=None,
                   help="stop after this many children in a row failed (default: 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def match_target(text: str):
    """``--stage-match-params``: a parameter count, ``nasnet-a`` or ``off``."""
    if text in ("nasnet-a", "off"):
        return text
    try:
        return positive_int(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a parameter count (an integer of at least 1), "
                                         f"'nasnet-a' or 'off'; got {text!r}") from None


#: Flags that configure one reward or the PPO strategy: given with another, they would be ignored,
#: so they are refused instead.
_ONLY_FOR = {
    "synthetic": ("target", "synthetic_delay"),
    "cifar10": ("proxy", "child_cells", "child_filters", "child_epochs", "child_match_params"),
    "cifar10-shared": ("supernet_cells", "supernet_filters", "supernet_epochs", "steps_per_child",
                       "reward_images", "val_images"),
}
_STAGE_FLAGS = {"rescore_top": "rescore_top", "rescore_images": "rescore_images", "screen_top": "screen_top",
                "screen_images": "screen_images", "screen_seeds": "screen_seeds", "screen_widest": "screen_widest",
                "widest_from": "widest_from", "top_k": "top_k",
                "stage_seeds": "seeds", "cheap_budget": "cheap_budget", "final_budget": "final_budget",
                "halving_eta": "eta", "confirm_top": "confirm_top", "confirm_seeds": "confirm_seeds",
                "random_cells": "random_cells", "stage_images": "images",
                "reuse_children": "reuse", "stage_match_params": "match_params"}
_PPO_FLAGS = ("lr", "lr_final", "entropy_weight", "entropy_final", "ppo_epochs", "clip",
              "tanh_constant", "batch_size")
_EVOLUTION_FLAGS = ("population", "tournament_size", "initial_cells", "warm_start")


def trials_of(a) -> int:
    """The search's trial budget: ``--trials``, or the reward's default."""
    return a.trials if a.trials is not None else DEFAULT_TRIALS[a.reward]


def _check_flags_apply(parser, argv, a) -> None:
    given = {opt.lstrip("-").split("=")[0].replace("-", "_") for opt in argv if opt.startswith("--")}
    for reward, dests in _ONLY_FOR.items():
        for d in dests:
            if d in given and a.reward != reward:
                parser.error(f"--{d.replace('_', '-')} applies to --reward {reward} only; this search "
                             f"uses --reward {a.reward}.")
    if a.reward == "synthetic" and "data" in given:
        parser.error("--data applies to the cifar10 rewards only; this search uses --reward synthetic.")
    if a.reward == "synthetic" and "child_train_images" in given:
        parser.error("--child-train-images applies to the cifar10 rewards only.")
    for d in ("stage_images", "stage_match_params", "screen_images"):
        if a.reward == "synthetic" and d in given:  # its stages score the synthetic reward plus noise
            parser.error(f"--{d.replace('_', '-')} sets the stand-alone CIFAR-10 training of the stages; "
                         "with --reward synthetic a stage child is the synthetic reward plus noise.")
    if a.stages == "none":
        for d in _STAGE_FLAGS:
            if d in given:
                parser.error(f"--{d.replace('_', '-')} sizes the stages after the controller; add "
                             "--stages all to run them.")
    if a.reward != "cifar10-shared":
        for d in ("rescore_top", "rescore_images"):
            if d in given:
                parser.error(f"--{d.replace('_', '-')} applies to --reward cifar10-shared only (the "
                             f"re-scoring stage); this search uses --reward {a.reward}.")
    if a.strategy != "ppo":
        for d in _PPO_FLAGS + ("preset",):
            if d in given:
                parser.error(f"--{d.replace('_', '-')} sets the PPO controller; this search uses "
                             f"--strategy {a.strategy}.")
    if a.strategy != "evolution":
        for d in _EVOLUTION_FLAGS:
            if d in given:
                parser.error(f"--{d.replace('_', '-')} sets regularized evolution; add --strategy "
                             f"evolution (this search uses --strategy {a.strategy}).")


def search_config_from_args(a):
    """The :class:`~keras_nasnet.search.SearchConfig` that parsed arguments describe."""
    from ..genotypes import OPS
    from .config import EvolutionConfig, PPOConfig, SearchConfig
    from .rewards import ProxyConfig
    from .shared_reward import SharedConfig
    from .space import SearchSpace

    ops = OPS if a.ops is None else tuple(o.strip() for o in a.ops.split(","))
    combines = ("add",) if a.reward == "cifar10-shared" else ("add", "concat")
    if getattr(a, "combines", None) is not None:
        combines = tuple(c.strip() for c in a.combines.split(","))
    kw = {"reward": a.reward, "strategy": a.strategy, "seed": a.seed,
          "space": SearchSpace(a.blocks, ops, combines)}
    if a.reward == "synthetic":
        kw.update(target=a.target, synthetic_delay=a.synthetic_delay)
    if a.reward == "cifar10":
        kw["proxy"] = ProxyConfig.preset(a.proxy, num_cells=a.child_cells, penultimate_filters=a.child_filters,
                                         epochs=a.child_epochs, train_images=a.child_train_images)
        kw["proxy"].data = a.data
        match = getattr(a, "child_match_params", None)
        if match == "nasnet-a":
            from .rewards import nasnet_a_params

            match = nasnet_a_params(kw["proxy"].num_cells, kw["proxy"].penultimate_filters)
        kw["proxy"].match_params = None if match in (None, "off") else int(match)
    if a.reward == "cifar10-shared":
        given = {"num_cells": a.supernet_cells, "filters": a.supernet_filters,
                 "warmup_epochs": a.supernet_epochs, "steps_per_child": a.steps_per_child,
                 "reward_images": a.reward_images, "val_images": a.val_images,
                 "train_images": a.child_train_images, "data": a.data}
        kw["shared"] = SharedConfig(**{k: v for k, v in given.items() if v is not None})
    if a.strategy == "ppo":
        ppo = PPOConfig.preset(getattr(a, "preset", "default"), lr=a.lr, lr_final=a.lr_final,
                               entropy_weight=a.entropy_weight, entropy_final=a.entropy_final,
                               epochs=a.ppo_epochs, clip=a.clip, tanh_constant=a.tanh_constant,
                               batch_size=a.batch_size)
        if ppo.scheduled:
            # The schedules span the run, so then the trial budget is part of the search's identity.
            ppo.total_trials = trials_of(a)
        kw["ppo"] = ppo
    if a.strategy == "evolution":
        evo = {"population": a.population, "tournament_size": a.tournament_size,
               "warm_start": a.warm_start}
        evo = {k: v for k, v in evo.items() if v is not None}
        if a.initial_cells is not None:
            evo["initial"] = _initial_cells(a.initial_cells)
        kw["evolution"] = EvolutionConfig(**evo)
    return SearchConfig(**kw)


def _initial_cells(path) -> tuple:
    """``--initial-cells``: the genotypes of a JSON list (objects or names)."""
    from .errors import InvalidSettings

    try:
        cells = json.loads(Path(path).read_text())
    except OSError as e:
        raise InvalidSettings(f"--initial-cells {path}: cannot read it ({e.strerror}).") from None
    except ValueError as e:
        raise InvalidSettings(f"--initial-cells {path} is not JSON ({e}).") from None
    if isinstance(cells, dict) and "normal" in cells:
        cells = [cells]  # one genotype, as a search's best_genotype.json holds it
    if not isinstance(cells, list) or not cells:
        raise InvalidSettings(f"--initial-cells {path} must hold a genotype (a JSON object, as a search's "
                              "best_genotype.json holds) or a non-empty JSON list of genotypes (objects, or "
                              "names such as \"KNAS_EVOLVE_B\").")
    return tuple(cells)


def stage_config_from_args(a):
    """The :class:`~keras_nasnet.search.stages.StageConfig` of ``--stages all`` (None for none)."""
    if a.stages == "none":
        return None
    kw = {field: getattr(a, dest) for dest, field in _STAGE_FLAGS.items() if getattr(a, dest) is not None}
    if "reuse" in kw:
        kw["reuse"] = tuple(kw["reuse"])
    if kw.get("match_params") == "off":
        kw["match_params"] = None
    return StageConfig(**kw)


def config_from_args(a) -> dict:
    """The search's identity (stored in config.json) from parsed arguments."""
    return search_config_from_args(a).to_dict()


def _recorded(out, name: str = "trials.jsonl") -> int:
    """Finished records in journal ``name`` of a search folder (0 if there is none yet)."""
    from .journal import read_records

    try:
        return sum(r["event"] == "finished" for r in read_records(Path(out) / name)[0])
    except Exception:  # no folder yet, or one this message should not fail on
        return 0


def _stopped_message(out, trials: int) -> str:
    """What the one line printed on Ctrl-C or SIGTERM says was recorded. Once the controller's
    trials are all in, a stop falls in the stages, and the trial count alone ("300 of 300")
    would say nothing of their progress: each stage journal's finished children are named."""
    done = _recorded(out)
    line = f"{done} of {trials} trials"
    try:
        from .report import stage_progress

        stages = stage_progress(out)
    except Exception:  # a journal this message should not fail on
        stages = {}
    if done >= trials and stages:
        counts = ", ".join(f"{s} {p['finished']} of {p['planned']}" if "damaged" not in p
                           else f"{s} unreadable" for s, p in stages.items())
        return f"search stopped during the stages; {line} and the stages' finished children ({counts}) " \
               f"are recorded in {out}"
    return f"search stopped; {line} are recorded in {out}"


def main(argv=None) -> int:
    """Entry point of ``python -m keras_nasnet.search``; returns the exit code."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "report":
        from .report import main as report_main

        return report_main(argv[1:])
    parser = build_parser()
    if argv and not argv[0].startswith("-"):
        # A search takes only flags: a leading word is a mistyped subcommand ("reprot DIR").
        parser.error(f"unknown command {argv[0]!r}: the one subcommand is `report DIR`; a search "
                     "takes flags only (--out DIR ...; see --help)")
    a = parser.parse_args(argv)
    _check_flags_apply(parser, argv, a)
    from ..data import DataError
    from ..fileio import FolderLocked
    from .errors import ConfigMismatch, InvalidSettings, SearchError
    from .run import MAX_CONSECUTIVE_FAILURES, check_run_settings, run_search
    from .workers import make_reward

    workers = a.workers if a.workers is not None else (1 if a.reward == "cifar10" else 0)
    try:  # fail before anything is written if the reward cannot work in this space
        config = search_config_from_args(a)
        stages = stage_config_from_args(a)
        if stages is not None:
            stages.validate(config)
        stored = config.to_dict()
        check_run_settings(a.out, stored, workers, a.executor)
        make_reward({"reward": a.reward, "space": stored["space"], **stored["reward_args"]})
    except ValueError as e:
        parser.error(f"invalid search settings: {e}")
    try:
        summary = run_search(config, a.out, trials=trials_of(a), workers=a.workers, executor=a.executor,
                             progress=not a.no_progress, threads_per_worker=a.threads_per_worker,
                             ray_address=a.ray_address, cpus_per_child=a.cpus_per_child,
                             gpus_per_child=a.gpus_per_child, stages=stages,
                             max_failures=a.max_failures or MAX_CONSECUTIVE_FAILURES)
    except KeyboardInterrupt:
        return interrupted(_stopped_message(a.out, trials_of(a)), "run the same command to resume")
    except InvalidSettings as e:  # found once the data is loaded, still before anything is written
        parser.error(f"invalid search settings: {e}")
    except ConfigMismatch as e:  # the flags disagree with the search already in --out
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (SearchError, DataError, FolderLocked, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a read-only folder, a full disk: what is recorded so far is kept
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(f"error: cannot write the search folder {a.out}{where}: {e.strerror or e}. What is "
              "recorded so far is kept: free space or make the folder writable (or give another "
              "--out), then run the same command to resume.", file=sys.stderr)
        return 1
    print(json.dumps({k: summary[k] for k in ("trials", "failed", "errors", "best_reward", "best_trial", "strategy")}))
    if summary["best_trial"] is None:
        print(f"error: no child succeeded ({summary['failed']} failed); see {Path(a.out) / 'trials.jsonl'}.",
              file=sys.stderr)
        return 1
    if "final_cell" in summary:
        print(f"Final cell (stages, budget {summary['final_cell']['budget']}): "
              f"{Path(a.out) / 'best_genotype.json'}; all finalists and references: {Path(a.out) / 'final.json'}")
    else:
        print(f"Best genotype: {Path(a.out) / 'best_genotype.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
