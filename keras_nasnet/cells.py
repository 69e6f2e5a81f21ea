"""Builds one cell of a genotype into a Keras functional graph.

For the NASNet-A cells the graph is the one ``keras.applications`` builds: the same layer names
(quirks included), the same operand order in every add and concat, and the same weightless layers
in the same places, because Keras orders ``model.layers`` (and so the weights of an h5 file) by
graph depth.
"""

from __future__ import annotations

from keras import layers

from . import ops
from .genotypes import NASNET_A, NUM_INPUTS, Cell

# keras.applications names a few layers of its reduction cell irregularly; reproduce them so that
# every named layer has the name users (and weight files) know. Keys: (block, part), 1-based blocks.
_KERAS_REDUCTION_NAMES = {
    (3, "add"): "reduction_add3",
    (4, "add"): "reduction_add_4",  # unnamed in keras.applications
    (4, "right"): "reduction_left4",
    (5, "left"): "reduction_left4",
    (5, "add"): "reduction_add4",
}


def part_name(kind: str, cell: Cell, block: int, part: str, block_id: str) -> str:
    """The layer-name prefix of one part (``"left"``, ``"right"`` or ``"add"``) of block ``block``
    (1-based) of a ``kind`` cell: ``{kind}_{part}{block}_{block_id}``, with keras.applications'
    names for NASNet-A's reduction cell, so its ImageNet weights load by name. The supernet's
    ``inherit_weights`` uses it to name a stand-alone child's layers."""
    if kind == "reduction" and cell == NASNET_A.reduction:
        quirk = _KERAS_REDUCTION_NAMES.get((block, part))
        if quirk:
            return f"{quirk}_{block_id}"
    if part == "add":
        return f"{kind}_add_{block}_{block_id}"
    return f"{kind}_{part}{block}_{block_id}"


def adjust_block(p, p_level, ip_level, filters, cfg: ops.BNConfig, block_id):
    """Brings the previous-previous state ``p`` to the cell's resolution and width.

    ``keras.applications`` decides between a factorized reduction and a projection by comparing
    static widths, which fails with ``None`` dimensions; the resolution ``level`` (number of stride-2
    reductions so far) decides the same way at every static size and also at run-time sizes.
    """
    if p_level != ip_level:
        if filters % 2:
            raise ValueError(
                f"Cell {block_id!r} needs a factorized reduction, which splits its {filters} filters "
                "in two halves; choose penultimate_filters so that this cell's width is even."
            )
        p = ops.relu(p, name=f"adjust_relu_1_{block_id}")
        p1 = layers.AveragePooling2D(1, strides=2, padding="valid", name=f"adjust_avg_pool_1_{block_id}")(p)
        p1 = layers.Conv2D(filters // 2, 1, padding="same", use_bias=False,
                           kernel_initializer="he_normal", name=f"adjust_conv_1_{block_id}")(p1)
        # Shift by one pixel so the second half samples the positions the first one skipped.
        p2 = layers.ZeroPadding2D(((0, 1), (0, 1)), name=f"adjust_pad_{block_id}")(p)
        # The slice-based crop is a custom layer like the fused BN: with Keras' BN (bn_fused=False)
        # a static-size model keeps to Keras' own layers, loadable without keras_nasnet.
        crop = ops.Cropping2D if cfg.fused else layers.Cropping2D
        p2 = crop(((1, 0), (1, 0)), name=f"adjust_crop_{block_id}")(p2)
        p2 = layers.AveragePooling2D(1, strides=2, padding="valid", name=f"adjust_avg_pool_2_{block_id}")(p2)
        p2 = layers.Conv2D(filters // 2, 1, padding="same", use_bias=False,
                           kernel_initializer="he_normal", name=f"adjust_conv_2_{block_id}")(p2)
        p = layers.Concatenate(name=f"adjust_concat_{block_id}")([p1, p2])
        return ops.bn(p, cfg, f"adjust_bn_{block_id}")
    if p.shape[-1] != filters:
        p = ops.relu(p, name=f"adjust_relu_projection_{block_id}")
        p = layers.Conv2D(filters, 1, padding="same", use_bias=False, kernel_initializer="he_normal",
                          name=f"adjust_conv_projection_{block_id}")(p)
        return ops.bn(p, cfg, f"adjust_bn_{block_id}")
    return p


def build_cell(
    cell: Cell,
    kind: str,
    ip,
    ip_level: int,
    p,
    p_level: int | None,
    filters: int,
    block_id: str,
    cfg: ops.BNConfig,
    drop_path_rate: float = 0.0,
    op_style: str = "keras",
):
    """Adds a ``normal`` or ``reduction`` cell to the graph and returns its output tensor.

    Args:
        cell: the cell genotype.
        kind: ``"normal"`` or ``"reduction"``; ops on cell inputs have stride 2 in a reduction cell.
        ip: the previous cell's output (becomes state 0 after ReLU-1x1 conv-BN).
        ip_level: number of stride-2 reductions applied to ``ip``.
        p: the output of the cell before that, or ``None`` (then ``ip`` is used, unadjusted, as
            ``keras.applications`` does for its first stem cell).
        p_level: number of stride-2 reductions applied to ``p``.
        filters: the cell's width F.
        block_id: the suffix of the cell's layer names (``"0"``, ``"stem_1"``, ``"reduce_4"``).
        cfg: batch-normalization settings.
        drop_path_rate: final ScheduledDropPath probability for this cell; 0 adds no layers.
        op_style: ``"keras"`` or ``"slim"``, how pools pad and project (see
            :func:`keras_nasnet.ops.apply_op`).
    """
    if kind not in ("normal", "reduction"):
        raise ValueError(f"kind must be 'normal' or 'reduction', not {kind!r}.")
    if p is None:
        p = ip
    else:
        p = adjust_block(p, p_level, ip_level, filters, cfg, block_id)
    h = ops.relu(ip, name=f"{kind}_relu_1_{block_id}")
    h = layers.Conv2D(filters, 1, padding="same", use_bias=False, kernel_initializer="he_normal",
                      name=f"{kind}_conv_1_{block_id}")(h)
    h = ops.bn(h, cfg, f"{kind}_bn_1_{block_id}")

    states = [h, p]
    pads = {}

    def padded(state):
        def pad(k):
            key = (state, k)
            if key not in pads:
                name = (f"reduction_pad_1_{block_id}" if key == (0, 3) and kind == "reduction"
                        else f"{kind}_pad_{state}_{k}x{k}_{block_id}")
                pads[key] = ops.stride_pad(states[state], k, name=name)
            return pads[key]
        return pad

    for b, block in enumerate(cell.blocks, start=1):
        outs = []
        for side, i, op in zip(("left", "right"), block.inputs, block.ops):
            stride = 2 if kind == "reduction" and i < NUM_INPUTS else 1
            name = part_name(kind, cell, b, side, block_id)
            y = ops.apply_op(op, states[i], filters, stride, cfg, name, padded=padded(i),
                             style=op_style)
            if drop_path_rate > 0 and op != "identity":
                y = ops.ScheduledDropPath(
                    drop_path_rate, name=f"{kind}_drop_path_{side}{b}_{block_id}")(y)
            outs.append(y)
        combine_name = part_name(kind, cell, b, "add", block_id)
        if block.combine == "add":
            states.append(layers.Add(name=combine_name)(outs))
        else:
            states.append(layers.Concatenate(name=combine_name.replace("_add", "_concat", 1))(outs))

    chosen = [states[i] for i in cell.concat]
    if len(chosen) == 1:
        return layers.Identity(name=f"{kind}_concat_{block_id}")(chosen[0])
    return layers.Concatenate(name=f"{kind}_concat_{block_id}")(chosen)
