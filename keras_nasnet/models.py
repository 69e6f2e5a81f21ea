"""Model constructors: the general genotype factory and the named NASNet-A and PNASNet-5 models.

``NASNetMobile`` and ``NASNetLarge`` are layer-for-layer the networks of
``keras.applications.NASNetMobile`` / ``NASNetLarge`` (same names, same weights in the same order), so
the official ImageNet weights load into them. Unlike ``keras.applications`` they also work with
``include_top=False`` at any static size >= 32 and with ``None`` spatial dimensions.
``PNASNet5Large`` is the same factory with PNASNet's cell counts and TF-slim's op conventions; it
computes what timm's ``pnasnet5large`` computes, op for op.
"""

from __future__ import annotations

import dataclasses
import numbers

import keras
from keras import layers

from . import ops
from .cells import build_cell
from .genotypes import NASNET_A, PNASNET_5, Genotype, genotype_from

# Per-channel CIFAR-10 training-set mean and standard deviation (0..255 pixels), used by
# ``include_preprocessing`` so CIFAR models take raw pixels.
CIFAR10_MEAN = (125.307, 122.950, 113.865)
CIFAR10_STD = (62.993, 62.089, 66.705)

_MIN_SIZE = 32

#: ``penultimate_filters`` aimed at when it is not given (the nearest valid value is used).
DEFAULT_PENULTIMATE_FILTERS = 1056
#: Op conventions (see :func:`NASNet`'s ``op_style``).
OP_STYLES = ("keras", "slim")


def cell_width(cell) -> int:
    """Output channels of a cell in units of its filter count F: ``cell.width`` (kept as a
    function for existing callers)."""
    return cell.width


def architecture_name(genotype, num_cells, penultimate_filters, stem, stem_filters, skip_reduction,
                      filter_multiplier, op_style="keras") -> str | None:
    """Names the architecture if it is one the weight registry can hold weights for."""
    if (genotype == PNASNET_5 and not isinstance(num_cells, numbers.Integral)
            and tuple(num_cells) == (4, 3, 3) and penultimate_filters == 4320 and stem == "imagenet"
            and stem_filters == 96 and not skip_reduction and filter_multiplier == 2
            and op_style == "slim"):
        return "pnasnet5_large"
    if (genotype != NASNET_A or filter_multiplier != 2 or op_style != "keras"
            or not isinstance(num_cells, numbers.Integral)):
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
            "the keras.json of your Keras folder: $KERAS_HOME, by default ~/.keras) before "
            "building the model."
        )
    if input_shape is None and input_tensor is not None:
        input_shape = tuple(input_tensor.shape[1:])
    if input_shape is None:
        input_shape = (default_size, default_size, 3)
    # tuple("331") would read as three sizes; tuple(32) fails with "not iterable"
    if isinstance(input_shape, (str, bytes)) or not hasattr(input_shape, "__iter__"):
        raise ValueError(f"input_shape must be (height, width, channels), e.g. (32, 32, 3); "
                         f"got {input_shape!r}.")
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
    if isinstance(c, bool) or not isinstance(c, numbers.Integral) or c < 1:
        raise ValueError(
            f"The channel dimension of input_shape must be a positive integer (3 for RGB); got "
            f"input_shape={input_shape}."
        )
    for size in (h, w):
        if size is not None and (isinstance(size, bool) or not isinstance(size, numbers.Integral)):
            raise ValueError(f"input_shape's height and width must be integers or None (any size); "
                             f"got input_shape={input_shape}.")
        if size is not None and size < _MIN_SIZE:
            # (3, 224, 224) is the usual slip: a channels-first shape from PyTorch code.
            hint = (f" The models take channels last, (height, width, channels): "
                    f"({w}, {c}, {h})?" if h in (1, 3) and c not in (1, 3) else "")
            raise ValueError(
                f"Input size must be at least {_MIN_SIZE}x{_MIN_SIZE}; got input_shape={input_shape}.{hint}"
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
    num_cells: int | tuple[int, int, int] = 4,
    penultimate_filters: int | None = None,
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
    op_style: str = "keras",
):
    """Builds a NASNet-space network from a cell genotype.

    The macro-architecture is the paper's: a stem, then ``num_cells`` normal cells, a reduction cell,
    ``num_cells`` normal cells, a reduction cell and ``num_cells`` normal cells; the width doubles
    (``filter_multiplier``) at each reduction. The same builder makes PNASNet-5 (see
    :func:`PNASNet5Large`): three stacks of unequal length and TF-slim's op conventions.

    Args:
        genotype: a :class:`~keras_nasnet.genotypes.Genotype`, a registered name such as
            ``"AMOEBANET_A"``, a genotype JSON string or a path to a genotype JSON file.
        num_cells: N, the normal cells per stack, or three counts ``(N1, N2, N3)``, one per stack
            (PNASNet-5 Large: ``(4, 3, 3)``). With an int, cells are named as keras.applications
            names them (normal cells ``0..N-1``, ``reduce_N``, ``N+1..2N``, ``reduce_2N``, ...);
            with three counts, as TF-slim and timm number them: every cell after the stem in order,
            reductions included (``0..3``, reduction ``4``, ``5..7``, reduction ``8``, ...).
        penultimate_filters: P, the channels of the last cell's output; the first stack's width is
            ``P / (filter_multiplier**2 * w)`` where ``w`` is the normal cell's output width in units of
            F (6 for NASNet-A, so F = P / 24). Valid values are the multiples of a step that depends
            on the genotype (a wrong one is refused, naming the nearest valid ones). When not given,
            the valid value nearest to 1056 (``DEFAULT_PENULTIMATE_FILTERS``; 1056 itself for
            NASNet-A), so that any genotype, a searched one included, builds with the defaults.
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
        drop_path_rate: ScheduledDropPath probability of the deepest cell (shallower cells get
            less, linearly with depth); 0 adds no layers. Applied in full from the first step;
            pass ``keras_nasnet.ops.DropPathSchedule(epochs)`` to ``fit`` to ramp it from 0 as
            the paper does (A.5).
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
        op_style: where keras.applications and TF-slim build an op differently. ``"keras"`` (the
            NASNet-A weights need it): a stride-2 pool zero-pads its input explicitly, so padding
            zeros enter its max and its average; a pool whose input is not F wide is followed by
            ReLU-1x1 conv-BN. ``"slim"`` (TF-slim and timm, as PNASNet's weights need): stride-2
            pools pad as TF "SAME" does (padding never wins a max and is left out of an average),
            and that projection is a 1x1 conv-BN without ReLU. Convolutions are the same in both.

    Returns:
        A ``keras.Model``.
    """
    from . import weights as weights_lib

    genotype = genotype_from(genotype)
    num_cells, penultimate_filters, filter_multiplier, stem_filters = _check_arguments(
        genotype, num_cells, penultimate_filters, stem, stem_filters, filter_multiplier,
        skip_reduction, include_top, pooling, classes, auxiliary_head, drop_path_rate, dropout_rate,
        op_style)
    if isinstance(bn_momentum, bool) or not isinstance(bn_momentum, numbers.Real) or not 0 <= bn_momentum <= 1:
        raise ValueError(f"bn_momentum must be in [0, 1] (0.9997 as keras.applications, about 0.9 for short "
                         f"trainings); got {bn_momentum!r}.")
    if isinstance(bn_epsilon, bool) or not isinstance(bn_epsilon, numbers.Real) or not bn_epsilon > 0:
        raise ValueError(f"bn_epsilon must be a positive number (1e-3 as keras.applications); got {bn_epsilon!r}.")
    filters = penultimate_filters // (genotype.normal.width * filter_multiplier**2)
    if stem_filters is None:
        stem_filters = 32 if stem == "imagenet" else 3 * filters
    if default_size is None:
        default_size = 224 if stem == "imagenet" else 32
    arch = architecture_name(genotype, num_cells, penultimate_filters, stem, stem_filters,
                             skip_reduction, filter_multiplier, op_style)
    spec = weights_lib.resolve(weights, arch, include_top, classes, classifier_activation)
    input_shape = _input_shape(input_shape, input_tensor, default_size, include_top,
                               spec is not None and spec.preprocessing == "imagenet")
    if include_preprocessing and input_shape[2] != 3:
        raise ValueError(
            f"include_preprocessing=True normalises RGB pixels with CIFAR-10's three channel means, "
            f"but input_shape={input_shape} has {input_shape[2]} channel(s): pass "
            "include_preprocessing=False and normalise the inputs yourself.")
    if auxiliary_head:
        _check_aux_input_size(input_shape, stem)
    # Before the (possibly long) build, so that a missing download fails at once.
    weights_path = None if spec is None else weights_lib.local_path(spec)

    if input_tensor is None:
        inputs = layers.Input(shape=input_shape, name="input_layer")
    elif not keras.backend.is_keras_tensor(input_tensor):
        inputs = layers.Input(tensor=input_tensor, shape=input_shape, name="input_layer")
    else:
        inputs = input_tensor
    cfg = ops.BNConfig(bn_momentum, bn_epsilon, bn_synchronized, bn_fused)
    x = inputs
    if include_preprocessing:
        x = layers.Rescaling(
            scale=[1.0 / s for s in CIFAR10_STD],
            offset=[-m / s for m, s in zip(CIFAR10_MEAN, CIFAR10_STD)],
            name="rescaling",
        )(x)
    x = _stem(x, stem, stem_filters, cfg)
    plan = cell_plan(stem, num_cells, filters, filter_multiplier, skip_reduction)
    x, aux_input = _cells(x, plan, genotype, cfg, drop_path_rate, op_style)
    x = ops.relu(x, name="final_relu")
    outputs = _top(x, aux_input if auxiliary_head else None, include_top, pooling, classes,
                   classifier_activation, dropout_rate, cfg)

    if input_tensor is not None:
        model_inputs = keras.utils.get_source_inputs(input_tensor)
    else:
        model_inputs = inputs
    model = keras.Model(model_inputs, outputs, name=name)
    weights_lib.attach_architecture(model, weights_lib.architecture_record(
        genotype, num_cells=num_cells, penultimate_filters=penultimate_filters, stem=stem,
        stem_filters=stem_filters, skip_reduction=skip_reduction, filter_multiplier=filter_multiplier,
        include_top=include_top, classes=classes, auxiliary_head=auxiliary_head,
        include_preprocessing=include_preprocessing, bn_epsilon=bn_epsilon, op_style=op_style))
    if spec is not None:
        weights_lib.load_into(model, spec, weights_path)
    return model


def _count(value, name: str, minimum: int = 1, hint: str = "") -> int:
    """``value`` as an ``int`` if it is an integer (Python or NumPy, not a bool) >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        kind = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name} must be {kind}; got {value!r} ({type(value).__name__}).{hint}")
    return int(value)


def _num_cells(num_cells):
    """``num_cells`` as an ``int`` or a tuple of three ``int`` counts (see :func:`NASNet`)."""
    if isinstance(num_cells, (list, tuple)):
        if len(num_cells) != 3:
            raise ValueError(
                f"num_cells must be an integer or three integers (normal cells per stack, e.g. "
                f"(4, 3, 3)); got {num_cells!r}.")
        return tuple(_count(n, "each of num_cells' three counts") for n in num_cells)
    return _count(num_cells, "num_cells", hint=" Or pass three counts, one per stack.")


def stack_counts(num_cells) -> tuple[int, int, int]:
    """The normal cells of each of the three stacks for a ``num_cells`` argument."""
    return (num_cells,) * 3 if isinstance(num_cells, numbers.Integral) else tuple(num_cells)


def _nearest_multiple(target: int, step: int) -> int:
    """The positive multiple of ``step`` nearest to ``target`` (halfway goes up)."""
    return max(step, (target + step // 2) // step * step)


def _check_arguments(genotype, num_cells, penultimate_filters, stem, stem_filters, filter_multiplier,
                     skip_reduction, include_top, pooling, classes, auxiliary_head, drop_path_rate,
                     dropout_rate, op_style="keras"):
    """Checks the arguments that need no input shape or weights, before anything is built.

    Returns ``num_cells`` (an int or three), and ``penultimate_filters``, ``filter_multiplier``,
    ``stem_filters`` as Python ints; a ``penultimate_filters`` of ``None`` becomes the valid value
    nearest to :data:`DEFAULT_PENULTIMATE_FILTERS`.
    """
    if stem not in ("imagenet", "cifar"):
        raise ValueError(f"stem must be 'imagenet' or 'cifar', not {stem!r}.")
    if op_style not in OP_STYLES:
        raise ValueError(f"op_style must be 'keras' or 'slim', not {op_style!r}.")
    num_cells = _num_cells(num_cells)
    filter_multiplier = _count(filter_multiplier, "filter_multiplier",
                               hint=" It is the width factor at each reduction (2 in the paper).")
    if penultimate_filters is None:
        step = _penultimate_step(genotype, stem, num_cells, filter_multiplier, skip_reduction)
        penultimate_filters = _nearest_multiple(DEFAULT_PENULTIMATE_FILTERS, step)
    penultimate_filters = _count(penultimate_filters, "penultimate_filters",
                                 hint=" It is the channel count of the last cell's output.")
    if stem_filters is not None:
        stem_filters = _count(stem_filters, "stem_filters")
    if include_top:
        classes = _count(classes, "classes", hint=" It is the width of the predictions layer.")
    if include_top not in (True, False):  # a string such as "no" would silently mean True
        raise ValueError(f"include_top must be True or False; got {include_top!r}.")
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max'; got {pooling!r}.")
    if auxiliary_head and not include_top:
        raise ValueError("auxiliary_head=True needs include_top=True (it is a second classifier).")
    for rate, rate_name in ((drop_path_rate, "drop_path_rate"), (dropout_rate, "dropout_rate")):
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"{rate_name} must be a number in [0, 1) (0 turns it off); got {rate!r}.")
    step = _penultimate_step(genotype, stem, num_cells, filter_multiplier, skip_reduction)
    if penultimate_filters % step:
        width = genotype.normal.width
        below, above = penultimate_filters // step * step, (penultimate_filters // step + 1) * step
        nearest = f"{below} or {above}" if below else f"{above}"
        raise ValueError(
            f"penultimate_filters={penultimate_filters} must be a multiple of {step} for this "
            f"genotype and stem: the last cell has {width} * filter_multiplier**2 * F channels (the "
            f"normal cell's output is {width}F wide) for a first-stack width F that must be whole"
            + (", divisible by filter_multiplier**2 (the stem cells' width)" if stem == "imagenet" else "")
            + " and even where a factorized reduction halves it. "
            + (f"The nearest valid values are {nearest}." if below else f"The nearest valid value is {nearest}.")
        )
    return num_cells, penultimate_filters, filter_multiplier, stem_filters


def _penultimate_step(genotype, stem, num_cells, filter_multiplier, skip_reduction) -> int:
    """The smallest valid ``penultimate_filters``; the valid ones are exactly its multiples.

    ``penultimate_filters = w * m**2 * F`` (``w`` the normal cell's output width in units of F).
    F must make every cell's width whole (the ImageNet stem cells have ``F / m**2``) and even
    wherever a cell halves it for a factorized reduction; both are divisibility conditions, so the
    valid F are the multiples of the smallest one.
    """
    m = filter_multiplier
    for f in range(1, 2 * m**2 + 1):  # f = 2 * m**2 always qualifies
        if stem == "imagenet" and f % m**2:
            continue
        plan = cell_plan(stem, num_cells, f, m, skip_reduction)
        # A cell whose h_(i-1) has a higher resolution halves its width in a factorized reduction.
        halved = [c.filters for c in plan if c.p_level is not None and c.p_level != c.level]
        if all(w % 2 == 0 for w in halved):
            return genotype.normal.width * m**2 * f
    raise AssertionError("unreachable: f = 2 * filter_multiplier**2 always qualifies")


def _check_aux_input_size(input_shape, stem):
    """The auxiliary head pools 5x5 (stride 3, valid) over the last reduction cell's input."""
    def aux_size(size):
        if stem == "imagenet":
            size = (size - 3) // 2 + 1  # 3x3/2 valid stem convolution
            return -(-size // 8)  # two stem reductions and the first reduction cell
        return -(-size // 2)  # the first reduction cell

    sizes = input_shape[:2]
    if None in sizes:
        raise ValueError("auxiliary_head=True needs a static input_shape (no None sizes).")
    if min(aux_size(s) for s in sizes) < 5:
        minimum = next(s for s in range(_MIN_SIZE, 10_000) if aux_size(s) >= 5)
        raise ValueError(
            f"auxiliary_head=True needs an input of at least {minimum}x{minimum} with "
            f"stem={stem!r}: the head pools 5x5 over the input of the last reduction cell, which is "
            f"{aux_size(sizes[0])}x{aux_size(sizes[1])} for input_shape={tuple(input_shape)}. Use "
            "a larger input or auxiliary_head=False."
        )


def _stem(x, stem, stem_filters, cfg):
    """The stem convolution (3x3/2 valid for ImageNet, 3x3 same for CIFAR) and its BN."""
    if stem == "imagenet":
        x = layers.Conv2D(stem_filters, 3, strides=2, padding="valid", use_bias=False,
                          kernel_initializer="he_normal", name="stem_conv1")(x)
    else:
        x = layers.Conv2D(stem_filters, 3, padding="same", use_bias=False,
                          kernel_initializer="he_normal", name="stem_conv1")(x)
    return ops.bn(x, cfg, "stem_bn1")


@dataclasses.dataclass(frozen=True)
class PlannedCell:
    """One cell of the network, in build order, and where its inputs come from.

    Cells are numbered by their position in the plan; ``-1`` is the stem convolution.
    """

    kind: str  # "normal" or "reduction"
    filters: int  # the cell's width F
    block_id: str  # the suffix of the cell's layer names
    level: int  # stride-2 reductions applied to h_i (the stem convolution's output has level 0)
    ip: int  # the cell whose output is h_i
    p: int | None  # the cell whose output is h_(i-1); None: no h_(i-1) (the ImageNet stem's first)
    p_level: int | None  # stride-2 reductions applied to h_(i-1)


def cell_plan(stem, num_cells, filters, filter_multiplier=2, skip_reduction=False) -> list[PlannedCell]:
    """Every cell in build order, with its inputs: the one derivation of the network's cells.

    The ImageNet stem's two reduction cells (widths ``F / m**2`` and ``F / m``), then three stacks
    of normal cells (``num_cells``: one count for all, or three) with a reduction cell between
    stacks, the width times ``filter_multiplier`` (m) at each. Each cell reads the previous cell's
    output as h_i and the one before as h_(i-1); the ImageNet stem's first cell has no h_(i-1)
    (keras.applications and TF-slim use h_i unadjusted), the CIFAR stem's first cell reads the
    stem output as both. With ``skip_reduction`` the cell after a reduction keeps the reduction's
    own h_(i-1) (NASNet-A Large).
    """
    m = filter_multiplier
    counts = stack_counts(num_cells)
    slim_names = not isinstance(num_cells, numbers.Integral)
    specs = []  # (kind, filters, block_id, keeps_previous)
    if stem == "imagenet":
        specs += [("reduction", filters // m**2, "stem_1", False),
                  ("reduction", filters // m, "stem_2", False)]
    f, number = filters, 0
    for stack, n in enumerate(counts):
        before = sum(counts[:stack])
        for i in range(n):
            # keras.applications numbers normal cells 0..N-1, N+1..2N, 2N+1..3N; TF-slim counts on.
            specs.append(("normal", f, str(number if slim_names else before + i + (stack > 0)), False))
            number += 1
        if stack < 2:
            f *= m
            specs.append(("reduction", f, str(number) if slim_names else f"reduce_{before + n}",
                          skip_reduction))
            number += 1
    plan = []
    ip, level = -1, 0
    p, p_level = (None, None) if stem == "imagenet" else (-1, 0)
    for position, (kind, width, block_id, keeps_previous) in enumerate(specs):
        plan.append(PlannedCell(kind, width, block_id, level, ip, p, p_level))
        if not keeps_previous:
            p, p_level = ip, level
        ip, level = position, level + (kind == "reduction")
    return plan


def _cells(x, plan, genotype, cfg, drop_path_rate, op_style="keras"):
    """Builds the planned cells on the stem output ``x``.

    Returns the last cell's output and the input of the last reduction cell (what the auxiliary
    head reads). ScheduledDropPath probabilities grow linearly with depth, as in TF-slim.
    """
    outputs = []

    def source(i):
        return x if i == -1 else outputs[i]

    aux_input = None
    for k, planned in enumerate(plan, start=1):
        ip = source(planned.ip)
        if planned.kind == "reduction":
            aux_input = ip
        cell = genotype.normal if planned.kind == "normal" else genotype.reduction
        p = None if planned.p is None else source(planned.p)
        outputs.append(build_cell(cell, planned.kind, ip, planned.level, p, planned.p_level,
                                  planned.filters, planned.block_id, cfg, drop_path_rate * k / len(plan),
                                  op_style=op_style))
    return outputs[-1], aux_input


def _top(x, aux_input, include_top, pooling, classes, classifier_activation, dropout_rate, cfg):
    """The classifier (and auxiliary classifier when ``aux_input`` is given), or the pooling."""
    if include_top:
        # Under mixed precision keep the classifiers in float32, so probabilities and losses are.
        head_dtype = ("float32" if keras.mixed_precision.global_policy().compute_dtype in ("float16", "bfloat16")
                      else None)
        x = layers.GlobalAveragePooling2D(name="global_average_pooling")(x)
        if dropout_rate:
            x = layers.Dropout(dropout_rate, name="top_dropout")(x)
        outputs = layers.Dense(classes, activation=classifier_activation, name="predictions",
                               dtype=head_dtype)(x)
        if aux_input is not None:
            outputs = [outputs, _aux_head(aux_input, classes, classifier_activation, cfg, head_dtype)]
        return outputs
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="global_average_pooling")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="global_max_pooling")(x)
    return x


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


# What NASNetMobile and NASNetLarge fix (PNASNet5Large fixes PNASNET5_LARGE's keys).
_NASNET_A_FIXED = ("genotype", "num_cells", "penultimate_filters", "stem", "stem_filters",
                   "skip_reduction", "default_size")


def _refuse_fixed(constructor: str, what: str, kwargs: dict, names=_NASNET_A_FIXED) -> None:
    """Refuses keyword arguments that a named architecture fixes (``NASNetMobile(genotype=...)``
    gave Python's ``got multiple values for argument 'genotype'``)."""
    fixed = sorted(k for k in names if k in kwargs)
    if fixed:
        raise TypeError(
            f"{constructor} is {what}: {', '.join(fixed)} cannot be changed. For another genotype or "
            f"size use NASNet(genotype, num_cells=..., penultimate_filters=..., stem=\"imagenet\", ...).")


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
    _refuse_fixed("NASNetMobile", "NASNet-A (4 @ 1056)", kwargs)
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
    _refuse_fixed("NASNetLarge", "NASNet-A (6 @ 4032)", kwargs)
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
    """The paper's CIFAR-10 network (NASNet-A 6 @ 768 by default: 3.37M parameters, the paper's
    "3.3M").

    A 3x3 stem conv with 3F filters, then N normal cells, a reduction, N, a reduction, N. It takes
    raw [0, 255] pixels (``include_preprocessing=True`` normalises them inside the model).
    ``weights="cifar10"`` loads the weights this project trained for the matching ``N @ P`` (see
    ``python -m keras_nasnet.weights list``). BatchNormalization defaults (momentum 0.9, epsilon
    1e-5) follow TF-slim's CIFAR configuration.

    ``num_cells`` and ``penultimate_filters`` default to 6 and 768, or, with ``weights`` naming
    registered CIFAR weights, to the architecture those weights were trained for. For a genotype
    where 768 is not valid (its normal cell is not 6F wide), the valid value nearest to 768.

    Example:
        >>> model = NASNetCIFAR(num_cells=2, penultimate_filters=384)
    """
    _refuse_fixed("NASNetCIFAR", "the CIFAR network (a 3x3 stem conv, 32x32 inputs)", kwargs,
                  names=("stem", "default_size"))
    if (num_cells is None or penultimate_filters is None) and isinstance(weights, str):
        from . import weights as weights_lib

        # The size left out is the weights' (num_cells=1 with weights="cifar10" means 1@384, the
        # registered 1-cell network, not 1@768, which has no weights).
        for spec in weights_lib.registry().values():
            given = {"num_cells": num_cells, "penultimate_filters": penultimate_filters}
            if (weights in (spec.name, spec.dataset) and spec.model == "NASNetCIFAR"
                    and all(v is None or spec.arguments.get(k) == v for k, v in given.items())):
                num_cells = spec.arguments.get("num_cells")
                penultimate_filters = spec.arguments.get("penultimate_filters")
                break
    num_cells = 6 if num_cells is None else num_cells
    if penultimate_filters is None:
        genotype = genotype_from(genotype)
        m = _count(kwargs.get("filter_multiplier", 2), "filter_multiplier")
        step = _penultimate_step(genotype, "cifar", _num_cells(num_cells), m,
                                 kwargs.get("skip_reduction", False))
        penultimate_filters = _nearest_multiple(768, step)
    return NASNet(
        genotype, num_cells=num_cells, penultimate_filters=penultimate_filters, stem="cifar",
        include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name, bn_momentum=bn_momentum,
        bn_epsilon=bn_epsilon, include_preprocessing=include_preprocessing, default_size=32,
        **kwargs,
    )


#: PNASNet-5 Large's arguments to :func:`NASNet` (TF-slim ``large_imagenet_config``: 12 cells,
#: reductions at cells 4 and 8, 216 filters in the first stack, stem multiplier 3).
PNASNET5_LARGE = dict(genotype=PNASNET_5, num_cells=(4, 3, 3), penultimate_filters=4320,
                      stem="imagenet", stem_filters=96, skip_reduction=False, filter_multiplier=2,
                      op_style="slim")


def PNASNet5Large(
    input_shape=None,
    include_top=True,
    weights="imagenet",
    input_tensor=None,
    pooling=None,
    classes=1000,
    classifier_activation="softmax",
    name="pnasnet5_large",
    **kwargs,
):
    """PNASNet-5 Large (Liu et al. 2018; 12 cells @ 4320, 86M parameters, 331x331 inputs).

    Built by :func:`NASNet` from :data:`~keras_nasnet.genotypes.PNASNET_5`: the ImageNet stem (a
    3x3/2 valid conv with 96 filters and two stem cells), then 4 normal cells at F = 216, a
    reduction, 3 at 432, a reduction, 3 at 864 (``num_cells=(4, 3, 3)``); the one PNASNet cell
    serves for both (with stride 2 at reductions); TF-slim's op conventions (``op_style="slim"``).
    This is TF-slim's ``build_pnasnet_large`` and timm's ``pnasnet5large`` op for op (timm's own
    names map one to one onto these layers, see :mod:`keras_nasnet.weights.timm`), without the
    auxiliary head.

    Arguments as in ``keras.applications`` models. ``weights="imagenet"`` downloads timm's
    ``pnasnet5large.tf_in1k`` file (TF-slim's ImageNet checkpoint, Apache-2.0) once, converts it
    into Keras' cache and loads it; the top has 1000 classes. Inputs are expected in [-1, 1]
    (:func:`keras_nasnet.preprocess_input`; timm's mean and std are 0.5), resized with bicubic
    interpolation and a center crop of 0.911 as timm evaluates it. With ``include_top=False`` and no
    ``input_shape`` the input is ``(None, None, 3)``. Extra keyword arguments go to :func:`NASNet`.

    Example:
        >>> model = PNASNet5Large(weights=None, include_top=False, pooling="avg")
    """
    _refuse_fixed("PNASNet5Large", "PNASNet-5 (4, 3, 3 @ 4320)", kwargs, (*PNASNET5_LARGE, "default_size"))
    if not include_top and input_shape is None and input_tensor is None:
        input_shape = (None, None, 3)
    return NASNet(
        **PNASNET5_LARGE, include_top=include_top, weights=weights, input_tensor=input_tensor,
        input_shape=input_shape, pooling=pooling, classes=classes,
        classifier_activation=classifier_activation, name=name, default_size=331, **kwargs,
    )
