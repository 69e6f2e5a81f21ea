"""train_standalone: cells x seeds trained stand-alone through the search's executors, journaled."""

import json
import pickle

import numpy as np
import pytest

TINY = {"normal": {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"]}], "concat": [2]},
        "reduction": {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "max_pool_3x3"]}], "concat": [2]}}
OTHER = {"normal": {"blocks": [{"inputs": [0, 1], "ops": ["avg_pool_3x3", "identity"]}], "concat": [2]},
         "reduction": {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "max_pool_3x3"]}], "concat": [2]}}


@pytest.fixture
def cifar_batches(tmp_path, rng):
    """A cifar-10-batches-py folder of random images: 5,200 training images (the reward holds
    5,000 out) and 50 test images."""
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name, n in [(f"data_batch_{i}", 1040) for i in range(1, 6)] + [("test_batch", 50)]:
        x = rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8)
        (folder / name).write_bytes(pickle.dumps({b"data": x, b"labels": rng.integers(0, 10, n).tolist()}))
    return folder


def test_cells_and_seeds_train_once_and_resume(cifar_batches, tmp_path, capsys):
    from keras_nasnet.search import ConfigMismatch, ProxyConfig, train_standalone

    proxy = ProxyConfig.preset("cpu", penultimate_filters=48, train_images=64, val_images=40,
                               batch_size=32, data=str(cifar_batches))
    out = tmp_path / "journal"
    rows = train_standalone(out, {"tiny": TINY, "other": OTHER}, [0, 1], proxy, workers=0)
    assert [(r["cell"], r["seed"]) for r in rows] == [("tiny", 0), ("tiny", 1), ("other", 0), ("other", 1)]
    for r in rows:
        assert r["status"] == "ok"
        assert r["val"] in {k / 40 for k in range(41)} and r["test"] in {k / 50 for k in range(51)}
        assert r["train_loss"] > 0  # the last epoch's mean training loss, a ranking signal of its own
        # The budget keys the ground truth: epochs, images and the recipe's version, no data path.
        assert r["budget"]["recipe_version"] == 2 and r["budget"]["train_images"] == 64
        assert "data" not in r["budget"]
    lines = (out / "trials.jsonl").read_text()
    # Asked again (one more seed): only the new children train; the finished ones are read back.
    again = train_standalone(out, {"tiny": TINY, "other": OTHER}, [0, 1, 2], proxy, workers=0)
    assert [r for r in again if r["seed"] < 2] == rows
    assert (out / "trials.jsonl").read_text().startswith(lines)
    finished = [json.loads(x) for x in (out / "trials.jsonl").read_text().splitlines()]
    assert sum(x["event"] == "finished" for x in finished) == 6
    # Another journal (e.g. the add-only space's calibration) copies what this one trained.
    copied = train_standalone(tmp_path / "other", {"tiny": TINY}, [0, 1], proxy, workers=0, reuse=[tmp_path])
    assert [(r["val"], r["test"], r["seconds"]) for r in copied] == [(r["val"], r["test"], r["seconds"]) for r in rows[:2]]
    assert all("reused_from" in json.loads(x) for x in (tmp_path / "other" / "trials.jsonl").read_text().splitlines()
               if '"finished"' in x)
    # The data is compared by content, not path: a copy of the same batches elsewhere is reused;
    # other data (one test label changed) is trained again, and the user is told why.
    import dataclasses
    import shutil

    same = tmp_path / "copy" / "cifar-10-batches-py"
    shutil.copytree(cifar_batches, same)
    on_copy = train_standalone(tmp_path / "on-copy", {"tiny": TINY}, [0], dataclasses.replace(proxy, data=str(same)),
                               workers=0, reuse=[out])
    assert on_copy[0]["val"] == rows[0]["val"] and on_copy[0]["seconds"] == rows[0]["seconds"]
    changed = tmp_path / "changed" / "cifar-10-batches-py"
    shutil.copytree(cifar_batches, changed)
    batch = pickle.loads((changed / "test_batch").read_bytes())
    batch[b"labels"][0] = (batch[b"labels"][0] + 1) % 10
    (changed / "test_batch").write_bytes(pickle.dumps(batch))
    capsys.readouterr()
    train_standalone(tmp_path / "on-other", {"tiny": TINY}, [0], dataclasses.replace(proxy, data=str(changed)),
                     workers=0, reuse=[out])
    assert "trained on other CIFAR-10 data" in capsys.readouterr().err
    assert not any("reused_from" in x for x in (tmp_path / "on-other" / "trials.jsonl").read_text().splitlines())
    # That journal, resumed on the first data, is refused rather than mixed.
    with pytest.raises(ConfigMismatch, match="other CIFAR-10 data"):
        train_standalone(tmp_path / "on-other", {"tiny": TINY}, [0, 1], proxy, workers=0)
    # A search stage takes its data from its identity's proxy; the same check applies there.
    from keras_nasnet.search.stages import reusable_children

    stage = {"space": {}, "reward": "cifar10", "strategy": "random", "seed": 0, "stage": "standalone",
             "budget": 1, "base": "cifar10"}
    assert len(reusable_children([out], {**stage, "proxy": proxy.record()})) == 6
    assert reusable_children([out], {**stage, "proxy": {**proxy.record(), "data": str(changed)}}) == {}
    # Records written before the fingerprint existed carry none: still reused on any data.
    old = tmp_path / "old" / "journal"
    shutil.copytree(out, old)
    lines = [json.loads(x) for x in (old / "trials.jsonl").read_text().splitlines()]
    for x in lines:
        (x.get("metrics") or {}).pop("data", None)
    (old / "trials.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    assert len(reusable_children([old], {**stage, "proxy": {**proxy.record(), "data": str(changed)}})) == 6
    # A ranking that reads only the held-out split skips the test split's predictions.
    quick = train_standalone(tmp_path / "quick", {"tiny": TINY}, [0], proxy, workers=0, test=False)
    assert quick[0]["test"] is None and quick[0]["val"] == rows[0]["val"]
    # Another budget or recipe on the same journal is refused, not mixed in.
    with pytest.raises(ConfigMismatch):
        train_standalone(out, {"tiny": TINY}, [0], ProxyConfig(**{**proxy.record(), "epochs": 2}), workers=0)


def test_children_can_be_compared_at_equal_parameters_not_equal_width():
    """match_params gives each cell the width (a multiple of its unit) whose model has the
    parameter count nearest the target; without it the proxy's record, and so the identity of
    every journal written before the option existed, is unchanged."""
    from keras_nasnet import NASNetCIFAR
    from keras_nasnet.genotypes import Genotype
    from keras_nasnet.models import cell_width
    from keras_nasnet.search import ProxyConfig
    from keras_nasnet.search.rewards import matched_units

    heavy = {"normal": {"blocks": [{"inputs": [0, 1], "ops": ["conv_3x3", "conv_3x3"]}], "concat": [2]},
             "reduction": TINY["reduction"]}
    light = Genotype.from_dict(TINY)
    unit = cell_width(light.normal) * 8
    counts = [NASNetCIFAR(1, k * unit, genotype=light).count_params() for k in (2, 3, 4)]
    assert matched_units(light, 1, counts[1] + (counts[2] - counts[1]) // 3) == 3 * unit  # nearer 3 than 4
    assert matched_units(light, 1, counts[1] - (counts[1] - counts[0]) // 3) == 3 * unit  # nearer 3 than 2
    # A cell of full convolutions gets fewer filters than a light one for the same parameters.
    assert matched_units(Genotype.from_dict(heavy), 1, counts[2]) < 4 * unit
    assert "match_params" not in ProxyConfig.preset("cpu").record()
    p = ProxyConfig.preset("cpu", match_params=73218)
    assert ProxyConfig.from_record(p.record()) == p


def test_the_width_at_equal_parameters_is_found_from_three_counts_and_checked():
    """matched_units reads the parameter count's quadratic off three models instead of bisecting
    (about ten); the bracket it returns is always checked against real counts, and a count that is
    not the quadratic it should be falls back to the bisection rather than a wrong width."""
    from keras_nasnet.search.rewards import _quadratic_bracket

    def quadratic(k):
        return 37 * k * k + 1200 * k + 5000

    for params in (6300, quadratic(7), quadratic(7) + 1, quadratic(300) - 1, 10**7):
        lo, hi = _quadratic_bracket(quadratic, params)
        assert hi == lo + 1 and quadratic(lo) < params <= quadratic(hi)
    assert _quadratic_bracket(quadratic, 100) == (1, 1)  # one unit already has more
    cubic = lambda k: k ** 3 + 5000  # noqa: E731 - not a model's count: refused, not guessed
    assert _quadratic_bracket(cubic, cubic(40) - 1) == (None, None)
