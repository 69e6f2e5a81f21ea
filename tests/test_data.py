"""CIFAR-10 sources, the reward split and the augmentation pipeline, on data the tests make."""

import io
import pickle
import tarfile
import zipfile

import numpy as np
import pytest
import tensorflow as tf

from keras_nasnet import data as D

_REAL_UNRESOLVABLE = D._unresolvable  # conftest stubs it for every test: tests here use the real one

PER_CLASS = 2


def _images(n, seed):
    r = np.random.default_rng(seed)
    return r.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), np.arange(n) % 10


def _batch_bytes(x, y):
    return pickle.dumps({b"data": x.transpose(0, 3, 1, 2).reshape(len(x), -1), b"labels": list(map(int, y))})


@pytest.fixture
def batches_dir(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for i in range(1, 6):
        (d / f"data_batch_{i}").write_bytes(_batch_bytes(*_images(10, i)))
    (d / "test_batch").write_bytes(_batch_bytes(*_images(10, 9)))
    return d


def test_python_archive_and_extracted_folder(batches_dir, tmp_path):
    (xtr, ytr), (xte, yte) = D.load_cifar10(batches_dir)
    assert xtr.shape == (50, 32, 32, 3) and xtr.dtype == np.uint8 and yte.shape == (10,)
    assert np.array_equal(xtr[:10], _images(10, 1)[0])
    tgz = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(batches_dir, arcname="cifar-10-batches-py")
    (a, b), (c, d) = D.load_cifar10(tgz)
    assert np.array_equal(a, xtr) and np.array_equal(d, yte)
    # The decoded arrays are cached: a second load does not read the archive again.
    tgz_cached = D.load_cifar10(tgz)
    assert np.array_equal(tgz_cached[0][0], xtr)


class _Payload:
    """Unpickling this calls ``open(marker, "w")``: a stand-in for any code a crafted pickle runs."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def test_a_batch_that_would_run_code_is_refused(batches_dir, tmp_path):
    marker = tmp_path / "pwned"
    (batches_dir / "data_batch_2").write_bytes(pickle.dumps({b"data": _Payload(marker), b"labels": []}))
    with pytest.raises(D.DataError, match=r"data_batch_2 references io\.open") as e:
        D.load_cifar10(batches_dir)
    assert str(batches_dir) in str(e.value)
    tgz = tmp_path / "evil.tar.gz"
    with tarfile.open(tgz, "w:gz") as t:
        t.add(batches_dir, arcname="cifar-10-batches-py")
    with pytest.raises(D.DataError, match=r"evil\.tar\.gz/data_batch_2 references io\.open"):
        D.load_cifar10(tgz)
    assert not marker.exists()
    # An object array would smuggle arbitrary items in through the array's own state.
    (batches_dir / "data_batch_2").write_bytes(pickle.dumps({b"data": np.array([1, None]), b"labels": []}))
    with pytest.raises(D.DataError, match="data_batch_2 is corrupt"):
        D.load_cifar10(batches_dir, cache=False)


@pytest.mark.parametrize("protocol", [2, 5])
def test_batches_pickled_as_the_official_archive_or_by_python3_load(batches_dir, protocol):
    x, y = _images(10, 1)
    raw = pickle.dumps({b"batch_label": b"training batch 1 of 5",
                        b"data": x.transpose(0, 3, 1, 2).reshape(10, -1),
                        b"labels": list(map(int, y)), b"filenames": [b"a.png"] * 10}, protocol=protocol)
    if protocol == 2:  # the official archive was written by numpy 1, which names numpy.core
        raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        assert b"numpy.core.multiarray\n_reconstruct" in raw
    (batches_dir / "data_batch_1").write_bytes(raw)
    (xtr, ytr), _ = D.load_cifar10(batches_dir, cache=False)
    assert np.array_equal(xtr[:10], x) and np.array_equal(ytr[:10], y)


def test_a_corrupt_cache_is_rebuilt_with_a_note(batches_dir, capsys):
    expected = D.load_cifar10(batches_dir)
    (cache_file,) = D._cache_dir().glob("cifar10-*.npz")
    cache_file.write_bytes(cache_file.read_bytes()[:1000])  # e.g. a copy cut short
    capsys.readouterr()
    (xtr, ytr), _ = D.load_cifar10(batches_dir)
    assert np.array_equal(xtr, expected[0][0]) and np.array_equal(ytr, expected[0][1])
    err = capsys.readouterr().err
    assert str(cache_file) in err and "rebuilding" in err
    assert sum("unreadable" in line for line in err.splitlines()) == 1
    D.load_cifar10(batches_dir)  # the rebuilt cache reads without a word
    assert capsys.readouterr().err == ""


def test_a_file_rewritten_inside_a_source_folder_is_read_again_not_taken_from_the_cache(batches_dir):
    """A folder's own size and time stay the same when a file in it is rewritten in place."""
    (xtr, _), _ = D.load_cifar10(batches_dir)
    new = _images(10, 42)
    (batches_dir / "data_batch_1").write_bytes(_batch_bytes(*new))
    (again, _), _ = D.load_cifar10(batches_dir)
    assert np.array_equal(again[:10], new[0]) and not np.array_equal(again[:10], xtr[:10])


def test_the_data_fingerprint_follows_the_labels_order_not_the_path_or_the_decoder(batches_dir, tmp_path):
    import shutil

    fp = D.data_fingerprint(batches_dir)
    copy = tmp_path / "elsewhere" / "cifar-10-batches-py"
    shutil.copytree(batches_dir, copy)
    assert D.data_fingerprint(copy) == fp  # the same images in the same order: the same data
    # Pixels a decoder would shift a little (same labels in the same order): still the same data.
    x, y = _images(10, 1)
    (copy / "data_batch_1").write_bytes(_batch_bytes(np.clip(x.astype(int) + 2, 0, 255).astype(np.uint8), y))
    assert D.data_fingerprint(copy) == fp
    # Another order of the images makes another held-out split: other data.
    (copy / "data_batch_1").write_bytes(_batch_bytes(x[::-1], y[::-1]))
    assert D.data_fingerprint(copy) != fp
    # A file rewritten in place while the process runs is read again, not a remembered fingerprint.
    x, y = _images(10, 9)
    (batches_dir / "test_batch").write_bytes(_batch_bytes(x, (y + 1) % 10))
    assert D.data_fingerprint(batches_dir) != fp


def test_decoding_says_what_it_does_and_the_cache_is_silent(batches_dir, tmp_path, capsys, rng):
    # Decoding the JPEG copy takes about a minute; a silent minute reads like a hang.
    D.load_cifar10(batches_dir)
    assert "reading CIFAR-10 batches" in capsys.readouterr().err
    _write_image_tree(lambda rel, data: (tmp_path / "imgs" / rel).parent.mkdir(parents=True, exist_ok=True)
                      or (tmp_path / "imgs" / rel).write_bytes(data), n=1)
    D.load_cifar10(tmp_path / "imgs")
    assert "decoding 20 images from" in capsys.readouterr().err
    D.load_cifar10(tmp_path / "imgs")
    assert capsys.readouterr().err == ""


def _write_image_tree(write, n=PER_CLASS):
    for split in ("train", "test"):
        for label, cls in enumerate(D.CLASSES):
            for k in range(n):
                img = np.full((32, 32, 3), label * 20 + k, np.uint8)
                write(f"{split}/{cls}/{k:04d}.png", tf.io.encode_png(img).numpy())


def _folder_writer(root, macos_metadata=False):
    """A ``write(name, data)`` for ``_write_image_tree`` into the folder ``root`` (with a macOS
    ``._name`` file beside each image if asked)."""
    def write(name, data):
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        if macos_metadata:
            (p.parent / f"._{p.name}").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    return write


def test_image_folder_and_zip_use_canonical_label_order(tmp_path):
    root = tmp_path / "imgs"
    _write_image_tree(_folder_writer(root))
    (xtr, ytr), (xte, yte) = D.load_cifar10(root)
    assert xtr.shape == (10 * PER_CLASS, 32, 32, 3)
    assert all(int(x[0, 0, 0]) // 20 == y for x, y in zip(xtr, ytr))
    zpath = tmp_path / "cifar10-jpeg.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        _write_image_tree(lambda n, d: z.writestr("cifar10/" + n, d))
    (a, b), (c, d) = D.load_cifar10(zpath)
    assert sorted(b.tolist()) == sorted(ytr.tolist())
    assert all(int(x[0, 0, 0]) // 20 == y for x, y in zip(a, b))


def test_tfds_source_with_mock_data():
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        (xtr, ytr), (xte, yte) = D.load_cifar10("tfds")
    assert xtr.shape == (12, 32, 32, 3) and xtr.dtype == np.uint8 and ytr.dtype == np.int64


def test_tfds_prepares_cifar10_from_its_download(tmp_path, monkeypatch):
    """tfds' own download-and-prepare path (the one a first run takes), with the download replaced
    by a tiny archive of tfds' binary format: it needs every module that path imports lazily."""
    import tensorflow_datasets as tfds

    src = tmp_path / "download" / "cifar-10-batches-bin"
    src.mkdir(parents=True)
    (src / "batches.meta.txt").write_text("\n".join(D.CLASSES) + "\n")
    for i, n in enumerate([f"data_batch_{k}.bin" for k in range(1, 6)] + ["test_batch.bin"]):
        x, y = _images(2, i)
        (src / n).write_bytes(b"".join(bytes([int(label)]) + img.transpose(2, 0, 1).tobytes()
                                       for img, label in zip(x, y)))
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))
    urls = []
    monkeypatch.setattr(tfds.download.DownloadManager, "download_and_extract",
                        lambda self, url: urls.append(url) or str(src.parent))
    (xtr, ytr), (xte, yte) = D.load_cifar10("tfds")
    assert xtr.shape == (10, 32, 32, 3) and xte.shape == (2, 32, 32, 3) and ytr.dtype == np.int64
    assert sorted(map(bytes, xte)) == sorted(map(bytes, _images(2, 5)[0]))
    # The host the offline check looks up is the one tfds downloads from.
    assert urls == [D._TFDS_CIFAR10_URL]
    # Once prepared, the data loads offline: the lookup is made only before a download.
    monkeypatch.setattr(D, "_unresolvable", _REAL_UNRESOLVABLE)
    monkeypatch.setattr(D.socket, "getaddrinfo", lambda *a, **k: pytest.fail("looked up a host"))
    (xtr2, _), _ = D.load_cifar10("tfds")
    assert np.array_equal(np.sort(xtr2, axis=0), np.sort(xtr, axis=0))


def test_tfds_offline_fails_at_once_without_tfds_retries(monkeypatch):
    """Offline, tfds retries its download for minutes; an unresolvable host fails in a moment with
    the same advice, and tfds is never asked to download."""
    import socket

    import tensorflow_datasets as tfds

    looked_up = []

    def no_dns(host, *a, **k):
        looked_up.append(host)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(D, "_unresolvable", _REAL_UNRESOLVABLE)
    monkeypatch.setattr(D.socket, "getaddrinfo", no_dns)
    for var in ("https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(tfds, "load", lambda *a, **k: pytest.fail("tfds.load was called"))
    with pytest.raises(D.DataError, match="www.cs.toronto.edu does not resolve.*pass a local copy"):
        D.load_cifar10()
    assert looked_up == ["www.cs.toronto.edu"]

    # Behind a proxy the proxy resolves names: no lookup, tfds gets its try.
    looked_up.clear()
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setattr(tfds, "load", lambda *a, **k: (_ for _ in ()).throw(ConnectionError("proxy down")))
    with pytest.raises(D.DataError, match="proxy down"):
        D.load_cifar10()
    assert looked_up == []


def test_tfds_failure_gives_online_and_offline_advice(monkeypatch):
    import tensorflow_datasets as tfds

    def offline(*a, **k):
        raise ConnectionError("no network")

    monkeypatch.setattr(tfds, "load", offline)
    with pytest.raises(D.DataError, match="check the network connection.*pass a local copy"):
        D.load_cifar10()

    def missing(*a, **k):
        raise ModuleNotFoundError("No module named 'importlib_resources'", name="importlib_resources")

    monkeypatch.setattr(tfds, "load", missing)
    with pytest.raises(D.DataError, match="pip install importlib_resources"):
        D.load_cifar10()


def test_bad_sources_get_clear_errors(tmp_path, batches_dir, capsys):
    with pytest.raises(D.DataError, match="does not exist"):
        D.load_cifar10(tmp_path / "missing.tar.gz")
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    with pytest.raises(D.DataError, match="has no train/<class>/ images"):
        D.load_cifar10(tmp_path / "empty")
    assert "decoding" not in capsys.readouterr().err  # not "decoding 0 images" before the error
    bad = tmp_path / "bad"
    (bad / "train" / "kitten").mkdir(parents=True)
    (bad / "train" / "kitten" / "a.png").write_bytes(tf.io.encode_png(np.zeros((32, 32, 3), np.uint8)).numpy())
    with pytest.raises(D.DataError, match="not a CIFAR-10 class"):
        D.load_cifar10(bad)
    (batches_dir / "data_batch_3").write_bytes(b"\x80garbage")
    with pytest.raises(D.DataError, match="data_batch_3 is corrupt"):
        D.load_cifar10(batches_dir, cache=False)
    trunc = tmp_path / "trunc.tar.gz"
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as t:
        t.add(batches_dir, arcname="cifar-10-batches-py")
    trunc.write_bytes(good.read_bytes()[:200])
    with pytest.raises(D.DataError, match="corrupt or truncated"):
        D.load_cifar10(trunc, cache=False)
    for source, message in (("", "empty string"), ("TFDS", 'write "tfds"'), (123, "must be a path")):
        with pytest.raises(D.DataError, match=message):
            D.load_cifar10(source)


def test_batches_that_unpickle_but_are_damaged_are_refused_at_load_not_in_training(batches_dir):
    x, y = _images(10, 3)
    (batches_dir / "data_batch_3").write_bytes(_batch_bytes(x, [*y[:9], 200]))
    with pytest.raises(D.DataError, match=r"data_batch_3 has labels outside 0\.\.9 \(e\.g\. \[200\]\)"):
        D.load_cifar10(batches_dir)
    (batches_dir / "data_batch_3").write_bytes(_batch_bytes(x, y[:7]))
    with pytest.raises(D.DataError, match="data_batch_3 has 10 images but 7 labels"):
        D.load_cifar10(batches_dir)
    (batches_dir / "data_batch_3").write_bytes(_batch_bytes(x, y))  # repaired: loads, nothing was cached
    (xtr, ytr), _ = D.load_cifar10(batches_dir)
    assert len(xtr) == len(ytr) == 50 and ytr.max() == 9


def test_split_is_fixed_seeded_and_disjoint():
    x = np.arange(1000)[:, None]
    y = np.arange(1000)
    (a, ya), (b, yb) = D.train_val_split(x, y, val_size=100, seed=0)
    (a2, _), (b2, _) = D.train_val_split(x, y, val_size=100, seed=0)
    assert len(a) == 900 and len(b) == 100
    assert np.array_equal(b, b2) and not set(ya) & set(yb)
    (_, _), (b3, _) = D.train_val_split(x, y, val_size=100, seed=1)
    assert not np.array_equal(b, b3)


def test_split_of_too_small_a_data_set_is_a_data_error_with_the_callers_hint():
    # One check for every caller (training, the search's rewards): the message says how many images
    # there are, how many the hold-out needs, and what the caller's user can change.
    x, y = np.zeros((30, 1)), np.arange(30)
    with pytest.raises(D.DataError, match=r"has 30 training images; holding out 5,000 .* Use --val-images"):
        D.train_val_split(x, y, hint="Use --val-images.")
    with pytest.raises(D.DataError, match="at least 31"):
        D.train_val_split(x, y, val_size=30)
    with pytest.raises(ValueError, match="positive integer"):
        D.train_val_split(x, y, val_size=0)


def test_augmentation_shapes_and_determinism():
    x, y = _images(20, 0)
    ds1 = D.make_dataset(x, y, 8, training=True, seed=3, epoch=1)
    ds2 = D.make_dataset(x, y, 8, training=True, seed=3, epoch=1)
    b1 = [b for b in ds1]
    b2 = [b for b in ds2]
    assert [tuple(b[0].shape) for b in b1] == [(8, 32, 32, 3), (8, 32, 32, 3), (4, 32, 32, 3)]
    assert b1[0][0].dtype == tf.float32
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(b1, b2))  # resumable: same batches
    other = next(iter(D.make_dataset(x, y, 8, training=True, seed=3, epoch=2)))
    assert not np.array_equal(other[0], b1[0][0])
    # Cutout zeroes a square; without augmentation the pixels pass through unchanged.
    img = tf.constant(np.full((32, 32, 3), 200, np.uint8))
    out = D.augment(img, tf.constant([1, 2], tf.int64), cutout=16).numpy()
    assert (out == 0).all(-1).sum() >= 8 * 8
    plain = next(iter(D.make_dataset(x, y, 20, training=False)))
    assert np.array_equal(plain[0].numpy(), x.astype("float32"))


def test_macos_metadata_files_are_skipped(tmp_path):
    # Finder's Compress adds __MACOSX/.../._name.png entries, and copies to other disks leave
    # ._name.png files: they carry an image's suffix but are not images.
    root = tmp_path / "imgs"
    _write_image_tree(_folder_writer(root, macos_metadata=True))
    (xtr, ytr), _ = D.load_cifar10(root, cache=False)
    assert xtr.shape == (10 * PER_CLASS, 32, 32, 3)
    zpath = tmp_path / "mac.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        def write(n, d):
            z.writestr("cifar10/" + n, d)
            z.writestr("__MACOSX/cifar10/" + n.rsplit("/", 1)[0] + "/._" + n.rsplit("/", 1)[1], b"meta")
        _write_image_tree(write)
    (a, b), _ = D.load_cifar10(zpath, cache=False)
    assert a.shape == xtr.shape and sorted(b.tolist()) == sorted(ytr.tolist())


def test_batches_with_values_a_batch_never_holds_are_refused_not_cast(batches_dir):
    # The casts to uint8/int64 would wrap 300 to 44, turn [0, 1] floats into black images and cut a
    # label 1.7 to 1, all without a word.
    x, y = _images(10, 3)
    flat = x.transpose(0, 3, 1, 2).reshape(10, -1)
    for data, labels, message in ((flat / 255.0, list(y), "pixels of type float64 in 0.0..1.0"),
                                  (flat.astype(np.int32) + 100, list(y), r"pixels of type int32 in 100\.\.355"),
                                  (flat, [v + 0.7 for v in y], "labels of type float64")):
        (batches_dir / "data_batch_2").write_bytes(pickle.dumps({b"data": data, b"labels": labels}))
        with pytest.raises(D.DataError, match=f"data_batch_2 has {message}.*download cifar-10-python"):
            D.load_cifar10(batches_dir, cache=False)


def test_sources_of_the_wrong_kind_say_what_they_are(tmp_path, batches_dir):
    good = tmp_path / "good.zip"
    with zipfile.ZipFile(good, "w") as z:
        _write_image_tree(lambda n, d: z.writestr("cifar10/" + n, d))
    (tmp_path / "half.zip").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(D.DataError, match="half.zip is a corrupt or truncated zip archive"):
        D.load_cifar10(tmp_path / "half.zip", cache=False)
    # The binary version (what tfds downloads), as an archive and extracted.
    binary = tmp_path / "cifar-10-batches-bin"
    binary.mkdir()
    for n in ("data_batch_1.bin", "test_batch.bin", "batches.meta.txt"):
        (binary / n).write_bytes(b"\x00" * 3073)
    with tarfile.open(tmp_path / "cifar-10-binary.tar.gz", "w:gz") as t:
        t.add(binary, arcname="cifar-10-batches-bin")
    for source in (tmp_path / "cifar-10-binary.tar.gz", binary):
        with pytest.raises(D.DataError, match=f"{source.name} holds the binary version.*cifar-10-python.tar.gz"):
            D.load_cifar10(source, cache=False)
    # A tar of an image tree, and a tar that is neither.
    tree = tmp_path / "tree"
    _write_image_tree(_folder_writer(tree))
    with tarfile.open(tmp_path / "tree.tar.gz", "w:gz") as t:
        t.add(tree, arcname="cifar10")
    with pytest.raises(D.DataError, match="tree.tar.gz is a tar archive of train/<class>/ images.*extract it"):
        D.load_cifar10(tmp_path / "tree.tar.gz", cache=False)
    with tarfile.open(tmp_path / "other.tar", "w") as t:
        t.add(batches_dir / "data_batch_2", arcname="data_batch_2")
    with pytest.raises(D.DataError, match="other.tar has no data_batch_1; a CIFAR-10 python archive"):
        D.load_cifar10(tmp_path / "other.tar", cache=False)


def test_image_trees_laid_out_otherwise_are_not_read_silently(tmp_path, capsys):
    # A zip holding the tree twice would have counted every image twice.
    twice = tmp_path / "twice.zip"
    with zipfile.ZipFile(twice, "w") as z:
        _write_image_tree(lambda n, d: (z.writestr("cifar10/" + n, d), z.writestr("cifar10 copy/" + n, d)))
    with pytest.raises(D.DataError, match=r"holds 2 image trees \(cifar10 copy/, cifar10/\)"):
        D.load_cifar10(twice, cache=False)
    # An image one folder too deep is left out with a note; files of other types are named when
    # they are all there is.
    root = tmp_path / "imgs"
    _write_image_tree(_folder_writer(root))
    deep = root / "train" / "cat" / "more" / "x.png"
    deep.parent.mkdir()
    deep.write_bytes((root / "train" / "cat" / "0000.png").read_bytes())
    (xtr, _), _ = D.load_cifar10(root, cache=False)
    assert len(xtr) == 10 * PER_CLASS
    assert "1 image(s) outside train/<class>/ and test/<class>/ (e.g. train/cat/more/x.png)" in capsys.readouterr().err
    # The same in a zip (where it used to be dropped without a word).
    deep_zip = tmp_path / "deep.zip"
    with zipfile.ZipFile(deep_zip, "w") as z:
        _write_image_tree(lambda n, d: z.writestr("cifar10/" + n, d))
        z.writestr("cifar10/train/cat/more/x.png", deep.read_bytes())
    (xtr, _), _ = D.load_cifar10(deep_zip, cache=False)
    assert len(xtr) == 10 * PER_CLASS
    assert "1 image(s) outside train/<class>/ and test/<class>/ (e.g. cifar10/train/cat/more/x.png)" \
        in capsys.readouterr().err
    bmp = tmp_path / "bmp"
    _write_image_tree(lambda n, d: _folder_writer(bmp)(n.replace(".png", ".bmp"), d))
    with pytest.raises(D.DataError, match=r"has no train/<class>/ images.*file\(s\) of other types \(e\.g\. "
                                          r"test/airplane/0000\.bmp\): only PNG and JPEG"):
        D.load_cifar10(bmp, cache=False)


def test_the_cache_is_optional_and_keeps_one_copy_per_source(batches_dir, tmp_path, monkeypatch, capsys):
    import os

    (tmp_path / "a_file").write_text("not a folder")
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "a_file" / "home"))  # cannot be created
    (xtr, _), _ = D.load_cifar10(batches_dir)
    assert len(xtr) == 50 and "cannot write the CIFAR-10 cache" in capsys.readouterr().err
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    cache = tmp_path / "home" / "datasets" / "keras_nasnet"
    D.load_cifar10(batches_dir)
    first = sorted(cache.glob("cifar10-*.npz"))
    st = (batches_dir / "data_batch_1").stat()
    os.utime(batches_dir / "data_batch_1", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # a re-download
    D.load_cifar10(batches_dir)
    second = sorted(cache.glob("cifar10-*.npz"))
    assert len(first) == len(second) == 1 and first != second


def test_the_pipelines_take_keras_datasets_labels_and_other_image_sizes():
    from keras_nasnet import augment_numpy

    x, y = _images(8, 0)
    flat = [b[1].numpy() for b in D.make_dataset(x, y, 4, training=True)]
    column = [b[1].numpy() for b in D.make_dataset(x, y[:, None], 4, training=True)]  # keras.datasets' (N, 1)
    assert all(np.array_equal(a, b) for a, b in zip(flat, column)) and column[0].shape == (4,)
    for shape in ((8, 48, 40, 3), (8, 32, 32, 1)):
        images = np.zeros(shape, np.uint8)
        tf_batch = next(iter(D.make_dataset(images, y, 8, training=True)))[0]
        np_batch = augment_numpy.make_dataset(images, y, 8, training=True)[0][0]
        assert tuple(tf_batch.shape) == tuple(np_batch.shape) == shape
    for make in (D.make_dataset, augment_numpy.make_dataset):
        with pytest.raises(ValueError, match=r"labels must be one integer per image, shape \(8,\); got shape \(8, 2\)"):
            make(x, np.zeros((8, 2), int), 4, training=False)
        with pytest.raises(ValueError, match=r"images must be an \(N, height, width, channels\) array"):
            make(x[0], y, 4, training=False)
    with pytest.raises(ValueError, match="8 images but 5 labels"):
        D.train_val_split(x, y[:5], val_size=2)
