"""Pretrained weights: the registry, verified downloads into Keras' cache, and weight files.

- :mod:`~keras_nasnet.weights.catalog`: the registry of every known weight set (:func:`registry`) and
  turning a ``weights=`` argument into one (:func:`resolve`);
- :mod:`~keras_nasnet.weights.download`: :func:`fetch` into ``$KERAS_HOME/models``, hash-checked;
- :mod:`~keras_nasnet.weights.h5`: reading, writing and loading weight files;
- :mod:`~keras_nasnet.weights.architecture`: the record of a model's architecture that the files
  this project writes carry, checked when they are loaded;
- :mod:`~keras_nasnet.weights.timm`: timm's PNASNet-5 Large weights read with NumPy and converted
  (:func:`convert_timm`).
"""

from .architecture import architecture_of, architecture_record, attach_architecture
from .download import cache_dir, fetch, file_digest, verify
from .h5 import (
    check_architecture, file_layer_paths, load_file, load_h5_by_name, load_into, local_path, read_h5,
    read_record, write_h5, write_record,
)
from .catalog import (
    DIR_ENV, KERAS_BASE_URL, URL_ENV, FileWeights, WeightsError, WeightSpec, project_weights_dir,
    read_manifest, registry, resolve,
)
from .timm import convert as convert_timm

__all__ = [
    "DIR_ENV", "KERAS_BASE_URL", "URL_ENV", "FileWeights", "WeightSpec", "WeightsError",
    "architecture_of", "architecture_record", "attach_architecture", "cache_dir", "convert_timm",
    "check_architecture", "fetch", "file_digest", "file_layer_paths", "load_file", "load_h5_by_name", "load_into", "local_path",
    "project_weights_dir", "read_h5", "read_manifest", "read_record", "registry", "resolve",
    "verify", "write_h5", "write_record",
]
