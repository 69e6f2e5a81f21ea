"""``python -m keras_nasnet.search report DIR``: the top trials of a search and its best cells."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..genotypes import NUM_INPUTS, Cell
from .space import SearchSpace


def load_trials(out: Path) -> list[dict]:
    """Finished trial records of a search folder (a cut last line is ignored; other damage raises
    :class:`~keras_nasnet.search.errors.JournalCorrupt`)."""
    from .journal import read_records

    return [r for r in read_records(Path(out) / "trials.jsonl")[0] if r["event"] == "finished"]


def _previous_summary(out: Path) -> dict:
    try:
        old = json.loads((out / "summary.json").read_text())
        return old if isinstance(old, dict) else {}
    except (OSError, ValueError):
        return {}


def draw_cell(ax, cell: Cell, title: str) -> None:
    """Draws a cell as a small graph: inputs left, blocks in order, the output on the right."""
    names = ["h[i]", "h[i-1]"] + [f"b{k + 1}" for k in range(len(cell.blocks))]
    pos = {0: (0, 1.0), 1: (0, -1.0)}
    for k in range(len(cell.blocks)):
        pos[NUM_INPUTS + k] = (k + 1, 1.5 - 3.0 * (k % 2) if k % 2 else 1.5 - 0.75 * k)
    out_pos = (len(cell.blocks) + 1.2, 0)
    for k, blk in enumerate(cell.blocks):
        x1, y1 = pos[NUM_INPUTS + k]
        for side, (i, op) in enumerate(zip(blk.inputs, blk.ops)):
            x0, y0 = pos[i]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops=dict(arrowstyle="->", color=f"C{side}", lw=1))
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + (0.12 if side else -0.12), op, fontsize=6,
                    color=f"C{side}", ha="center")
        ax.text(x1, y1 - 0.3, "+" if blk.combine == "add" else "concat", fontsize=6, ha="center")
    for i in cell.concat:
        x0, y0 = pos[i]
        ax.annotate("", xy=out_pos, xytext=(x0, y0), arrowprops=dict(arrowstyle="->", color="gray",
                                                                     lw=0.6, ls="--"))
    for i, (x, y) in pos.items():
        ax.text(x, y, names[i], ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", fc="lightyellow" if i < NUM_INPUTS else "lightblue"))
    ax.text(*out_pos, "concat\nout", ha="center", va="center", fontsize=8,
            bbox=dict(boxstyle="round", fc="lightgreen"))
    ax.set_title(title, fontsize=9)
    ax.set_xlim(-0.6, out_pos[0] + 0.6)
    ax.set_ylim(-3, 2.2)
    ax.axis("off")


def main(argv=None) -> int:
    """Prints the top trials of a search folder and writes ``best_cells.png``."""
    p = argparse.ArgumentParser(prog="python -m keras_nasnet.search report")
    p.add_argument("out", help="a search folder")
    p.add_argument("--top", type=int, default=10, help="how many trials to list")
    a = p.parse_args(argv)
    out = Path(a.out)
    if not (out / "config.json").exists() or not (out / "trials.jsonl").exists():
        print(f"error: {out} is not a search folder (no config.json / trials.jsonl).", file=sys.stderr)
        return 2
    from .errors import SearchError
    from .journal import read_config
    from .run import write_outputs

    try:
        config = read_config(out / "config.json")
        space = SearchSpace(**config["space"])
        trials = load_trials(out)
    except SearchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    ok = [r for r in trials if r["status"] == "ok"]
    if not ok:
        print(f"error: {out} has no successful trials yet ({len(trials)} failed).", file=sys.stderr)
        return 1
    # The files a finished search writes, from what is recorded now (a search that was stopped or
    # is still running gets them too; the writes are atomic, so a running search is not disturbed).
    planned = _previous_summary(out).get("trials_planned")
    write_outputs(out, space, config, trials, None, trials_planned=planned)
    print(f"{out}: {len(trials)} trials ({len(trials) - len(ok)} failed), strategy {config['strategy']}, "
          f"reward {config['reward']}")
    ranked = sorted(ok, key=lambda r: -r["reward"])[: a.top]
    print(f"{'rank':>4} {'trial':>6} {'reward':>8} {'seconds':>8}")
    for i, r in enumerate(ranked, 1):
        print(f"{i:>4} {r['trial']:>6} {r['reward']:>8.4f} {r['seconds']:>8.1f}")
    best = space.decode(ranked[0]["actions"])
    print(f"\nBest genotype (trial {ranked[0]['trial']}):\n{best}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        draw_cell(axes[0], best.normal, f"normal cell (trial {ranked[0]['trial']})")
        draw_cell(axes[1], best.reduction, "reduction cell")
        fig.tight_layout()
        fig.savefig(out / "best_cells.png", dpi=120)
        plt.close(fig)
        print(f"\nDrawn: {out / 'best_cells.png'}")
    except ImportError:
        print("\n(matplotlib not installed: no drawing; pip install 'keras_nasnet[plots]')")
    return 0
