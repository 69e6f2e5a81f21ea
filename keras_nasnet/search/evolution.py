"""Regularized evolution (Real, Aggarwal, Huang, Le, "Regularized Evolution for Image Classifier
Architecture Search", AAAI 2019): the search that found AmoebaNet-A in the NASNet space.

A population of the ``population`` most recent children is kept. Each new child is a mutation of
the best of ``tournament_size`` members drawn at random from it, and the oldest member leaves when
a child joins (aging, the "regularized" part: a cell stays only as long as it keeps being
re-discovered, so one lucky reward cannot rule the search). Until ``population`` children have
been proposed the children are the ``initial`` cells (a pool from an earlier search, say) and
then uniform samples.

A mutation changes one decision of one block of one cell to another valid choice: one of the two
inputs (the paper's hidden-state mutation), one of the two ops (its op mutation) or, in a space
with more than one, the combine method. The paper's identity mutation (a copy) is left out: every
child here costs a training and a copy would only re-measure its parent. Failed children join
the population with :data:`~keras_nasnet.search.workers.FAILED_REWARD`, so they are never parents.

The strategy has the interface of :mod:`keras_nasnet.search.ppo`'s strategies and no TensorFlow.
"""

from __future__ import annotations

import collections
import json

import numpy as np

from .config import EvolutionConfig
from .space import SearchSpace


class EvolutionStrategy:
    """Regularized (aging) evolution with tournament selection; see the module docstring."""

    name = "evolution"

    def __init__(self, space: SearchSpace, config: EvolutionConfig | None = None, seed: int = 0):
        self.space = space
        self.config = config or EvolutionConfig()
        self.rng = np.random.default_rng(seed)
        self.initial = [space.encode(g) for g in self.config.genotypes()]
        self.population: collections.deque = collections.deque()
        self.proposed = 0
        self.observed = 0
        self.counts = space.num_choices()
        self._logp = [round(-float(x), 6) for x in np.log(self.counts)]

    def propose(self, n: int):
        """``n`` children: the initial cells, then uniform samples until the population is
        full, then mutations of tournament winners. The log-probabilities are uniform ones (the
        search's records keep a ``logp``; evolution does not use it)."""
        out = []
        for _ in range(n):
            if self.proposed < len(self.initial):
                actions = list(self.initial[self.proposed])
            elif self.proposed < self.config.population or not self.population:
                actions = self.space.sample_uniform(self.rng, 1)[0].tolist()
            else:
                actions = self.mutate(self.parent())
            self.proposed += 1
            out.append((actions, self._logp))
        return out

    def parent(self) -> list[int]:
        """The best of ``tournament_size`` members drawn without replacement (all members when the
        population is smaller); ties go to the younger member."""
        members = list(self.population)
        k = min(self.config.tournament_size, len(members))
        picks = sorted(self.rng.choice(len(members), size=k, replace=False))
        best = max(picks, key=lambda i: (members[i][1], i))
        return list(members[best][0])

    def mutate(self, actions) -> list[int]:
        """``actions`` with one decision of one block changed to another valid choice."""
        child = list(actions)
        mutable = [step for step, c in enumerate(self.counts) if c > 1]
        step = int(self.rng.choice(mutable))
        other = int(self.rng.integers(self.counts[step] - 1))
        child[step] = other if other < child[step] else other + 1
        return child

    def observe(self, actions, logp, reward: float) -> bool:
        """Adds the child to the population; the oldest member leaves once it is full. Returns
        True (the state changed, so the search saves it)."""
        self.population.append((list(map(int, actions)), float(reward)))
        if len(self.population) > self.config.population:
            self.population.popleft()
        self.observed += 1
        return True

    def state(self) -> dict:
        """The generator, the counts and the population, as the journal stores a strategy."""
        return {"meta": np.asarray(json.dumps({"rng": self.rng.bit_generator.state, "proposed": self.proposed,
                                               "observed": self.observed,
                                               "population": [list(p) for p in self.population]}))}

    def restore(self, arrays) -> None:
        """Restores :meth:`state` output."""
        meta = json.loads(str(arrays["meta"]))
        self.rng.bit_generator.state = meta["rng"]
        self.proposed, self.observed = meta["proposed"], meta["observed"]
        self.population = collections.deque((list(a), float(r)) for a, r in meta["population"])
