"""Cell genotypes: the plain-data description of a NASNet-space architecture.

A :class:`Genotype` holds two cells, ``normal`` and ``reduction``. A cell is a tuple of
:class:`Block` values plus an explicit ``concat`` list. Hidden states are numbered as in TF-slim's
``nasnet_utils.py``:

* ``0`` is ``h_i``, the previous cell's output (after the cell's own ReLU-1x1 conv-BN),
* ``1`` is ``h_{i-1}``, the output of the cell before that (adjusted to the cell's shape),
* ``2, 3, ...`` are the outputs of the cell's blocks, in order.

Every block applies one op to each of its two inputs and combines the results (``add`` or
``concat``). The order of the two (input, op) pairs is significant: it fixes the operand order of the
combine, and so the order of the weights in the built model.

The ``concat`` list is stored explicitly rather than derived from the graph, because the reference
NASNet-A cells concatenate hand-chosen states (the normal cell includes ``h_{i-1}``, the reduction
cell includes block 2 although block 4 consumes it).
"""

from __future__ import annotations

import dataclasses
import json
import numbers
from typing import Iterable, Sequence

@dataclasses.dataclass(frozen=True)
class OpSpec:
    """What a search-space op computes: a ``family`` of builders and its kernel size.

    ``keras_nasnet.ops`` has one builder per family; the op's name is only a key of :data:`OP_SPECS`,
    never parsed.
    """

    family: str  # identity, conv, conv_1xk_kx1, dil_conv, sep_conv, avg_pool or max_pool
    kernel_size: int = 1


#: The 13 operations of the NASNet search space (Zoph et al. 2018, section 3), name -> spec: the one
#: table of ops, which genotypes validate against and ``keras_nasnet.ops.apply_op`` builds from.
OP_SPECS: dict[str, OpSpec] = {
    "identity": OpSpec("identity"),
    "conv_1x3_3x1": OpSpec("conv_1xk_kx1", 3),
    "conv_1x7_7x1": OpSpec("conv_1xk_kx1", 7),
    "dil_conv_3x3": OpSpec("dil_conv", 3),
    "avg_pool_3x3": OpSpec("avg_pool", 3),
    "max_pool_3x3": OpSpec("max_pool", 3),
    "max_pool_5x5": OpSpec("max_pool", 5),
    "max_pool_7x7": OpSpec("max_pool", 7),
    "conv_1x1": OpSpec("conv", 1),
    "conv_3x3": OpSpec("conv", 3),
    "sep_conv_3x3": OpSpec("sep_conv", 3),
    "sep_conv_5x5": OpSpec("sep_conv", 5),
    "sep_conv_7x7": OpSpec("sep_conv", 7),
}

#: The op names, in the paper's order (the keys of :data:`OP_SPECS`).
OPS: tuple[str, ...] = tuple(OP_SPECS)

#: How a block merges its two op outputs.
COMBINES: tuple[str, ...] = ("add", "concat")

#: Number of cell inputs (h_i and h_{i-1}); block outputs are numbered after them.
NUM_INPUTS = 2


class GenotypeError(ValueError):
    """A genotype that does not describe a buildable cell."""


_BLOCKS_EXAMPLE = '[{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"], "combine": "add"}]'


def _sequence(value, field: str, example: str) -> tuple:
    """``value`` as a tuple, refusing what ``tuple()`` would accept wrongly (a string, a number)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise GenotypeError(
            f'"{field}" must be a list (e.g. {example}); got {value!r:.100} '
            f"({type(value).__name__})."
        )
    return tuple(value)


@dataclasses.dataclass(frozen=True)
class Block:
    """One block of a cell: two (hidden-state index, op) pairs and a combine.

    Args:
        inputs: the two hidden-state indices, left then right.
        ops: the two op names from :data:`OPS`, left then right.
        combine: ``"add"`` (element-wise sum) or ``"concat"`` (channel concatenation).
    """

    inputs: tuple[int, int]
    ops: tuple[str, str]
    combine: str = "add"

    def __post_init__(self):
        object.__setattr__(self, "inputs", _sequence(self.inputs, "inputs", "[0, 1]"))
        object.__setattr__(self, "ops", _sequence(self.ops, "ops", '["sep_conv_3x3", "identity"]'))
        if len(self.inputs) != 2 or len(self.ops) != 2:
            raise GenotypeError(
                f"A block has exactly two inputs and two ops; got inputs={list(self.inputs)} "
                f"and ops={list(self.ops)}."
            )
        for i in self.inputs:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or i < 0:
                raise GenotypeError(
                    f"Block input indices are non-negative integers; got {i!r} in {list(self.inputs)}."
                )
        # NumPy integers (a genotype generated with NumPy) become Python ints: equal genotypes then
        # compare, hash and serialize alike.
        object.__setattr__(self, "inputs", tuple(int(i) for i in self.inputs))
        for op in self.ops:
            if not isinstance(op, str) or op not in OP_SPECS:
                raise GenotypeError(
                    f"Unknown op {op!r}. Valid ops are: {', '.join(OPS)}."
                )
        if not isinstance(self.combine, str) or self.combine not in COMBINES:
            raise GenotypeError(
                f"Unknown combine {self.combine!r}; use one of {', '.join(COMBINES)}."
            )


@dataclasses.dataclass(frozen=True)
class Cell:
    """A cell: blocks computed in order, and the hidden states concatenated as its output.

    Args:
        blocks: the blocks; block ``k`` (0-based) may read states ``0 .. k+1``.
        concat: hidden-state indices concatenated (in this order) into the cell output.
    """

    blocks: tuple[Block, ...]
    concat: tuple[int, ...]

    def __post_init__(self):
        blocks = _sequence(self.blocks, "blocks", _BLOCKS_EXAMPLE)
        for k, b in enumerate(blocks):
            if not isinstance(b, (Block, dict)):
                raise GenotypeError(f"Block {k + 1} must be a Block or a mapping; got {b!r:.100}.")
        for k, b in enumerate(blocks):
            if isinstance(b, dict) and set(b) - {"inputs", "ops", "combine"}:
                raise GenotypeError(
                    f'Block {k + 1} has unknown key(s) {sorted(set(b) - {"inputs", "ops", "combine"}, key=str)}: '
                    'a block has "inputs", "ops" and optionally "combine".'
                )
        blocks = tuple(b if isinstance(b, Block) else Block(**b) for b in blocks)
        object.__setattr__(self, "blocks", blocks)
        object.__setattr__(self, "concat", _sequence(self.concat, "concat", "[2, 3]"))
        if not blocks:
            raise GenotypeError("A cell needs at least one block.")
        for k, block in enumerate(blocks):
            available = NUM_INPUTS + k
            for i in block.inputs:
                if i >= available:
                    raise GenotypeError(
                        f"Block {k + 1} reads hidden state {i}, which is not computed yet: block "
                        f"{k + 1} may read states 0..{available - 1} (0 = h_i, 1 = h_(i-1), "
                        f"2.. = earlier blocks)."
                    )
        num_states = NUM_INPUTS + len(blocks)
        if not self.concat:
            raise GenotypeError("The concat list is empty: name at least one hidden state to output.")
        for i in self.concat:
            if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < num_states:
                raise GenotypeError(
                    f"Concat index {i!r} is out of range: this cell has states 0..{num_states - 1}."
                )
        object.__setattr__(self, "concat", tuple(int(i) for i in self.concat))
        if len(set(self.concat)) != len(self.concat):
            raise GenotypeError(f"The concat list repeats a state: {list(self.concat)}.")
        # A block that reaches the output neither through concat nor through a later block would
        # be built into nothing (Keras drops layers the outputs do not need), so its ops would
        # silently be missing from the model.
        reached, stack = set(self.concat), list(self.concat)
        while stack:
            i = stack.pop()
            if i >= NUM_INPUTS:
                for j in blocks[i - NUM_INPUTS].inputs:
                    if j not in reached:
                        reached.add(j)
                        stack.append(j)
        unused = [i for i in range(NUM_INPUTS, num_states) if i not in reached]
        if unused:
            raise GenotypeError(
                f"Hidden state(s) {unused} (block(s) {[i - 1 for i in unused]}) feed neither the "
                f"concat list {list(self.concat)} nor a block that does: the model would leave them "
                "out. Add them to concat (TF-slim concatenates every block output that no block "
                "reads) or remove those blocks."
            )

    @property
    def num_states(self) -> int:
        """Number of hidden states: the two inputs plus one per block."""
        return NUM_INPUTS + len(self.blocks)

    @property
    def width(self) -> int:
        """Output channels of the cell in units of its filter count F: one per concatenated state,
        two for a block whose combine is ``concat`` (it concatenates two F-wide op outputs)."""
        return sum(2 if i >= NUM_INPUTS and self.blocks[i - NUM_INPUTS].combine == "concat" else 1
                   for i in self.concat)

    def to_dict(self) -> dict:
        """Returns the JSON-ready form ``{"blocks": [...], "concat": [...]}``."""
        return {
            "blocks": [
                {"inputs": list(b.inputs), "ops": list(b.ops), "combine": b.combine}
                for b in self.blocks
            ],
            "concat": list(self.concat),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "Cell":
        """Builds a cell from :meth:`to_dict` output, with clear errors for malformed input (a
        :class:`Cell` is returned as it is)."""
        if isinstance(data, Cell):
            return data
        if not isinstance(data, dict) or set(data) != {"blocks", "concat"}:
            what = ""
            if isinstance(data, dict):
                missing = sorted({"blocks", "concat"} - set(data))
                extra = sorted(set(data) - {"blocks", "concat"}, key=str)
                what = " (" + "; ".join(
                    ([f"missing {', '.join(map(repr, missing))}"] if missing else [])
                    + ([f"unknown {', '.join(map(repr, extra))}"] if extra else [])) + ")"
            raise GenotypeError(
                f'A cell is a mapping with exactly the keys "blocks" and "concat"{what}; '
                f"got {data!r:.200}."
            )
        blocks = []
        for k, b in enumerate(_sequence(data["blocks"], "blocks", _BLOCKS_EXAMPLE)):
            if not isinstance(b, dict) or not {"inputs", "ops"} <= set(b) or set(b) - {
                "inputs",
                "ops",
                "combine",
            }:
                raise GenotypeError(
                    f'Block {k + 1} must be a mapping with keys "inputs", "ops" and optionally '
                    f'"combine"; got {b!r:.200}.'
                )
            try:
                blocks.append(Block(b["inputs"], b["ops"], b.get("combine", "add")))
            except GenotypeError as e:
                raise GenotypeError(f"Block {k + 1}: {e}") from None
        return cls(tuple(blocks), data["concat"])

    @classmethod
    def from_slim(
        cls,
        operations: Sequence[str],
        hiddenstate_indices: Sequence[int],
        used_hiddenstates: Sequence[int],
    ) -> "Cell":
        """Converts a TF-slim cell description (``nasnet_utils.py`` form) into a :class:`Cell`.

        TF-slim numbers hidden states as this package does (0 = h_i), always adds, and lists the
        states *not* concatenated in ``used_hiddenstates``.
        """
        names = {
            "none": "identity",
            "separable_3x3_2": "sep_conv_3x3",
            "separable_5x5_2": "sep_conv_5x5",
            "separable_7x7_2": "sep_conv_7x7",
            "1x7_7x1": "conv_1x7_7x1",
            "1x3_3x1": "conv_1x3_3x1",
            "1x1": "conv_1x1",
            "3x3": "conv_3x3",
        }
        ops = [names.get(o, o) for o in operations]
        blocks = tuple(
            Block((hiddenstate_indices[2 * k], hiddenstate_indices[2 * k + 1]), (ops[2 * k], ops[2 * k + 1]))
            for k in range(len(ops) // 2)
        )
        concat = tuple(i for i, used in enumerate(used_hiddenstates) if not used)
        return cls(blocks, concat)

    def describe(self) -> list[str]:
        """One readable line per block, e.g. ``2 = sep_conv_5x5(0) + sep_conv_3x3(1)``."""
        lines = []
        for k, b in enumerate(self.blocks):
            sym = "+" if b.combine == "add" else "++"
            lines.append(
                f"{NUM_INPUTS + k} = {b.ops[0]}({b.inputs[0]}) {sym} {b.ops[1]}({b.inputs[1]})"
            )
        lines.append("out = concat(" + ", ".join(map(str, self.concat)) + ")")
        return lines


@dataclasses.dataclass(frozen=True)
class Genotype:
    """An architecture of the NASNet search space: a normal and a reduction cell.

    A genotype is an immutable, hashable value; ``Genotype.from_json(g.to_json()) == g``.
    In a reduction cell every op applied to a cell input (state 0 or 1) has stride 2, so a reduction
    cell may not output its inputs directly (their spatial size is twice the cell's output size).
    """

    normal: Cell
    reduction: Cell

    def __post_init__(self):
        for field in ("normal", "reduction"):
            value = getattr(self, field)
            if isinstance(value, dict):
                value = Cell.from_dict(value)
                object.__setattr__(self, field, value)
            if not isinstance(value, Cell):
                raise GenotypeError(f"Genotype.{field} must be a Cell; got {type(value).__name__}.")
        bad = [i for i in self.reduction.concat if i < NUM_INPUTS]
        if bad:
            raise GenotypeError(
                f"The reduction cell concatenates cell input(s) {bad}, which have twice the spatial "
                "size of the cell output; a reduction cell may only concatenate block outputs (2..)."
            )

    def to_dict(self) -> dict:
        """Returns ``{"normal": cell_dict, "reduction": cell_dict}``."""
        return {"normal": self.normal.to_dict(), "reduction": self.reduction.to_dict()}

    def to_json(self, indent: int | None = None) -> str:
        """Serializes the genotype to its JSON form (see the module docstring)."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict) -> "Genotype":
        """Builds a genotype from :meth:`to_dict` output."""
        if not isinstance(data, dict) or set(data) != {"normal", "reduction"}:
            got = (f"a mapping with the keys {sorted(map(str, data))}" if isinstance(data, dict)
                   else f"{data!r:.200}")
            # A record that holds a genotype (final.json's final_cell, a summary) is the usual slip.
            inner = [k for k, v in data.items() if isinstance(v, dict) and {"normal", "reduction"} <= set(v)] \
                if isinstance(data, dict) else []
            hint = f' Its "{inner[0]}" entry is a genotype: pass that.' if inner else ""
            raise GenotypeError(
                f'A genotype is a mapping with exactly the keys "normal" and "reduction"; got {got}.{hint}'
            )
        cells = []
        for field in ("normal", "reduction"):
            try:
                cells.append(Cell.from_dict(data[field]))
            except GenotypeError as e:
                raise GenotypeError(f"The {field} cell: {e}") from None
        return cls(*cells)

    @classmethod
    def from_json(cls, text: str) -> "Genotype":
        """Parses the JSON form written by :meth:`to_json`."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise GenotypeError(f"Genotype JSON does not parse: {e}.") from None
        return cls.from_dict(data)

    def __str__(self) -> str:
        out = ["normal:"] + ["  " + s for s in self.normal.describe()]
        out += ["reduction:"] + ["  " + s for s in self.reduction.describe()]
        return "\n".join(out)


def genotype_from(value) -> Genotype:
    """Accepts a :class:`Genotype`, a registered name, a dict, a JSON string or a path (a string or a
    :class:`pathlib.Path`) to a JSON file."""
    import os

    if isinstance(value, Genotype):
        return value
    if isinstance(value, dict):
        return Genotype.from_dict(value)
    def from_file(path):
        with open(path) as f:
            text = f.read()
        try:
            return Genotype.from_json(text)
        except GenotypeError as e:  # a cut or edited file: say which one
            raise GenotypeError(f"{path}: {e}") from None

    if isinstance(value, os.PathLike):  # a pathlib.Path: always a file, never a name
        path = os.fspath(value)
        if not os.path.isfile(path):
            raise GenotypeError(f"{path!r}: no such genotype JSON file.")
        return from_file(path)
    if isinstance(value, str):
        if value.upper() in GENOTYPES:
            return GENOTYPES[value.upper()]
        if value.lstrip().startswith("{"):
            return Genotype.from_json(value)
        if os.path.isfile(value):
            return from_file(value)
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        if not isinstance(parsed, str):  # JSON, but not a genotype's object ("[1, 2]", "null")
            raise GenotypeError(f"{value!r} is JSON but not a genotype: a genotype is a JSON object "
                                '{"normal": {...}, "reduction": {...}}, as best_genotype.json holds, '
                                f"or a name ({', '.join(GENOTYPES)}).")
        raise GenotypeError(
            f"{value!r} is neither a known genotype ({', '.join(GENOTYPES)}), a JSON string nor an "
            "existing JSON file."
        )
    raise GenotypeError(f"Cannot make a Genotype from a {type(value).__name__}.")


def _cell(blocks: Iterable[tuple], concat: Sequence[int]) -> Cell:
    return Cell(tuple(Block((a, b), (oa, ob)) for (a, oa), (b, ob) in blocks), tuple(concat))


#: NASNet-A, exactly the cells of ``keras.applications`` NASNet and TF-slim ``nasnet_utils.py``
#: (``NasNetANormalCell`` / ``NasNetAReductionCell``), concat lists included.
NASNET_A = Genotype(
    normal=_cell(
        [
            ((0, "sep_conv_5x5"), (1, "sep_conv_3x3")),
            ((1, "sep_conv_5x5"), (1, "sep_conv_3x3")),
            ((0, "avg_pool_3x3"), (1, "identity")),
            ((1, "avg_pool_3x3"), (1, "avg_pool_3x3")),
            ((0, "sep_conv_3x3"), (0, "identity")),
        ],
        [1, 2, 3, 4, 5, 6],
    ),
    reduction=_cell(
        [
            ((0, "sep_conv_5x5"), (1, "sep_conv_7x7")),
            ((0, "max_pool_3x3"), (1, "sep_conv_7x7")),
            ((0, "avg_pool_3x3"), (1, "sep_conv_5x5")),
            ((3, "identity"), (2, "avg_pool_3x3")),
            ((2, "sep_conv_3x3"), (0, "max_pool_3x3")),
        ],
        [3, 4, 5, 6],
    ),
)

#: AmoebaNet-A (Real et al. 2019), from the reference implementation
#: ``tensorflow/tpu models/experimental/amoeba_net/model_specs.py`` (cells ``amoeba_net_a``), which
#: uses TF-slim's state numbering. The TPU code wraps ``1x7_7x1`` in a bottleneck; here it is the
#: plain NASNet-space op.
AMOEBANET_A = Genotype(
    normal=Cell.from_slim(
        ["avg_pool_3x3", "max_pool_3x3", "separable_3x3_2", "none", "none", "avg_pool_3x3",
         "separable_3x3_2", "separable_5x5_2", "avg_pool_3x3", "separable_3x3_2"],
        [0, 0, 1, 1, 0, 1, 0, 2, 5, 0],
        [1, 0, 1, 0, 0, 1, 0],
    ),
    reduction=Cell.from_slim(
        ["separable_3x3_2", "avg_pool_3x3", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3",
         "max_pool_3x3", "separable_3x3_2", "1x7_7x1", "avg_pool_3x3", "separable_7x7_2"],
        [1, 0, 0, 2, 1, 0, 4, 0, 1, 0],
        [1, 1, 0, 0, 0, 0, 0],
    ),
)

#: PNASNet-5 (Liu et al. 2018), from TF-slim ``nets/nasnet/pnasnet.py`` (``PNasNetNormalCell``). PNASNet
#: uses the same cell at reduction positions (with stride 2), so both cells are equal.
_PNAS_CELL = Cell.from_slim(
    ["separable_5x5_2", "max_pool_3x3", "separable_7x7_2", "max_pool_3x3", "separable_5x5_2",
     "separable_3x3_2", "separable_3x3_2", "max_pool_3x3", "separable_3x3_2", "none"],
    [1, 1, 0, 0, 0, 0, 4, 0, 1, 0],
    [1, 1, 0, 0, 0, 0, 0],
)
PNASNET_5 = Genotype(normal=_PNAS_CELL, reduction=_PNAS_CELL)

#: The final cell of this project's evolution search (``search/evolve/`` in the source repository,
#: trial 252: regularized evolution rewarded by 1 epoch on 15,000 CIFAR-10 images, then screened
#: and retrained stand-alone). At that study's final budget (1 epoch on 45,000 images, both cells
#: at NASNet-A's 73,218 parameters) its CIFAR-10 test accuracy minus NASNet-A's is +0.0069
#: [-0.0041, +0.0180] over 6 seeds and +0.0037 [-0.0055, +0.0129] over 9: as good as NASNet-A
#: there, not shown better, and not measured at a full training. Give it a width for its own
#: parameter count (``docs/models.md``, choosing ``penultimate_filters`` for a searched cell).
KNAS_EVOLVE_A = Genotype(
    normal=_cell(
        [
            ((1, "identity"), (0, "max_pool_3x3")),
            ((1, "conv_1x3_3x1"), (0, "conv_3x3")),
            ((3, "avg_pool_3x3"), (0, "sep_conv_7x7")),
            ((1, "conv_1x7_7x1"), (0, "max_pool_7x7")),
            ((1, "sep_conv_7x7"), (4, "avg_pool_3x3")),
        ],
        [2, 5, 6],
    ),
    reduction=_cell(
        [
            ((1, "max_pool_5x5"), (1, "max_pool_3x3")),
            ((0, "identity"), (0, "identity")),
            ((2, "avg_pool_3x3"), (2, "max_pool_3x3")),
            ((4, "avg_pool_3x3"), (2, "sep_conv_5x5")),
            ((4, "dil_conv_3x3"), (0, "max_pool_5x5")),
        ],
        [3, 5, 6],
    ),
)

#: The final cell of this project's warm-started evolution (``search/evolve-warm/`` in the source
#: repository, trial 297: regularized evolution from the 50 widest of 1,000 random cells at equal
#: parameters, ``--warm-start 1000``, rewarded by 1 epoch on 15,000 CIFAR-10 images, then screened
#: and retrained stand-alone). At that study's final budget (1 epoch on 45,000 images, both cells
#: at NASNet-A's 73,218 parameters) its CIFAR-10 test accuracy minus NASNet-A's is +0.0125
#: [+0.0005, +0.0245] over 6 seeds and +0.0107 [+0.0012, +0.0202] over 9: above NASNet-A there,
#: though not by much, and not measured at a full training. Give it a width for its own parameter
#: count (``docs/models.md``, choosing ``penultimate_filters`` for a searched cell).
KNAS_EVOLVE_B = Genotype(
    normal=_cell(
        [
            ((1, "sep_conv_3x3"), (1, "max_pool_3x3")),
            ((0, "max_pool_3x3"), (2, "sep_conv_3x3")),
            ((3, "sep_conv_3x3"), (2, "avg_pool_3x3")),
            ((1, "sep_conv_5x5"), (0, "avg_pool_3x3")),
            ((3, "identity"), (1, "sep_conv_3x3")),
        ],
        [4, 5, 6],
    ),
    reduction=_cell(
        [
            ((0, "identity"), (1, "max_pool_5x5")),
            ((2, "avg_pool_3x3"), (0, "sep_conv_7x7")),
            ((3, "identity"), (1, "conv_1x3_3x1")),
            ((1, "max_pool_5x5"), (1, "sep_conv_5x5")),
            ((4, "avg_pool_3x3"), (1, "max_pool_3x3")),
        ],
        [5, 6],
    ),
)

#: Genotypes known by name (``keras_nasnet.NASNet(genotype="AMOEBANET_A")``).
GENOTYPES: dict[str, Genotype] = {
    "NASNET_A": NASNET_A,
    "AMOEBANET_A": AMOEBANET_A,
    "PNASNET_5": PNASNET_5,
    "KNAS_EVOLVE_A": KNAS_EVOLVE_A,
    "KNAS_EVOLVE_B": KNAS_EVOLVE_B,
}
