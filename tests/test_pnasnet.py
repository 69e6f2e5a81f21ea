"""PNASNet-5 Large from the genotype factory, and timm's weights converted into it.

The equivalence with timm's PyTorch model runs where torch and timm are installed (skipped
otherwise); CI checks the name mapping against timm's committed list of names and shapes.
"""

import importlib.util
import json
import struct

import keras
import numpy as np
import pytest
from conftest import randomise_bn

import keras_nasnet as kn
from keras_nasnet import ops
from keras_nasnet import weights as W
from keras_nasnet.models import cell_plan
from keras_nasnet.weights import timm as T

# A PNASNet at a size CI affords: the same cells, stem and op conventions, fewer and narrower cells.
TINY = dict(genotype=kn.PNASNET_5, num_cells=(1, 1, 1), penultimate_filters=160, stem="imagenet",
            stem_filters=8, op_style="slim", input_shape=(32, 32, 3), classes=7)


@pytest.fixture(scope="module")
def large():
    """PNASNet5Large's graph (weights do not depend on the input size, so it is built small)."""
    return kn.PNASNet5Large(weights=None, input_shape=(64, 64, 3))


def test_every_timm_tensor_maps_to_exactly_one_keras_weight_of_its_shape(large):
    ref = T.timm_reference()["tensors"]
    assert len(ref) == 1380
    keras_weights = {(l.name, i): tuple(w.shape) for l in large.layers for i, w in enumerate(l.weights)}
    mapped = {}
    for name, shape in ref.items():
        where = T.keras_name(name)
        if where is None:
            assert name.endswith("num_batches_tracked")
            continue
        layer, index, kind = where
        assert (layer, index) in keras_weights, f"{name} -> {layer}[{index}]: no such Keras weight"
        assert T.to_keras(np.zeros(shape, "float32"), kind).shape == keras_weights[layer, index], name
        assert (layer, index) not in mapped, f"{name} and {mapped.get((layer, index))} share {layer}"
        mapped[layer, index] = name
    assert set(mapped) == set(keras_weights)  # and no Keras weight is left without a timm tensor
    assert large.count_params() - sum(
        int(np.prod(w.shape)) for l in large.layers if isinstance(l, keras.layers.BatchNormalization)
        for w in l.non_trainable_weights) == 86_057_668  # timm's parameter count


def test_pnasnet5large_macro_architecture(large):
    plan = cell_plan("imagenet", (4, 3, 3), 216)
    assert [c.block_id for c in plan] == ["stem_1", "stem_2"] + [str(i) for i in range(12)]
    assert [c.kind for c in plan][2:] == ["normal"] * 4 + ["reduction"] + ["normal"] * 3 + [
        "reduction"] + ["normal"] * 3
    assert [c.filters for c in plan] == [54, 108] + [216] * 4 + [432] * 4 + [864] * 4
    assert large.get_layer("stem_conv1").kernel.shape == (3, 3, 3, 96)
    assert large.get_layer("predictions").kernel.shape == (4320, 1000)
    # The one PNASNet cell at a reduction: its identity becomes a strided 1x1 conv, as in timm.
    assert large.get_layer("reduction_right5_4_conv").strides == (2, 2)


def test_slim_pools_pad_as_tf_same_and_project_without_relu():
    x = keras.Input((5, 5, 4))
    cfg = ops.BNConfig()
    keras_pool = keras.Model(x, ops.apply_op("max_pool_3x3", x, 4, 2, cfg, "k",
                                             padded=lambda k: ops.stride_pad(x, k, "pad")))
    slim_pool = keras.Model(x, ops.apply_op("max_pool_3x3", x, 4, 2, cfg, "s", style="slim"))
    negative = -np.arange(1, 101, dtype="float32").reshape(1, 5, 5, 4)
    # keras.applications' zero padding wins the max at the border; TF "SAME" padding never does.
    assert np.asarray(keras_pool(negative)).max() == 0
    assert np.array_equal(np.asarray(slim_pool(negative)),
                          np.asarray(keras.layers.MaxPooling2D(3, 2, padding="same")(negative)))
    wide = keras.Model(x, ops.apply_op("max_pool_3x3", x, 2, 1, cfg, "w", style="slim"))
    assert not any(isinstance(l, keras.layers.Activation) for l in wide.layers)
    with pytest.raises(ValueError, match="style must be 'keras' or 'slim'"):
        ops.apply_op("max_pool_3x3", x, 4, 1, cfg, "bad", style="tf")


def test_tiny_pnasnet_saves_folds_and_runs_at_any_size(tmp_path, rng):
    model = kn.NASNet(**TINY)
    randomise_bn(model, rng)
    x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    want = np.asarray(model(x, training=False))
    model.save(tmp_path / "tiny.keras")
    again = keras.models.load_model(tmp_path / "tiny.keras")
    assert np.allclose(np.asarray(again(x, training=False)), want, atol=1e-6)
    folded = kn.fold_batch_norm(model)
    assert np.allclose(np.asarray(folded(x)), want, atol=1e-5)
    features = kn.NASNet(**{**TINY, "input_shape": (None, None, 3), "include_top": False})
    assert features(np.zeros((1, 45, 37, 3), "float32")).shape == (1, 2, 2, 160)


def test_converted_file_records_its_architecture_and_refuses_another(tmp_path):
    path = tmp_path / "pnas.h5"
    T.write_keras_h5({"stem_conv1": [np.zeros((3, 3, 3, 96), "float32")]}, path, T.pnasnet_record())
    with pytest.raises(W.WeightsError, match="another architecture"):
        W.load_h5_by_name(kn.NASNetCIFAR(1, 24), path)


def _safetensors(path, tensors, extra=b""):
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        blob = np.ascontiguousarray(a).tobytes()
        header[name] = {"dtype": {"float32": "F32", "int64": "I64"}[a.dtype.name],
                        "shape": list(a.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps({"__metadata__": {"format": "pt"}, **header}).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs) + extra)


def test_safetensors_are_read_with_numpy_and_checked_against_timms_list(tmp_path, rng):
    a = rng.normal(size=(4, 3, 1, 1)).astype("float32")
    _safetensors(tmp_path / "small.safetensors", {"w": a, "n": np.array(7, "int64")})
    got = T.read_safetensors(tmp_path / "small.safetensors")
    assert np.array_equal(got["w"], a) and got["n"] == 7
    with pytest.raises(W.WeightsError, match="is not timm's pnasnet5large.tf_in1k file: 1380 tensor"):
        T.check_file(tmp_path / "small.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(W.WeightsError, match="not a safetensors file"):
        T.read_safetensors(tmp_path / "junk.safetensors")


def test_imagenet_weights_offline_say_what_to_download_and_where(monkeypatch):
    monkeypatch.setenv("KERAS_NASNET_WEIGHTS_URL", "http://127.0.0.1:9/")  # nothing listens there
    with pytest.raises(W.WeightsError) as e:
        kn.PNASNet5Large()  # fails before the model is built
    msg = str(e.value)
    assert "huggingface.co/timm/pnasnet5large.tf_in1k/resolve/" in msg
    assert str(W.cache_dir() / "timm_pnasnet5large.tf_in1k.safetensors") in msg


def test_registry_entry_preprocessing_and_labels_match_timms_config():
    spec = W.registry()["pnasnet5_large_imagenet"]
    cfg = T.timm_reference()["pretrained_cfg"]
    assert (spec.architecture, spec.license) == ("pnasnet5_large", "Apache-2.0")
    assert cfg["license"] == "apache-2.0" and cfg["interpolation"] == "bicubic"
    assert [3, spec.input_size, spec.input_size] == cfg["input_size"] and spec.classes == cfg["num_classes"]
    pixels = np.array([[0.0, 64.0, 200.0, 255.0]], "float32")
    timm_way = (pixels / 255.0 - cfg["mean"][0]) / cfg["std"][0]
    assert np.allclose(kn.preprocess_input(pixels), timm_way, atol=1e-6)
    assert len(kn.decode_predictions(np.eye(1000, dtype="float32")[:1], top=1)[0]) == 1


def test_cli_convert_refuses_what_it_cannot_convert(tmp_path, capsys):
    from keras_nasnet.weights.__main__ import main

    assert main(["convert", "timm:resnet50", str(tmp_path / "o.h5")]) == 2
    assert main(["convert", "timm:pnasnet5large.tf_in1k", str(tmp_path / "o.npz")]) == 2
    assert main(["convert", "timm:pnasnet5large.tf_in1k", str(tmp_path / "o.h5"),
                 "--source", str(tmp_path / "missing.safetensors")]) == 2
    assert "--source" in capsys.readouterr().err


def test_cli_convert_refuses_an_out_it_cannot_write_before_converting(tmp_path, capsys):
    from keras_nasnet.weights.__main__ import main

    src = tmp_path / "timm.safetensors"
    _safetensors(src, {"w": np.zeros(2, "float32")})
    (tmp_path / "folder.h5").mkdir()
    (tmp_path / "a_file").write_text("")
    for out in (tmp_path / "folder.h5", tmp_path / "a_file" / "o.h5"):
        assert main(["convert", "timm:pnasnet5large.tf_in1k", str(out), "--source", str(src)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"OUT {out}: ") and "Traceback" not in err
    # A --source that is not timm's file: the message names the flag and where the right file is.
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    for bad in (src, tmp_path / "junk.safetensors"):
        assert main(["convert", "timm:pnasnet5large.tf_in1k", str(tmp_path / "o.h5"), "--source", str(bad)]) == 1
        err = capsys.readouterr().err
        assert err.startswith("error: --source: ") and "huggingface.co/timm/pnasnet5large.tf_in1k" in err
    assert not (tmp_path / "o.h5").exists()
    # An existing OUT is kept unless --overwrite says to replace it.
    (tmp_path / "kept.h5").write_bytes(b"a user's file")
    assert main(["convert", "timm:pnasnet5large.tf_in1k", str(tmp_path / "kept.h5"), "--source", str(src)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "kept.h5").read_bytes() == b"a user's file"
    assert main(["convert", "timm:pnasnet5large.tf_in1k", str(tmp_path / "kept.h5"), "--source", str(src),
                 "--overwrite"]) == 1  # past the check: the (fake) source itself is refused
    assert (tmp_path / "kept.h5").read_bytes() == b"a user's file"


def test_interrupted_conversion_to_keras_format_leaves_no_out(tmp_path, monkeypatch, capsys):
    """The .weights.h5 path goes through a by-name h5 file: it must never be left under OUT's name."""
    from keras_nasnet import models
    from keras_nasnet.weights import h5
    from keras_nasnet.weights.__main__ import main

    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "PNASNet5Large", lambda **kw: None)  # no 88M-weight model here
    monkeypatch.setattr(h5, "load_h5_by_name", stop)
    monkeypatch.setattr(T, "check_file", lambda path: None)
    monkeypatch.setattr(T, "read_safetensors", lambda path: {})
    src = tmp_path / "timm.safetensors"
    src.write_bytes(b"")
    out = tmp_path / "p.weights.h5"
    with pytest.raises(KeyboardInterrupt):
        T.convert(src, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timm.safetensors"]
    try:  # caught here, so that without the CLI's handling this test fails instead of ending pytest
        status = main(["convert", "timm:pnasnet5large.tf_in1k", str(out), "--source", str(src)])
    except KeyboardInterrupt:
        status = "KeyboardInterrupt escaped"
    assert status == 130
    assert "interrupted: the conversion was stopped" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["timm.safetensors"]


needs_torch = pytest.mark.skipif(
    importlib.util.find_spec("torch") is None or importlib.util.find_spec("timm") is None,
    reason="needs torch and timm")


def _random_timm(size):
    """timm's pnasnet5large at random init, with BatchNorm statistics of one training-mode batch
    (fresh ones are the identity, which would hide a wrong statistic), and an input batch."""
    import timm
    import torch

    torch.manual_seed(0)
    tm = timm.create_model("pnasnet5large", pretrained=False)
    for m in tm.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 1.0  # running statistics = this batch's statistics
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        tm.train()(torch.rand(2, 3, size, size, generator=g) * 2 - 1)
    return tm.eval(), torch.rand(2, 3, size, size, generator=g) * 2 - 1


@needs_torch
@pytest.mark.slow
def test_random_timm_pnasnet5large_converted_gives_the_same_outputs_at_331(tmp_path):
    """Converted through the same path as the hub file (state dict -> NumPy -> converter -> h5).
    Prints the measured differences (``pytest -s``)."""
    import torch

    tm, x = _random_timm(331)
    with torch.no_grad():
        feats = tm.forward_features(x)
        logits = tm.forward_head(feats).numpy()
        feats = feats.numpy().transpose(0, 2, 3, 1)
    state = {k: v.numpy() for k, v in tm.state_dict().items()}
    del tm
    path = W.convert_timm(None, tmp_path / "pnas.h5", tensors=state)
    xk = x.numpy().transpose(0, 2, 3, 1)
    model = kn.PNASNet5Large(weights=str(path), classifier_activation=None)
    d_logits = float(np.abs(np.asarray(model(xk, training=False)) - logits).max())
    del model
    model = kn.PNASNet5Large(weights=str(path), include_top=False)
    d_feats = float(np.abs(np.asarray(model(xk, training=False)) - feats).max())
    scale = float(np.abs(feats).max())
    print(f"\nmax |diff| at 331: logits {d_logits:.3g} (max |logit| {np.abs(logits).max():.3g}), "
          f"include_top=False features {d_feats:.3g} (max {scale:.3g}, relative {d_feats / scale:.3g})")
    assert d_logits <= 1e-4
    # float32 rounding differs between the two libraries' kernels, and a random network amplifies
    # it by about 1.5 per cell; the float64 test below shows the networks are otherwise the same.
    assert d_feats <= 1e-3 * scale


@needs_torch
def test_converted_pnasnet5large_matches_timm_to_float64_rounding():
    import torch

    tm, x = _random_timm(67)  # odd sizes at every stride-2 step, where padding matters
    with torch.no_grad():
        tm, x = tm.double(), x[:1].double()  # float64 convolutions are slow on CPU
        feats = tm.forward_features(x)
        logits = tm.forward_head(feats).numpy()
        feats = feats.numpy().transpose(0, 2, 3, 1)
    state = {k: v.numpy().astype("float64") for k, v in tm.state_dict().items()}
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        model = kn.PNASNet5Large(weights=None, input_shape=(67, 67, 3), classifier_activation=None,
                                 bn_fused=False)  # TensorFlow's fused kernel computes in float32
        for name, array in state.items():
            where = T.keras_name(name)
            if where is not None:
                layer, index, kind = where
                model.get_layer(layer).weights[index].assign(T.to_keras(array, kind, "float64"))
        features = keras.Model(model.input, model.get_layer("final_relu").output)
        xk = x.numpy().transpose(0, 2, 3, 1)
        d_logits = float(np.abs(np.asarray(model(xk, training=False)) - logits).max())
        d_feats = float(np.abs(np.asarray(features(xk, training=False)) - feats).max())
    finally:
        keras.config.set_dtype_policy(policy)
    print(f"\nfloat64 max |diff| at 67: logits {d_logits:.3g}, features {d_feats:.3g}")
    assert d_logits < 1e-9 and d_feats < 1e-9


def _concat_genotype():
    """A genotype whose normal cell is 5F wide (two concat blocks), so 1056 and 768 are invalid."""
    normal = kn.Cell((kn.Block((0, 1), ("sep_conv_3x3", "identity"), "concat"),
                      kn.Block((0, 1), ("avg_pool_3x3", "identity"), "concat")), (1, 2, 3))
    reduction = kn.Cell((kn.Block((0, 1), ("max_pool_3x3", "sep_conv_3x3")),), (2,))
    return kn.Genotype(normal, reduction)


def test_default_penultimate_filters_is_the_nearest_valid_one_for_a_searched_genotype(tmp_path):
    path = tmp_path / "best_genotype.json"
    path.write_text(_concat_genotype().to_json())
    assert _concat_genotype().normal.width == kn.models.cell_width(_concat_genotype().normal) == 5
    model = kn.NASNet(genotype=str(path), num_cells=1, input_shape=(32, 32, 3), classes=3)
    assert W.architecture_of(model)["penultimate_filters"] == 1040  # 13 * 80; 1056 is not valid
    cifar = kn.NASNetCIFAR(num_cells=1, genotype=str(path))
    assert W.architecture_of(cifar)["penultimate_filters"] == 760  # 19 * 40, nearest to 768
    assert W.architecture_of(kn.NASNetCIFAR(num_cells=1))["penultimate_filters"] == 768
    with pytest.raises(ValueError, match="nearest valid values are 1040 or 1120"):
        kn.NASNet(genotype=str(path), num_cells=1, penultimate_filters=1056)


def test_num_cells_per_stack_and_its_errors():
    with pytest.raises(ValueError, match="three integers"):
        kn.NASNet(num_cells=(1, 2))
    with pytest.raises(ValueError, match="num_cells' three counts must be a positive integer"):
        kn.NASNet(num_cells=(1, 0, 1))
    plan = cell_plan("cifar", (2, 1, 1), 8)
    assert [(c.kind, c.block_id, c.filters, c.level) for c in plan] == [
        ("normal", "0", 8, 0), ("normal", "1", 8, 0), ("reduction", "2", 16, 0),
        ("normal", "3", 16, 1), ("reduction", "4", 32, 1), ("normal", "5", 32, 2)]


def test_supernet_wires_its_cells_as_the_models_do():
    from keras_nasnet.search.supernet import plan_cells

    got = [(p.kind, p.block_id, p.filters, p.level, p.ip, p.p, p.p_level) for p in plan_cells(2, 8)]
    assert got == [
        ("normal", "0", 8, 0, -1, -1, 0), ("normal", "1", 8, 0, 0, -1, 0),
        ("reduction", "reduce_2", 16, 0, 1, 0, 0), ("normal", "3", 16, 1, 2, 1, 0),
        ("normal", "4", 16, 1, 3, 2, 1), ("reduction", "reduce_4", 32, 1, 4, 3, 1),
        ("normal", "5", 32, 2, 5, 4, 1), ("normal", "6", 32, 2, 6, 5, 2)]


def test_a_float64_policy_keeps_the_classifier_in_float64():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float64")
    try:
        model = kn.NASNetCIFAR(1, 24, bn_fused=False)
    finally:
        keras.config.set_dtype_policy(policy)
    assert model.get_layer("predictions").compute_dtype == "float64"
