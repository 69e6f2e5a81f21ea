"""Model constructors: the general genotype factory and the named NASNet-A models.

``NASNetMobile`` and ``NASNetLarge`` are layer-for-layer the networks of
``keras.applications.NASNetMobile`` / ``NASNetLarge`` (same names, same weights in the same order), so
the official ImageNet weights load into them. Unlike ``keras.applications`` they also work with
``include_top=False`` at any static size >= 32 and with ``None`` spatial dimensions.
"""

from __future__ import annotations

import os

import keras
from keras import layers

from . import ops
from .cells import build_cell
from .genotypes import NASNET_A, Genotype, genotype_from

# Per-channel CIFAR-10 training-set mean and standard deviation (0..255 pixels), used by
# ``include_preprocessing`` so CIFAR models take raw pixels.
CIFAR10_MEAN = (125.307, 122.950, 113.865)
CIFAR10_STD = (62.993, 62.089, 66.705)

_MIN_SIZE = 32


def cell_width(cell) -> int:
    """Output channels of a cell, in units of its filter count F (``concat`` blocks count twice)."""
    from .genotypes import NUM_INPUTS

    width = 0
    for i in cell.concat:
        if i >= NUM_INPUTS and cell.blocks[i - NUM_INPUTS].combine == "concat":
            width += 2
        else:
            width += 1
    return width


def architecture_name(genotype, num_cells, penultimate_filters, stem, stem_filters, skip_reduction,
                      filter_multiplier) -> str | None:
    """Names the architecture if it is one the weight registry can hold weights for."""
    if genotype != NASNET_A or filter_multiplier != 2:
        return None
    if stem == "imagenet":
        if (num_cells, penultimate_filters, stem_filters, skip_reduction) == (4, 1056, 32, False):
            return "nasnet_mobile"
        if (num_cells, penultimate_filters, stem_filters, skip_reduction) == (6, 4032, 96, True):
            return "nasnet_large"
        return None
    if stem_filters == 3 * (penultimate_filters // 24) and not skip_reduction:
        return f"nasnet_cifar_{num_cells}@{penultimate_filters}"
    return None


def _input_shape(input_shape, input_tensor, default_size, include_top, weights_is_imagenet):
    if keras.backend.image_data_format() == "channels_first":
        raise ValueError(
            "keras_nasnet models support only the channels_last image data format. Call "
            "keras.backend.set_image_data_format('channels_last') (or set image_data_format in "
            "~/.keras/keras.json) before building the model."
        )
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        input_shape = (default_size, default_size, 3)
    input_shape = tuple(input_shape)
    if len(input_shape) != 3:
        raise ValueError(
            f"input_shape must be (height, width, channels); got {input_shape}."
        )
    h, w, c = input_shape
    if weights_is_imagenet and c != 3:
        raise ValueError(f"ImageNet weights expect 3 input channels; input_shape has {c}.")
    if c is None:
        raise ValueError("The channel dimension of input_shape must be known; got None.")
    for size in (h, w):
        if size is not None and size < _MIN_SIZE:
            raise ValueError(
                f"Input size must be at least {_MIN_SIZE}x{_MIN_SIZE}; got input_shape={input_shape}."
            )
    if include_top and weights_is_imagenet and (h, w) != (default_size, default_size):
        raise ValueError(
            f"With include_top=True and ImageNet weights the input must be "
            f"({default_size}, {default_size}, 3); got {input_shape}. Use include_top=False to "
            "build at another size (any static size >= 32, or None)."
        )
    return input_shape


def NASNet(
    genotype: Genotype | str = NASNET_A,
    num_cells: int = 4,
    penultimate_filters: int = 1056,
    stem: str = "imagenet",
    stem_filters: int | None = None,
    skip_reduction: bool = False,
    filter_multiplier: int = 2,
    include_top: bool = True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes: int = 1000,
    classifier_activation="softmax",
    name: str = "nasnet",
    drop_path_rate: float = 0.0,
    auxiliary_head: bool = False,
    dropout_rate: float = 0.0,
    bn_momentum: float = 0.9997,
    bn_epsilon: float = 1e-3,
    include_preprocessing: bool = False,
    default_size: int | None = None,
    bn_synchronized: bool = False,
    bn_fused: bool = True,
):
    """Builds a NASNet-space network from a cell genotype.

    The macro-architecture is the paper's: a stem, then ``num_cells`` normal cells, a reduction cell,
    ``num_cells`` normal cells, a reduction cell and ``num_cells`` normal cells; the width doubles
    (``filter_multiplier``) at each reduction.

    Args:
        genotype: a :class:`~keras_nasnet.genotypes.Genotype`, a registered name such as
            ``"AMOEBANET_A"``, a genotype JSON string or a path to a genotype JSON file.
        num_cells: N, the normal cells per stack.
        penultimate_filters: P, the channels of the last cell's output; the first stack's width is
            ``P / (filter_multiplier**2 * w)`` where ``w`` is the normal cell's output width in units of
            F (6 for NASNet-A, so F = P / 24).
        stem: ``"imagenet"`` (3x3/2 conv and two reduction cells, as keras.applications) or
            ``"cifar"`` (one 3x3 conv, as the paper's CIFAR models).
        stem_filters: channels of the stem convolution; defaults to 32 (imagenet) or 3F (cifar).
        skip_reduction: feed the first normal cell after a reduction with the input of the last
            normal cell before it (NASNet-A Large) instead of the reduction cell's input.
        filter_multiplier: width factor at each reduction.
        include_top: whether to add the global pooling and the ``predictions`` Dense layer.
        weights: ``None``, ``"imagenet"``, a weight-registry name or the path of a weights file.
        input_tensor: optional Keras tensor to use as the model input.
        input_shape: ``(height, width, 3)``; sizes may be ``None`` (run-time sizes), else >= 32.
        pooling: with ``include_top=False``: ``None``, ``"avg"`` or ``"max"``.
        classes: number of classes of the top.
        classifier_activation: activation of the ``predictions`` layer.
        name: model name.
        drop_path_rate: final ScheduledDropPath probability of the deepest cell (paper A.5); 0
            adds no layers.
        auxiliary_head: add the paper's auxiliary classifier (the model then has two outputs,
            ``[predictions, aux_predictions]``); needs a static input size and ``include_top``.
        dropout_rate: dropout before the ``predictions`` layer.
        bn_momentum: BatchNormalization momentum; 0.9997 matches keras.applications, short
            trainings need about 0.9.
        bn_epsilon: BatchNormalization epsilon.
        include_preprocessing: prepend per-channel CIFAR-10 normalisation so the model takes raw
            [0, 255] pixels.
        bn_synchronized: share BatchNormalization statistics across ``tf.distribute`` replicas
            (same weights; only multi-replica training differs).
        bn_fused: compute BatchNormalization with TensorFlow's fused kernel
            (:class:`~keras_nasnet.ops.FusedBatchNormalization`: same weights and results, faster
            training); ``False`` uses ``keras.layers.BatchNormalization``, so that a saved model
            of static size loads where keras_nasnet is not installed.
        default_size: input size used when ``input_shape`` is not given (224 imagenet, 32 cifar).

    Returns:
        A ``keras.Model``.
    """
    from . import weights as weights_lib

    genotype = genotype_from(genotype)
    if stem not in ("imagenet", "cifar"):
        raise ValueError(f"stem must be 'imagenet' or 'cifar', not {stem!r}.")
    if not isinstance(num_cells, int) or num_cells < 1:
        raise ValueError(f"num_cells must be a positive integer; got {num_cells!r}.")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max'; got {pooling!r}.")
    if auxiliary_head and not include_top:
        raise ValueError("auxiliary_head=True needs include_top=True (it is a second classifier).")
    if not 0 <= drop_path_rate < 1:
        raise ValueError(f"drop_path_rate must be in [0, 1); got {drop_path_rate}.")
    width = cell_width(genotype.normal)
    unit = width * filter_multiplier**2
    if penultimate_filters % unit or (stem == "imagenet" and (penultimate_filters // unit) % filter_multiplier**2):
        need = unit * (filter_multiplier**2 if stem == "imagenet" else 1)
        raise ValueError(
            f"penultimate_filters={penultimate_filters} must be a multiple of {need} for this "
            f"genotype (normal-cell width {width}F, filter_multiplier {filter_multiplier}"
            + (", and the two stem cells' widths F/4 and F/2" if stem == "imagenet" else "")
            + f"); for example {max(need, penultimate_filters // need * need)}."
        )
    filters = penultimate_filters // unit
    if stem_filters is None:
        stem_filters = 32 if stem == "imagenet" else 3 * filters
    if default_size is None:
        default_size = 224 if stem == "imagenet" else 32
    arch = architecture_name(genotype, num_cells, penultimate_filters, stem, stem_filters,
                             skip_reduction, filter_multiplier)
    spec = weights_lib.resolve(weights, arch, include_top, classes, classifier_activation)
    input_shape = _input_shape(input_shape, input_tensor, default_size, include_top,
                               spec is not None and spec.preprocessing == "imagenet")
    if auxiliary_head and None in input_shape[:2]:
        raise ValueError("auxiliary_head=True needs a static input_shape (no None sizes).")

    if input_tensor is None:
        inputs = layers.Input(shape=input_shape, name="input_layer")
    elif not keras.backend.is_keras_tensor(input_tensor):
        inputs = layers.Input(tensor=input_tensor, shape=input_shape, name="input_layer")
    else:
        inputs = input_tensor
    cfg = ops.BNConfig(bn_momentum, bn_epsilon, bn_synchronized, bn_fused)
    # Under mixed precision keep the classifiers in float32, so probabilities and losses are too.
    head_dtype = "float32" if keras.mixed_precision.global_policy().compute_dtype != "float32" else None

    x = inputs
    if include_preprocessing:
        x = layers.Rescaling(
            scale=[1.0 / s for s in CIFAR10_STD],
            offset=[-m / s for m, s in zip(CIFAR10_MEAN, CIFAR10_STD)],
            name="rescaling",
        )(x)

    total_cells = 3 * num_cells + 2 + (2 if stem == "imagenet" else 0)
    counter = [0]

    def cell(kind, ip, ip_level, p, p_level, f, block_id):
        counter[0] += 1
        rate = drop_path_rate * counter[0] / total_cells
        c = genotype.normal if kind == "normal" else genotype.reduction
        out = build_cell(c, kind, ip, ip_level, p, p_level, f, block_id, cfg, rate)
        return out, ip_level + (kind == "reduction"), ip, ip_level

    if stem == "imagenet":
        x = layers.Conv2D(stem_filters, 3, strides=2, padding="valid", use_bias=False,
                          kernel_initializer="he_normal", name="stem_conv1")(x)
        x = ops.bn(x, cfg, "stem_bn1")
        xl, p, pl = 0, None, None
        x, xl, p, pl = cell("reduction", x, xl, p, pl, filters // filter_multiplier**2, "stem_1")
        x, xl, p, pl = cell("reduction", x, xl, p, pl, filters // filter_multiplier, "stem_2")
    else:
        x = layers.Conv2D(stem_filters, 3, padding="same", use_bias=False,
                          kernel_initializer="he_normal", name="stem_conv1")(x)
        x = ops.bn(x, cfg, "stem_bn1")
        xl, p, pl = 0, x, 0

    aux_input = None
    f = filters
    for stack in range(3):
        for i in range(num_cells):
            # keras.applications numbers normal cells 0..N-1, N+1..2N, 2N+1..3N.
            x, xl, p, pl = cell("normal", x, xl, p, pl, f, str(stack * num_cells + i + (stack > 0)))
        if stack == 1:
            aux_input = x
        if stack < 2:
            f *= filter_multiplier
            x, xl, p0, p0l = cell("reduction", x, xl, p, pl, f, f"reduce_{(stack + 1) * num_cells}")
            if not skip_reduction:
                p, pl = p0, p0l

    x = ops.relu(x, name="final_relu")
    if include_top:
        x = layers.GlobalAveragePooling2D(name="global_average_pooling")(x)
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        outputs = layers.Dense(classes, activation=classifier_activation, name="predictions",
                               dtype=head_dtype)(x)
        if auxiliary_head:
            outputs = [outputs, _aux_head(aux_input, classes, classifier_activation, cfg, head_dtype)]
    elif pooling == "avg":
        outputs = layers.GlobalAveragePooling2D(name="global_average_pooling")(x)
    elif pooling == "max":
        outputs = layers.GlobalMaxPooling2D(name="global_max_pooling")(x)
    else:
        outputs = x

    if input_tensor is not None:
        model_inputs = keras.utils.get_source_inputs(input_tensor)
    else:
        model_inputs = inputs
    model = keras.Model(model_inputs, outputs, name=name)
    weights_lib.attach_architecture(model, weights_lib.architecture_record(
        genotype, num_cells=num_cells, penultimate_filters=penultimate_filters, stem=stem,
        stem_filters=stem_filters, skip_reduction=skip_reduction, filter_multiplier=filter_multiplier,
        include_top=include_top, classes=classes, auxiliary_head=auxiliary_head,
        include_preprocessing=include_preprocessing, bn_epsilon=bn_epsilon))
    if spec is not None:
        weights_lib.load_into(model, spec)
    return model


def _aux_head(x, classes, activation, cfg, dtype=None):
    """The paper's auxiliary classifier (TF-slim ``_build_aux_head``)."""
    x = ops.relu(x, name="aux_relu_1")
    x = layers.AveragePooling2D(5, strides=3, padding="valid", name="aux_pool")(x)
    x = layers.Conv2D(128, 1, use_bias=False, name="aux_conv_1")(x)
    x = ops.bn(x, cfg, "aux_bn_1")
    x = ops.relu(x, name="aux_relu_2")
    x = layers.Conv2D(768, tuple(x.shape[1:3]), use_bias=False, name="aux_conv_2")(x)
    x = ops.bn(x, cfg, "aux_bn_2")
    x = ops.relu(x, name="aux_relu_3")
    x = layers.Flatten(name="aux_flatten")(x)
    return layers.Dense(classes, activation=activation, name="aux_predictions", dtype=dtype)(x)


def NASNetMobile(
    input_shape=None,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="nasnet_mobile",
    **kwargs,
):
    """NASNet-A Mobile (4 @ 1056), layer-for-layer ``keras.applications.NASNetMobile``.

    Arguments as in ``keras.applications.NASNetMobile``; ``weights="imagenet"`` downloads (once) and
    verifies the official file. Extra keyword arguments (``drop_path_rate``, ``bn_momentum``, ...) go
    to :func:`NASNet`. Inputs are expected in [-1, 1]: see :func:`keras_nasnet.preprocess_input`.

    Example:
        >>> model = NASNetMobile(weights=None)
    """
    if not include_top and input_shape is None and input_tensor is None:
        input_shape = (224, 224, 3)
    return NASNet(
        NASNET_A, num_cells=4, penultimate_filters=1056, stem="imagenet", stem_filters=32,
        skip_reduction=False, include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name, default_size=224, **kwargs,
    )


def NASNetLarge(
    input_shape=None,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="nasnet_large",
    **kwargs,
):
    """NASNet-A Large (6 @ 4032), layer-for-layer ``keras.applications.NASNetLarge``.

    Arguments as in ``keras.applications.NASNetLarge``. With ``include_top=False`` and no
    ``input_shape`` the input is ``(None, None, 3)``, which (unlike keras.applications) keeps the
    weight layout, so ImageNet weights load and any run-time size >= 32 works.

    Example:
        >>> model = NASNetLarge(weights=None, include_top=False, pooling="avg")
    """
    if not include_top and input_shape is None and input_tensor is None:
        input_shape = (None, None, 3)
    return NASNet(
        NASNET_A, num_cells=6, penultimate_filters=4032, stem="imagenet", stem_filters=96,
        skip_reduction=True, include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name, default_size=331, **kwargs,
    )


def NASNetCIFAR(
    num_cells: int | None = None,
    penultimate_filters: int | None = None,
    genotype: Genotype | str = NASNET_A,
    include_top=True,
    weights=None,
    input_tensor=None,
    input_shape=None,
    pooling=None,
    classes=10,
    classifier_activation="softmax",
    name="nasnet_cifar",
    bn_momentum=0.9,
    bn_epsilon=1e-5,
    include_preprocessing=True,
    **kwargs,
):
    """The paper's CIFAR-10 network (NASNet-A 6 @ 768 by default, 3.3M parameters).

    A 3x3 stem conv with 3F filters, then N normal cells, a reduction, N, a reduction, N. It takes
    raw [0, 255] pixels (``include_preprocessing=True`` normalises them inside the model).
    ``weights="cifar10"`` loads the weights this project trained for the matching ``N @ P`` (see
    ``python -m keras_nasnet.weights list``). BatchNormalization defaults (momentum 0.9, epsilon
    1e-5) follow TF-slim's CIFAR configuration.

    ``num_cells`` and ``penultimate_filters`` default to 6 and 768, or, with ``weights`` naming
    registered CIFAR weights, to the architecture those weights were trained for.

    Example:
        >>> model = NASNetCIFAR(num_cells=2, penultimate_filters=384)
    """
    if num_cells is None and penultimate_filters is None and isinstance(weights, str):
        from . import weights as weights_lib

        for spec in weights_lib.registry().values():
            if weights in (spec.name, spec.dataset) and spec.architecture.startswith("nasnet_cifar_"):
                num_cells, penultimate_filters = map(int, spec.architecture[len("nasnet_cifar_"):].split("@"))
                break
    num_cells = 6 if num_cells is None else num_cells
    penultimate_filters = 768 if penultimate_filters is None else penultimate_filters
    return NASNet(
        genotype, num_cells=num_cells, penultimate_filters=penultimate_filters, stem="cifar",
        include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name, bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon, include_preprocessing=include_preprocessing, default_size=32,
        **kwargs,
    )
