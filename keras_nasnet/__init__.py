"""keras_nasnet: NASNet (Zoph et al., CVPR 2018) for Keras 3.

Genotypes go in, Keras models come out::

    from keras_nasnet import NASNetLarge, NASNet, AMOEBANET_A
    model = NASNetLarge(weights="imagenet")
    amoeba = NASNet(AMOEBANET_A, num_cells=2, penultimate_filters=512, stem="cifar", classes=10)
"""

import importlib as _importlib

from ._cli import light_command as _light_command
from ._cli import prefer_onednn as _prefer_onednn
from ._cli import quiet_startup as _quiet_startup
from ._cli import stop_on_sigterm_like_ctrl_c as _stop_on_sigterm_like_ctrl_c

# Before anything imports TensorFlow: oneDNN's CPU kernels and a quiet start for
# ``python -m keras_nasnet...`` (only then), and ``kill PID`` stopping it as Ctrl-C does
# (checkpoint kept, one line on how to resume).
_prefer_onednn()
_quiet_startup()
_stop_on_sigterm_like_ctrl_c()

from .genotypes import (AMOEBANET_A, GENOTYPES, KNAS_EVOLVE_A, KNAS_EVOLVE_B, NASNET_A, OPS, PNASNET_5, Block, Cell,  # noqa: E402
                        Genotype)
from .imagenet import decode_predictions, preprocess_input  # noqa: E402

#: Names that need Keras (and so TensorFlow), by module.
_KERAS_NAMES = {"NASNet": "models", "NASNetCIFAR": "models", "NASNetLarge": "models",
                "NASNetMobile": "models", "PNASNet5Large": "models", "ScheduledDropPath": "ops", "StridePadding2D": "ops",
                "fold_batch_norm": "optimize"}


def __getattr__(name):
    """Imports a Keras-dependent name on first use (only in the command lines that need no
    TensorFlow, see ``_cli.light_command``; everywhere else they are imported below)."""
    if name in _KERAS_NAMES:
        value = getattr(_importlib.import_module(f".{_KERAS_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if not _light_command():
    # Eager everywhere else: importing keras_nasnet registers its layers with Keras, which loading
    # a .keras file relies on.
    from .models import NASNet, NASNetCIFAR, NASNetLarge, NASNetMobile, PNASNet5Large  # noqa: E402
    from .ops import ScheduledDropPath, StridePadding2D  # noqa: E402
    from .optimize import fold_batch_norm  # noqa: E402

# The export subpackage, callable as ``keras_nasnet.export(model, path, ...)`` (it calls
# ``keras_nasnet.export.export``). The package attribute is the module itself, so
# ``import keras_nasnet.export as m`` gives the module. It imports no TensorFlow until an export runs.
from . import export  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "AMOEBANET_A", "Block", "Cell", "GENOTYPES", "Genotype", "KNAS_EVOLVE_A", "KNAS_EVOLVE_B", "NASNET_A", "NASNet", "NASNetCIFAR",
    "NASNetLarge", "NASNetMobile", "OPS", "PNASNET_5", "PNASNet5Large", "ScheduledDropPath", "StridePadding2D",
    "decode_predictions", "export", "fold_batch_norm", "preprocess_input",
]
