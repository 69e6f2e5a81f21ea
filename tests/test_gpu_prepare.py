"""benchmarks/gpu_prepare.py: the data that travels to the GPU machine, whole or in parts."""

import importlib.util
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _module():
    spec = importlib.util.spec_from_file_location("gpu_prepare", ROOT / "benchmarks" / "gpu_prepare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _source(path: Path) -> Path:
    # the layout of the CIFAR-10 JPEG zip: <top>/<split>/<class>/<name>.jpg, plus a README
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("cifar10/README.txt", "not an image")
        for split, per_class in (("train", 7), ("test", 5)):
            for cls in ("cat", "dog"):
                for i in range(per_class):
                    z.writestr(f"cifar10/{split}/{cls}/{i:04d}.jpg", f"{split}-{cls}-{i}".encode())
    return path


def test_parts_hold_every_training_image_once_and_cap_test_images_per_class(tmp_path):
    gp = _module()
    src = _source(tmp_path / "src.zip")
    whole = tmp_path / "whole.zip"
    assert gp.cifar_subset(src, whole, test_per_class=2) == (14, 4)
    with zipfile.ZipFile(whole) as z:
        names = set(z.namelist())
        assert z.read("train/cat/0003.jpg") == b"train-cat-3"  # contents copied, top folder dropped
    parts = [tmp_path / f"p{k}" / "part.zip" for k in range(3)]
    counts = [gp.cifar_subset(src, p, 2, k, 3) for k, p in enumerate(parts)]
    assert sum(c[0] for c in counts) == 14
    seen = []
    for p in parts:
        with zipfile.ZipFile(p) as z:
            seen += z.namelist()
    train = [n for n in seen if n.startswith("train/")]
    assert sorted(train) == sorted(n for n in names if n.startswith("train/"))  # each once
    for k, p in enumerate(parts):  # at most test_per_class test images of a class in each part
        with zipfile.ZipFile(p) as z:
            for cls in ("cat", "dog"):
                assert 1 <= sum(n.startswith(f"test/{cls}/") for n in z.namelist()) <= 2
