"""Lays out what the GPU machine needs and checks that it fits what travels (64 MiB in all).

    python benchmarks/gpu_prepare.py                       # wheels only (for benchmarks/gpu.py)
    python benchmarks/gpu_prepare.py --cifar ../shared/datasets/cifar10-jpeg.zip   # + training data

Run it from the repository root on the development machine (it needs pip and network access to
PyPI; the GPU machine has neither). It writes, into git-ignored folders of the repository:

- ``.whl/``: Keras and the two small dependencies the GPU image lacks (namex, optree), as Python
  3.12 x86-64 wheels; ``benchmarks/gpu_run.sh`` installs them there with ``--no-deps``.
- ``.gpu_data/cifar10-train.zip`` (with ``--cifar``): every training JPEG of the CIFAR-10 zip
  and the first ``--test-per-class`` test JPEGs of each class (a small check of the result on
  the machine; the full test set is evaluated here afterwards). The whole zip would not fit with
  the wheels and the repository; decoded uint8 arrays of the training split would be 150 MB.
  Once the repository itself grew past ~13 MiB even the training JPEGs stopped fitting beside it:
  ``--parts 2`` then splits them into ``.gpu_data/part-1/`` and ``.gpu_data/part-2/``, one per
  call to a warm machine (``gpu_run.sh stash`` keeps the first in /tmp there; ``train`` joins them).

It then prints the size of everything that travels (tracked and untracked-not-ignored files plus
the carried folders) and fails if it is over the limit. Never commit these folders.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

LIMIT = 64 * 2**20
WHEELS = ("keras==3.15.1", "namex==0.1.0", "optree==0.20.0")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def download_wheels(dest: Path, wheels=WHEELS) -> None:
    """Downloads ``wheels`` for CPython 3.12 on x86-64 Linux (the GPU image's Python)."""
    dest.mkdir(exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()  # two versions of one package would stop the install there
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
           "--python-version", "3.12", "--implementation", "cp", "-d", str(dest)]
    for p in PLATFORMS:
        cmd += ["--platform", p]
    subprocess.run(cmd + list(wheels), check=True)


def cifar_subset(source: Path, dest: Path, test_per_class: int, part: int = 0, n_parts: int = 1) -> tuple[int, int]:
    """Copies the training JPEGs and ``test_per_class`` test JPEGs per class into ``dest`` (stored,
    JPEGs do not compress); returns the numbers of train and test images copied. With ``n_parts``
    > 1 it copies only every ``n_parts``-th image starting at ``part`` (0-based), so the parts together
    hold each image once."""
    counts = {"train": 0, "test": 0}
    per_class: dict[str, int] = {}
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as out:
        for i, info in enumerate(sorted(src.infolist(), key=lambda i: i.filename)):
            path = Path(info.filename).parts
            if info.is_dir() or len(path) < 3 or path[-3] not in counts:
                continue
            split, cls = path[-3], path[-2]
            if i % n_parts != part:
                continue
            if split == "test":
                if per_class.get(cls, 0) >= test_per_class:
                    continue
                per_class[cls] = per_class.get(cls, 0) + 1
            out.writestr(f"{split}/{cls}/{path[-1]}", src.read(info))
            counts[split] += 1
    return counts["train"], counts["test"]


def travelling_bytes(root: Path, carried: list[Path]) -> int:
    """Bytes of the files that travel: tracked and untracked-not-ignored files, plus ``carried``."""
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           cwd=root, check=True, capture_output=True).stdout.split(b"\0")
    total = sum((root / n.decode()).stat().st_size for n in names if n and (root / n.decode()).is_file())
    for c in carried:
        total += sum(f.stat().st_size for f in c.rglob("*") if f.is_file()) if c.is_dir() else 0
    return total


def main(argv=None):
    """Prepares ``.whl/`` (and ``.gpu_data/`` with ``--cifar``) and checks the size limit."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cifar", default=None, help="the CIFAR-10 JPEG zip to take the training images from")
    ap.add_argument("--test-per-class", type=int, default=100)
    ap.add_argument("--parts", type=int, default=1,
                    help="split the images into this many zips, one per call (see gpu_run.sh stash)")
    ap.add_argument("--skip-wheels", action="store_true", help="keep the wheels already in .whl/")
    args = ap.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    whl, data = root / ".whl", root / ".gpu_data"
    if not args.skip_wheels:
        download_wheels(whl)
    for w in sorted(whl.glob("*.whl")):
        print(f"{w.name}: {w.stat().st_size / 2**20:.2f} MiB")
    calls = [[whl]]
    if args.cifar:
        shutil.rmtree(data, ignore_errors=True)
        if args.parts == 1:
            zips = [data / "cifar10-train.zip"]
            calls = [[whl, data]]
        else:
            zips = [data / f"part-{k + 1}" / f"cifar10-part-{k + 1}.zip" for k in range(args.parts)]
            # the first parts go in "stash" calls, the last one with the wheels in the training call
            calls = [[z.parent] for z in zips[:-1]] + [[whl, zips[-1].parent]]
        for k, z in enumerate(zips):
            n_train, n_test = cifar_subset(Path(args.cifar), z, args.test_per_class, k, args.parts)
            print(f"{z.relative_to(root)}: {n_train} train + {n_test} test images, {z.stat().st_size / 2**20:.1f} MiB")
    over = False
    for carried in calls:
        total = travelling_bytes(root, carried)
        print(f"travels: {total / 2**20:.1f} MiB of {LIMIT / 2**20:.0f} MiB "
              f"(carry: {', '.join(str(c.relative_to(root)) for c in carried)})")
        over |= total > LIMIT
    if over:
        raise SystemExit(f"Over the {LIMIT / 2**20:.0f} MiB limit: raise --parts, lower --test-per-class or carry less.")


if __name__ == "__main__":
    main()
