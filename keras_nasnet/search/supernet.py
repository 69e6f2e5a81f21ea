"""A weight-sharing supernet over the NASNet search space (ENAS-style parameter sharing).

The supernet has the CIFAR skeleton of :func:`keras_nasnet.NASNetCIFAR` (a 3x3 stem, N normal
cells, a reduction, N normal cells, a reduction, N normal cells, a softmax classifier). In every
cell position, every block side (left/right) holds one set of weights per candidate op (and per
stride: in a reduction cell an op reading a cell input has stride 2, one reading a block output
stride 1). A child architecture is a path through it: its 2 x 5B decisions choose, at each side,
which state to read and which op to apply. All children that choose the same op at the same side of
the same block share its weights.

Decisions that change widths, and how this mode handles them:

* The ``concat`` combine doubles a block's width: this mode searches ``add``-only cells (as ENAS
  does, and as NASNet-A and AmoebaNet-A are); a space with ``concat`` is refused.
* A cell outputs the concatenation of its unused blocks, so its width is ``k * F`` for a ``k``
  that depends on the child. The supernet always concatenates all ``B`` blocks, each multiplied by
  0 or 1 (used or unused), and every 1x1 convolution and the classifier that read a cell output
  have weights for all ``B * F`` channels (the classifier reads their mean over the ``k`` unused
  blocks, which the child's Dense kernel absorbs as a factor ``1/k``). For a child this computes
  exactly what the child's narrower layer computes with the rows of its unused blocks (the zero
  channels add nothing), which is how :func:`inherit_weights` copies them. Where the stand-alone
  child has no projection (``h_{i-1}`` already as wide as the cell), a run-time branch skips it
  here too.

A new child costs no new graph: each part of the network (the stem, a cell's input processing, one
op at one block side, the classifier) is a ``tf.function`` traced once, the first time any child
uses it; a child's decisions only choose, in Python, which compiled parts run (see
``search/shared/README.md`` for the measured options).
"""

from __future__ import annotations

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .. import ops
from ..cells import part_name
from ..genotypes import NUM_INPUTS
from .space import SearchSpace


@dataclasses.dataclass(frozen=True)
class _CellPlan:
    kind: str  # "normal" or "reduction"
    block_id: str  # layer-name suffix, as NASNet names the cell
    filters: int
    level: int  # stride-2 reductions before this cell's input
    ip: int  # source of h_i: -1 = stem, else an earlier cell's position
    p: int  # source of h_(i-1), same numbering
    p_level: int


def plan_cells(num_cells: int, filters: int) -> list[_CellPlan]:
    """The cells of the CIFAR skeleton in order, wired as :func:`keras_nasnet.models.NASNet` wires
    them (derived by :func:`keras_nasnet.models.cell_plan`, the one derivation)."""
    from ..models import cell_plan

    return [_CellPlan(c.kind, c.block_id, c.filters, c.level, c.ip, c.p, c.p_level)
            for c in cell_plan("cifar", num_cells, filters, 2, False)]


def _branch(op, filters, stride, size, cfg, name):
    """A small functional model that applies ``op`` as the stand-alone child's cell does."""
    x = keras.Input((size, size, filters))
    y = ops.apply_op(op, x, filters, stride, cfg, name,
                     padded=lambda k: ops.stride_pad(x, k, name=f"{name}_pad_{k}"))
    return keras.Model(x, y, name=f"{name}_{op}_s{stride}")


class Supernet:
    """The shared weights of every child of ``space`` in a NASNet CIFAR skeleton.

    Args:
        space: an ``add``-only :class:`SearchSpace`.
        num_cells: N, normal cells per stack.
        filters: F, the first stack's cell width (the children's ``penultimate_filters`` is then
            ``4 * F * (number of unused normal-cell blocks)``).
        classes: classifier outputs.
        bn_momentum: BatchNormalization momentum (NASNetCIFAR's default).
        bn_epsilon: BatchNormalization epsilon (NASNetCIFAR's default).
        image_size: the (square) input size; the branches are built for static sizes.
        compile_after: calls of a part in eager mode before it is compiled with ``tf.function``.
    """

    def __init__(self, space: SearchSpace, num_cells: int = 1, filters: int = 8, classes: int = 10,
                 bn_momentum: float = 0.9, bn_epsilon: float = 1e-5, image_size: int = 32,
                 compile_after: int = 20):
        if "concat" in space.combines:
            raise ValueError("The shared-weights supernet searches add-only cells (a concat combine "
                             "changes a block's width); use a space with combines=('add',).")
        if filters < 2 or filters % 2:
            raise ValueError(f"filters must be an even number >= 2 (factorized reductions split "
                             f"it in halves); got {filters}.")
        if image_size % 4:
            raise ValueError(f"image_size must be a multiple of 4 (two reductions); got {image_size}.")
        self.space, self.num_cells, self.filters, self.classes = space, num_cells, filters, classes
        self.image_size = image_size
        self.cfg = ops.BNConfig(bn_momentum, bn_epsilon)
        B = space.num_blocks
        F = filters
        self.plans = plan_cells(num_cells, F)
        self.layers = {}
        L = self.layers
        L["rescaling"] = layers.Rescaling(
            scale=[1.0 / s for s in _CIFAR_STD], offset=[-m / s for m, s in zip(_CIFAR_MEAN, _CIFAR_STD)])
        L["stem_conv1"] = layers.Conv2D(3 * F, 3, padding="same", use_bias=False, kernel_initializer="he_normal")
        L["stem_bn1"] = self._bn()
        self.branches = {}  # (cell, block, side, stride) -> [one model per op]
        for c, plan in enumerate(self.plans):
            f, bid, kind = plan.filters, plan.block_id, plan.kind
            size = image_size >> plan.level
            L[f"{kind}_conv_1_{bid}"] = self._conv(f)
            L[f"{kind}_bn_1_{bid}"] = self._bn()
            adjust = self._adjust_kind(plan)
            if adjust == "reduce":
                L[f"adjust_conv_1_{bid}"] = self._conv(f // 2)
                L[f"adjust_conv_2_{bid}"] = self._conv(f // 2)
            elif adjust != "fixed-none":
                L[f"adjust_conv_projection_{bid}"] = self._conv(f)
            if adjust != "fixed-none":
                L[f"adjust_bn_{bid}"] = self._bn()
            for b in range(B):
                for s, side in enumerate(("left", "right")):
                    name = f"{kind}_{side}{b + 1}_{bid}"
                    strides = [2] if kind == "reduction" and b == 0 else [1]
                    if kind == "reduction" and b > 0:
                        strides = [2, 1]
                    for stride in strides:
                        sz = size if stride == 2 or kind == "normal" else size // 2
                        self.branches[(c, b, s, stride)] = [
                            _branch(op, f, stride, sz, self.cfg, name) for op in space.ops]
        L["predictions"] = layers.Dense(classes, activation="softmax")
        self._compiled = {}
        self.compile_after = compile_after
        self._build()

    def _width(self, src: int) -> int:
        """Channels of the state a cell reads: the stem's, or an earlier cell's full masked concat."""
        return 3 * self.filters if src < 0 else self.plans[src].filters * self.space.num_blocks

    def _build(self):
        # Every variable exists from the start (checkpoints and optimizers need all of them, and a
        # branch that the first child skips must not be created later inside a traced function).
        L, S = self.layers, self.image_size
        L["stem_conv1"].build((None, S, S, 3))
        L["stem_bn1"].build((None, S, S, 3 * self.filters))
        for plan in self.plans:
            bid, f, kind = plan.block_id, plan.filters, plan.kind
            L[f"{kind}_conv_1_{bid}"].build((None, None, None, self._width(plan.ip)))
            L[f"{kind}_bn_1_{bid}"].build((None, None, None, f))
            for name in (f"adjust_conv_1_{bid}", f"adjust_conv_2_{bid}", f"adjust_conv_projection_{bid}"):
                if L.get(name) is not None:
                    L[name].build((None, None, None, self._width(plan.p)))
            if f"adjust_bn_{bid}" in L:
                L[f"adjust_bn_{bid}"].build((None, None, None, f))
        L["predictions"].build((None, self._width(len(self.plans) - 1)))

    def _conv(self, f):
        return layers.Conv2D(f, 1, padding="same", use_bias=False, kernel_initializer="he_normal")

    def _bn(self):
        return ops.FusedBatchNormalization(momentum=self.cfg.momentum, epsilon=self.cfg.epsilon)

    def _adjust_kind(self, plan: _CellPlan) -> str:
        """How NASNet's ``adjust_block`` treats this cell's ``h_(i-1)``."""
        if plan.p_level != plan.level:
            return "reduce"
        if plan.p < 0:
            return "fixed-none" if 3 * self.filters == plan.filters else "project"
        per_block = self.plans[plan.p].filters
        if plan.filters % per_block == 0 and plan.filters // per_block <= self.space.num_blocks:
            return "project-unless-width-matches"
        return "project"

    @property
    def variables(self) -> list:
        """Every variable, in a fixed order (checkpoints rely on it)."""
        out = []
        for key in sorted(self.layers):
            out += self.layers[key].weights
        for key in sorted(self.branches):
            for m in self.branches[key]:
                out += m.weights
        return out

    @property
    def trainable_variables(self) -> list:
        """The variables a training step updates."""
        return [v for v in self.variables if v.trainable]

    # -- the forward pass --------------------------------------------------------------------
    # Each part (the stem, a cell's input processing, one op at one block side, the classifier) is
    # one tf.function, traced once on first use and reused by every child that takes it; the
    # child's decisions are Python ints that choose which parts run. A graph holding every choice
    # (tf.switch_case) costs minutes to trace at B=5 with 13 ops, and plain eager execution several
    # times the compiled step: see search/shared/README.md for the measurements.
    def part(self, key, training: bool):
        """The function of part ``key`` (see :meth:`parts_of`) in the given BN mode: eager for its
        first ``compile_after`` calls, then compiled (a trace costs about as much as a few dozen
        eager calls, so parts that a short run barely uses are never traced)."""
        return _hot(self._compiled, (key, training), self.compile_after,
                    lambda: _bind_training(self._part_body(key), training))

    def call_counts(self) -> dict:
        """How often each part (and each part's optimizer update) has run, JSON-able; a checkpoint
        stores it so a resumed run compiles each part at the same call (see :func:`_hot`)."""
        return {"parts": _counts(self._compiled)}

    def set_call_counts(self, counts: dict) -> None:
        """Restores :meth:`call_counts` output."""
        _set_counts(self._compiled, counts.get("parts", []))

    def clear_compiled(self) -> None:
        """Forgets every compiled part and call count (cost measurements start from eager parts)."""
        self._compiled.clear()

    def part_variables(self, key) -> list:
        """The trainable variables of part ``key``."""
        return [w for layer in self._part_layers(key) for w in layer.trainable_weights]

    def _part_layers(self, key):
        L = self.layers
        if key == "stem":
            return [L["stem_conv1"], L["stem_bn1"]]
        if key == "head":
            return [L["predictions"]]
        if key[0] == "branch":
            return [self.branches[key[1]][key[2]]]
        plan = self.plans[key[1]]
        bid = plan.block_id
        if key[0] == "h":
            return [L[f"{plan.kind}_conv_1_{bid}"], L[f"{plan.kind}_bn_1_{bid}"]]
        return [L[n] for n in (f"adjust_conv_1_{bid}", f"adjust_conv_2_{bid}",
                               f"adjust_conv_projection_{bid}", f"adjust_bn_{bid}") if n in L]

    def _part_body(self, key):
        L = self.layers
        if key == "stem":
            return lambda x, training: L["stem_bn1"](L["stem_conv1"](L["rescaling"](x)), training=training)
        if key == "head":
            return lambda x, training: L["predictions"](tf.reduce_mean(tf.nn.relu(x), axis=(1, 2)))
        if key[0] == "branch":
            model = self.branches[key[1]][key[2]]
            return lambda x, training: model(x, training=training)
        plan = self.plans[key[1]]
        bid, kind = plan.block_id, plan.kind
        if key[0] == "h":
            return lambda x, training: L[f"{kind}_bn_1_{bid}"](
                L[f"{kind}_conv_1_{bid}"](tf.nn.relu(x)), training=training)
        if self._adjust_kind(plan) == "reduce":
            def reduce(p, training):
                p = tf.nn.relu(p)
                p1 = L[f"adjust_conv_1_{bid}"](p[:, ::2, ::2, :])
                p2 = tf.pad(p, [(0, 0), (0, 1), (0, 1), (0, 0)])[:, 1:, 1:, :]
                p2 = L[f"adjust_conv_2_{bid}"](p2[:, ::2, ::2, :])
                return L[f"adjust_bn_{bid}"](tf.concat([p1, p2], -1), training=training)
            return reduce
        return lambda p, training: L[f"adjust_bn_{bid}"](
            L[f"adjust_conv_projection_{bid}"](tf.nn.relu(p)), training=training)

    def parts_of(self, actions) -> list:
        """The parts that the child ``actions`` runs (their variables are the ones a step on it
        trains)."""
        return self._forward(None, actions, False, dry=True)

    def __call__(self, images, actions, training: bool = False):
        """Class probabilities of the child ``actions`` (the space's decisions: ints, an array or
        an int tensor) on ``images``."""
        return self._forward(images, actions, training)

    def _forward(self, images, actions, training, dry=False):
        B = self.space.num_blocks
        acts = np.asarray(actions).astype(int).reshape(2, B, 5)
        used_parts = []

        def run(key, *xs):
            used_parts.append(key)
            return None if dry else self.part(key, training)(*xs)

        x = run("stem", images)
        outputs = []  # per cell: (masked concat of all blocks, 0/1 list: block unused)
        for c, plan in enumerate(self.plans):
            arc = acts[0 if plan.kind == "normal" else 1]
            ip = x if plan.ip < 0 else outputs[plan.ip][0]
            p = x if plan.p < 0 else outputs[plan.p][0]
            p = self._adjust(c, plan, p, None if plan.p < 0 else outputs[plan.p][1], run, dry)
            states = [run(("h", c), ip), p]
            for b in range(B):
                total = None
                for s in range(2):
                    i, o = int(arc[b, s]), int(arc[b, 2 + s])
                    stride = 2 if plan.kind == "reduction" and i < NUM_INPUTS else 1
                    y = run(("branch", (c, b, s, stride), o), states[i])
                    total = y if dry or total is None else total + y
                states.append(total)
            used = set(int(v) for v in arc[:, :2].ravel())
            mask = [int(NUM_INPUTS + b not in used) for b in range(B)]
            out = None if dry else tf.concat(
                [st if m else tf.zeros_like(st) for st, m in zip(states[NUM_INPUTS:], mask)], axis=-1)
            outputs.append((out, mask))
        # The classifier reads the mean of the unused blocks, not their sum: a sum's logits grow
        # with the number of unused blocks, which changes from child to child, and that made the
        # shared classifier's loss climb above chance (search/shared/README.md). inherit_weights folds the
        # 1/k into the child's Dense kernel, so the child still computes the same function.
        last, mask = outputs[-1]
        probs = run("head", None if dry else last * (1.0 / sum(mask)))
        return used_parts if dry else probs

    def _adjust(self, c, plan, p, mask, run, dry):
        kind = self._adjust_kind(plan)
        if kind == "fixed-none":
            return p
        if kind == "project-unless-width-matches":
            # The child passes h_(i-1) through when it is exactly as wide as the cell (k unused
            # blocks of width F/k): then take those k blocks out of the masked concat, side by side.
            per = self.plans[plan.p].filters
            keep = [b for b, m in enumerate(mask) if m]
            if len(keep) == plan.filters // per:
                return None if dry else tf.concat([p[..., b * per:(b + 1) * per] for b in keep], -1)
        return run(("adjust", c), p)


class PathSGD:
    """SGD with Nesterov momentum, decoupled weight decay and global-norm clipping (the settings of
    ``keras.optimizers.SGD``) that updates only the parts of the supernet that a child ran: a step
    on a child trains that child's weights, as in ENAS, and leaves every other op's weights and
    momentum alone. Each part's update is one compiled function, traced on first use.
    """

    def __init__(self, net: Supernet, momentum: float = 0.9, weight_decay: float = 0.0,
                 clipnorm: float | None = None):
        self.net, self.momentum, self.weight_decay, self.clipnorm = net, momentum, weight_decay, clipnorm
        self._slots = {id(v): tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False)
                       for v in net.trainable_variables}
        self._square, self._update = {}, {}

    @property
    def variables(self) -> list:
        """The momentum of every trainable variable, in the supernet's order (checkpoints)."""
        return [self._slots[id(v)] for v in self.net.trainable_variables]

    def minimize(self, tape, loss, parts, learning_rate: float) -> None:
        """One step on ``loss`` (recorded by ``tape``) for the variables of ``parts``."""
        parts = [k for k in dict.fromkeys(parts) if self.net.part_variables(k)]
        groups = [self.net.part_variables(k) for k in parts]
        grads = tape.gradient(loss, [v for g in groups for v in g])
        grads = [tf.zeros(v.shape, v.dtype) if g is None else g
                 for g, v in zip(grads, [v for g in groups for v in g])]
        split, at = [], 0
        for g in groups:
            split.append(grads[at:at + len(g)])
            at += len(g)
        scale = tf.constant(1.0)
        if self.clipnorm:
            norm = tf.sqrt(tf.add_n([self._fn(self._square, k, self._square_fn)(g)
                                     for k, g in zip(parts, split)]))
            scale = tf.minimum(1.0, self.clipnorm / tf.maximum(norm, 1e-12))
        lr = tf.constant(learning_rate, tf.float32)
        for k, g in zip(parts, split):
            self._fn(self._update, k, self._update_fn)(g, scale, lr)

    def call_counts(self) -> dict:
        """How often each part's gradient norm and update have run (see :meth:`Supernet.call_counts`)."""
        return {"square": _counts(self._square), "update": _counts(self._update)}

    def set_call_counts(self, counts: dict) -> None:
        """Restores :meth:`call_counts` output."""
        _set_counts(self._square, counts.get("square", []))
        _set_counts(self._update, counts.get("update", []))

    def clear_compiled(self) -> None:
        """Forgets every compiled update and call count (see :meth:`Supernet.clear_compiled`)."""
        self._square.clear()
        self._update.clear()

    def _fn(self, cache, key, make):
        return _hot(cache, key, self.net.compile_after, lambda: make(key))

    def _square_fn(self, key):
        return lambda grads: tf.add_n([tf.reduce_sum(tf.square(g)) for g in grads])

    def _update_fn(self, key):
        variables = self.net.part_variables(key)
        slots = [self._slots[id(v)] for v in variables]
        mom, wd = self.momentum, self.weight_decay

        def update(grads, scale, lr):
            for v, m, g in zip(variables, slots, grads):
                g = g * scale
                if wd:
                    v.assign_sub(v * (lr * wd))
                m.assign(m * mom - lr * g)
                v.assign_add(m * mom - lr * g)
        return update


def _bind_training(body, training):
    return lambda *xs: body(*xs, training=training)


def _hot(cache: dict, key, compile_after: int, make):
    """``make()``'s function, run eagerly for its first ``compile_after`` calls and then as one
    ``tf.function`` (kept in ``cache`` with its call count).

    An entry restored from a checkpoint (:func:`_set_counts`) has a count but no function yet: it
    is made on first use and compiled at once if the count is past ``compile_after``, so a resumed
    run switches each part to its compiled form at the same call as an uninterrupted one (the two
    forms differ in the last bits, and those differences grow over training steps).
    """
    entry = cache.get(key)
    if entry is None:
        entry = cache[key] = [None, 0]
    if entry[0] is None:
        entry[0] = make()
        if entry[1] > compile_after:
            entry[0] = _compile(entry[0])
    entry[1] += 1
    if entry[1] == compile_after + 1:
        entry[0] = _compile(entry[0])
    return entry[0]


def _compile(fn):
    # TF's retracing detector counts traces per code object, and every part shares one lambda's
    # code: wrapped in a partial, each part counts alone, so its single trace no longer reads as
    # "5 out of the last 5 calls triggered tf.function retracing".
    return tf.function(functools.partial(fn), reduce_retracing=True, autograph=False)


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def _counts(cache: dict) -> list:
    """``cache``'s call counts as JSON-able ``[key, count]`` pairs (see :func:`_set_counts`)."""
    return [[key, entry[1]] for key, entry in cache.items()]


def _set_counts(cache: dict, counts: list) -> None:
    """Restores :func:`_counts` output into ``cache`` (functions are made again on first use)."""
    cache.clear()
    for key, count in counts:
        cache[_tuples(key)] = [None, int(count)]


_CIFAR_MEAN = (125.307, 122.950, 113.865)
_CIFAR_STD = (62.993, 62.089, 66.705)


def _as_supernet(supernet) -> "Supernet":
    """A :class:`Supernet`, or the one a :class:`~keras_nasnet.search.SharedWeightsReward` holds
    (``SharedWeightsReward.from_run(...)``, which the docs lead to, has it as ``.net``)."""
    from .shared_reward import SharedWeightsReward

    if isinstance(supernet, SharedWeightsReward):
        supernet.build()
        return supernet.net
    if not isinstance(supernet, Supernet):
        raise TypeError(f"expected a Supernet or a SharedWeightsReward (e.g. SharedWeightsReward.from_run"
                        f"('runs/shared')); got {type(supernet).__name__}.")
    return supernet


def child_model(supernet: Supernet, actions) -> keras.Model:
    """The stand-alone child ``actions`` as :func:`keras_nasnet.NASNetCIFAR` builds it (fresh weights),
    at the supernet's N and F. ``supernet``: a :class:`Supernet` or a
    :class:`~keras_nasnet.search.SharedWeightsReward` holding one."""
    from ..models import NASNetCIFAR, cell_width

    supernet = _as_supernet(supernet)
    genotype = supernet.space.decode(actions)
    return NASNetCIFAR(supernet.num_cells, 4 * supernet.filters * cell_width(genotype.normal),
                       genotype=genotype, classes=supernet.classes, bn_momentum=supernet.cfg.momentum,
                       bn_epsilon=supernet.cfg.epsilon,
                       input_shape=(supernet.image_size, supernet.image_size, 3))


def inherit_weights(supernet: Supernet, actions, model: keras.Model | None = None) -> keras.Model:
    """Copies the supernet's weights of the path ``actions`` into the stand-alone child.

    ``model`` is the child built by :func:`child_model` (built here if not given). The child then
    computes exactly what the supernet computes for that path (up to float rounding), in training
    and in inference mode; it can be fine-tuned, evaluated or saved like any NASNetCIFAR model.
    ``supernet``: a :class:`Supernet` or a :class:`~keras_nasnet.search.SharedWeightsReward` holding
    one (``SharedWeightsReward.from_run("runs/shared")``). Returns the model.
    """
    supernet = _as_supernet(supernet)
    model = child_model(supernet, actions) if model is None else model
    genotype = supernet.space.decode(actions)
    cells = {"normal": genotype.normal, "reduction": genotype.reduction}
    L, B = supernet.layers, supernet.space.num_blocks

    def rows(src):
        """Input-channel rows of a layer reading ``src`` that the child keeps."""
        if src < 0:
            return slice(None)
        per = supernet.plans[src].filters
        keep = cells[supernet.plans[src].kind].concat
        return np.concatenate([np.arange((i - NUM_INPUTS) * per, (i - NUM_INPUTS + 1) * per) for i in keep])

    # A child's functional graph leaves out what its output does not depend on (a cell whose
    # output no later cell reads, an input no block reads), while the supernet has every part: a
    # part the child lacks is skipped, and every weighted layer the child has must be filled.
    present = {l.name for l in model.layers}
    filled = set()

    def put(name, layer, src=None):
        if name not in present:
            return
        values = [np.asarray(v) for v in layer.get_weights()]
        if src is not None:  # a kernel whose input channels are a masked concat
            r = rows(src)
            values[0] = values[0][r] if values[0].ndim == 2 else values[0][:, :, r, :]
        model.get_layer(name).set_weights(values)
        filled.add(name)

    put("stem_conv1", L["stem_conv1"])
    put("stem_bn1", L["stem_bn1"])
    acts = np.asarray(actions).reshape(2, B, 5)
    for c, plan in enumerate(supernet.plans):
        kind, bid = plan.kind, plan.block_id
        put(f"{kind}_conv_1_{bid}", L[f"{kind}_conv_1_{bid}"], plan.ip)
        put(f"{kind}_bn_1_{bid}", L[f"{kind}_bn_1_{bid}"])
        adjust_layers = [n for n in (f"adjust_conv_1_{bid}", f"adjust_conv_2_{bid}",
                                     f"adjust_conv_projection_{bid}") if n in L]
        for name in adjust_layers:
            if _has_layer(model, name):  # absent where the child passes h_(i-1) through
                put(name, L[name], plan.p)
                put(f"adjust_bn_{bid}", L[f"adjust_bn_{bid}"])
        arc = acts[0 if kind == "normal" else 1]
        for b in range(B):
            for s, side in enumerate(("left", "right")):
                i, o = int(arc[b, s]), int(arc[b, 2 + s])
                stride = 2 if kind == "reduction" and i < NUM_INPUTS else 1
                branch = supernet.branches[(c, b, s, stride)][o]
                plain = f"{kind}_{side}{b + 1}_{bid}"
                actual = part_name(kind, cells[kind], b + 1, side, bid)
                for layer in branch.layers:
                    if layer.weights:
                        put(layer.name.replace(plain, actual), layer)
    kernel, bias = L["predictions"].get_weights()
    k = len(cells[supernet.plans[-1].kind].concat)  # the supernet's head averages the k blocks
    model.get_layer("predictions").set_weights([kernel[rows(len(supernet.plans) - 1)] / k, bias])
    missed = sorted(l.name for l in model.layers if l.weights and l.name not in filled | {"predictions"})
    if missed:
        raise ValueError(f"inherit_weights: the supernet has no weights for the child's layers "
                         f"{', '.join(missed[:5])}" + (f" and {len(missed) - 5} more" if len(missed) > 5 else "")
                         + ": the model is not the child of these actions at this supernet's size "
                         "(build it with child_model(supernet, actions)).")
    return model


def _has_layer(model, name) -> bool:
    try:
        model.get_layer(name)
        return True
    except ValueError:
        return False
