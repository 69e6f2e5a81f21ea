"""Writes timm's ``pnasnet5large`` tensor names and shapes, with its pretrained config, into
``keras_nasnet/weights/files/timm_pnasnet5large.json.gz`` (the list the converter and CI check).

    pip install torch timm && python benchmarks/timm_names.py

Needs no network: the model is created without weights. Re-run it when timm changes the model.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "keras_nasnet/weights/files/timm_pnasnet5large.json.gz"
CFG_KEYS = ("hf_hub_id", "input_size", "interpolation", "crop_pct", "crop_mode", "mean", "std",
            "num_classes", "license")


def main():
    import timm

    model = timm.create_model("pnasnet5large", pretrained=False)
    tensors = {k: list(v.shape) for k, v in model.state_dict().items()}
    cfg = {k: model.pretrained_cfg.get(k) for k in CFG_KEYS}
    data = {"timm_version": timm.__version__, "model": "pnasnet5large.tf_in1k",
            "pretrained_cfg": cfg, "tensors": tensors}
    text = json.dumps(data, indent=0, sort_keys=False).encode()
    OUT.write_bytes(gzip.compress(text, mtime=0))
    print(f"{OUT}: {len(tensors)} tensors, {OUT.stat().st_size} bytes")


if __name__ == "__main__":
    main()
