"""The operations of the NASNet search space, as functions that add Keras layers to a graph.

Every convolution is ReLU-conv-BN (paper, appendix A.4). A separable convolution is applied twice,
as in the paper and in ``keras.applications``. Stride-2 separable convolutions and pools pad with
:class:`StridePadding2D` and then use ``"valid"`` padding: numerically the same as
``keras.applications`` (zero padding, included in the average), but the padding is computed from
the run-time size, so models also work with ``None`` spatial dimensions.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import layers, ops

from .genotypes import OP_SPECS, OpSpec


@keras.saving.register_keras_serializable(package="keras_nasnet")
class StridePadding2D(layers.Layer):
    """Zero-pads for a stride-2 ``kernel_size`` window as TF "SAME" padding would.

    For an even size this is ``(k//2 - 1, k//2)``, for an odd size ``(k//2, k//2)``: the same as
    ``keras.applications.imagenet_utils.correct_pad``, but decided per call from the actual size, so
    a model built with ``None`` spatial dimensions pads odd and even inputs correctly.
    """

    def __init__(self, kernel_size: int, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = int(kernel_size)

    def call(self, x):
        k = self.kernel_size
        static = x.shape[1:3]
        pads = []
        for axis, size in zip((1, 2), static):
            if size is None:
                size = ops.shape(x)[axis]
            total = k - 2 + size % 2
            pads.append((total // 2, total - total // 2))
        return ops.pad(x, [(0, 0), pads[0], pads[1], (0, 0)])

    def compute_output_shape(self, input_shape):
        k = self.kernel_size
        out = list(input_shape)
        for axis in (1, 2):
            if out[axis] is not None:
                out[axis] = out[axis] + k - 2 + out[axis] % 2
        return tuple(out)

    def get_config(self):
        return {**super().get_config(), "kernel_size": self.kernel_size}


# Named Cropping2D, as Keras' layer, for the reason given at BatchNormalization below (weight-file
# paths are built from class names); registered under its own name in the keras_nasnet package.
@keras.saving.register_keras_serializable(package="keras_nasnet", name="SliceCropping2D")
class Cropping2D(layers.Cropping2D):
    """``keras.layers.Cropping2D`` (channels-last) computed with ``tf.slice`` on TensorFlow.

    Keras crops with a strided slice, whose gradient (``StridedSliceGrad``) TensorFlow computes
    on the CPU element by element: in a NASNetMobile training step at batch 32 the eight
    ``adjust_crop`` layers' gradients took 6% of all op time (``benchmarks/results.md``). A plain
    slice has a ``Pad`` as its gradient. Same arguments, output and name as Keras' layer; other
    backends and channels-first inputs run Keras' code.
    """

    def call(self, inputs):
        if keras.backend.backend() != "tensorflow" or self.data_format != "channels_last":
            return super().call(inputs)
        import tensorflow as tf

        (top, bottom), (left, right) = self.cropping
        shape = tf.shape(inputs)
        size = tf.stack([shape[0], shape[1] - top - bottom, shape[2] - left - right, shape[3]])
        out = tf.slice(inputs, [0, top, left, 0], size)
        out.set_shape(self.compute_output_shape(inputs.shape))
        return out


def _depthwise_same_stride1(tf, x, kernel):
    """A stride-1 "SAME" depthwise convolution (odd kernel, depth multiplier 1) whose gradients
    are computed as forward depthwise convolutions, which TensorFlow's CPU kernels run faster.

    TensorFlow's ``DepthwiseConv2dNativeBackpropFilter`` is fast for 3x3 kernels but 2-8 times
    slower per FLOP for 5x5 and 7x7 ones (``benchmarks/depthwise_grad.py``). The filter gradient
    ``dW[i, j, c] = sum over n, h, w of x_pad[n, h + i, w + j, c] * dy[n, h, w, c]`` is itself a
    depthwise convolution: of the padded input with the batch moved into the channels, by the
    output gradient as the filter. The input gradient is the forward convolution of the output
    gradient with the flipped kernel (odd kernels pad symmetrically, so "SAME" lines up).
    """

    @tf.custom_gradient
    def depthwise(x, kernel):
        y = tf.raw_ops.DepthwiseConv2dNative(input=x, filter=kernel, strides=[1, 1, 1, 1], padding="SAME")

        def grad(dy):
            k = kernel.shape[0]
            p = (k - 1) // 2
            dx = tf.raw_ops.DepthwiseConv2dNative(
                input=dy, filter=tf.reverse(kernel, [0, 1]), strides=[1, 1, 1, 1], padding="SAME")
            shape = tf.shape(dy)
            n, h, w, c = shape[0], shape[1], shape[2], shape[3]
            xp = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]])
            xt = tf.reshape(tf.transpose(xp, [1, 2, 0, 3]), tf.stack([1, h + 2 * p, w + 2 * p, n * c]))
            ft = tf.reshape(tf.transpose(dy, [1, 2, 0, 3]), tf.stack([h, w, n * c, 1]))
            dw = tf.raw_ops.DepthwiseConv2dNative(input=xt, filter=ft, strides=[1, 1, 1, 1], padding="VALID")
            dw = tf.reduce_sum(tf.reshape(dw, tf.stack([k, k, n, c])), axis=2)
            return dx, tf.reshape(dw, tf.shape(kernel))

        return y, grad

    return depthwise(x, kernel)


def _gpu_visible() -> bool:
    # The depthwise-form gradients are a CPU measure: on a GPU, cuDNN's filter-gradient kernel is
    # not the slow path, and a depthwise convolution with a whole feature map as its filter is.
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# Named SeparableConv2D, as Keras' layer, for the reason given at BatchNormalization below.
@keras.saving.register_keras_serializable(package="keras_nasnet", name="FastGradSeparableConv2D")
class SeparableConv2D(layers.SeparableConv2D):
    """``keras.layers.SeparableConv2D`` with faster training gradients on TensorFlow.

    In training, a stride-1 "same" depthwise step with a 5x5 or 7x7 kernel gets its gradients
    from forward depthwise convolutions (see ``_depthwise_same_stride1``): the same values up to
    float rounding, computed about 2x faster on the CPU. Everything else (inference, 3x3 kernels,
    strides, dilation, other backends, channels-first, a visible GPU) runs Keras' code; inference
    is left to it so that exported graphs hold no custom-gradient ops. Same arguments, weights
    and names.
    """

    def _fast_gradients(self, inputs) -> bool:
        k = self.kernel_size
        return (keras.backend.backend() == "tensorflow" and self.data_format == "channels_last"
                and k[0] == k[1] and k[0] >= 5 and k[0] % 2 == 1 and tuple(self.strides) == (1, 1)
                and tuple(self.dilation_rate) == (1, 1) and self.padding == "same"
                and self.depth_multiplier == 1 and len(inputs.shape) == 4 and not _gpu_visible())

    def call(self, inputs, training=None):
        if not (training and self._fast_gradients(inputs)):
            return super().call(inputs)
        import tensorflow as tf

        x = tf.convert_to_tensor(inputs)
        depthwise = tf.cast(self.depthwise_kernel, x.dtype)
        pointwise = tf.cast(self.pointwise_kernel, x.dtype)
        y = _depthwise_same_stride1(tf, x, depthwise)
        y = tf.nn.conv2d(y, pointwise, strides=1, padding="VALID")  # as tf.nn.separable_conv2d
        if self.use_bias:
            y = tf.nn.bias_add(y, tf.cast(self.bias, y.dtype))
        if self.activation is not None:
            return self.activation(y)
        return y


@keras.saving.register_keras_serializable(package="keras_nasnet")
class ScheduledDropPath(layers.Layer):
    """ScheduledDropPath (paper, appendix A.5): drops a whole path per example during training.

    The drop probability is ``rate * progress``, where ``progress`` is a non-trainable variable
    from 0 to 1; ``rate`` already carries TF-slim's linear scaling with cell depth. ``progress``
    starts at 1, so a model trained without a schedule drops paths at the full rate from its first
    step; :class:`DropPathSchedule` (a callback) ramps it from 0 over training instead, as the paper
    does (``keras_nasnet.train`` and the search use it). Kept paths are scaled by ``1 / keep`` so
    inference needs no rescaling.
    """

    def __init__(self, rate: float, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed_generator = keras.random.SeedGenerator()

    def build(self, input_shape):
        # Not a model weight in the usual sense: it is saved with the model so that a resumed
        # training run continues with the same drop probability.
        # Starts at 1: drop_path_rate=r means r until a DropPathSchedule says otherwise (a user
        # fitting without the callback used to get no drop path at all, silently).
        self.progress = self.add_weight(
            name="progress", shape=(), initializer="ones", trainable=False
        )

    def call(self, x, training=None):
        if not training or self.rate <= 0:
            return x
        keep = 1.0 - self.rate * ops.cast(self.progress, x.dtype)
        batch = ops.shape(x)[0]
        noise = keras.random.uniform((batch, 1, 1, 1), dtype=x.dtype, seed=self.seed_generator)
        mask = ops.floor(keep + noise)
        return x / keep * mask

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@dataclasses.dataclass(frozen=True)
class BNConfig:
    """Batch-normalization settings shared by every BN of a model."""

    momentum: float = 0.9997
    epsilon: float = 1e-3
    synchronized: bool = False  # share batch statistics across tf.distribute replicas
    fused: bool = True  # FusedBatchNormalization rather than keras.layers.BatchNormalization


def relu(x, name=None):
    """A ReLU activation layer."""
    return layers.Activation("relu", name=name)(x)


# The class is named BatchNormalization because Keras 3 builds `.weights.h5` paths from layer class
# names (`layers/batch_normalization_3/vars/0`): under its own name its files would not interchange
# with keras.applications or `bn_fused=False` models. `.keras` configs find it by the registered
# name, which is the same as before the rename, so older configs still resolve.
@keras.saving.register_keras_serializable(package="keras_nasnet", name="FusedBatchNormalization")
class BatchNormalization(layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` computed with TensorFlow's fused kernel.

    Same arguments, weights, names and results as the Keras layer (the moving variance is updated
    with the biased batch variance, as Keras does). Keras 3 computes BN on TensorFlow as separate
    moment, subtract, multiply and add ops; the fused kernel does it in one pass forward and one
    backward. On the 2-core CPU of ``benchmarks/results.md`` a training step took 0.93
    (NASNetMobile) and 0.79 (CIFAR 6@768) of its time with Keras' layer. Anything the fused kernel
    does not cover (another backend, masks, synchronized or renormalised BN, a non-channels-last
    axis, epsilon under cuDNN's minimum on a GPU) runs the Keras code.
    """

    def _fused_supported(self, inputs, mask) -> bool:
        if (keras.backend.backend() != "tensorflow" or mask is not None or self.synchronized
                or self.renorm or len(inputs.shape) != 4 or self.axis not in (-1, 3)):
            return False
        if self.epsilon < 1.001e-5:  # cuDNN refuses smaller epsilons; the CPU kernel does not
            import tensorflow as tf

            return not tf.config.list_physical_devices("GPU")
        return True

    def call(self, inputs, training=None, mask=None):
        if not self._fused_supported(inputs, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf

        x = tf.cast(inputs, "float32")  # as Keras does: BN statistics in float32 under mixed precision
        channels = x.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones((channels,))
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros((channels,))
        if training and self.trainable:
            empty = tf.constant([], "float32")
            y, mean, var, *_ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=empty, variance=empty, epsilon=self.epsilon,
                data_format="NHWC", is_training=True)
            # The kernel returns the unbiased (n - 1) batch variance; Keras averages the biased one.
            shape = tf.shape(x)
            n = tf.cast(shape[0] * shape[1] * shape[2], "float32")
            var = var * tf.math.divide_no_nan(n - 1.0, n)
            m = self.momentum
            self.moving_mean.assign(self.moving_mean * m + tf.cast(mean, self.moving_mean.dtype) * (1 - m))
            self.moving_variance.assign(
                self.moving_variance * m + tf.cast(var, self.moving_variance.dtype) * (1 - m))
        else:
            y, *_ = tf.raw_ops.FusedBatchNormV3(
                x=x, scale=gamma, offset=beta, mean=tf.cast(self.moving_mean, "float32"),
                variance=tf.cast(self.moving_variance, "float32"), epsilon=self.epsilon,
                data_format="NHWC", is_training=False)
        return tf.cast(y, self.compute_dtype)


#: The Python name the layer was first published under; the same class.
FusedBatchNormalization = BatchNormalization


def bn(x, cfg: BNConfig, name):
    """BatchNormalization with the model's settings: :class:`FusedBatchNormalization`, or Keras'
    layer when ``cfg.fused`` is off."""
    layer = FusedBatchNormalization if cfg.fused else layers.BatchNormalization
    return layer(momentum=cfg.momentum, epsilon=cfg.epsilon, synchronized=cfg.synchronized, name=name)(x)


def conv_bn(x, filters, kernel_size, cfg: BNConfig, name, strides=1, dilation_rate=1):
    """ReLU -> Conv2D (no bias, he_normal) -> BN, named ``{name}_relu/_conv/_bn``."""
    x = relu(x, name=f"{name}_relu")
    x = layers.Conv2D(
        filters, kernel_size, strides=strides, padding="same", use_bias=False,
        dilation_rate=dilation_rate, kernel_initializer="he_normal", name=f"{name}_conv",
    )(x)
    return bn(x, cfg, f"{name}_bn")


def stride_pad(x, kernel_size, name):
    """Pads ``x`` for a stride-2 ``kernel_size`` window (TF "SAME" amounts).

    At static sizes this is a plain ``ZeroPadding2D`` (exactly what keras.applications adds, and
    no custom layer to register when loading); with ``None`` sizes a :class:`StridePadding2D`
    decides the amounts at run time.
    """
    h, w = x.shape[1:3]
    if h is None or w is None:
        return StridePadding2D(kernel_size, name=name)(x)
    k = kernel_size
    pads = tuple(((k - 2 + s % 2) // 2, k - 2 + s % 2 - (k - 2 + s % 2) // 2) for s in (h, w))
    return layers.ZeroPadding2D(pads, name=name)(x)


def separable_conv_block(x, filters, kernel_size, cfg: BNConfig, block_id, strides=1):
    """Two stacked ReLU-SepConv-BN, named exactly as ``keras.applications`` NASNet names them.

    With ``cfg.fused`` the convolutions are :class:`SeparableConv2D` (faster training gradients),
    else Keras' own layer: ``bn_fused=False`` builds keras.applications' graph op for op."""
    sep = SeparableConv2D if cfg.fused else layers.SeparableConv2D
    x = relu(x, name=f"separable_conv_1_relu_{block_id}")
    if strides == 2:
        x = stride_pad(x, kernel_size, name=f"separable_conv_1_pad_{block_id}")
        padding = "valid"
    else:
        padding = "same"
    x = sep(
        filters, kernel_size, strides=strides, padding=padding, use_bias=False,
        name=f"separable_conv_1_{block_id}",
    )(x)
    x = bn(x, cfg, f"separable_conv_1_bn_{block_id}")
    x = relu(x, name=f"separable_conv_2_relu_{block_id}")
    x = sep(
        filters, kernel_size, padding="same", use_bias=False, name=f"separable_conv_2_{block_id}"
    )(x)
    return bn(x, cfg, f"separable_conv_2_bn_{block_id}")


def _identity(x, spec: OpSpec, filters, stride, cfg, name, padded, style="keras"):
    if stride == 1 and x.shape[-1] == filters:
        return x
    # TF-slim: identity that must stride or change width becomes ReLU-1x1 conv-BN.
    return conv_bn(x, filters, 1, cfg, name, strides=stride)


def _conv(x, spec: OpSpec, filters, stride, cfg, name, padded, style="keras"):
    return conv_bn(x, filters, spec.kernel_size, cfg, name, strides=stride)


def _sep_conv(x, spec: OpSpec, filters, stride, cfg, name, padded, style="keras"):
    return separable_conv_block(x, filters, spec.kernel_size, cfg, name, strides=stride)


def _pool(x, spec: OpSpec, filters, stride, cfg, name, padded, style="keras"):
    k = spec.kernel_size
    pool = layers.AveragePooling2D if spec.family == "avg_pool" else layers.MaxPooling2D
    if stride == 2 and style == "keras":
        # keras.applications: explicit zeros, which can win a max and count in an average.
        y = pool(k, strides=2, padding="valid", name=name)(padded(k))
    else:
        # TF "SAME" (TF-slim, timm): padding never wins a max and is left out of an average.
        y = pool(k, strides=stride, padding="same", name=name)(x)
    if y.shape[-1] != filters:
        if style == "slim":  # TF-slim's nasnet_utils: 1x1 conv and BN, no ReLU after a pool
            y = layers.Conv2D(filters, 1, use_bias=False, kernel_initializer="he_normal",
                              name=f"{name}_projection_conv")(y)
            y = bn(y, cfg, f"{name}_projection_bn")
        else:
            y = conv_bn(y, filters, 1, cfg, f"{name}_projection")
    return y


def _dil_conv(x, spec: OpSpec, filters, stride, cfg, name, padded, style="keras"):
    # Keras convolutions cannot combine dilation with stride; subsample afterwards instead.
    y = conv_bn(x, filters, spec.kernel_size, cfg, name, dilation_rate=2)
    if stride == 2:
        y = layers.AveragePooling2D(1, strides=2, padding="same", name=f"{name}_subsample")(y)
    return y


def _conv_1xk_kx1(x, spec: OpSpec, filters, stride, cfg, name, padded, style="keras"):
    # ReLU, 1xk conv, kx1 conv, BN (the stride split over the two convolutions).
    k = spec.kernel_size
    y = relu(x, name=f"{name}_relu")
    y = layers.Conv2D(filters, (1, k), strides=(1, stride), padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv_1x{k}")(y)
    y = layers.Conv2D(filters, (k, 1), strides=(stride, 1), padding="same", use_bias=False,
                      kernel_initializer="he_normal", name=f"{name}_conv_{k}x1")(y)
    return bn(y, cfg, f"{name}_bn")


#: One builder per op family of :data:`keras_nasnet.genotypes.OP_SPECS`.
BUILDERS = {
    "identity": _identity,
    "conv": _conv,
    "conv_1xk_kx1": _conv_1xk_kx1,
    "dil_conv": _dil_conv,
    "sep_conv": _sep_conv,
    "avg_pool": _pool,
    "max_pool": _pool,
}


def apply_op(op, x, filters, stride, cfg: BNConfig, name, padded=None, style="keras"):
    """Applies search-space op ``op`` to ``x`` and returns a tensor with ``filters`` channels.

    Args:
        op: a name from :data:`keras_nasnet.genotypes.OPS`.
        x: the input state.
        filters: output channels of every op.
        stride: 1, or 2 for an op on a cell input inside a reduction cell.
        cfg: batch-normalization settings.
        name: the base name of the op's layers (``keras.applications`` style, e.g. ``normal_left1_0``).
        padded: ``padded(kernel_size)`` returns ``x`` padded for a stride-2 window, shared by all
            pools reading the same state (as ``keras.applications`` shares ``reduction_pad_1``).
        style: ``"keras"`` (keras.applications: stride-2 pools pad with explicit zeros; a pool
            output of another width gets ReLU-1x1 conv-BN) or ``"slim"`` (TF-slim and timm: TF
            "SAME" pools; that projection is 1x1 conv-BN without ReLU). Only pools differ.
    """
    spec = OP_SPECS.get(op)
    if spec is None:
        raise ValueError(f"Unknown op {op!r}. Valid ops are: {', '.join(OP_SPECS)}.")
    if style not in ("keras", "slim"):
        raise ValueError(f"style must be 'keras' or 'slim', not {style!r}.")
    return BUILDERS[spec.family](x, spec, filters, stride, cfg, name, padded, style)


class DropPathSchedule(keras.callbacks.Callback):
    """Ramps every :class:`ScheduledDropPath` linearly over training (paper A.5): progress is
    ``epoch / epochs`` at the start of each epoch (``keras_nasnet.train`` uses it; also reachable
    as ``keras_nasnet.train.DropPathSchedule``). Nested models are reached too: a NASNet used as
    the backbone of a larger model is ramped when the larger model is fitted.

    Example:
        >>> model.fit(ds, epochs=30, callbacks=[keras_nasnet.ops.DropPathSchedule(30)])
    """

    def __init__(self, epochs: int):
        super().__init__()
        self.epochs = epochs

    def on_epoch_begin(self, epoch, logs=None):
        from .recipe import set_drop_path_progress

        set_drop_path_progress(self.model, epoch / self.epochs)
