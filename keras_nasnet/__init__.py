"""keras_nasnet: NASNet (Zoph et al., CVPR 2018) for Keras 3.

Genotypes go in, Keras models come out::

    from keras_nasnet import NASNetLarge, NASNet, AMOEBANET_A
    model = NASNetLarge(weights="imagenet")
    amoeba = NASNet(AMOEBANET_A, num_cells=2, penultimate_filters=512, stem="cifar", classes=10)
"""

from .genotypes import AMOEBANET_A, GENOTYPES, NASNET_A, OPS, PNASNET_5, Block, Cell, Genotype
from .imagenet import decode_predictions, preprocess_input
from .models import NASNet, NASNetCIFAR, NASNetLarge, NASNetMobile, PNASNet5Large
from .ops import ScheduledDropPath, StridePadding2D
from .optimize import fold_batch_norm

# After this import the package attribute ``export`` is the function (``keras_nasnet.export(model,
# path, ...)``); ``from keras_nasnet.export import ...`` and ``python -m keras_nasnet.export`` still
# reach the subpackage through sys.modules. It imports no TensorFlow until an export runs.
from .export import export  # noqa: E402  (must come last: it rebinds the submodule's name)

__version__ = "0.1.0"

__all__ = [
    "AMOEBANET_A", "Block", "Cell", "GENOTYPES", "Genotype", "NASNET_A", "NASNet", "NASNetCIFAR",
    "NASNetLarge", "NASNetMobile", "OPS", "PNASNET_5", "PNASNet5Large", "ScheduledDropPath", "StridePadding2D",
    "decode_predictions", "export", "fold_batch_norm", "preprocess_input",
]
