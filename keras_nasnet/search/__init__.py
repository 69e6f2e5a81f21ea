"""Architecture search in the NASNet space: the paper's PPO controller, regularized evolution or
random search, with a synthetic, a stand-alone CIFAR-10 or a shared-weights CIFAR-10 reward.

The library API::

    from keras_nasnet.search import SearchConfig, PPOConfig, run_search

    if __name__ == "__main__":  # worker processes import the script (spawn): search only here
        config = SearchConfig(reward="synthetic", ppo=PPOConfig.preset("paper"))
        summary = run_search(config, "runs/synthetic", trials=2000)

``python -m keras_nasnet.search`` maps its flags onto a :class:`SearchConfig` and calls
:func:`run_search`; ``python -m keras_nasnet.search report DIR`` lists a search's best trials.
Names are imported on first use, so ``import keras_nasnet.search`` loads no TensorFlow of its own.
"""

from __future__ import annotations

import importlib

#: Public name -> the module that defines it.
_EXPORTS = {
    "SearchConfig": "config", "PPOConfig": "config", "PPO_PRESETS": "config", "EvolutionConfig": "config",
    "DEFAULT_TRIALS": "config", "REWARDS": "config", "STRATEGIES": "config",
    "run_search": "run", "write_outputs": "run", "plot_rewards": "run",
    "Reward": "base", "FunctionReward": "base", "as_reward": "base",
    "SyntheticReward": "rewards", "CIFARReward": "rewards", "ProxyConfig": "rewards",
    "ChildFailed": "rewards", "matched_units": "rewards",
    "SharedWeightsReward": "shared_reward", "SharedConfig": "shared_reward",
    "SearchSpace": "space", "widest_cells": "warmstart",
    "FAILED_REWARD": "workers",
    "load_trials": "report", "search_cost": "report", "stage_progress": "report", "plot_genotype": "cellplot", "read_config": "journal",
    "SearchError": "errors", "InvalidSettings": "errors", "ConfigMismatch": "errors",
    "JournalCorrupt": "errors", "SearchFailed": "errors", "StateCorrupt": "errors",
    "StageConfig": "stages", "run_stages": "stages", "StandaloneReward": "stages",
    "train_standalone": "stages", "reference_cells": "stages", "standalone_spec": "stages",
    "kendall_tau": "metrics", "spearman": "metrics", "ranks": "metrics", "bootstrap_interval": "metrics",
    "rank_correlations": "metrics", "tau_difference": "metrics",
    "mean_difference": "metrics", "pooled_seed_sd": "metrics", "seeds_difference": "metrics", "read_standalone": "metrics",
    "read_standalone_journal": "metrics",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
