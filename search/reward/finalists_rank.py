"""How well the scores a pipeline recorded rank its own stand-alone cells (issue 20, part 4).

Reads the ``final.json`` of ``--stages all`` search folders (no supernet needed: every score
comes from the records) and reports Kendall's tau, with its 95% bootstrap interval over cells,
against the cells' mean held-out accuracy at the final budget, for:

* ``width_all``: the zero-cost width baseline (the width each cell gets at the stand-alone
  children's parameter count, ``keras_nasnet.search.rewards.matched_units``) over every cell of
  the file (finalists, NASNet-A, the random reference cells);
* ``width_finalists``, ``reward_finalists``, ``rescore_finalists``: the width, the search's reward
  and the stages' re-scoring over the finalists alone (the cells the search picked, where a
  reward would have to rank good cells among good ones).

    python search/reward/finalists_rank.py search/fair/ppo search/fair/random \\
        --out search/reward/finalists-rank.json
"""

import argparse
import json
from pathlib import Path


def ranks(run) -> dict:
    """The correlations of one search folder's ``final.json`` (see the module's docstring)."""
    from keras_nasnet.genotypes import Genotype
    from keras_nasnet.search import rank_correlations
    from keras_nasnet.search import matched_units

    final = Path(run) / "final.json"
    if not final.is_file():
        raise SystemExit(f"{run}: no final.json; give the --out folder of a finished "
                         "`python -m keras_nasnet.search ... --stages all` run.")
    entries = json.loads(final.read_text())["entries"]
    stage = sorted((Path(run) / "stages").glob("budget-*"))[-1]  # the final budget's journal
    proxy = json.loads((stage / "config.json").read_text())["proxy"]
    if not proxy.get("match_params"):
        raise SystemExit(f"{stage}: its children are not at one parameter count; the width baseline needs one.")
    for e in entries:
        e["width"] = matched_units(Genotype.from_dict(e["genotype"]), proxy["num_cells"], proxy["match_params"])
    fin = [e for e in entries if e["kind"] == "finalist"]
    truth = lambda rows: [r["val_mean"] for r in rows]  # noqa: E731
    return {"run": str(run), "budget_journal": str(stage),
            "width_all": rank_correlations([e["width"] for e in entries], truth(entries)),
            "width_finalists": rank_correlations([e["width"] for e in fin], truth(fin)),
            "reward_finalists": rank_correlations([e["search_reward"] for e in fin], truth(fin)),
            "rescore_finalists": rank_correlations([e["rescore"] for e in fin], truth(fin))}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", help="search folders with final.json")
    p.add_argument("--out", default=None, help="JSON file to write (default: print only)")
    a = p.parse_args(argv)
    result = [ranks(r) for r in a.runs]
    for r in result:
        for k, v in r.items():
            if isinstance(v, dict):
                lo, hi = v["kendall_tau_95"]
                print(f"{r['run']}: {k}: tau {v['kendall_tau']:+.2f} [{lo:+.2f}, {hi:+.2f}] over {v['cells']} cells")
    if a.out:
        from keras_nasnet.fileio import write_json_atomic

        write_json_atomic(Path(a.out), result, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
