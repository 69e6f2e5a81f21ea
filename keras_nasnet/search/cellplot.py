"""Cell figures in the style of the NASNet and DARTS papers: a layered graph read left to right.

The cell's inputs ``h[i]`` and ``h[i-1]`` stand at the left; each block is a column of two op boxes
(the operations applied to the states it reads) followed by its combine node, numbered as the
genotype numbers hidden states (2, 3, ...); the cell's output, the concatenation of the states in
its ``concat`` list (for a searched cell, the states no block reads), is at the right. Columns
follow the blocks' depth (a block that reads another block's state stands to the right of it),
edges that skip columns are routed through the gaps between nodes, and the order within each
column is chosen to reduce crossings (the barycenter heuristic of layered graph drawing), so no
label sits on an edge or another label.
"""

from __future__ import annotations

from ..genotypes import NUM_INPUTS, Cell, Genotype

#: Colors of op families (box fill) and node kinds; the legend explains them.
_OP_FAMILY = (("sep_conv", "separable conv", "#fdd9b5"), ("dil_conv", "dilated conv", "#f7c6d9"),
              ("conv", "conv", "#f6e3a1"), ("pool", "pooling", "#cfe3f5"),
              ("identity", "identity", "#e6e6e6"))
_INPUT, _ADD, _CONCAT, _OUTPUT = "#fff3b0", "#b9e4c9", "#d9c8ef", "#8fd19e"
_CHAR_W, _BOX_H = 0.075, 0.30  # inches per character at font size 8, node height


def _family(op: str):
    for key, name, color in _OP_FAMILY:
        if key in op:
            return name, color
    return "other", "#ffffff"


def _layout(cell: Cell):
    """Columns of nodes (with dummies for long edges) and the edges between consecutive columns."""
    depth = {0: 0, 1: 0}
    for k, b in enumerate(cell.blocks):
        depth[NUM_INPUTS + k] = 1 + max(depth[i] for i in b.inputs)
    last = 2 * max(depth.values()) + 1  # the output's column
    col = {("s", s): 2 * d for s, d in depth.items()}
    col[("out",)] = last
    edges = []  # (from, to): long edges are split into unit steps through ("d", ...) dummies
    for k, b in enumerate(cell.blocks):
        s = NUM_INPUTS + k
        for side, i in enumerate(b.inputs):
            op = ("op", s, side)
            col[op] = 2 * depth[s] - 1
            edges.append((("s", i), op))
            edges.append((op, ("s", s)))
    for s in cell.concat:
        edges.append((("s", s), ("out",)))
    unit = []
    for a, b in edges:
        chain = [a] + [("d", a, b, c) for c in range(col[a] + 1, col[b])] + [b]
        for c, node in enumerate(chain[1:-1], col[a] + 1):
            col[node] = c
        unit += list(zip(chain, chain[1:]))
    columns = [[] for _ in range(last + 1)]
    for node, c in sorted(col.items(), key=lambda kv: _initial_key(kv[0])):
        columns[c].append(node)
    _reduce_crossings(columns, unit)
    return columns, unit


def _initial_key(node):
    return (node[0] != "s", node[1] if node[0] in ("s", "op") else 0, str(node))


def _reduce_crossings(columns, edges, sweeps: int = 12):
    """Reorders each column by the mean position of its neighbours, sweeping both ways."""
    pred, succ = {}, {}
    for a, b in edges:
        succ.setdefault(a, []).append(b)
        pred.setdefault(b, []).append(a)
    for sweep in range(sweeps):
        order = range(1, len(columns)) if sweep % 2 == 0 else range(len(columns) - 2, -1, -1)
        nbrs = pred if sweep % 2 == 0 else succ
        for c in order:
            if c == 0:
                continue  # h[i] stays above h[i-1], as in the papers' figures
            ref = {n: i for col in columns for i, n in enumerate(col)}
            here = columns[c]
            bary = {n: (sum(ref[m] for m in nbrs.get(n, [])) / len(nbrs[n]) if nbrs.get(n) else ref[n])
                    for n in here}
            here.sort(key=lambda n: (bary[n], ref[n]))


def draw_cell(ax, cell: Cell, title: str = "", reduction: bool = False) -> None:
    """Draws ``cell`` on the matplotlib axes ``ax`` (data units are inches; see :func:`plot_genotype`).

    ``reduction=True`` notes that ops reading the cell inputs have stride 2.
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch
    from matplotlib.path import Path as MPath

    columns, edges = _layout(cell)

    def label(node):
        if node[0] == "s":
            return ("h[i]", "h[i-1]")[node[1]] if node[1] < NUM_INPUTS else str(node[1])
        if node[0] == "op":
            return cell.blocks[node[1] - NUM_INPUTS].ops[node[2]]
        return "concat" if node[0] == "out" else ""

    def width(node):
        text = label(node)
        return 0.0 if node[0] == "d" else max(0.42, _CHAR_W * len(text) + 0.2)

    widths = [max([width(n) for n in col] + [0.15]) for col in columns]
    gap, row = 0.45, 0.52
    xs, right = [], 0.0
    for w in widths:
        xs.append(right + w / 2)
        right += w + gap
    right -= gap
    tallest = max(len(col) for col in columns)
    pos, half = {}, {}  # centre, and half the width an edge skips there
    for c, col in enumerate(columns):
        for i, node in enumerate(col):  # each column centred on the middle line
            pos[node] = (xs[c], (len(col) - 1) / 2 * row - i * row)
            # A long edge crosses a column as a straight lane as wide as the column, in a row of
            # its own, so it never runs through a box.
            half[node] = widths[c] / 2 if node[0] == "d" else width(node) / 2

    for a, b in edges:
        (x0, y0), (x1, y1) = pos[a], pos[b]
        x0 += half[a]
        x1 -= half[b]
        if a[0] == "d":
            ax.plot([x0 - 2 * half[a], x0], [y0, y0], color="#555555", lw=0.9, zorder=1,
                    ls="--" if a[2] == ("out",) else "-")
        bend = (x1 - x0) / 2
        path = MPath([(x0, y0), (x0 + bend, y0), (x1 - bend, y1), (x1, y1)],
                     [MPath.MOVETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4])
        ends_at_node = b[0] != "d"
        ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>" if ends_at_node else "-",
                                     mutation_scale=9, lw=0.9, color="#555555",
                                     ls="--" if b == ("out",) or (b[0] == "d" and b[2] == ("out",)) else "-",
                                     zorder=1))
    for node, (cx, y) in pos.items():
        if node[0] == "d":
            continue
        w = width(node)
        if node[0] == "s" and node[1] < NUM_INPUTS:
            fc = _INPUT
        elif node[0] == "s":
            fc = _ADD if cell.blocks[node[1] - NUM_INPUTS].combine == "add" else _CONCAT
        elif node[0] == "op":
            fc = _family(label(node))[1]
        else:
            fc = _OUTPUT
        rounding = 0.14 if node[0] != "op" else 0.04
        ax.add_patch(FancyBboxPatch((cx - w / 2, y - _BOX_H / 2), w, _BOX_H,
                                    boxstyle=f"round,pad=0,rounding_size={rounding}", fc=fc,
                                    ec="#333333", lw=0.8, zorder=2))
        ax.text(cx, y, label(node), ha="center", va="center", fontsize=8, zorder=3,
                fontweight="bold" if node[0] == "s" else "normal")
    ax.set_xlim(-0.2, right + 0.2)
    top = (tallest - 1) / 2 * row
    ax.set_ylim(-top - 0.4, top + 0.4)
    ax.set_aspect("equal")
    ax.axis("off")
    if reduction:
        title += " (ops reading h[i] or h[i-1] have stride 2)"
    ax.set_title(title, fontsize=10, loc="left")


def _extent(cell: Cell) -> tuple[float, float]:
    columns, _ = _layout(cell)
    width = sum(max([0.0] + [_CHAR_W * 14 + 0.2 for n in col if n[0] == "op"] + [0.5]) + 0.45
                for col in columns)
    return width, max(len(c) for c in columns) * 0.52 + 0.8


def plot_genotype(genotype: Genotype, path, title: str | None = None) -> None:
    """Draws both cells of ``genotype`` (normal above, reduction below) with a legend into ``path``
    (any format matplotlib writes, e.g. ``best_cells.png``). Needs matplotlib."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    sizes = [_extent(genotype.normal), _extent(genotype.reduction)]
    width = max(w for w, _ in sizes) + 0.5
    heights = [h for _, h in sizes]
    fig, axes = plt.subplots(2, 1, figsize=(max(width, 9.0), sum(heights) + 1.6),
                             gridspec_kw={"height_ratios": heights})
    draw_cell(axes[0], genotype.normal, "normal cell")
    draw_cell(axes[1], genotype.reduction, "reduction cell", reduction=True)
    ops = sorted({op for c in (genotype.normal, genotype.reduction) for b in c.blocks for op in b.ops})
    families = list(dict.fromkeys(_family(op) for op in ops))
    handles = [Patch(fc=_INPUT, ec="#333333", label="cell input h[i], h[i-1]"),
               *[Patch(fc=color, ec="#333333", label=f"op: {name}") for name, color in families],
               Patch(fc=_ADD, ec="#333333", label="block output: add (numbered as in the genotype)")]
    if any(b.combine == "concat" for c in (genotype.normal, genotype.reduction) for b in c.blocks):
        handles.append(Patch(fc=_CONCAT, ec="#333333", label="block output: concat"))
    handles.append(Patch(fc=_OUTPUT, ec="#333333", label="cell output: concat of the listed states"))
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.08, 1, 0.96 if title else 1))
    fig.savefig(path, dpi=120)
    plt.close(fig)
