"""Verified downloads, the cache and loading, against a real HTTP server on 127.0.0.1."""

import dataclasses
import hashlib
import json
import http.server
import os
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

import keras_nasnet as kn
from keras_nasnet import weights as W
from keras_nasnet.weights import catalog
from keras_nasnet.weights.__main__ import main as weights_cli


class _Server:
    """Serves files from a folder; counts requests; can truncate transfers or go down."""

    def __init__(self, root):
        self.root = root
        self.requests = []
        self.truncate = False
        self.chunked_cut = False  # send a chunked transfer that stops inside its first chunk
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                f = outer.root / self.path.lstrip("/")
                if not f.is_file():
                    self.send_error(404)
                    return
                body = f.read_bytes()
                if outer.chunked_cut:
                    self.send_response(200)
                    self.send_header("Transfer-Encoding", "chunked")
                    self.end_headers()
                    self.wfile.write(b"%x\r\n" % len(body) + body[: len(body) // 2])
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if outer.truncate else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    """A tiny model with known values, saved as a weights file of the keras.applications layout."""
    root = tmp_path_factory.mktemp("served")
    model = kn.NASNetCIFAR(1, 48, name="source")
    path = root / "tiny.h5"
    W.write_h5(model, path)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    return root, path, np.asarray(model(x)), x, model


@pytest.fixture(scope="module")
def narrow():
    """Another architecture than the source's (1 @ 24): files of the source must not load into it."""
    return kn.NASNetCIFAR(1, 24, name="narrow")


@pytest.fixture
def server(source):
    s = _Server(source[0])
    yield s
    s.stop()


@pytest.fixture
def spec(source, server, monkeypatch):
    """Registers the served file for NASNetCIFAR(1, 48) as dataset 'testset' (hash patched)."""
    data = source[1].read_bytes()
    s = W.WeightSpec(
        name="nasnet_cifar_tiny_testset", architecture="nasnet_cifar_1@48", dataset="testset",
        include_top=True, file_name="tiny_cached.h5", origin_name="tiny.h5", hash_algorithm="sha256",
        file_hash=hashlib.sha256(data).hexdigest(), input_size=32, preprocessing="raw", classes=10,
        metrics={}, source="test", base_url=server.url,
    )
    monkeypatch.setattr(catalog, "_OFFICIAL", catalog._OFFICIAL + [s])
    return s


def _check_outputs(model, source):
    _, _, want, x, _ = source
    assert np.array_equal(np.asarray(model(x)), want)


def test_first_download_then_cache_without_second_request(spec, server, source):
    m = kn.NASNetCIFAR(1, 48, weights="testset")
    _check_outputs(m, source)
    assert server.requests == ["/tiny.h5"]
    cached = W.cache_dir() / "tiny_cached.h5"
    assert cached.is_file()
    kn.NASNetCIFAR(1, 48, weights="nasnet_cifar_tiny_testset")
    assert len(server.requests) == 1
    assert [p.name for p in cached.parent.iterdir()] == ["tiny_cached.h5"]


def test_corrupted_cache_file_is_fetched_again(spec, server, source):
    W.fetch(spec)
    cached = W.cache_dir() / spec.file_name
    cached.write_bytes(b"garbage")
    m = kn.NASNetCIFAR(1, 48, weights="testset")
    _check_outputs(m, source)
    assert len(server.requests) == 2
    # Offline, the bad file is neither lost nor replaced by a partial one, and the error says so.
    cached.write_bytes(b"garbage")
    server.stop()
    with pytest.raises(W.WeightsError, match=r"already at .*tiny_cached\.h5 fails its check.*left as it was"):
        W.fetch(spec)
    assert cached.read_bytes() == b"garbage" and [p.name for p in cached.parent.iterdir()] == ["tiny_cached.h5"]
    server.stop = lambda: None


def test_hash_mismatch_is_an_error_and_nothing_is_kept(spec, monkeypatch):
    bad = dataclasses.replace(spec, file_hash="0" * 64)
    monkeypatch.setattr(catalog, "_OFFICIAL", catalog._OFFICIAL[:-1] + [bad])
    with pytest.raises(W.WeightsError, match="expected 0000.*not kept.*place the file at"):
        kn.NASNetCIFAR(1, 48, weights="testset")
    assert not list(W.cache_dir().iterdir())


def test_truncated_transfer_is_an_error_and_nothing_is_kept(spec, server):
    server.truncate = True
    with pytest.raises(W.WeightsError, match="stopped after .* bytes") as e:
        W.fetch(spec)
    assert server.url in str(e.value)
    assert not list(W.cache_dir().iterdir())


def test_server_down_names_file_url_and_manual_path(spec, server):
    server.stop()
    with pytest.raises(W.WeightsError) as e:
        W.fetch(spec)
    msg = str(e.value)
    assert "tiny.h5" in msg and server.url in msg and str(W.cache_dir() / spec.file_name) in msg
    assert not W.cache_dir().exists() or not list(W.cache_dir().iterdir())
    server.stop = lambda: None


def test_http_error(spec, server, monkeypatch):
    missing = dataclasses.replace(spec, origin_name="absent.h5")
    with pytest.raises(W.WeightsError, match="HTTP error 404"):
        W.fetch(missing)


def test_mirror_url_from_environment(spec, server, monkeypatch, source):
    monkeypatch.setattr(catalog, "_OFFICIAL", catalog._OFFICIAL[:-1] + [dataclasses.replace(spec, base_url="http://127.0.0.1:9/")])
    monkeypatch.setenv("KERAS_NASNET_WEIGHTS_URL", server.url + "mirror/")
    mirror = source[0] / "mirror"
    mirror.mkdir(exist_ok=True)
    (mirror / "tiny.h5").write_bytes(source[1].read_bytes())
    _check_outputs(kn.NASNetCIFAR(1, 48, weights="testset"), source)
    assert server.requests == ["/mirror/tiny.h5"]
    # A plain folder path is a mirror too (a mounted share, a copied folder): no server needed.
    (W.cache_dir() / spec.file_name).unlink()
    monkeypatch.setenv("KERAS_NASNET_WEIGHTS_URL", str(mirror))
    _check_outputs(kn.NASNetCIFAR(1, 48, weights="testset"), source)
    assert server.requests == ["/mirror/tiny.h5"] and (W.cache_dir() / spec.file_name).is_file()
    (W.cache_dir() / spec.file_name).unlink()
    monkeypatch.setenv("KERAS_NASNET_WEIGHTS_URL", "http://[mirror")  # urllib: ValueError, not URLError
    with pytest.raises(W.WeightsError, match="not a URL urllib can open.*KERAS_NASNET_WEIGHTS_URL"):
        kn.NASNetCIFAR(1, 48, weights="testset")
    # urllib would try ftp:// and the failure read as "no network?": refused as unsupported.
    monkeypatch.setenv("KERAS_NASNET_WEIGHTS_URL", "ftp://mirror.example/")
    with pytest.raises(W.WeightsError, match=r"ftp:// URLs are not supported.*http\(s\)://"):
        kn.NASNetCIFAR(1, 48, weights="testset")
    assert not (W.cache_dir() / spec.file_name).exists()
    # A folder mirror without the file is a missing file, not a network problem; a bad file
    # there is named by where it came from, not by the download's temporary name.
    monkeypatch.setenv("KERAS_NASNET_WEIGHTS_URL", str(source[0] / "no_such_folder"))
    with pytest.raises(W.WeightsError, match="Could not read tiny_cached.h5 from file://") as e:
        kn.NASNetCIFAR(1, 48, weights="testset")
    assert "no network" not in str(e.value)
    bad = source[0] / "bad_mirror"
    bad.mkdir(exist_ok=True)
    (bad / "tiny.h5").write_bytes(b"not the weights")
    monkeypatch.setenv("KERAS_NASNET_WEIGHTS_URL", str(bad))
    with pytest.raises(W.WeightsError, match="tiny_cached.h5 from file://.*fails its check: the downloaded file") as e:
        kn.NASNetCIFAR(1, 48, weights="testset")
    assert ".part" not in str(e.value)


def test_weights_path_and_mismatch_report(source, narrow, tmp_path):
    _check_outputs(kn.NASNetCIFAR(1, 48, weights=str(source[1])), source)
    with pytest.raises(W.WeightsError, match="another architecture.*penultimate_filters: file 48, model 24"):
        W.load_file(narrow, source[1])
    # Files without a record (official, Keras-written) load by name, with the full check.
    with pytest.raises(W.WeightsError, match="not in the file|other shapes"):
        W.load_file(narrow, _without_record(source[1], tmp_path))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(W.WeightsError, match="not a readable HDF5"):
        kn.NASNetCIFAR(1, 48, weights=str(junk))


def _without_record(path, tmp_path):
    import shutil

    import h5py

    plain = tmp_path / "plain.h5"
    shutil.copy(path, plain)
    with h5py.File(plain, "a") as f:
        del f.attrs[W.h5.RECORD_ATTR]
    return plain


def test_written_files_record_the_architecture_and_refuse_another(source, tmp_path):
    record = W.read_record(source[1])
    assert record["genotype"] == kn.NASNET_A.to_dict()
    assert (record["num_cells"], record["penultimate_filters"], record["stem"]) == (1, 48, "cifar")
    # Same layer names and shapes, another network: block 0 of the normal cell reads its inputs
    # the other way round. By name and shape alone this loaded without a word.
    normal = kn.NASNET_A.normal
    b0 = normal.blocks[0]
    swapped = kn.Block(b0.inputs[::-1], b0.ops, b0.combine)
    other = kn.Genotype(kn.Cell((swapped,) + normal.blocks[1:], normal.concat), kn.NASNET_A.reduction)
    with pytest.raises(W.WeightsError, match="normal cell block 0: file .*model"):
        kn.NASNetCIFAR(1, 48, genotype=other, weights=str(source[1]))
    # Without the record the file loads by name (into the source's own model: same values).
    W.load_file(source[4], _without_record(source[1], tmp_path))
    _check_outputs(source[4], source)


def test_shipped_cifar_weights_record_their_architecture():
    spec = W.registry()["nasnet_cifar_1@384_cifar10"]
    record = W.read_record(W.fetch(spec))
    assert (record["num_cells"], record["penultimate_filters"], record["stem"]) == (1, 384, "cifar")
    assert record["genotype"] == kn.NASNET_A.to_dict() and record["include_preprocessing"]


def test_project_weights_ship_inside_the_package():
    # Installed from a wheel, the manifest and the files sit in the package, not in a checkout.
    folder = W.project_weights_dir()
    assert folder == Path(kn.__file__).resolve().parent / "weights" / "files"
    assert (folder / "manifest.json").is_file()
    assert all((folder / s.file_name).is_file() for s in W.registry().values() if s.base_url is None)


@pytest.mark.skipif(not os.environ.get("KERAS_NASNET_EXPECT_INSTALLED"),
                    reason="only where CI tests an installed wheel (.ci/run sets the variable)")
def test_tests_import_the_installed_package_not_the_checkout():
    # The checkout's own package folder, not a site-packages inside it (CI's venv lives there).
    checkout_package = Path(__file__).resolve().parents[1] / "keras_nasnet"
    assert Path(kn.__file__).resolve().parent != checkout_package, kn.__file__
    assert "site-packages" in Path(kn.__file__).resolve().parts, kn.__file__


def test_downloaded_file_gets_umask_permissions(spec, server):
    old = os.umask(0o022)
    try:
        path = W.fetch(spec)
    finally:
        os.umask(old)
    assert path.stat().st_mode & 0o777 == 0o644


def test_names_win_over_files_of_the_same_name(tmp_path, monkeypatch, source):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "imagenet").write_bytes(source[1].read_bytes())
    spec = W.resolve("imagenet", "nasnet_mobile", True, 1000)
    assert isinstance(spec, W.WeightSpec) and spec.name == "nasnet_mobile_imagenet"
    # A file is known by its suffix (which says its layout): refused before any model is built.
    for path in ("./imagenet", Path("imagenet")):
        with pytest.raises(ValueError, match="unknown weights file type.*known by its suffix"):
            W.resolve(path, "nasnet_mobile", True, 1000)
    (tmp_path / "imagenet.h5").write_bytes(source[1].read_bytes())
    assert W.resolve("imagenet.h5", "nasnet_mobile", True, 1000) == W.FileWeights("imagenet.h5")
    assert W.resolve(Path("imagenet.h5"), None, True, 10) == W.FileWeights("imagenet.h5")
    for absent in (tmp_path / "absent.h5", "absent.h5", "runs/a/weights.h5"):
        with pytest.raises(ValueError, match="no such file"):
            W.resolve(absent, None, True, 10)
    (tmp_path / "m.keras").write_bytes(b"PK")
    with pytest.raises(ValueError, match=r"whole saved model.*keras.models.load_model\('m.keras'\)"):
        W.resolve("m.keras", None, True, 10)


def test_broken_manifest_names_the_entry_and_keeps_official_weights(tmp_path, monkeypatch):
    import json

    good = json.loads((W.project_weights_dir() / "manifest.json").read_text())["weights"][0]
    broken = {k: v for k, v in good.items() if k != "architecture"}
    (tmp_path / "manifest.json").write_text(json.dumps({"weights": [broken]}))
    monkeypatch.setenv(W.DIR_ENV, str(tmp_path))
    with pytest.warns(UserWarning, match="entry 0 'nasnet_cifar_1@384_cifar10': missing 'architecture'"):
        reg = W.registry()
    assert "nasnet_mobile_imagenet" in reg and "nasnet_cifar_1@384_cifar10" not in reg
    assert W.resolve("imagenet", "nasnet_mobile", True, 1000).name == "nasnet_mobile_imagenet"
    with pytest.raises(ValueError, match="broken entries.*missing 'architecture'"):
        W.resolve("cifar10", "nasnet_cifar_1@384", True, 10)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.warns(UserWarning, match="manifest.json cannot be read"):
        assert "nasnet_large_imagenet" in W.registry()


def test_keras_home_that_is_a_file_is_a_clear_error(spec, tmp_path, monkeypatch):
    home = tmp_path / "a_file"
    home.write_text("")
    monkeypatch.setenv("KERAS_HOME", str(home))
    with pytest.raises(W.WeightsError, match="KERAS_HOME.*folder"):
        W.fetch(spec)


def test_chunked_transfer_cut_mid_chunk_is_an_error_and_nothing_is_kept(spec, server):
    server.chunked_cut = True
    with pytest.raises(W.WeightsError, match="stopped after .* bytes"):
        W.fetch(spec)
    assert not list(W.cache_dir().iterdir())


def test_failed_mirror_hint_points_at_the_official_url(spec, server, monkeypatch):
    official = "http://127.0.0.1:9/"
    monkeypatch.setattr(catalog, "_OFFICIAL", catalog._OFFICIAL[:-1] + [dataclasses.replace(spec, base_url=official)])
    monkeypatch.setenv("KERAS_NASNET_WEIGHTS_URL", server.url + "empty_mirror/")
    with pytest.raises(W.WeightsError, match="HTTP error 404") as e:
        W.fetch(W.registry()[spec.name])
    msg = str(e.value)
    assert f"Download {official}tiny.h5" in msg and "KERAS_NASNET_WEIGHTS_URL" in msg


def test_layer_names_entry_without_group_is_a_clear_error(tmp_path):
    import h5py

    path = tmp_path / "ghost.h5"
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [b"ghost"]
    with pytest.raises(W.WeightsError, match="'ghost'.*no group"):
        W.read_h5(path)


def test_native_weights_file(tmp_path, source, narrow, recwarn):
    m = kn.NASNetCIFAR(1, 48)
    p = tmp_path / "w.weights.h5"
    m.save_weights(p)
    x = source[3]
    assert np.array_equal(np.asarray(kn.NASNetCIFAR(1, 48, weights=str(p))(x)), np.asarray(m(x)))
    # Another architecture's file: one short error, no tensor dumps, no Keras warnings.
    recwarn.clear()
    with pytest.raises(W.WeightsError, match="another architecture.*stem_conv1") as e:
        W.load_file(narrow, p)
    assert len(str(e.value)) < 1000
    assert not [w for w in recwarn if "keras" in str(w.filename)]


def test_cli_list_fetch_verify(spec, server, capsys):
    assert weights_cli(["list"]) == 0
    out = capsys.readouterr().out
    assert "nasnet_large_imagenet_notop" in out and "nasnet_cifar_tiny_testset" in out
    assert weights_cli(["fetch", "nasnet_cifar_tiny_testset"]) == 0
    assert weights_cli(["verify"]) == 0
    assert "OK" in capsys.readouterr().out
    (W.cache_dir() / spec.file_name).write_bytes(b"x")
    capsys.readouterr()
    assert weights_cli(["verify"]) == 1
    # A corrupt cached file: the output says how to replace it, and doing so works.
    assert "weights fetch nasnet_cifar_tiny_testset` to download it again" in capsys.readouterr().out
    assert weights_cli(["fetch", "nasnet_cifar_tiny_testset"]) == 0
    assert weights_cli(["verify"]) == 0
    assert weights_cli(["fetch", "no_such_weights"]) == 2
    # A file downloaded by hand keeps its published name; a missing path is said to be missing.
    manual = W.cache_dir().parent / "downloads" / spec.origin_name
    manual.parent.mkdir(parents=True, exist_ok=True)
    manual.write_bytes((W.cache_dir() / spec.file_name).read_bytes())
    capsys.readouterr()
    assert weights_cli(["verify", str(manual)]) == 0
    assert f"{manual}: OK (nasnet_cifar_tiny_testset" in capsys.readouterr().out
    assert weights_cli(["verify", str(manual.parent / "nothere.h5")]) == 1
    assert "nothere.h5: no such file" in capsys.readouterr().err


def test_registry_holds_the_official_files():
    reg = W.registry()
    assert reg["nasnet_mobile_imagenet"].file_hash == "020fb642bf7360b370c678b08e0adf61"
    assert reg["nasnet_large_imagenet_notop"].url.endswith("/NASNet-large-no-top.h5")
    assert {s.architecture for s in reg.values() if s.dataset == "imagenet"} == {
        "nasnet_mobile", "nasnet_large", "pnasnet5_large"}


def test_preprocess_and_decode_predictions_offline():
    x = np.array([[0, 127.5, 255]], "float32")
    assert np.allclose(kn.preprocess_input(x), [[-1, 0, 1]])
    preds = np.zeros((1, 1000), "float32")
    preds[0, 386] = 0.9
    preds[0, 1] = 0.1
    top = kn.decode_predictions(preds, top=2)[0]
    assert top[0][:2] == ("n02504458", "African_elephant") and top[1][1] == "goldfish"
    with pytest.raises(ValueError, match=r"\(samples, 1000\)"):
        kn.decode_predictions(np.zeros((1, 10)))
    for top in (0, -1, None):  # top=0 used to give empty lists, -1 all but one class
        with pytest.raises(ValueError, match="top must be a positive integer"):
            kn.decode_predictions(preds, top=top)
    with pytest.raises(ValueError, match="data_format must be"):
        kn.preprocess_input(x, data_format="bogus")


def test_project_cifar10_weights_load_offline_from_the_manifest():
    spec = W.registry()["nasnet_cifar_1@384_cifar10"]
    assert spec.base_url is None and spec.metrics["test_accuracy"] >= 0.80
    m = kn.NASNetCIFAR(weights="cifar10")  # builds the matching architecture
    assert m.count_params() == 230138
    x = np.full((1, 32, 32, 3), 128.0, "float32")  # raw pixels: normalisation is in the model
    p = np.asarray(m(x))
    assert p.shape == (1, 10) and abs(p.sum() - 1) < 1e-5


def _pool_genotype(pool):
    # Pools have no weights: genotypes differing only in the pool have the same layer names,
    # classes and shapes, so Keras' own loading cannot tell their files apart.
    return ('{"normal": {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "identity"]}], "concat": [2]}, '
            '"reduction": {"blocks": [{"inputs": [0, 1], "ops": ["sep_conv_3x3", "%s"]}], "concat": [2]}}' % pool)


def test_keras_save_weights_of_our_models_records_the_architecture(tmp_path):
    a = kn.NASNetCIFAR(1, 48, genotype=_pool_genotype("max_pool_3x3"))
    b = kn.NASNetCIFAR(1, 48, genotype=_pool_genotype("avg_pool_3x3"))
    path = tmp_path / "a.weights.h5"
    a.save_weights(path)  # Keras' own method
    assert W.read_record(path)["genotype"] == W.architecture_of(a)["genotype"]
    before = [np.array(v) for v in b.weights]
    # Both ways of loading refuse, naming what differs, and change nothing.
    for load in (b.load_weights, lambda p: W.load_file(b, p)):
        with pytest.raises(W.WeightsError, match="reduction cell block 0.*max_pool_3x3.*avg_pool_3x3"):
            load(path)
    with pytest.raises(W.WeightsError, match="another architecture"):
        kn.NASNetCIFAR(1, 48, genotype=_pool_genotype("avg_pool_3x3"), weights=str(path))
    assert all(np.array_equal(x, np.array(v)) for x, v in zip(before, b.weights))
    # The same architecture loads, through Keras and through weights=.
    c = kn.NASNetCIFAR(1, 48, genotype=_pool_genotype("max_pool_3x3"))
    c.load_weights(path)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    assert np.allclose(np.asarray(c(x)), np.asarray(a(x)))
    d = kn.NASNetCIFAR(1, 48, genotype=_pool_genotype("max_pool_3x3"), weights=str(path))
    assert np.allclose(np.asarray(d(x)), np.asarray(a(x)))


def test_cli_verify_checks_the_shipped_files_and_list_keeps_its_columns(tmp_path, monkeypatch, capsys):
    import shutil

    shipped = W.project_weights_dir()
    assert weights_cli(["verify"]) == 0  # nothing downloaded: the shipped CIFAR file is checked
    out = capsys.readouterr().out
    assert "nasnet_cifar_1-384_cifar10.h5: OK" in out

    copy = tmp_path / "files"
    shutil.copytree(shipped, copy)
    data = bytearray((copy / "nasnet_cifar_1-384_cifar10.h5").read_bytes())
    data[-1] ^= 1
    (copy / "nasnet_cifar_1-384_cifar10.h5").write_bytes(bytes(data))
    monkeypatch.setenv(W.DIR_ENV, str(copy))
    assert weights_cli(["verify"]) == 1
    out = capsys.readouterr().out
    assert "nasnet_cifar_1-384_cifar10.h5: BAD" in out and "expected" in out
    assert "to fix: reinstall keras_nasnet" in out
    monkeypatch.delenv(W.DIR_ENV)

    assert weights_cli(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    # Every row's file column starts where the header's does: no column runs into the next.
    start = lines[0].index("file")
    assert all(line[start - 2:start] == "  " and line[start] != " " for line in lines[1:])
    cifar = next(line for line in lines if line.startswith("nasnet_cifar_1@384_cifar10"))
    assert "test_accuracy 0.8006, test_loss 0.5819  " in cifar


def test_registry_entries_name_their_constructor_and_older_manifests_still_load(tmp_path, monkeypatch):
    import json
    import shutil

    spec = W.registry()["nasnet_cifar_1@384_cifar10"]
    assert (spec.model, spec.arguments) == ("NASNetCIFAR", {"num_cells": 1, "penultimate_filters": 384})
    assert W.registry()["nasnet_large_imagenet"].model == "NASNetLarge"

    # A manifest written before entries named their constructor: derived from "architecture".
    shutil.copytree(W.project_weights_dir(), tmp_path / "files")
    manifest = tmp_path / "files" / "manifest.json"
    entries = json.loads(manifest.read_text())["weights"]
    for e in entries:
        e.pop("model"), e.pop("arguments")
    manifest.write_text(json.dumps({"weights": entries}))
    monkeypatch.setenv(W.DIR_ENV, str(tmp_path / "files"))
    old = W.registry()["nasnet_cifar_1@384_cifar10"]
    assert (old.model, old.arguments) == (spec.model, spec.arguments)
    assert old.build().count_params() == 230138


def test_cli_fetch_ctrl_c_is_one_line_exit_130(monkeypatch, capsys):
    import keras_nasnet.weights.__main__ as cli

    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "fetch", stop)
    try:
        status = weights_cli(["fetch", "nasnet_mobile_imagenet"])
    except KeyboardInterrupt:  # caught, so that without the fix this test fails instead of ending pytest
        status = "KeyboardInterrupt escaped"
    assert status == 130
    assert capsys.readouterr().err.strip() == ("interrupted: fetch stopped; no partial file was kept; "
                                               "run the command again.")


def test_skip_mismatch_loads_a_backbone_under_another_head(tmp_path):
    # Keras' way to reuse weights under a new classifier: the architecture check must not refuse
    # what skip_mismatch=True asks for, and its refusal says that this is the way.
    a = kn.NASNetCIFAR(1, 48, classes=10)
    path = tmp_path / "ten.weights.h5"
    a.save_weights(path)
    b = kn.NASNetCIFAR(1, 48, classes=5)
    with pytest.raises(W.WeightsError, match="classes.*skip_mismatch=True"):
        b.load_weights(path)
    with pytest.warns(UserWarning) as caught:
        b.load_weights(path, skip_mismatch=True)
    # One line naming the skipped layer (Keras' own warning printed the whole kernel).
    assert [str(w.message) for w in caught] == [
        f"{path}: 1 layer(s) not in the file or with other shapes than the model's were left as "
        "they are (skip_mismatch): predictions."]
    conv = "stem_conv1"
    assert np.array_equal(np.asarray(a.get_layer(conv).kernel), np.asarray(b.get_layer(conv).kernel))
    assert b.get_layer("predictions").kernel.shape == (b.get_layer("predictions").kernel.shape[0], 5)
    # A backbone file (no top) under a head: skipped too, as Keras' skip_mismatch does.
    notop = tmp_path / "notop.weights.h5"
    kn.NASNetCIFAR(1, 48, include_top=False).save_weights(notop)
    with pytest.warns(UserWarning, match="1 layer.*: predictions"):
        kn.NASNetCIFAR(1, 48, classes=5).load_weights(notop, skip_mismatch=True)
    # Another genotype with the same layer shapes is still refused: Keras would load it silently.
    c = kn.NASNetCIFAR(1, 48, classes=5, genotype=_pool_genotype("avg_pool_3x3"))
    a2 = kn.NASNetCIFAR(1, 48, classes=10, genotype=_pool_genotype("max_pool_3x3"))
    a2.save_weights(path)
    with pytest.raises(W.WeightsError, match="another architecture.*avg_pool_3x3"):
        c.load_weights(path, skip_mismatch=True)


def test_weights_h5_files_load_with_or_without_drop_path_and_auxiliary_head(tmp_path):
    # Keras numbers a .weights.h5 file's layers by class and order, and drop-path layers and an
    # auxiliary head change that order: a PNASNet-5 file trained with drop path used to load
    # other BN layers' weights into a model without it, without a word.
    import h5py

    kw = dict(genotype="PNASNET_5", num_cells=1, penultimate_filters=80, stem="cifar", classes=10,
              input_shape=(32, 32, 3))
    trained = kn.NASNet(**kw, drop_path_rate=0.2, auxiliary_head=True)
    rng = np.random.default_rng(0)
    for v in trained.weights:  # away from the initial values, which many layers share
        v.assign(np.asarray(v) + 0.05 * rng.standard_normal(v.shape).astype("float32"))
    path = tmp_path / "trained.weights.h5"
    trained.save_weights(path)  # Keras' own method, as ModelCheckpoint(save_weights_only=True) calls it
    x = rng.uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    want = np.asarray(trained(x)[0])

    plain = kn.NASNet(**kw)
    plain.load_weights(path)
    assert np.allclose(np.asarray(plain(x)), want, atol=1e-5)
    assert np.allclose(np.asarray(kn.NASNet(**kw, weights=str(path))(x)), want, atol=1e-5)

    # The other way: a file without drop path into a model with it (its schedule stays as built).
    back = tmp_path / "plain.weights.h5"
    plain.save_weights(back)
    dropping = kn.NASNet(**kw, drop_path_rate=0.3)
    dropping.load_weights(back)
    assert np.allclose(np.asarray(dropping(x)), want, atol=1e-5)
    assert all(float(np.asarray(l.progress)) == 1.0 for l in dropping.layers if hasattr(l, "progress"))

    # Keras names each layer's group; the map save_weights adds says the same (for a Keras that
    # does not name them).
    with h5py.File(path, "r") as f:
        ours = json.loads(f.attrs["keras_nasnet_layer_paths"])
    assert {n: g for n, g in W.file_layer_paths(path).items() if n in ours} == ours

    # A file that names nothing (an older Keras and keras_nasnet): refused where drop path or the
    # auxiliary head differ, saying how to build a model that loads it.
    old = tmp_path / "old.weights.h5"
    old.write_bytes(path.read_bytes())
    with h5py.File(old, "a") as f:
        del f.attrs["keras_nasnet_layer_paths"]
        for key in f["layers"]:
            if "vars" in f["layers"][key]:
                f["layers"][key]["vars"].attrs.pop("name", None)
    assert W.file_layer_paths(old) is None
    fresh = kn.NASNet(**kw)
    before = [np.array(v) for v in fresh.weights]
    for load in (fresh.load_weights, lambda p: W.load_file(fresh, p)):
        with pytest.raises(W.WeightsError, match=r"drop_path_rate > 0 \(any rate\) and auxiliary_head=True"):
            load(old)
    assert all(np.array_equal(a, np.array(v)) for a, v in zip(before, fresh.weights))
    kn.NASNet(**kw, drop_path_rate=0.1, auxiliary_head=True).load_weights(old)  # as the error says


def test_a_legacy_h5_file_loads_under_an_auxiliary_head_it_lacks(source, tmp_path):
    # Keras reads a legacy .h5 by layer order and refused a model with more layers ("Layer count
    # mismatch"); the refusal of weights= says how to get there, and that way works.
    _, path, want, x, _ = source
    with pytest.raises(W.WeightsError, match=r"no auxiliary head: build the model with auxiliary_head=False.*"
                                             r"skip_mismatch=True"):
        kn.NASNetCIFAR(1, 48, auxiliary_head=True, weights=str(path))
    m = kn.NASNetCIFAR(1, 48, auxiliary_head=True)
    with pytest.warns(UserWarning, match="5 layer.*skip_mismatch.*aux_conv_1"):
        m.load_weights(path, skip_mismatch=True)
    assert np.array_equal(np.asarray(m(x)[0]), want)


def test_a_cache_that_cannot_be_written_and_killed_downloads(spec, server, tmp_path, monkeypatch, capsys):
    import time

    (tmp_path / "a_file").write_text("")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "a_file" / "home"))  # its folder cannot be made
    with pytest.raises(W.WeightsError, match=r"Cannot write the weights cache .*home/models .*KERAS_HOME"):
        W.fetch(spec)
    assert weights_cli(["fetch", spec.name]) == 1 and "Traceback" not in capsys.readouterr().err
    # What kill -9 left during a download: removed by the next fetch once an hour old; a younger
    # one may be another process's download under way, and stays.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    W.cache_dir().mkdir(parents=True)
    old, young = (W.cache_dir() / f".{spec.file_name}.{k}.part" for k in ("abc123", "def456"))
    for f in (old, young):
        f.write_bytes(b"partial")
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert weights_cli(["verify"]) == 0
    assert f"note: {old} is what an interrupted download left" in capsys.readouterr().err
    W.fetch(spec)
    assert not old.exists() and young.exists()
    # A relative file:// mirror lost its folder (read as a host name).
    monkeypatch.setenv(W.URL_ENV, "file://mirror")
    with pytest.raises(W.WeightsError, match="a file:// URL needs an absolute path"):
        spec.url


def test_cli_verify_a_copied_cache_folder_and_a_broken_manifest(spec, server, tmp_path, monkeypatch, capsys):
    W.fetch(spec)
    assert weights_cli(["verify", str(W.cache_dir())]) == 0
    assert f"{W.cache_dir() / spec.file_name}: OK" in capsys.readouterr().out
    assert weights_cli(["verify", str(tmp_path)]) == 1
    assert "is a folder without registry files" in capsys.readouterr().err
    # The shipped files are promised: a manifest that is gone or broken fails verify.
    for manifest in (None, "garbage{"):
        folder = tmp_path / f"files{manifest is None}"
        folder.mkdir()
        if manifest:
            (folder / "manifest.json").write_text(manifest)
        monkeypatch.setenv(W.DIR_ENV, str(folder))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            assert weights_cli(["verify"]) == 1
        assert "reinstall keras_nasnet" in capsys.readouterr().err


def test_a_file_that_is_not_hdf5_weights_says_what_it_is(tmp_path):
    # `train evaluate --weights model.keras` reached h5py, whose "file signature not found" says
    # nothing of what to do.
    from keras_nasnet.weights.h5 import read_record

    for name, said in (("model.keras", r"whole saved model \(\.keras\).*keras\.models\.load_model"),
                       ("model.tflite", r"is an export.*load_exported"),
                       ("notes.h5", r"not a readable HDF5 weights file.*\.h5 or \.weights\.h5")):
        (tmp_path / name).write_bytes(b"PK\x03\x04 not hdf5")
        with pytest.raises(W.WeightsError, match=said):
            read_record(tmp_path / name)
    with pytest.raises(W.WeightsError, match="no such file"):  # not "a whole saved model"
        read_record(tmp_path / "missing.keras")
