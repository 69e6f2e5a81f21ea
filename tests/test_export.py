"""Exports of a tiny NASNet to SavedModel, LiteRT (float32/float16/int8) and ONNX, each run in its
own runtime and compared with the Keras model. Skipped when the export extra is not installed."""

import json

import numpy as np
import pytest

import keras_nasnet as kn
from keras_nasnet.export import ExportError, export, load_exported


def _tiny(input_shape=(32, 32, 3)):
    """A one-cell CIFAR NASNet with non-trivial BatchNorm statistics, so folding is exercised."""
    import keras

    keras.utils.set_random_seed(0)  # the same weights in every run
    model = kn.NASNet(kn.NASNET_A, num_cells=1, penultimate_filters=48, stem="cifar", classes=10,
                      input_shape=input_shape, include_preprocessing=True)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if "BatchNormalization" in type(layer).__name__:
            n = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.5, n).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, n).astype("float32"))
            layer.gamma.assign(rng.uniform(0.5, 1.5, n).astype("float32"))
            layer.beta.assign(rng.normal(0, 0.3, n).astype("float32"))
    return model


@pytest.fixture(scope="module")
def tiny():
    """Built with None sizes: SavedModel and ONNX keep them, LiteRT is exported at 32x32."""
    return _tiny(input_shape=(None, None, 3))


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 3)).astype("float32")


@pytest.fixture(scope="module")
def exports(tiny, images, tmp_path_factory):
    """Each format written once (export() verifies each in its runtime as it writes it)."""
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    out = tmp_path_factory.mktemp("exports")
    static = dict(input_shape=(32, 32, 3))
    return {
        "saved_model": export(tiny, out / "sm"),
        "onnx": export(tiny, out / "m.onnx"),
        "litert": export(tiny, out / "m.tflite", **static),
        "float16": export(tiny, out / "f16.tflite", quantize="float16", **static),
        "int8": export(tiny, out / "int8.tflite", quantize="int8", calibration=images, **static),
        # Wider (F=16): the converter leaves weights under 1,024 values in float.
        "dynamic_int8": export(kn.NASNet(kn.NASNET_A, num_cells=1, penultimate_filters=384, stem="cifar",
                                         classes=10, input_shape=(32, 32, 3), include_preprocessing=True),
                               out / "dyn.tflite", quantize="dynamic_int8", calibration=images),
    }


@pytest.mark.parametrize("kind", ["saved_model", "litert", "onnx"])
@pytest.mark.slow
def test_float_exports_match_keras_in_their_runtime(kind, exports, tiny, images):
    result = exports[kind]
    assert result.format == kind and result.checked > 0 and result.max_abs_diff <= 1e-4
    assert result.checked_on == "random images"
    run = load_exported(result.path, num_threads=1)
    for n in (1, 5):  # the batch size stays free in every format
        got = run(images[:n])
        np.testing.assert_allclose(got, tiny.predict_on_batch(images[:n]), atol=1e-4)


@pytest.mark.parametrize("kind", ["saved_model", "onnx"])
def test_none_sizes_survive_saved_model_and_onnx(kind, exports, tiny):
    assert exports[kind].input_shape == (None, None, 3)
    # Odd and even sizes: StridePadding2D's run-time padding survives the export.
    x = np.random.default_rng(2).uniform(0, 255, (2, 33, 40, 3)).astype("float32")
    np.testing.assert_allclose(load_exported(exports[kind].path)(x), tiny.predict_on_batch(x), atol=1e-4)


def test_litert_needs_a_static_size(exports, tiny, tmp_path):
    assert exports["litert"].input_shape == (32, 32, 3)
    with pytest.raises(ValueError, match="static input size"):
        export(tiny, tmp_path / "any.tflite")


def test_float16_litert_is_close(exports, tiny, images):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(exports["float16"].path))
    assert any(d["dtype"] == np.float16 for d in it.get_tensor_details())
    got = load_exported(exports["float16"].path)(images)
    np.testing.assert_allclose(got, tiny.predict_on_batch(images), atol=1e-2)


def test_int8_litert_is_integer_and_agrees(exports, tiny, images):
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(exports["int8"].path))
    # Full-integer: every convolution runs on int8 tensors.
    convs = [d for d in it.get_tensor_details() if "conv" in d["name"].lower() and d["dtype"] != np.int32]
    assert convs and all(d["dtype"] == np.int8 for d in convs)
    got = load_exported(exports["int8"].path)(images)
    ref = tiny.predict_on_batch(images)
    assert np.mean(got.argmax(-1) == ref.argmax(-1)) >= 0.75
    # The reported agreement is measured on the last quarter of the 16 images, kept out of
    # calibration (on the calibrating images themselves it is overstated).
    result = exports["int8"]
    assert (result.checked, result.checked_on) == (4, "held-out calibration images")
    assert result.top1_agreement == np.mean(got[-4:].argmax(-1) == ref[-4:].argmax(-1))
    assert np.abs(got - ref).max() < 0.2


def test_dynamic_int8_has_int8_weights_and_float_activations(exports):
    from ai_edge_litert.interpreter import Interpreter

    result = exports["dynamic_int8"]
    # export() compared it with the Keras model on the 16 images: same top-1 class, close outputs.
    assert result.quantize == "dynamic_int8" and result.checked == 16
    assert result.checked_on == "given images"  # dynamic_int8 calibrates nothing on them
    assert result.top1_agreement >= 0.9 and result.max_abs_diff < 0.05
    it = Interpreter(model_path=str(result.path))
    int8 = [d for d in it.get_tensor_details() if d["dtype"] == np.int8]
    assert len(int8) >= 10  # the convolution weights
    # Activations stay float (quantized inside each convolution at run time): float in and out.
    assert it.get_input_details()[0]["dtype"] == np.float32
    assert it.get_output_details()[0]["dtype"] == np.float32


def test_bad_arguments_say_what_to_do(tmp_path):
    model = kn.NASNet(kn.NASNET_A, num_cells=1, penultimate_filters=48, stem="cifar", classes=10,
                      input_shape=(32, 32, 3))
    with pytest.raises(ValueError, match="calibration"):
        export(model, tmp_path / "m.tflite", quantize="int8")
    with pytest.raises(ValueError, match="litert"):
        export(model, tmp_path / "m.onnx", quantize="int8")
    with pytest.raises(ValueError, match="format"):
        export(model, tmp_path / "m.bin")
    with pytest.raises(ValueError, match="name it m.onnx"):  # could never be read back
        export(model, tmp_path / "m.tflite", format="onnx")
    with pytest.raises(ValueError, match="only fix"):
        export(model, tmp_path / "m.tflite", input_shape=(64, 64, 3))
    with pytest.raises(ValueError, match="not an export"):
        load_exported(tmp_path / "m.bin")
    for missing in ("nope.tflite", "nope.onnx"):  # not the runtimes' own words for it
        with pytest.raises(FileNotFoundError, match=f"nope.{missing.split('.')[1]}' does not exist"):
            load_exported(tmp_path / missing)
    assert issubclass(ExportError, RuntimeError)


def test_export_refuses_before_converting_what_would_fail_or_mislead(tmp_path, images):
    model = _tiny()  # raw pixels in [0, 255]: it starts with a rescaling layer
    for size in (0, -2, 1.5):
        with pytest.raises(ValueError, match=f"batch_size={size!r}; use a positive integer, or None"):
            export(model, tmp_path / "m.onnx", batch_size=size)
    # Calibrated on [0, 1] images, the int8 ranges fit no real input, and the agreement check
    # (which runs on the calibration images) would have said 1.0.
    with pytest.raises(ValueError, match=r"calibration images are in \[0, 0\.99\d*\].*takes raw pixels in \[0, 255\]"):
        export(model, tmp_path / "m.tflite", quantize="int8", calibration=images / 255.0)
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(ValueError, match="a_file is a file, not a folder"):
        export(model, tmp_path / "a_file" / "m.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"]


def test_cli_says_a_file_that_is_not_a_keras_archive_is_not_one(tmp_path, capsys):
    (tmp_path / "junk.keras").write_bytes(b"\x89HDF\r\n\x1a\n not a zip")
    code, err = _cli(capsys, tmp_path / "junk.keras", tmp_path / "m.onnx")
    assert code == 1 and "junk.keras is not a .keras model (a .keras file is a zip archive" in err


def test_a_saved_model_folder_gets_a_plain_folders_permissions(exports):
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert exports["saved_model"].path.stat().st_mode & 0o777 == 0o777 & ~umask


def test_a_missing_export_package_is_named_before_the_conversion(tmp_path, monkeypatch):
    import importlib.util

    import keras_nasnet.export as ex

    model = kn.NASNet(kn.NASNET_A, num_cells=1, penultimate_filters=48, stem="cifar", classes=10,
                      input_shape=(32, 32, 3))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("ai_edge_litert", "tf2onnx") else real(name, *a))
    # Without the export extra, a LiteRT export used to convert for seconds first (printing the
    # converter's warnings) and only then fail; now it fails before the conversion starts.
    monkeypatch.setattr(ex, "_rebuild_at", lambda *a: pytest.fail("the conversion started"))
    with pytest.raises(ImportError, match=r"ai-edge-litert: pip install 'keras_nasnet\[export\]'"):
        export(model, tmp_path / "m.tflite")
    with pytest.raises(ImportError, match="tf2onnx"):
        export(model, tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def _undelegated_ops(path) -> set:
    """Op names LiteRT runs itself rather than through the XNNPACK delegate: every op not
    reachable backwards from a DELEGATE node's outputs without crossing its inputs."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    ops = it._get_ops_details()
    own = {o["index"]: o for o in ops if o["op_name"] != "DELEGATE"}
    producer = {t: i for i, o in own.items() for t in o["outputs"]}
    covered = set()
    for d in (o for o in ops if o["op_name"] == "DELEGATE"):
        stop, stack = set(d["inputs"]), list(d["outputs"])
        while stack:
            t = stack.pop()
            if t in stop or t not in producer or producer[t] in covered:
                continue
            covered.add(producer[t])
            stack.extend(own[producer[t]]["inputs"])
    return {o["op_name"] for i, o in own.items() if i not in covered}


@pytest.mark.parametrize("kind", ["litert", "int8", "dynamic_int8"])
def test_xnnpack_runs_pools_and_relus(kind, exports):
    # Without the rewrite, XNNPACK leaves every int8 AVERAGE_POOL_2D and RELU (and float "same"
    # pools) to LiteRT's own kernels, which made int8 slower than float.
    assert not _undelegated_ops(exports[kind].path) & {"AVERAGE_POOL_2D", "RELU"}


def test_int8_loads_when_calibration_never_makes_a_relu_positive(tmp_path):
    # Such a ReLU's int8 range is [0, 0], its scale about 1e-8, and XNNPACK refused the
    # convolution producing it, so LiteRT could not load the model at all (seen with untrained
    # weights: about 1 tiny NASNet in 15). Both kinds: a ReLU fused into its convolution, and a
    # standalone one (rewritten as a depthwise convolution).
    pytest.importorskip("ai_edge_litert")
    import keras
    from keras import layers

    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(8, 3, padding="same")(inputs)
    negative = keras.initializers.Constant(-100.0)
    fused = layers.ReLU()(layers.Conv2D(8, 1, bias_initializer=negative)(x))
    below = layers.Conv2D(8, 1, bias_initializer=negative)(x)
    standalone = layers.ReLU()(below)  # its input is also read by the Add: not fusable
    y = layers.Add()([layers.ReLU()(x), fused, standalone, below])
    model = keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(y)))
    images = np.random.default_rng(0).normal(size=(32, 8, 8, 3)).astype("float32")
    result = export(model, tmp_path / "m.tflite", quantize="int8", calibration=images)
    assert result.top1_agreement == 1.0
    assert (result.checked, result.checked_on) == (8, "held-out calibration images")
    # Too few to spare any: all calibrate, and the result says the check ran on them.
    few = export(model, tmp_path / "few.tflite", quantize="int8", calibration=images[:6])
    assert (few.checked, few.checked_on) == (6, "calibration images")
    assert not _undelegated_ops(result.path) & {"CONV_2D", "DEPTHWISE_CONV_2D", "RELU"}


def _entries(folder):
    return sorted(p.name for p in folder.iterdir())


def test_a_failed_or_interrupted_export_leaves_nothing_behind(tmp_path, monkeypatch, images):
    import keras_nasnet.export as ex

    model = _tiny()
    out = tmp_path / "out"
    out.mkdir()
    # One calibration image in batches of 2 gave the converter no batch at all: an uncalibrated
    # model was written, and it loaded and ran.
    with pytest.raises(ValueError, match="at least 2 calibration images"):
        export(model, out / "m.tflite", quantize="int8", calibration=images[:1], batch_size=2)
    assert _entries(out) == []

    # A float export that fails verification is not left in place (nor its temporary file).
    monkeypatch.setattr(ex, "verify_export", lambda *a, **k: {"max_abs_diff": 1.0, "top1_agreement": 0.0,
                                                             "checked": 4})
    with pytest.raises(ExportError, match="was not written"):
        export(model, out / "m.tflite")
    assert _entries(out) == []

    # Ctrl-C while a SavedModel is written: no partial folder, an earlier export kept as it was.
    (out / "sm").mkdir()
    (out / "sm" / "saved_model.pb").write_bytes(b"earlier export")

    def interrupted(model, path, shape):
        (path / "variables").mkdir()
        raise KeyboardInterrupt

    monkeypatch.setattr(ex, "_write_saved_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        export(model, out / "sm")
    assert _entries(out) == ["sm"] and _entries(out / "sm") == ["saved_model.pb"]


def test_export_module_is_the_module_and_still_callable():
    import types

    import keras_nasnet
    import keras_nasnet.export as m
    from keras_nasnet.export import export as function

    assert isinstance(m, types.ModuleType) and m.export is function and keras_nasnet.export is m
    assert callable(keras_nasnet.export)  # keras_nasnet.export(model, path) keeps working


def _cli(capsys, *argv):
    from keras_nasnet.export.__main__ import main

    try:
        code = main([str(a) for a in argv])
    except SystemExit as e:
        code = e.code
    return code, capsys.readouterr().err


def test_cli_refuses_up_front_in_its_own_terms(tmp_path, capsys, tiny, images, monkeypatch):
    import keras_nasnet.export.__main__ as cli

    free = "free.keras"  # stands for a model file with None spatial sizes: the tiny model
    monkeypatch.setattr(cli, "model_from_name", lambda name: (tiny, None))
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    folder = tmp_path / "calib"
    folder.mkdir()
    (folder / "fine.png").write_bytes(__import__("tensorflow").io.encode_png(images[0].astype("uint8")).numpy())
    (folder / "broken.jpg").write_bytes(b"not an image")
    npy = tmp_path / "one.npy"
    np.save(npy, images[:1])
    (tmp_path / "old.onnx").write_bytes(b"an earlier export")
    cases = [
        # (arguments, exit code, what the message must name)
        ((free, tmp_path / "m.tflite"), 2, "--input-size H W"),
        ((free, tmp_path / "m.tflite", "--input-size", "0", "0"), 2, "--input-size"),
        ((free, tmp_path / "m.tflite", "--input-size", "32", "32", "--quantize", "int8"), 2,
         "needs --calibration"),
        ((free, a_file, "--format", "saved_model"), 2, "is a file, but a SavedModel is a folder"),
        ((free, tmp_path / "m.tflite", "--input-size", "32", "32", "--quantize", "int8", "--calibration",
          folder), 1, "broken.jpg is not a PNG/JPEG image"),
        ((free, tmp_path / "m.tflite", "--input-size", "32", "32", "--quantize", "int8", "--calibration",
          npy, "--batch-size", "2"), 2, "--calibration gave 1 image(s)"),
        # a source smaller than --calibration-count is said, not silently used
        ((free, tmp_path / "m.tflite", "--input-size", "32", "32", "--quantize", "int8", "--calibration",
          npy, "--batch-size", "2"), 2, "holds 1 image(s), fewer than --calibration-count 500"),
        # calibration images without int8 would be ignored: a forgotten --quantize int8
        ((free, tmp_path / "m.tflite", "--input-size", "32", "32", "--calibration", npy), 2,
         "--calibration is used with --quantize int8"),
        ((free, tmp_path / "m.txt"), 2, "name it .tflite or .onnx, give a folder path for a SavedModel, "
         "or pass --format"),
        ((free, tmp_path / "m.tflite", "--format", "onnx"), 2, "name OUT m.onnx"),
        # an earlier export is kept unless --overwrite says otherwise
        ((free, tmp_path / "old.onnx"), 2, "old.onnx exists; pass --overwrite"),
        # a wrong --evaluate source fails before converting, and leaves no export behind
        ((free, tmp_path / "m.onnx", "--evaluate", tmp_path / "missing.tar.gz"), 1, "does not exist"),
        ((free, tmp_path / "m.onnx", "--evaluate", "cifar10:x.tar.gz"), 2,
         "--evaluate takes the CIFAR-10 source itself (x.tar.gz), without the cifar10:"),
        ((free, tmp_path / "m.tflite", "--input-size", "32", "32", "--quantize", "int8", "--calibration",
          "cifar10:nowhere.tar.gz"), 1, "--calibration cifar10:nowhere.tar.gz: CIFAR-10 source"),
        # an OUT under a file: said before converting, in words
        ((free, a_file / "m.onnx"), 1, f"Cannot write {a_file / 'm.onnx'}: {a_file} is a file, not a folder"),
    ]
    for argv, code, message in cases:
        got, err = _cli(capsys, *argv)
        assert (got, message in err, "Traceback" in err) == (code, True, False), (argv, err)
        assert "calibration=" not in err and "an array" not in err and "format=" not in err
    assert not (tmp_path / "m.tflite").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "calib", "old.onnx", "one.npy"]
    assert (tmp_path / "old.onnx").read_bytes() == b"an earlier export"


def test_cli_evaluates_the_export_and_the_keras_model_on_cifar10(tmp_path, capsys, tiny, monkeypatch):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    import keras_nasnet.export.__main__ as cli
    from conftest import write_image_folder

    monkeypatch.setattr(cli, "model_from_name", lambda name: (tiny, None))
    data = write_image_folder(tmp_path / "cifar", 1, 1, np.random.default_rng(0))
    code = cli.main(["tiny.keras", str(tmp_path / "m.onnx"), "--evaluate", str(data), "--limit", "6"])
    shown = capsys.readouterr()
    assert code == 0, shown.err
    got = json.loads(shown.out.strip().splitlines()[-1])["cifar10"]
    assert got["images"] == 6 and got["top1_agreement"] == 1.0
    assert got["export_accuracy"] == got["keras_accuracy"]


def test_cli_evaluate_refuses_a_model_that_is_not_a_cifar10_classifier(tmp_path, capsys, monkeypatch):
    import keras_nasnet.export.__main__ as cli

    features = kn.NASNet(kn.NASNET_A, num_cells=1, penultimate_filters=48, stem="cifar", include_top=False,
                         pooling="avg", input_shape=(32, 32, 3))
    monkeypatch.setattr(cli, "model_from_name", lambda name: (features, None))
    code, err = _cli(capsys, "features.keras", tmp_path / "m.onnx", "--evaluate", tmp_path)
    assert code == 2 and "needs a 10-class classifier of 32x32 RGB images" in err, err
    assert list(tmp_path.iterdir()) == []


def test_the_auxiliary_head_is_not_exported_and_other_multi_output_models_are_refused(tmp_path, images):
    import keras

    model = kn.NASNet(kn.NASNET_A, num_cells=1, penultimate_filters=48, stem="cifar", classes=10,
                      input_shape=(32, 32, 3), include_preprocessing=True, auxiliary_head=True)
    assert [t.shape[-1] for t in model.outputs] == [10, 10]
    result = export(model, tmp_path / "sm")  # it used to fail its check against both outputs
    got = load_exported(result.path)(images[:4])
    assert got.shape == (4, 10) and result.max_abs_diff <= 1e-4
    np.testing.assert_allclose(got, model.predict_on_batch(images[:4])[0], atol=1e-4)

    x = keras.Input((4,))
    two = keras.Model(x, [keras.layers.Dense(2, name="a")(x), keras.layers.Dense(3, name="b")(x)])
    with pytest.raises(ValueError, match=r"2 outputs \(a, b\).*keras.Model\(model.input, model.outputs\[i\]\)"):
        export(two, tmp_path / "two")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sm"]


def test_cli_refuses_int8_of_a_registry_model_without_calibration(tmp_path, capsys):
    # It used to fall back to a tfds download of CIFAR-10, which fails offline after minutes.
    code, err = _cli(capsys, "nasnet_cifar_1@384_cifar10", tmp_path / "m.tflite", "--quantize", "int8")
    assert code == 2 and "--quantize int8 needs --calibration: cifar10:PATH" in err
    assert list(tmp_path.iterdir()) == []


def test_cli_hides_the_converters_own_lines(tmp_path, capfd, tiny, monkeypatch):
    """TensorFlow Lite's converter prints deprecation and statistics warnings and the runtime an
    INFO line on file descriptor 2; the command line prints its own report only."""
    pytest.importorskip("ai_edge_litert")
    import keras_nasnet.export.__main__ as cli

    monkeypatch.setattr(cli, "model_from_name", lambda name: (tiny, None))
    monkeypatch.delenv("KERAS_NASNET_VERBOSE", raising=False)
    assert cli.main(["free.keras", str(tmp_path / "m.tflite"), "--input-size", "32", "32"]) == 0
    out, err = capfd.readouterr()
    assert json.loads(out)["format"] == "litert"
    assert err == ""
    # Run again, the export is there: kept without --overwrite, replaced with it.
    again = [str(tmp_path / "m.tflite"), "--input-size", "32", "32"]
    with pytest.raises(SystemExit) as e:
        cli.main(["free.keras", *again])
    assert e.value.code == 2 and "--overwrite" in capfd.readouterr().err
    assert cli.main(["free.keras", *again, "--overwrite"]) == 0


def test_npy_calibration_is_a_seeded_draw_across_the_array(tmp_path):
    # An array sorted by class must not calibrate on its first class only: the .npy source is
    # sampled with the fixed seed, as the cifar10 and folder sources are.
    from keras_nasnet.export.__main__ import calibration_images

    x = np.broadcast_to(np.arange(100, dtype=np.float32)[:, None, None, None], (100, 4, 4, 3))
    path = tmp_path / "sorted.npy"
    np.save(path, x)
    first = calibration_images(str(path), (4, 4, 3), None, count=10)
    again = calibration_images(str(path), (4, 4, 3), None, count=10)
    drawn = sorted(first[:, 0, 0, 0].astype(int))
    assert first.shape == (10, 4, 4, 3) and np.array_equal(first, again)
    assert len(set(drawn)) == 10 and max(drawn) >= 10  # not simply the first 10 images
