"""Inference-time graph optimisation: fold BatchNormalization into the convolution before it.

In inference a BatchNormalization layer is a per-channel affine map, ``y = s * x + t`` with
``s = gamma / sqrt(var + eps)`` and ``t = beta - s * mean``. When it directly follows a convolution
whose output nothing else reads, the map can be folded into that convolution's kernel and bias, and
the layer disappears. NASNet has one such pair per separable convolution (192 in NASNetMobile): under
Keras 3 on TensorFlow each inference BN is several element-wise passes over the activation, so
folding them removes a large share of the ops and memory traffic of a forward pass.

The folded model computes the same function (to float rounding), uses only built-in Keras layers
(at static sizes without drop path) and saves as ``.keras``; it is meant for inference and export,
not for further training (the batch statistics are gone).
"""

from __future__ import annotations

import keras
import numpy as np

_CONVS = (keras.layers.Conv2D, keras.layers.SeparableConv2D, keras.layers.DepthwiseConv2D)


def _foldable_conv(layer) -> bool:
    """A convolution whose function the folded weights reproduce: one of Keras' own classes, or
    this package's SeparableConv2D (the same function), channels last. A user's subclass may
    compute something else (a weight-standardised convolution, say) and is left alone."""
    from .ops import SeparableConv2D

    return (type(layer) in (*_CONVS, SeparableConv2D)
            and layer.get_config().get("data_format", "channels_last") == "channels_last")


def _graph_nodes(model) -> list:
    """The call nodes of ``model``'s own graph (a layer shared with other graphs has more)."""
    return [node for nodes in model._nodes_by_depth.values() for node in nodes]


def _foldable_pairs(model) -> dict:
    """``{conv layer name: bn layer}`` for every BN that can be folded into the conv before it.

    A pair folds only when, in this model's graph, the convolution is called once and its output is
    read by that BN alone: folding rewrites the convolution's output, so any other reader (another
    layer, or the tensor being a model output itself) would see BN-ed values.
    """
    nodes = _graph_nodes(model)
    calls, readers = {}, {}
    for node in nodes:
        calls[id(node.operation)] = calls.get(id(node.operation), 0) + 1
        for t in node.input_tensors:
            readers.setdefault(id(t), []).append(node)
    for t in model.outputs:
        readers.setdefault(id(t), []).append(None)
    pairs = {}
    for node in nodes:
        bn = node.operation
        if (not isinstance(bn, keras.layers.BatchNormalization) or calls[id(bn)] != 1
                or len(node.input_tensors) != 1 or bn.axis not in (-1, 3)):
            continue
        t = node.input_tensors[0]
        conv = t._keras_history.operation
        if (_foldable_conv(conv) and calls.get(id(conv)) == 1 and readers[id(t)] == [node]
                and conv.get_config().get("activation") == "linear"):
            pairs[conv.name] = bn
    return pairs


def _bn_affine(bn):
    """``(scale, shift)`` of an inference BN as float64 arrays."""
    mean = np.asarray(bn.moving_mean.numpy(), np.float64)
    var = np.asarray(bn.moving_variance.numpy(), np.float64)
    gamma = np.asarray(bn.gamma.numpy(), np.float64) if bn.scale else np.ones_like(mean)
    beta = np.asarray(bn.beta.numpy(), np.float64) if bn.center else np.zeros_like(mean)
    s = gamma / np.sqrt(var + bn.epsilon)
    return s, beta - s * mean


def _folded_weights(conv, bn) -> list[np.ndarray]:
    """The weights of ``conv`` (with a bias) that compute ``bn(conv(x))``."""
    s, t = _bn_affine(bn)
    weights = [np.asarray(w, np.float64) for w in conv.get_weights()]
    bias = weights.pop() if conv.use_bias else np.zeros_like(s)
    if isinstance(conv, keras.layers.SeparableConv2D):
        depthwise, pointwise = weights
        kernels = [depthwise, pointwise * s]  # only the pointwise kernel sets output channels
    elif isinstance(conv, keras.layers.DepthwiseConv2D):
        (kernel,) = weights
        kernels = [kernel * s.reshape(kernel.shape[2], kernel.shape[3])]
    else:
        (kernel,) = weights
        kernels = [kernel * s]
    dtype = conv.get_weights()[0].dtype
    return [k.astype(dtype) for k in kernels] + [(bias * s + t).astype(dtype)]


def fold_batch_norm(model: keras.Model) -> keras.Model:
    """Returns a copy of ``model`` for inference with BatchNormalization folded into convolutions.

    Every BatchNormalization that directly follows a ``Conv2D``, ``SeparableConv2D`` or
    ``DepthwiseConv2D`` (with no activation, whose output nothing else reads and which is not a model
    output) is folded into that layer's kernel
    and bias and replaced by an ``Identity`` layer of the same name, so layer names stay stable.
    Other layers, and BNs that cannot be folded (e.g. after a concatenation), are kept with their
    weights. Nested functional models (a base model inside a fine-tuning model) are folded the same
    way. The copy agrees with ``model(x, training=False)`` to float rounding.

    Args:
        model: a functional Keras model, e.g. ``NASNetMobile(weights="imagenet")``.

    Returns:
        A new functional model; the original is not modified.

    Raises:
        ValueError: if ``model``, or a model nested in it, is not a functional model (a subclassed
            or Sequential model has no graph of layers to rewrite).
    """
    _check_functional(model, "fold_batch_norm needs")
    pairs = _foldable_pairs(model)
    folded_bns = {bn.name for bn in pairs.values()}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            _check_functional(layer, f"fold_batch_norm folds nested models, so the nested model "
                                     f"{layer.name!r} must be")

    def clone(layer):
        if isinstance(layer, keras.Model):  # e.g. a base model inside a fine-tuning model
            return fold_batch_norm(layer)
        config = layer.get_config()
        if layer.name in pairs:
            config["use_bias"] = True
            config["bias_initializer"] = "zeros"
        if layer.name in folded_bns:
            return keras.layers.Identity(name=layer.name)
        if isinstance(layer, keras.layers.BatchNormalization):
            # The BNs left (e.g. after a concatenation) become Keras' own layer: inference has no
            # batch statistics to fuse, and the copy stays free of keras_nasnet classes.
            return keras.layers.BatchNormalization.from_config(config)
        if isinstance(layer, keras.layers.Cropping2D):
            # Likewise the slice-based crop (ops.Cropping2D, a training-speed change): same output.
            return keras.layers.Cropping2D.from_config(config)
        if isinstance(layer, keras.layers.SeparableConv2D):  # ops.SeparableConv2D: likewise
            return keras.layers.SeparableConv2D.from_config(config)
        return layer.__class__.from_config(config)

    def call(layer, *args, **kwargs):
        if layer.name in folded_bns:  # Identity takes no `training`/`mask` arguments
            return layer(args[0])
        return layer(*args, **kwargs)

    # Inputs named like the original's input layers, so every layer name carries over.
    inputs = [keras.Input(batch_shape=t.shape, dtype=t.dtype, name=t._keras_history.operation.name)
              for t in model.inputs]
    # In the structure the model was built with (one tensor, a list, a dict): clone_model wants it.
    folded = keras.models.clone_model(model, input_tensors=keras.tree.pack_sequence_as(model.input, inputs),
                                      clone_function=clone, call_function=call)
    for layer in model.layers:
        if not layer.weights or isinstance(layer, keras.Model):  # nested: folded with its weights
            continue
        target = folded.get_layer(layer.name)
        if layer.name in pairs:
            target.set_weights(_folded_weights(layer, pairs[layer.name]))
        elif layer.name not in folded_bns:
            target.set_weights(layer.get_weights())
    return folded


def _check_functional(model, what: str) -> None:
    if not isinstance(model, keras.Model) or getattr(model, "_nodes_by_depth", None) is None or \
            not getattr(model, "inputs", None):
        raise ValueError(
            f"{what} a functional Keras model (built with keras.Input), got "
            f"{type(model).__name__}: a {type(model).__name__} has no graph of layers to rewrite. "
            "Rebuild it with the functional API (a Sequential model: keras.Model(seq.inputs, "
            "seq.outputs) after building it)."
        )
