"""Verified downloads, the cache and loading, against a real HTTP server on 127.0.0.1."""

import dataclasses
import hashlib
import http.server
import threading

import numpy as np
import pytest

import keras_nasnet as kn
from keras_nasnet import weights as W
from keras_nasnet.weights.__main__ import main as weights_cli


class _Server:
    """Serves files from a folder; counts requests; can truncate transfers or go down."""

    def __init__(self, root):
        self.root = root
        self.requests = []
        self.truncate = False
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                f = outer.root / self.path.lstrip("/")
                if not f.is_file():
                    self.send_error(404)
                    return
                body = f.read_bytes()
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
    model = kn.NASNetCIFAR(1, 96, name="source")
    path = root / "tiny.h5"
    W.write_h5(model, path)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3)).astype("float32")
    return root, path, np.asarray(model(x)), x


@pytest.fixture
def server(source):
    s = _Server(source[0])
    yield s
    s.stop()


@pytest.fixture
def spec(source, server, monkeypatch):
    """Registers the served file for NASNetCIFAR(1, 96) as dataset 'testset' (hash patched)."""
    data = source[1].read_bytes()
    s = W.WeightSpec(
        name="nasnet_cifar_tiny_testset", architecture="nasnet_cifar_1@96", dataset="testset",
        include_top=True, file_name="tiny_cached.h5", origin_name="tiny.h5", hash_algorithm="sha256",
        file_hash=hashlib.sha256(data).hexdigest(), input_size=32, preprocessing="raw", classes=10,
        metrics={}, source="test", base_url=server.url,
    )
    monkeypatch.setattr(W, "_OFFICIAL", W._OFFICIAL + [s])
    return s


def _check_outputs(model, source):
    _, _, want, x = source
    assert np.array_equal(np.asarray(model(x)), want)


def test_first_download_then_cache_without_second_request(spec, server, source):
    m = kn.NASNetCIFAR(1, 96, weights="testset")
    _check_outputs(m, source)
    assert server.requests == ["/tiny.h5"]
    cached = W.cache_dir() / "tiny_cached.h5"
    assert cached.is_file()
    kn.NASNetCIFAR(1, 96, weights="nasnet_cifar_tiny_testset")
    assert len(server.requests) == 1
    assert [p.name for p in cached.parent.iterdir()] == ["tiny_cached.h5"]


def test_corrupted_cache_file_is_fetched_again(spec, server, source):
    W.fetch(spec)
    cached = W.cache_dir() / spec.file_name
    cached.write_bytes(b"garbage")
    m = kn.NASNetCIFAR(1, 96, weights="testset")
    _check_outputs(m, source)
    assert len(server.requests) == 2


def test_hash_mismatch_is_an_error_and_nothing_is_kept(spec, monkeypatch):
    bad = dataclasses.replace(spec, file_hash="0" * 64)
    monkeypatch.setattr(W, "_OFFICIAL", W._OFFICIAL[:-1] + [bad])
    with pytest.raises(W.WeightsError, match="expected 0000.*not kept.*place the file at"):
        kn.NASNetCIFAR(1, 96, weights="testset")
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
    monkeypatch.setattr(W, "_OFFICIAL", W._OFFICIAL[:-1] + [dataclasses.replace(spec, base_url="http://127.0.0.1:9/")])
    monkeypatch.setenv("KERAS_NASNET_WEIGHTS_URL", server.url + "mirror/")
    mirror = source[0] / "mirror"
    mirror.mkdir(exist_ok=True)
    (mirror / "tiny.h5").write_bytes(source[1].read_bytes())
    _check_outputs(kn.NASNetCIFAR(1, 96, weights="testset"), source)
    assert server.requests == ["/mirror/tiny.h5"]


def test_weights_path_and_mismatch_report(source, tmp_path):
    _check_outputs(kn.NASNetCIFAR(1, 96, weights=str(source[1])), source)
    with pytest.raises(W.WeightsError, match="not in the file|other shapes"):
        kn.NASNetCIFAR(1, 192, weights=str(source[1]))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(W.WeightsError, match="not a readable HDF5"):
        kn.NASNetCIFAR(1, 96, weights=str(junk))


def test_native_weights_file(tmp_path, source):
    m = kn.NASNetCIFAR(1, 96)
    p = tmp_path / "w.weights.h5"
    m.save_weights(p)
    x = source[3]
    assert np.array_equal(np.asarray(kn.NASNetCIFAR(1, 96, weights=str(p))(x)), np.asarray(m(x)))


def test_cli_list_fetch_verify(spec, server, capsys):
    assert weights_cli(["list"]) == 0
    out = capsys.readouterr().out
    assert "nasnet_large_imagenet_notop" in out and "nasnet_cifar_tiny_testset" in out
    assert weights_cli(["fetch", "nasnet_cifar_tiny_testset"]) == 0
    assert weights_cli(["verify"]) == 0
    assert "OK" in capsys.readouterr().out
    (W.cache_dir() / spec.file_name).write_bytes(b"x")
    assert weights_cli(["verify"]) == 1
    assert weights_cli(["fetch", "no_such_weights"]) == 2


def test_registry_holds_the_official_files():
    reg = W.registry()
    assert reg["nasnet_mobile_imagenet"].file_hash == "020fb642bf7360b370c678b08e0adf61"
    assert reg["nasnet_large_imagenet_notop"].url.endswith("/NASNet-large-no-top.h5")
    assert {s.architecture for s in reg.values() if s.dataset == "imagenet"} == {"nasnet_mobile", "nasnet_large"}


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


def test_project_cifar10_weights_load_offline_from_the_manifest():
    spec = W.registry()["nasnet_cifar_1@384_cifar10"]
    assert spec.base_url is None and spec.metrics["test_accuracy"] >= 0.80
    m = kn.NASNetCIFAR(weights="cifar10")  # builds the matching architecture
    assert m.count_params() == 230138
    x = np.full((1, 32, 32, 3), 128.0, "float32")  # raw pixels: normalisation is in the model
    p = np.asarray(m(x))
    assert p.shape == (1, 10) and abs(p.sum() - 1) < 1e-5
