"""NASNet-A on a GPU through Keras' JAX and PyTorch backends, against timm, in one command.

    python benchmarks/gpu.py --out benchmarks/results-gpu.md     # the real run (GPU, ~7 minutes)
    python benchmarks/gpu.py --tiny --out /tmp/gpu-tiny.md       # tiny sizes, a few reps (CPU)

Needs no TensorFlow: each side runs in its own subprocess (Keras fixes its backend per process):
Keras on JAX, Keras on PyTorch, and timm's ``nasnetalarge`` and ``pnasnet5large`` (random weights)
on PyTorch. It measures images/s of inference (batch 1 and 64) and of a training step (batch 64,
SGD) for NASNetMobile 224 and NASNetLarge 331 in float32 and bfloat16 mixed precision, and the
training images/s of the CIFAR-10 NASNet-A 6@768 (auxiliary head and drop path on, as trained)
with the epoch time and the cost of the paper's 600 epochs this implies. Missing backends or peers
are reported as skipped. Each side gets a share of ``--budget`` seconds; cases that no longer fit
are reported as not run. Writes a markdown table to ``--out`` and prints a JSON line.

Timing: inputs live on the device; a case is warmed up (compilation included) and then timed as
repeated steps for at least ``--min-seconds`` (the result is copied to the host after each step,
which synchronises). Keras calls ``predict_on_batch`` / ``train_on_batch``: compiled with XLA on
JAX, eager on PyTorch (Keras' default); timm runs eager PyTorch with cuDNN autotuning.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

SIDES = ("keras-jax", "keras-torch", "timm")
SHARE = {"keras-jax": 0.45, "keras-torch": 0.35, "timm": 0.20}
CIFAR_TRAIN_IMAGES = 50_000
PAPER_EPOCHS = 600


def plan(tiny: bool) -> dict:
    """The cases, in the order they run (most wanted first, so a short budget drops the least)."""
    if tiny:
        keras_models = {"mobile": ("tiny NASNet (mobile stem) 32", 32), "large": ("tiny NASNet (large stem) 32", 32)}
        timm_models = {"nasnetalarge": 64, "pnasnet5large": 64}
        return {"batch": 4, "keras_models": keras_models, "timm_models": timm_models,
                "cifar": {"num_cells": 1, "penultimate_filters": 48, "batch": 8}, "reps": 2}
    keras_models = {"mobile": ("NASNetMobile 224", 224), "large": ("NASNetLarge 331", 331)}
    timm_models = {"nasnetalarge": 331, "pnasnet5large": 331}
    return {"batch": 64, "keras_models": keras_models, "timm_models": timm_models,
            "cifar": {"num_cells": 6, "penultimate_filters": 768, "batch": 128}, "reps": 0}


def case_list(side: str, tiny: bool) -> list[dict]:
    """Every case one side runs: ``{"model", "precision", "task", "batch"}``."""
    p = plan(tiny)
    b = p["batch"]
    cases = []
    if side.startswith("keras"):
        cases.append({"model": "cifar", "precision": "float32", "task": "train", "batch": p["cifar"]["batch"]})
        models = list(p["keras_models"])
    else:
        models = list(p["timm_models"])
    # Batch 64 of every model and precision before any batch-1 latency, so a short budget still
    # leaves a figure for each model.
    for tasks in ((("infer", b), ("train", b)), (("infer", 1),)):
        for precision in ("float32", "bfloat16"):
            for model in models:
                for task, batch in tasks:
                    cases.append({"model": model, "precision": precision, "task": task, "batch": batch})
    return cases


def timed(step, reps: int, min_seconds: float) -> tuple[float, int]:
    """Seconds per call of ``step`` (after two warm-up calls) and the number of timed calls."""
    step()
    step()
    n, t0 = 0, time.perf_counter()
    while n < max(reps, 1) or (time.perf_counter() - t0 < min_seconds and n < 10_000):
        step()
        n += 1
    return (time.perf_counter() - t0) / n, n


# ---------------------------------------------------------------- Keras sides (one backend each)

def _keras_model(name: str, tiny: bool, precision: str):
    import keras

    import keras_nasnet as kn

    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    p = plan(tiny)
    if name == "cifar":
        c = p["cifar"]
        model = kn.NASNetCIFAR(num_cells=c["num_cells"], penultimate_filters=c["penultimate_filters"],
                               drop_path_rate=0.4, auxiliary_head=True)
        return model, 32, 10
    size = p["keras_models"][name][1]
    if tiny:
        stem = {"mobile": dict(stem_filters=8), "large": dict(stem_filters=16, skip_reduction=True)}[name]
        model = kn.NASNet(num_cells=1, penultimate_filters=96, input_shape=(size, size, 3), classes=10,
                          **stem)
        return model, size, 10
    build = kn.NASNetMobile if name == "mobile" else kn.NASNetLarge
    return build(weights=None), size, 1000


def run_keras_case(case: dict, tiny: bool, reps: int, min_seconds: float) -> dict:
    """Builds the case's model on this process's Keras backend and times it."""
    import keras
    import numpy as np

    model, size, classes = _keras_model(case["model"], tiny, case["precision"])
    rng = np.random.default_rng(0)
    b = case["batch"]
    x = keras.ops.convert_to_tensor(rng.uniform(-1, 1, (b, size, size, 3)).astype("float32"))
    y = keras.ops.convert_to_tensor(rng.integers(0, classes, b))
    if case["task"] == "infer":
        def step():
            return model.predict_on_batch(x)
    else:
        outputs = len(model.outputs)
        model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                      loss=["sparse_categorical_crossentropy"] * outputs)
        targets = (y,) * outputs if outputs > 1 else y

        def step():
            return model.train_on_batch(x, targets)
    seconds, n = timed(step, reps, min_seconds)
    return {"images_per_s": b / seconds, "ms_per_step": seconds * 1e3, "timed_steps": n,
            "params": int(model.count_params())}


def keras_device() -> str:
    """The device Keras computes on in this process, in words."""
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        d = jax.devices()[0]
        return f"{d.platform}:{getattr(d, 'device_kind', '')}"
    if backend == "torch":
        import torch

        return f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
    return backend


# ---------------------------------------------------------------- timm side

def run_timm_case(case: dict, tiny: bool, reps: int, min_seconds: float) -> dict:
    """Times a timm model (random weights) with PyTorch on the GPU if there is one."""
    import timm
    import torch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cudnn.benchmark = True
    size = plan(tiny)["timm_models"][case["model"]]
    model = timm.create_model(case["model"], pretrained=False, num_classes=10 if tiny else 1000).to(dev)
    b = case["batch"]
    x = torch.randn(b, 3, size, size, device=dev)
    y = torch.randint(0, 10, (b,), device=dev)
    amp = torch.autocast(dev, dtype=torch.bfloat16, enabled=case["precision"] == "bfloat16")
    if case["task"] == "infer":
        model.eval()

        def step():
            with torch.no_grad(), amp:
                return model(x).float().cpu()
    else:
        model.train()
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

        def step():
            opt.zero_grad(set_to_none=True)
            with amp:
                loss = torch.nn.functional.cross_entropy(model(x).float(), y)
            loss.backward()
            opt.step()
            return loss.item()
    seconds, n = timed(step, reps, min_seconds)
    return {"images_per_s": b / seconds, "ms_per_step": seconds * 1e3, "timed_steps": n,
            "params": int(sum(p.numel() for p in model.parameters()))}


def worker(side: str, tiny: bool, deadline: float, reps: int, min_seconds: float, results: Path):
    """Runs one side's cases until ``deadline`` (epoch seconds), one JSON line per case."""
    if side == "timm":
        run, device = run_timm_case, None
    else:
        run, device = run_keras_case, keras_device()
    with results.open("a") as f:
        for case in case_list(side, tiny):
            row = {"side": side, **case}
            if time.time() > deadline:
                row["status"] = "not run: time budget"
            else:
                t0 = time.time()
                try:
                    row.update(run(case, tiny, reps, min_seconds))
                    row["status"] = "ok"
                except Exception as e:  # one failing case must not hide the others' figures
                    row["status"] = f"failed: {type(e).__name__}: {str(e)[:200]}"
                row["case_seconds"] = round(time.time() - t0, 1)
                if side == "timm":
                    import torch

                    device = f"cuda:{torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "cpu"
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                else:
                    import gc

                    import keras

                    keras.backend.clear_session()
                    gc.collect()
            row["device"] = device
            f.write(json.dumps(row) + "\n")
            f.flush()


# ---------------------------------------------------------------- driver

def missing(side: str) -> str | None:
    """Why a side cannot run here, or None."""
    need = {"keras-jax": ["keras", "jax"], "keras-torch": ["keras", "torch"], "timm": ["timm", "torch"]}[side]
    gone = [m for m in need if importlib.util.find_spec(m) is None]
    return f"skipped: {', '.join(gone)} not installed" if gone else None


def run_side(side: str, args, budget: float) -> list[dict]:
    """Runs one side in a subprocess with its own Keras backend; returns its result rows."""
    why = missing(side)
    if why:
        return [{"side": side, **c, "status": why} for c in case_list(side, args.tiny)]
    results = Path(args.scratch) / f"{side}.jsonl"
    results.unlink(missing_ok=True)
    env = {**os.environ, "KERAS_BACKEND": side.split("-")[-1] if side.startswith("keras") else "torch"}
    root = Path(__file__).resolve().parents[1]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
    # Cases start only before this deadline; the kill below leaves a case in flight a margin.
    deadline = time.time() + budget * 0.8
    cmd = [sys.executable, __file__, "--worker", side, "--deadline", str(deadline),
           "--results", str(results), "--reps", str(args.reps), "--min-seconds", str(args.min_seconds)]
    if args.tiny:
        cmd.append("--tiny")
    status = None
    try:
        proc = subprocess.run(cmd, env=env, timeout=budget, capture_output=True, text=True)
        if proc.returncode:
            status = f"failed: worker exited {proc.returncode}: {proc.stderr.strip()[-300:]}"
    except subprocess.TimeoutExpired:
        status = "not run: killed at the side's time budget"
    rows = [json.loads(line) for line in results.read_text().splitlines()] if results.exists() else []
    done = {(r["model"], r["precision"], r["task"], r["batch"]) for r in rows}
    for c in case_list(side, args.tiny):
        if (c["model"], c["precision"], c["task"], c["batch"]) not in done:
            rows.append({"side": side, **c, "status": status or "not run"})
    return rows


def cifar_cost(rows: list[dict]) -> list[str]:
    """Epoch time and 600-epoch cost lines for every measured CIFAR training case."""
    lines = []
    for r in rows:
        if r["model"] == "cifar" and r.get("status") == "ok":
            epoch = CIFAR_TRAIN_IMAGES / r["images_per_s"]
            r["epoch_seconds"] = epoch
            r["paper_600_epochs_hours"] = epoch * PAPER_EPOCHS / 3600
            r["epochs_in_8_minutes"] = int(480 // epoch)
            lines.append(f"- {r['side']}: CIFAR-10 NASNet-A training at batch {r['batch']}: "
                         f"{r['images_per_s']:.0f} images/s, {epoch:.1f} s per 50,000-image epoch, "
                         f"{r['paper_600_epochs_hours']:.2f} h for the paper's 600 epochs "
                         f"({r['epochs_in_8_minutes']} epochs fit in 8 minutes).")
    return lines


def markdown(rows: list[dict], args, header: dict) -> str:
    """The results as a markdown table (images/s; the status where a case did not run)."""
    p = plan(args.tiny)
    names = {k: v[0] for k, v in p["keras_models"].items()}
    names.update({k: f"timm {k} {v}" for k, v in p["timm_models"].items()})
    c = p["cifar"]
    names["cifar"] = f"NASNetCIFAR {c['num_cells']}@{c['penultimate_filters']} 32"
    out = [f"# GPU benchmark{' (tiny sizes, a smoke run)' if args.tiny else ''}", "",
           f"Command: `python benchmarks/gpu.py{' --tiny' if args.tiny else ''}`. " +
           ", ".join(f"{k}: {v}" for k, v in header.items()) + ".", "",
           "Images per second (higher is better); each side in its own process, same device.", "",
           "| side | model | precision | task | batch | images/s | ms/step | device |",
           "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("status") == "ok":
            speed, ms = f"{r['images_per_s']:.1f}", f"{r['ms_per_step']:.2f}"
        else:
            speed, ms = r.get("status", "?"), "-"
        out.append(f"| {r['side']} | {names.get(r['model'], r['model'])} | {r['precision']} | "
                   f"{r['task']} | {r['batch']} | {speed} | {ms} | {r.get('device') or '-'} |")
    cost = cifar_cost(rows)
    if cost:
        out += ["", *cost]
    return "\n".join(out) + "\n"


def versions() -> dict:
    """Versions of the packages the sides use (those installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("keras", "jax", "jaxlib", "torch", "timm", "numpy"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            pass
    return found


def main(argv=None):
    """Entry point: the driver, or (``--worker``) one side."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="tiny models and batches, few reps (CPU smoke run)")
    ap.add_argument("--out", default=None, help="markdown file to write (default: print only)")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds for all sides together")
    ap.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated subset of {SIDES}")
    ap.add_argument("--reps", type=int, default=None, help="minimum timed steps per case")
    ap.add_argument("--min-seconds", type=float, default=None, help="minimum timed seconds per case")
    ap.add_argument("--scratch", default=None, help="folder for the sides' partial results")
    ap.add_argument("--worker", choices=SIDES, help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    ap.add_argument("--results", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.reps is None:
        args.reps = plan(args.tiny)["reps"] or 5
    if args.min_seconds is None:
        args.min_seconds = 0.0 if args.tiny else 2.0
    if args.worker:
        return worker(args.worker, args.tiny, args.deadline, args.reps, args.min_seconds, Path(args.results))

    import tempfile

    sides = [s for s in args.sides.split(",") if s]
    unknown = set(sides) - set(SIDES)
    if unknown:
        ap.error(f"unknown sides {sorted(unknown)}; choose from {', '.join(SIDES)}")
    args.scratch = args.scratch or tempfile.mkdtemp(prefix="nasnet-gpu-")
    t0 = time.time()
    rows = []
    for side in sides:
        left = args.budget - (time.time() - t0)
        # A side's share of what is left, so time one side leaves unused goes to the next.
        later = sum(SHARE[s] for s in sides[sides.index(side):])
        rows += run_side(side, args, max(10.0, left * SHARE[side] / later))
    header = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", **versions(),
              "wall seconds": round(time.time() - t0)}
    text = markdown(rows, args, header)
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    print(json.dumps({"tiny": args.tiny, **header, "results": rows}))
    return rows


if __name__ == "__main__":
    main()
