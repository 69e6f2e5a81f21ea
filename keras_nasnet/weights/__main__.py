"""``python -m keras_nasnet.weights list | fetch NAME... | verify [PATH]``.

``verify`` without a path checks every downloaded file in the cache and every file shipped with the
package against the registry's hashes.

``fetch`` on a connected machine fills Keras' cache (``$KERAS_HOME/models``); copy that folder to an
offline machine, or serve it and point ``KERAS_NASNET_WEIGHTS_URL`` at it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import WeightsError, cache_dir, fetch, file_digest, project_weights_dir, registry


def main(argv=None) -> int:
    """Runs the weights command line; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m keras_nasnet.weights", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("list", help="list every known weight set")
    f = sub.add_parser("fetch", help="download and verify weight sets into the cache")
    f.add_argument("names", nargs="+", help="registry names, or 'all'")
    v = sub.add_parser("verify", help="check cached and shipped (or given) files against the registry")
    v.add_argument("path", nargs="?", help="a file to check; default: every cached and shipped file")
    a = p.parse_args(argv)
    try:
        return _command(a)
    except WeightsError as e:  # e.g. KERAS_HOME is a file
        print(f"error: {e}", file=sys.stderr)
        return 1


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
    if a.path:
        paths = [Path(a.path)]
    else:
        # Every downloaded file in the cache, and every file shipped with the package (a missing
        # shipped file is reported: the registry promises it).
        paths = [cache_dir() / s.file_name for s in reg.values() if s.base_url]
        paths = [x for x in paths if x.is_file()]
        paths += list(dict.fromkeys(project_weights_dir() / s.file_name for s in reg.values()
                                    if not s.base_url))
        if not paths:
            print(f"No cached weight files in {cache_dir()}, and no shipped ones.")
            return 0
    status = 0
    for path in paths:
        spec = by_file.get(path.name)
        if spec is None:
            print(f"{path}: not a registry file name ({', '.join(by_file)}).", file=sys.stderr)
            status = 1
            continue
        if not path.is_file():
            print(f"{path}: no such file.", file=sys.stderr)
            status = 1
            continue
        ok = file_digest(path, spec.hash_algorithm) == spec.file_hash
        print(f"{path}: {'OK' if ok else 'BAD HASH'} ({spec.name}, {spec.hash_algorithm})")
        status |= not ok
    return status


if __name__ == "__main__":
    sys.exit(main())
