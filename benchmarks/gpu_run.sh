#!/usr/bin/env bash
# One command on the GPU machine (no TensorFlow, no network there). Prepare first, here:
#   python benchmarks/gpu_prepare.py [--cifar ../shared/datasets/cifar10-jpeg.zip]
# then pass to the device tool, from the repository root, carrying .whl (and .gpu_data for train):
#   bash benchmarks/gpu_run.sh bench            # benchmarks/gpu.py, about 7 minutes
#   bash benchmarks/gpu_run.sh train [EPOCHS]   # NASNet-A 6@768 on CIFAR-10 through Keras-JAX
# Results land in $OUT (the device tool's return folder), or in ./gpu-out without it.
set -uo pipefail
mode=${1:-bench}
out=${OUT:-$PWD/gpu-out}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:$PWD
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"

case "$mode" in
  bench)
    # 8 minutes in all: the sides share 420 s, the rest is start-up and the final table.
    timeout 470 python3 benchmarks/gpu.py --budget 420 --out "$out/results-gpu.md" 2>&1 | tee "$out/bench.log"
    ;;
  train)
    # The paper's recipe (SGD with Nesterov momentum, cosine decay, drop path 0.4, auxiliary head
    # 0.4, cutout 16, weight decay 5e-4, gradient clipping 5) with the schedule shortened to EPOCHS
    # and, for GPU throughput, batch 128 with the learning rate scaled linearly from 0.025 at 32.
    # EPOCHS: the "epochs fit in 8 minutes" line of the benchmark, less one for start-up and the
    # evaluation (default 20).
    epochs=${2:-20}
    export KERAS_BACKEND=jax KERAS_HOME=/tmp/keras_home
    timeout 520 python3 -m keras_nasnet.train --out /tmp/run --data .gpu_data/cifar10-train.zip \
      --split full --epochs "$epochs" --batch-size 128 --lr 0.1 --verbose 2 2>&1 | tee "$out/train.log"
    if [ ! -f /tmp/run/weights.h5 ] && [ -f /tmp/run/checkpoint.npz ]; then
      # Stopped before the end: the weights of the last finished epoch, from the checkpoint.
      python3 - <<'PY'
import json
from pathlib import Path
from types import SimpleNamespace
from keras_nasnet import train
from keras_nasnet.weights import write_h5
args = SimpleNamespace(**json.loads(Path("/tmp/run/config.json").read_text()))
model = train.build_training_model(args, steps_per_epoch=1)
print("epochs done:", train.restore_checkpoint(model, Path("/tmp/run/checkpoint.npz")))
write_h5(model, "/tmp/run/weights.h5")
PY
    fi
    # weights.h5 comes back without the auxiliary head (a training-only head: 1.6M of 6@768's 5.0M
    # weights; measured at 6@768: 20.7 MiB with it, 14.2 MiB without, under the 16 MiB that may come
    # back). Evaluation builds the model without the head, and loading by name ignores extra layers.
    # The checkpoint with optimizer state does not come back.
    [ -f /tmp/run/weights.h5 ] && python3 - "$out/weights.h5" <<'PY'
import sys
import h5py
with h5py.File("/tmp/run/weights.h5", "r") as src, h5py.File(sys.argv[1], "w") as dst:
    names = [n for n in src.attrs["layer_names"] if not (n.decode() if isinstance(n, bytes) else n).startswith("aux_")]
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    dst.attrs["layer_names"] = names
    for n in names:
        src.copy(src[n.decode() if isinstance(n, bytes) else n], dst)
PY
    cp /tmp/run/result.json /tmp/run/config.json /tmp/run/log.csv "$out/" 2>/dev/null
    ls -la "$out"
    ;;
  *)
    echo "usage: bash benchmarks/gpu_run.sh bench | train [EPOCHS]" >&2
    exit 2
    ;;
esac
