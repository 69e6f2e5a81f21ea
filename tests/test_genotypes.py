import json

import numpy as np
import pytest

from keras_nasnet.genotypes import (AMOEBANET_A, KNAS_EVOLVE_A, KNAS_EVOLVE_B, NASNET_A, OPS, PNASNET_5, Block, Cell, Genotype,
                                    GenotypeError, genotype_from)

from conftest import random_genotype


def test_thirteen_ops_named_as_documented():
    assert OPS == ("identity", "conv_1x3_3x1", "conv_1x7_7x1", "dil_conv_3x3", "avg_pool_3x3",
                   "max_pool_3x3", "max_pool_5x5", "max_pool_7x7", "conv_1x1", "conv_3x3",
                   "sep_conv_3x3", "sep_conv_5x5", "sep_conv_7x7")


def test_json_form_is_the_documented_one():
    d = json.loads(NASNET_A.to_json())
    assert d["normal"]["blocks"][0] == {"inputs": [0, 1], "ops": ["sep_conv_5x5", "sep_conv_3x3"],
                                        "combine": "add"}
    assert d["normal"]["concat"] == [1, 2, 3, 4, 5, 6]
    assert d["reduction"]["concat"] == [3, 4, 5, 6]
    assert d["reduction"]["blocks"][3] == {"inputs": [3, 2], "ops": ["identity", "avg_pool_3x3"],
                                           "combine": "add"}


@pytest.mark.parametrize("g", [NASNET_A, AMOEBANET_A, PNASNET_5, KNAS_EVOLVE_A, KNAS_EVOLVE_B])
def test_json_roundtrip_exact(g):
    back = Genotype.from_json(g.to_json())
    assert back == g and hash(back) == hash(g)
    assert Genotype.from_json(g.to_json(indent=2)) == g


def test_random_genotypes_roundtrip(rng):
    for _ in range(50):
        g = random_genotype(rng, num_blocks=int(rng.integers(1, 6)))
        assert Genotype.from_json(g.to_json()) == g


def test_str_is_readable():
    s = str(NASNET_A)
    assert "2 = sep_conv_5x5(0) + sep_conv_3x3(1)" in s
    assert "out = concat(3, 4, 5, 6)" in s


def test_reference_genotypes_decode_as_published():
    # AmoebaNet-A normal: out = concat[p, b2, b3, b5]; reduction outputs all five blocks.
    assert AMOEBANET_A.normal.concat == (1, 3, 4, 6)
    assert AMOEBANET_A.reduction.concat == (2, 3, 4, 5, 6)
    assert AMOEBANET_A.reduction.blocks[3] == Block((4, 0), ("sep_conv_3x3", "conv_1x7_7x1"))
    # PNASNet-5 uses one cell everywhere; b4 = sep3(b3) + max3(h).
    assert PNASNET_5.normal == PNASNET_5.reduction
    assert PNASNET_5.normal.blocks[3] == Block((4, 0), ("sep_conv_3x3", "max_pool_3x3"))


@pytest.mark.parametrize("name,study", [("KNAS_EVOLVE_A", "evolve"), ("KNAS_EVOLVE_B", "evolve-warm")])
def test_the_found_cells_are_the_ones_their_search_folders_record(name, study):
    # Each is a copy of its study's final cell: the study's records are the fact.
    from pathlib import Path

    from keras_nasnet.genotypes import GENOTYPES

    recorded = Path(__file__).resolve().parents[1] / "search" / study / "run" / "best_genotype.json"
    assert Genotype.from_json(recorded.read_text()) == GENOTYPES[name]
    assert genotype_from(name.lower()) is GENOTYPES[name]


def test_genotype_is_immutable():
    with pytest.raises(Exception):
        NASNET_A.normal = NASNET_A.reduction


def _cell_dict(**over):
    d = NASNET_A.to_dict()
    d["normal"].update(over)
    return d


def test_unknown_op_is_named_with_valid_list():
    d = NASNET_A.to_dict()
    d["normal"]["blocks"][0]["ops"][0] = "sep_conv_9x9"
    with pytest.raises(GenotypeError, match="sep_conv_9x9.*Valid ops are: identity, conv_1x3_3x1"):
        Genotype.from_dict(d)


def test_input_from_future_block_rejected():
    d = NASNET_A.to_dict()
    d["normal"]["blocks"][1]["inputs"] = [0, 3]
    with pytest.raises(GenotypeError, match="Block 2 reads hidden state 3, which is not computed yet"):
        Genotype.from_dict(d)


@pytest.mark.parametrize("concat,msg", [([], "empty"), ([1, 9], "out of range"), ([2, 2], "repeats")])
def test_bad_concat_rejected(concat, msg):
    with pytest.raises(GenotypeError, match=msg):
        Genotype.from_dict(_cell_dict(concat=concat))


def test_blocks_that_reach_no_output_are_rejected():
    # Keras would build a model without them: the genotype and the model would disagree silently.
    d = NASNET_A.to_dict()
    d["normal"]["concat"] = [2]
    with pytest.raises(GenotypeError, match=r"Hidden state\(s\) \[3, 4, 5, 6\] \(block\(s\) \[2, 3, 4, 5\]\).*Add them to concat"):
        Genotype.from_dict(d)
    # A block read only by a block that reaches the output is used.
    chained = {"blocks": [{"inputs": [0, 1], "ops": ["identity", "identity"]},
                          {"inputs": [2, 0], "ops": ["identity", "identity"]}], "concat": [3]}
    assert Cell.from_dict(chained).concat == (3,)


def test_wrong_combine_rejected():
    d = NASNET_A.to_dict()
    d["normal"]["blocks"][0]["combine"] = "multiply"
    with pytest.raises(GenotypeError, match="Unknown combine 'multiply'"):
        Genotype.from_dict(d)


def test_reduction_cannot_output_its_inputs():
    d = NASNET_A.to_dict()
    d["reduction"]["concat"] = [0, *d["reduction"]["concat"]]
    with pytest.raises(GenotypeError, match="twice the spatial size"):
        Genotype.from_dict(d)


def test_malformed_json_gets_clear_error():
    with pytest.raises(GenotypeError, match="does not parse"):
        Genotype.from_json("{not json")
    with pytest.raises(GenotypeError, match='exactly the keys "normal" and "reduction"; got a mapping '
                                            r"with the keys \['normal'\]\.$"):
        Genotype.from_json('{"normal": {}}')
    # a record that holds a genotype (final.json's final_cell, say): the entry to pass is named
    record = json.dumps({"genotype": NASNET_A.to_dict(), "reward": 0.5})
    with pytest.raises(GenotypeError, match=r"keys \['genotype', 'reward'\]\. Its \"genotype\" entry is a genotype"):
        Genotype.from_json(record)


def test_genotype_from_accepts_names_json_and_files(tmp_path):
    assert genotype_from("amoebanet_a") is AMOEBANET_A
    assert genotype_from(NASNET_A.to_json()) == NASNET_A
    f = tmp_path / "g.json"
    f.write_text(PNASNET_5.to_json())
    assert genotype_from(str(f)) == PNASNET_5
    assert genotype_from(f) == PNASNET_5  # a pathlib.Path too
    with pytest.raises(GenotypeError, match="no such genotype JSON file"):
        genotype_from(tmp_path / "missing.json")
    with pytest.raises(GenotypeError, match="neither a known genotype"):
        genotype_from("NOT_A_GENOTYPE")


def test_the_op_table_is_plain_data_importable_without_keras():
    """Genotypes (and so searches and genotype files) need no deep-learning framework."""
    import subprocess
    import sys
    from pathlib import Path

    import keras_nasnet.genotypes as G

    code = ("import importlib.util, sys\n"
            "sys.modules['keras'] = sys.modules['tensorflow'] = None\n"
            f"spec = importlib.util.spec_from_file_location('g', {G.__file__!r})\n"
            "g = importlib.util.module_from_spec(spec); sys.modules['g'] = g; spec.loader.exec_module(g)\n"
            "print(len(g.OPS), g.OP_SPECS['sep_conv_5x5'].kernel_size)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(G.__file__).parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["13", "5"]
    assert G.OPS == tuple(G.OP_SPECS)


@pytest.mark.parametrize("cell,path,value,match", [
    ("normal", ("blocks", 0, "inputs"), 5, r'normal cell: Block 1: "inputs" must be a list .*got 5'),
    ("normal", ("blocks",), None, r'normal cell: "blocks" must be a list'),
    ("reduction", ("blocks", 1, "ops"), "sep_conv_3x3",
     r"reduction cell: Block 2: \"ops\" must be a list .*got 'sep_conv_3x3' \(str\)"),
    ("normal", ("concat",), 3, r'"concat" must be a list'),
    ("normal", ("blocks", 0, "ops"), [1, "identity"], "Block 1: Unknown op 1"),
    ("normal", ("blocks", 0, "combine"), ["add"], r"Block 1: Unknown combine \['add'\]"),
])
def test_json_with_wrong_types_names_the_field(cell, path, value, match):
    data = NASNET_A.to_dict()
    target = data[cell]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(GenotypeError, match=match):
        Genotype.from_json(json.dumps(data))


def test_numpy_integers_are_taken_as_plain_ints():
    # A genotype generated with NumPy (rng.integers) must build, compare and serialize like the
    # same genotype written by hand.
    block = Block((np.int64(0), np.int32(1)), ("identity", "sep_conv_3x3"))
    cell = Cell([block], [np.int64(2)])
    assert block == Block((0, 1), ("identity", "sep_conv_3x3"))
    assert all(type(i) is int for i in (*block.inputs, *cell.concat))
    assert hash(cell) == hash(Cell([Block((0, 1), ("identity", "sep_conv_3x3"))], [2]))


def test_cell_errors_name_the_key_and_cells_mix_with_dicts():
    with pytest.raises(GenotypeError, match=r"\(missing 'concat'\)"):
        Cell.from_dict({"blocks": NASNET_A.normal.to_dict()["blocks"]})
    with pytest.raises(GenotypeError, match=r"Block 1 has unknown key\(s\) \['bad'\]"):
        Cell(blocks=[{"inputs": [0, 1], "ops": ["identity", "identity"], "bad": 1}], concat=[2])
    mixed = Genotype.from_dict({"normal": NASNET_A.normal, "reduction": NASNET_A.reduction.to_dict()})
    assert mixed == NASNET_A


def test_genotype_from_says_what_was_wrong_with_json_and_files(tmp_path):
    import pytest

    from keras_nasnet.genotypes import NASNET_A, GenotypeError, genotype_from

    for text in ("[1, 2]", "null", "3"):  # valid JSON, not a genotype: not "neither ... JSON"
        with pytest.raises(GenotypeError, match="is JSON but not a genotype"):
            genotype_from(text)
    cut = tmp_path / "cut.json"
    cut.write_text(NASNET_A.to_json()[:30])  # a file cut short is named
    for value in (cut, str(cut)):
        with pytest.raises(GenotypeError, match=r"cut\.json: Genotype JSON does not parse"):
            genotype_from(value)
