"""Graph rewrites that let LiteRT's XNNPACK delegate run the whole network.

XNNPACK (the LiteRT CPU delegate) has no int8 ``AVERAGE_POOL_2D``, and no float one with TF "SAME"
padding (whose border windows divide by the number of real pixels). NASNet-A has an average pool in
every cell, so each of them splits the delegated graph, and the int8 ones run on LiteRT's own
kernels. At a static size an average pool is a depthwise convolution with a constant kernel, times a
constant map of 1 / window size at each output position: both ops XNNPACK runs in float and int8.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


class PoolAsDepthwise(keras.layers.Layer):
    """``AveragePooling2D`` (channels last, static size) as a depthwise sum and a constant scale."""

    def __init__(self, pool_size, strides, padding, **kwargs):
        super().__init__(**kwargs)
        self.pool_size, self.strides, self.padding = tuple(pool_size), tuple(strides), padding

    def build(self, input_shape):
        h, w, c = input_shape[1:]
        if h is None or w is None:
            raise ValueError(f"{self.name}: rewriting an average pool needs a static input size.")
        self.kernel = np.ones((*self.pool_size, c, 1), np.float32)
        # Real pixels under each window: the divisor TensorFlow uses (padding is not counted).
        count = ops.convert_to_numpy(ops.depthwise_conv(
            np.ones((1, h, w, 1), np.float32), np.ones((*self.pool_size, 1, 1), np.float32),
            strides=self.strides, padding=self.padding))
        self.scale = (1.0 / count).astype(np.float32)

    def call(self, x):
        y = ops.depthwise_conv(x, ops.cast(self.kernel, x.dtype), strides=self.strides,
                               padding=self.padding)
        return y * ops.cast(self.scale, x.dtype)

    def compute_output_shape(self, input_shape):
        return keras.layers.AveragePooling2D(self.pool_size, self.strides, self.padding
                                             ).compute_output_shape(input_shape)


class ReluAsDepthwise(keras.layers.Layer):
    """A ReLU computed as a 1x1 depthwise convolution with unit weights and a fused ReLU.

    XNNPACK has no int8 ``RELU`` op, but it runs an int8 depthwise convolution with a fused ReLU;
    the LiteRT converter fuses the two, so the ReLU stays inside the delegated graph.
    """

    def build(self, input_shape):
        self.kernel = np.ones((1, 1, input_shape[-1], 1), np.float32)

    def call(self, x):
        return ops.relu(ops.depthwise_conv(x, ops.cast(self.kernel, x.dtype), padding="valid"))

    def compute_output_shape(self, input_shape):
        return input_shape


_FUSES_RELU = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
               keras.layers.Dense, keras.layers.Add, keras.layers.BatchNormalization)


def _is_relu(layer) -> bool:
    if isinstance(layer, keras.layers.ReLU):
        return layer.get_config().get("max_value") is None and not layer.get_config().get("negative_slope")
    return isinstance(layer, keras.layers.Activation) and layer.get_config()["activation"] == "relu"


def _standalone_relus(model) -> set:
    """Names of ReLU layers the converter cannot fuse into the op before them (one whose output
    something else also reads, or one that is not a convolution or an add)."""
    names = set()
    for layer in model.layers:
        if not _is_relu(layer) or len(layer._inbound_nodes) != 1:
            continue
        (tensor,) = layer._inbound_nodes[0].input_tensors
        producer = tensor._keras_history.operation
        if not isinstance(producer, _FUSES_RELU) or len(producer._outbound_nodes) != 1:
            names.add(layer.name)
    return names


def delegate_friendly(model, int8: bool):
    """A copy of ``model`` for LiteRT's XNNPACK delegate: average pools as depthwise
    convolutions, and for int8 also standalone ReLUs as 1x1 depthwise convolutions."""
    relus = _standalone_relus(model) if int8 else set()

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, keras.layers.AveragePooling2D) and config.get("data_format") in (
                None, "channels_last"):
            return PoolAsDepthwise(layer.pool_size, layer.strides, layer.padding, name=layer.name)
        if layer.name in relus:
            return ReluAsDepthwise(name=layer.name)
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy
