"""The NASNet search space as a sequence of discrete decisions.

Each cell has ``num_blocks`` blocks of five decisions: the two hidden-state inputs, the two ops and
the combine (paper, section 3). The normal cell's decisions come first, then the reduction cell's:
``2 x 5B`` decisions in all. Choices are padded to one width per decision type and invalid ones
(an input that is not computed yet) are masked, so a sampler never proposes an invalid cell.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..genotypes import COMBINES, NUM_INPUTS, OPS, Block, Cell, Genotype

#: Decision types, in the order of the five decisions of a block.
BLOCK_DECISIONS = ("input", "input", "op", "op", "combine")
TYPES = ("input", "op", "combine")


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The decision sequence of a NASNet-space search.

    Args:
        num_blocks: B, blocks per cell (the paper uses 5).
        ops: the op names to choose from (a subset of :data:`keras_nasnet.genotypes.OPS`).
        combines: the combine methods to choose from (``add`` and/or ``concat``).
    """

    num_blocks: int = 5
    ops: tuple[str, ...] = OPS
    combines: tuple[str, ...] = COMBINES

    def __post_init__(self):
        if isinstance(self.ops, str) or isinstance(self.combines, str):
            raise ValueError("ops and combines are sequences of names, e.g. ops=('identity',), not "
                             "a single string.")
        for name in ("ops", "combines"):
            try:
                object.__setattr__(self, name, tuple(getattr(self, name)))
            except TypeError:
                raise ValueError(f"{name} is a sequence of names, e.g. ('identity', 'avg_pool_3x3'); "
                                 f"got {getattr(self, name)!r}.") from None
        # A float or a string would fail later, far from its cause (a comparison, a range()).
        if isinstance(self.num_blocks, bool) or not isinstance(self.num_blocks, (int, np.integer)) \
                or self.num_blocks < 1:
            raise ValueError(f"num_blocks must be an integer of at least 1; got {self.num_blocks!r}.")
        object.__setattr__(self, "num_blocks", int(self.num_blocks))
        unknown = [o for o in self.ops if o not in OPS]
        if unknown or not self.ops:
            raise ValueError(f"Unknown or no ops {unknown}; choose from {', '.join(OPS)}.")
        if not self.combines or any(c not in COMBINES for c in self.combines):
            raise ValueError(f"combines must be a non-empty subset of {COMBINES}; got {self.combines}.")
        # A repeated choice is drawn more often (identity twice in three ops: 2/3 of the draws)
        # and gets two indices for one op: never what a search space means.
        for name, values in (("ops", self.ops), ("combines", self.combines)):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"{name} repeat {', '.join(repeated)}: name each choice once.")

    @property
    def num_decisions(self) -> int:
        """Length of an action sequence: 2 cells x 5 decisions x B blocks."""
        return 2 * 5 * self.num_blocks

    def width(self, kind: str) -> int:
        """Padded number of choices of a decision type."""
        return {"input": NUM_INPUTS + self.num_blocks - 1, "op": len(self.ops),
                "combine": len(self.combines)}[kind]

    def decision_types(self) -> list[str]:
        """The type of every decision, in order."""
        return list(BLOCK_DECISIONS) * (2 * self.num_blocks)

    def masks(self) -> np.ndarray:
        """Boolean ``[num_decisions, max_width]`` array: which choices are valid at each step."""
        width = max(self.width(t) for t in TYPES)
        m = np.zeros((self.num_decisions, width), bool)
        for step, kind in enumerate(self.decision_types()):
            if kind == "input":
                block = (step // 5) % self.num_blocks
                m[step, : NUM_INPUTS + block] = True
            else:
                m[step, : self.width(kind)] = True
        return m

    def num_choices(self) -> np.ndarray:
        """Number of valid choices at each step."""
        return self.masks().sum(1)

    def decode(self, actions) -> Genotype:
        """Turns an action sequence into a :class:`Genotype`.

        The cell output follows the paper: every block output that no block reads is concatenated.
        """
        actions = [int(a) for a in actions]
        if len(actions) != self.num_decisions:
            raise ValueError(f"Expected {self.num_decisions} actions, got {len(actions)}.")
        valid = self.masks()
        for step, a in enumerate(actions):
            if not 0 <= a < valid.shape[1] or not valid[step, a]:
                raise ValueError(f"Action {a} at step {step} is not a valid choice.")
        cells = []
        for c in range(2):
            blocks = []
            for b in range(self.num_blocks):
                i1, i2, o1, o2, comb = actions[(c * self.num_blocks + b) * 5:][:5]
                blocks.append(Block((i1, i2), (self.ops[o1], self.ops[o2]), self.combines[comb]))
            used = {i for blk in blocks for i in blk.inputs}
            concat = tuple(i for i in range(NUM_INPUTS, NUM_INPUTS + self.num_blocks) if i not in used)
            cells.append(Cell(tuple(blocks), concat))
        return Genotype(*cells)

    def encode(self, genotype: Genotype) -> list[int]:
        """The action sequence of a genotype's blocks (its ``concat`` lists are not decisions)."""
        actions = []
        for cell in (genotype.normal, genotype.reduction):
            if len(cell.blocks) != self.num_blocks:
                raise ValueError(f"The genotype has {len(cell.blocks)} blocks per cell; this space has "
                                 f"{self.num_blocks}.")
            for blk in cell.blocks:
                missing = [o for o in blk.ops if o not in self.ops]
                if missing or blk.combine not in self.combines:
                    raise ValueError(f"Block {blk} uses choices outside this space.")
                actions += [blk.inputs[0], blk.inputs[1], self.ops.index(blk.ops[0]),
                            self.ops.index(blk.ops[1]), self.combines.index(blk.combine)]
        return actions

    def sample_uniform(self, rng: np.random.Generator, n: int = 1) -> np.ndarray:
        """``n`` action sequences drawn uniformly among valid choices (the paper's random search)."""
        counts = self.num_choices()
        return (rng.random((n, self.num_decisions)) * counts).astype(np.int64)

    def to_dict(self) -> dict:
        """JSON-ready description (stored in a search's configuration)."""
        return {"num_blocks": self.num_blocks, "ops": list(self.ops), "combines": list(self.combines)}
