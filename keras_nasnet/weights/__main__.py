"""``python -m keras_nasnet.weights list | fetch NAME... | verify [PATH] | convert SOURCE OUT``.

``verify`` without a path checks every downloaded file in the cache and every file shipped with the
package against the registry's hashes.

``fetch`` on a connected machine fills Keras' cache (``$KERAS_HOME/models``); copy that folder to an
offline machine, or serve it and point ``KERAS_NASNET_WEIGHTS_URL`` at it. ``convert
timm:pnasnet5large.tf_in1k OUT.h5`` converts timm's PNASNet-5 Large file (downloaded into the cache,
or given with --source) into Keras weights for ``PNASNet5Large(weights=OUT.h5)``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import WeightsError, cache_dir, fetch, project_weights_dir, registry
from .catalog import DIR_ENV, read_manifest
from ..cliargs import ArgumentParser
from ..fileio import unwritable_reason
from .download import problem


def main(argv=None) -> int:
    """Runs the weights command line; returns the exit status."""
    p = ArgumentParser(prog="python -m keras_nasnet.weights", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list every known weight set")
    f = sub.add_parser("fetch", help="download and verify weight sets into the cache")
    f.add_argument("names", nargs="+", help="registry names, or 'all'")
    v = sub.add_parser("verify", help="check cached and shipped (or given) files against the registry")
    v.add_argument("path", nargs="?", help="a file to check; default: every cached and shipped file")
    c = sub.add_parser("convert", help="convert timm's PNASNet-5 Large weights into a Keras file")
    c.add_argument("model", metavar="SOURCE", help="timm:pnasnet5large.tf_in1k")
    c.add_argument("out", metavar="OUT", help="the Keras file to write: OUT.h5 (with the "
                   "architecture record, loads by layer name) or OUT.weights.h5 (Keras' own format)")
    c.add_argument("--overwrite", action="store_true", help="replace OUT if it exists (default: refuse)")
    c.add_argument("--source", metavar="FILE", help="timm's model.safetensors on disk (default: "
                   "download it into Keras' cache, or use the copy there)")
    a = p.parse_args(argv)
    try:
        return _command(a)
    except WeightsError as e:  # e.g. KERAS_HOME is a file, or the cache cannot be written
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # downloads go to a temporary file, renamed only once checked
        from .._cli import interrupted

        return interrupted(f"{a.cmd} stopped; no partial file was kept", "run the command again")


def _command(a) -> int:
    reg = registry()

    if a.cmd == "list":
        rows = [("name", "architecture", "top", "size", "metrics", "file")]
        for s in reg.values():
            where = s.url or str(project_weights_dir() / s.file_name)
            metrics = ", ".join(f"{k} {v:.4g}" for k, v in s.metrics.items())
            rows.append((s.name, s.architecture, "yes" if s.include_top else "no", str(s.input_size),
                         metrics, where))
        # Columns as wide as their longest entry, so none runs into the next.
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
        for r in rows:
            print("  ".join(f"{c:{w}}" for c, w in zip(r, widths)) + "  " + r[-1])
        return 0
    if a.cmd == "convert":
        from .timm import TIMM_MODEL, convert

        if a.model not in (f"timm:{TIMM_MODEL}", f"timm:{TIMM_MODEL.split('.')[0]}"):
            print(f"Cannot convert {a.model!r}: the converter knows timm:{TIMM_MODEL} only.",
                  file=sys.stderr)
            return 2
        if not a.out.endswith(".h5"):
            print(f"OUT must end in .h5 or .weights.h5; got {a.out!r}.", file=sys.stderr)
            return 2
        if a.source and not Path(a.source).is_file():
            print(f"--source {a.source}: no such file.", file=sys.stderr)
            return 2
        refusal = "is a folder, not a file" if Path(a.out).is_dir() else unwritable_reason(a.out)
        if not refusal and Path(a.out).exists() and not a.overwrite:
            refusal = "exists (pass --overwrite to replace it)"
        if refusal:
            print(f"OUT {a.out}: {refusal}; choose another OUT.", file=sys.stderr)
            return 2
        try:
            source = a.source or fetch(reg["pnasnet5_large_imagenet"])
            print(f"{convert(source, a.out)}: converted from {source}")
        except WeightsError as e:
            if not a.source:
                raise
            print(f"error: --source: {e} Give timm's model.safetensors for {TIMM_MODEL}, as served "
                  f"at {reg['pnasnet5_large_imagenet'].url}.", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            from .._cli import interrupted

            return interrupted(f"the conversion was stopped; {a.out} was not written",
                               "run the command again")
        except OSError as e:  # e.g. the disk filled up while writing OUT
            print(f"error: could not write {a.out}: {e.strerror or e}.", file=sys.stderr)
            return 1
        return 0
    if a.cmd == "fetch":
        names = list(reg) if a.names == ["all"] else a.names
        unknown = [n for n in names if n not in reg]
        if unknown:
            print(f"Unknown weight set(s): {', '.join(unknown)}. Known: {', '.join(reg)}.", file=sys.stderr)
            return 2
        status = 0
        for n in names:
            try:
                print(f"{n}: {fetch(reg[n])}")
            except WeightsError as e:
                print(f"{n}: FAILED: {e}", file=sys.stderr)
                status = 1
        return status
    # verify
    by_file = {}
    for s in reg.values():
        by_file.setdefault(s.file_name, s)
    by_origin = {}  # the names the files have where they are published (a manual download's name)
    for s in reg.values():
        # Not a hub's generic name (PNASNet's is model.safetensors): any such file would match.
        if s.base_url and s.origin_name and not s.origin_name.startswith("model."):
            by_origin.setdefault(s.origin_name, s)
    status = 0
    if a.path and Path(a.path).is_dir():
        # A copied cache folder (docs/weights.md's offline route): every registry file in it.
        known = set(by_file) | set(by_origin)
        paths = sorted(x for x in Path(a.path).iterdir() if x.is_file() and x.name in known)
        if not paths:
            print(f"{a.path} is a folder without registry files (the cache's names: "
                  f"{', '.join(by_file)}); give a file, or the folder that holds them.", file=sys.stderr)
            return 1
    elif a.path:
        paths = [Path(a.path)]
    else:
        # The registry promises the shipped files: a manifest that is missing or does not parse
        # is a failure here, not an empty list.
        manifest = project_weights_dir() / "manifest.json"
        _, problems = read_manifest(project_weights_dir())
        if not manifest.is_file():
            problems = [f"{manifest} is missing, so the weights shipped with keras_nasnet are unknown"]
        for what in problems:
            print(f"{what}: reinstall keras_nasnet (or point {DIR_ENV} at the folder holding the "
                  "project's weight files and their manifest.json).", file=sys.stderr)
            status = 1
        for leftover in sorted(cache_dir().glob(".*.part")) if cache_dir().is_dir() else []:
            print(f"note: {leftover} is what an interrupted download left; `fetch` removes it after "
                  "an hour, or delete it.", file=sys.stderr)
        # Every downloaded file in the cache, and every file shipped with the package (a missing
        # shipped file is reported: the registry promises it).
        paths = [cache_dir() / s.file_name for s in reg.values() if s.base_url]
        paths = [x for x in paths if x.is_file()]
        paths += list(dict.fromkeys(project_weights_dir() / s.file_name for s in reg.values()
                                    if not s.base_url))
        if not paths:
            print(f"No cached weight files in {cache_dir()}, and no shipped ones.")
            return status
    for path in paths:
        if not path.is_file():
            print(f"{path}: no such file.", file=sys.stderr)
            status = 1
            continue
        spec = by_file.get(path.name) or by_origin.get(path.name)
        if spec is None:
            print(f"{path}: not a registry file name (the cache's: {', '.join(by_file)}; or as "
                  f"published: {', '.join(by_origin)}).", file=sys.stderr)
            status = 1
            continue
        what = problem(spec, path)
        check = spec.hash_algorithm if spec.file_hash else "structure; no published hash"
        print(f"{path}: {'OK' if what is None else 'BAD: ' + what} ({spec.name}, {check})")
        if what is not None:
            # What to do about it: a cached file is replaced by fetching it again (fetch does that
            # for a file that fails its check); a shipped one comes with the package.
            fix = (f"run `python -m keras_nasnet.weights fetch {spec.name}` to download it again"
                   if spec.base_url else "reinstall keras_nasnet, which ships it")
            print(f"  to fix: {fix}.")
        status |= what is not None
    return status


if __name__ == "__main__":
    sys.exit(main())
