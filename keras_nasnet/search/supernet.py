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
  have weights for all ``B * F`` channels. For a child this computes exactly what the child's
  narrower layer computes with the rows of its unused blocks (the zero channels add nothing), which
  is how :func:`inherit_weights` copies them. Where the stand-alone child has no projection
  (``h_{i-1}`` already as wide as the cell), a run-time branch skips it here too.

A new child costs no new graph: the decisions are a tensor, and ``tf.switch_case`` picks each
side's input and op inside one traced function (see ``search/README.md`` for the measured options).
"""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import tensorflow as tf
from keras import layers

from .. import ops
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
    """The cells of the CIFAR skeleton in order, wired as :func:`keras_nasnet.models.NASNet` wires them."""
    plans, f = [], filters
    x, xl, p, pl = -1, 0, -1, 0

    def add(kind, f, block_id):
        nonlocal x, xl, p, pl
        plans.append(_CellPlan(kind, block_id, f, xl, x, p, pl))
        x, xl, p, pl = len(plans) - 1, xl + (kind == "reduction"), x, xl

    for stack in range(3):
        for i in range(num_cells):
            add("normal", f, str(stack * num_cells + i + (stack > 0)))
        if stack < 2:
            f *= 2
            add("reduction", f, f"reduce_{(stack + 1) * num_cells}")
    return plans


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
        bn_momentum, bn_epsilon: BatchNormalization settings (NASNetCIFAR's defaults).
        image_size: the (square) input size; the branches are built for static sizes.
    """

    def __init__(self, space: SearchSpace, num_cells: int = 1, filters: int = 8, classes: int = 10,
                 bn_momentum: float = 0.9, bn_epsilon: float = 1e-5, image_size: int = 32):
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

    def __call__(self, images, actions, training: bool = False):
        """Class probabilities of the child ``actions`` (an int tensor of the space's decisions)."""
        L, B, cfg = self.layers, self.space.num_blocks, self.cfg
        actions = tf.cast(tf.reshape(actions, (2, B, 5)), tf.int32)
        x = L["rescaling"](images)
        x = L["stem_conv1"](x)
        x = L["stem_bn1"](x, training=training)
        outputs = []  # per cell: (masked concat of all blocks, 0/1 mask of its unused blocks)
        for c, plan in enumerate(self.plans):
            arc = actions[0 if plan.kind == "normal" else 1]
            ip = x if plan.ip < 0 else outputs[plan.ip][0]
            p_src = x if plan.p < 0 else outputs[plan.p][0]
            bid, f, kind = plan.block_id, plan.filters, plan.kind
            p = self._adjust(plan, p_src, None if plan.p < 0 else outputs[plan.p][1], training)
            h = tf.nn.relu(ip)
            h = L[f"{kind}_bn_1_{bid}"](L[f"{kind}_conv_1_{bid}"](h), training=training)
            states = [h, p]
            for b in range(B):
                outs = []
                for s in range(2):
                    outs.append(self._side(c, plan, b, s, states, arc[b, s], arc[b, 2 + s], training))
                states.append(outs[0] + outs[1])
            used = tf.reduce_any(tf.equal(tf.reshape(arc[:, :2], (-1, 1)),
                                          tf.range(NUM_INPUTS, NUM_INPUTS + B)[None, :]), axis=0)
            mask = 1.0 - tf.cast(used, states[-1].dtype)
            out = tf.concat([states[NUM_INPUTS + b] * mask[b] for b in range(B)], axis=-1)
            outputs.append((out, mask))
        x = tf.nn.relu(outputs[-1][0])
        x = tf.reduce_mean(x, axis=(1, 2))
        return L["predictions"](x)

    def _adjust(self, plan, p, mask, training):
        L, bid, f = self.layers, plan.block_id, plan.filters
        kind = self._adjust_kind(plan)
        if kind == "fixed-none":
            return p
        if kind == "reduce":
            p = tf.nn.relu(p)
            p1 = L[f"adjust_conv_1_{bid}"](p[:, ::2, ::2, :])
            p2 = tf.pad(p, [(0, 0), (0, 1), (0, 1), (0, 0)])[:, 1:, 1:, :]
            p2 = L[f"adjust_conv_2_{bid}"](p2[:, ::2, ::2, :])
            return L[f"adjust_bn_{bid}"](tf.concat([p1, p2], -1), training=training)

        def project():
            y = L[f"adjust_conv_projection_{bid}"](tf.nn.relu(p))
            return L[f"adjust_bn_{bid}"](y, training=training)

        if kind == "project":
            return project()
        # The child passes h_(i-1) through when it is exactly as wide as the cell (k unused blocks
        # of width F/k): then take those k blocks out of the masked concat, side by side.
        per = self.plans[plan.p].filters
        k = f // per
        unused = tf.reduce_sum(tf.cast(mask, tf.int32))
        return tf.cond(tf.equal(unused, k), lambda: _compact(p, mask, per, self.space.num_blocks, k),
                       project)

    def _side(self, c, plan, b, s, states, i, o, training):
        def run(stride, candidates, offset):
            models = self.branches[(c, b, s, stride)]
            x = candidates[0] if len(candidates) == 1 else tf.switch_case(
                i - offset, [(lambda t=t: t) for t in candidates])
            return tf.switch_case(o, [(lambda m=m: m(x, training=training)) for m in models])

        if plan.kind == "normal":
            return run(1, states, 0)
        if b == 0:
            return run(2, states[:NUM_INPUTS], 0)
        return tf.cond(i < NUM_INPUTS, lambda: run(2, states[:NUM_INPUTS], 0),
                       lambda: run(1, states[NUM_INPUTS:], NUM_INPUTS))


_CIFAR_MEAN = (125.307, 122.950, 113.865)
_CIFAR_STD = (62.993, 62.089, 66.705)


def _compact(p, mask, per, num_blocks, k):
    """The ``k`` unused blocks' slices of a masked concat, side by side (the child's narrow state)."""
    blocks = tf.stack([p[..., b * per:(b + 1) * per] for b in range(num_blocks)])
    idx = tf.where(mask > 0)[:k, 0]
    return tf.concat(tf.unstack(tf.gather(blocks, idx), num=k), axis=-1)


def child_model(supernet: Supernet, actions) -> keras.Model:
    """The stand-alone child ``actions`` as :func:`keras_nasnet.NASNetCIFAR` builds it (fresh weights),
    at the supernet's N and F."""
    from ..models import NASNetCIFAR, cell_width

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
    Returns the model.
    """
    from ..cells import _part_name

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

    def put(name, layer, src=None):
        values = [np.asarray(v) for v in layer.get_weights()]
        if src is not None:  # a kernel whose input channels are a masked concat
            r = rows(src)
            values[0] = values[0][r] if values[0].ndim == 2 else values[0][:, :, r, :]
        model.get_layer(name).set_weights(values)

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
                actual = _part_name(kind, cells[kind], b + 1, side, bid)
                for layer in branch.layers:
                    if layer.weights:
                        put(layer.name.replace(plain, actual), layer)
    put("predictions", L["predictions"], len(supernet.plans) - 1)
    return model


def _has_layer(model, name) -> bool:
    try:
        model.get_layer(name)
        return True
    except ValueError:
        return False
