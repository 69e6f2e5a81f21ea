"""The initial population of ``search/evolve/``: the cells the PPO pipeline screened, best first.

Reads a search's screening journal (``stages/screen-<images>-p<params>/``, seeds 10 and 11),
ranks its cells by their mean held-out accuracy over the seeds, and writes the best ``--top`` as a
JSON list of genotypes for ``python -m keras_nasnet.search --strategy evolution --initial-cells``.

    python search/evolve/initial_cells.py \
        --journal search/widepool/ppo-stages/stages/screen-15000-p73218 --top 50 \
        --out search/evolve/initial_cells.json
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path


def ranked_cells(journal) -> list[tuple[float, int, dict]]:
    """(mean held-out accuracy, seeds, genotype) of every cell in the journal, best first."""
    from keras_nasnet.search import read_standalone_journal

    by_cell: dict[str, list] = {}
    genotypes = {}
    for r in read_standalone_journal(journal):
        by_cell.setdefault(r["cell"], []).append(r["standalone_accuracy"])
        genotypes[r["cell"]] = r["genotype"]
    rows = [(statistics.mean(v), len(v), genotypes[c]) for c, v in by_cell.items()]
    return sorted(rows, key=lambda r: -r[0])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--journal", required=True, help="a search's screening journal folder")
    p.add_argument("--top", type=int, default=50, help="cells to keep (default 50)")
    p.add_argument("--out", required=True, help="the JSON list to write")
    a = p.parse_args(argv)
    rows = ranked_cells(a.journal)
    for i, (acc, n, _) in enumerate(rows[: a.top]):
        print(f"{i:3d}  {acc:.4f}  ({n} seeds)")
    Path(a.out).write_text(json.dumps([g for _, _, g in rows[: a.top]], indent=1) + "\n")
    print(f"{min(a.top, len(rows))} of {len(rows)} cells -> {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
