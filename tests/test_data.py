"""nas.data: real Fashion-MNIST, validation of broken files, download over real HTTP,
digits, a tiny CIFAR-10 folder, a tiny image folder, stratified splits."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import pickle
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from nas.data import load_dataset, search_split, split_judge, split_train_val, stratified_subset
from nas.errors import NasInputError

FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def idx_bytes(array: np.ndarray) -> bytes:
    array = np.ascontiguousarray(array, dtype=np.uint8)
    return bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_idx_set(folder: Path, n_train: int = 30, n_test: int = 20, gz: bool = True, seed: int = 0) -> dict[str, bytes]:
    """A tiny, valid IDX data set; returns {stem: file bytes as written}."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": np.arange(n_train) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": np.arange(n_test) % 10,
    }
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for stem, arr in arrays.items():
        data = idx_bytes(arr)
        if gz:
            data = gzip.compress(data)
        (folder / (stem + (".gz" if gz else ""))).write_bytes(data)
        written[stem] = data
    return written


# --------------------------------------------------------------------------- fashion-mnist


@pytest.mark.skipif(not FMNIST_DIR.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_real_fashion_mnist_loads_with_the_right_shapes():
    ds = load_dataset("fashion-mnist")
    assert ds.train.images.shape == (60000, 1, 28, 28) and ds.train.images.dtype == torch.uint8
    assert ds.test.images.shape == (10000, 1, 28, 28)
    assert ds.train.labels.dtype == torch.int64 and ds.train.labels.shape == (60000,)
    assert ds.num_classes == 10 and ds.in_chans == 1 and ds.image_size == 28
    assert ds.classes[0] == "T-shirt/top" and ds.classes[9] == "Ankle boot"
    assert torch.equal(ds.train.class_counts(), torch.full((10,), 6000))
    assert abs(ds.mean[0] - 0.2860) < 1e-3 and abs(ds.std[0] - 0.3530) < 1e-3
    assert ds.source == str(FMNIST_DIR)


def test_idx_folder_gz_and_plain(tmp_path):
    write_idx_set(tmp_path / "gz", gz=True)
    write_idx_set(tmp_path / "plain", gz=False)
    a = load_dataset("fashion-mnist", tmp_path / "gz")
    b = load_dataset("fashion_mnist", tmp_path / "plain")
    assert a.train.images.shape == (30, 1, 28, 28) and a.test.images.shape == (20, 1, 28, 28)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)
    assert load_dataset("mnist", tmp_path / "gz").classes == tuple("0123456789")


@pytest.mark.skipif(not FMNIST_DIR.is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_truncated_real_files_name_the_file(tmp_path):
    real = (FMNIST_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes()
    raw = gzip.decompress(real)
    write_idx_set(tmp_path)
    # truncated gzip stream
    bad = tmp_path / "t10k-labels-idx1-ubyte.gz"
    bad.write_bytes(real[: len(real) // 2])
    with pytest.raises(NasInputError, match="t10k-labels-idx1-ubyte.gz.*(corrupted|truncated)"):
        load_dataset("fashion-mnist", tmp_path)
    # decompressed but truncated data (dims say 10000, file holds fewer bytes)
    bad.unlink()
    plain = tmp_path / "t10k-labels-idx1-ubyte"
    plain.write_bytes(raw[:-7])
    with pytest.raises(NasInputError, match=r"t10k-labels-idx1-ubyte is truncated.*\(10000,\)"):
        load_dataset("fashion-mnist", tmp_path)


def test_corrupted_idx_files_name_the_file(tmp_path):
    write_idx_set(tmp_path, gz=False)
    target = tmp_path / "train-images-idx3-ubyte"
    good = target.read_bytes()
    cases = {
        b"\x12\x34" + good[2:]: "bad magic number",
        good[:2] + b"\x0d" + good[3:]: "type 0x0d",
        good + b"\x00\x00": "longer than its dimensions",
        good[:10]: "truncated inside its header",
        b"\x00": "too short",
    }
    for data, message in cases.items():
        target.write_bytes(data)
        with pytest.raises(NasInputError, match=f"{target.name}.*{message}|{message}") as info:
            load_dataset("fashion-mnist", tmp_path)
        assert str(target) in str(info.value)
    target.write_bytes(good)
    # labels/images count mismatch
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(29, dtype=np.uint8)))
    with pytest.raises(NasInputError, match="30 images but .*29 labels"):
        load_dataset("fashion-mnist", tmp_path)


def test_missing_and_empty_folders(tmp_path):
    with pytest.raises(NasInputError, match="does-not-exist.*does not exist"):
        load_dataset("fashion-mnist", tmp_path / "does-not-exist")
    with pytest.raises(NasInputError, match=r"not found in .*train-images-idx3-ubyte"):
        load_dataset("fashion-mnist", tmp_path)  # empty folder
    with pytest.raises(NasInputError, match="unknown dataset 'svhn'; known: fashion-mnist, mnist, digits"):
        load_dataset("svhn")


# --------------------------------------------------------------------------- download


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/'served'."""
    root = tmp_path / "served"
    root.mkdir()

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # keep pytest output clean
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_download_success_with_checksums(http_root, tmp_path):
    root, url = http_root
    written = write_idx_set(root, n_train=40, n_test=10)
    sums = {stem: hashlib.sha256(data).hexdigest() for stem, data in written.items()}
    sums["t10k-labels-idx1-ubyte"] = hashlib.md5(written["t10k-labels-idx1-ubyte"]).hexdigest()  # MD5 works too
    dest = tmp_path / "dl"
    ds = load_dataset("fashion-mnist", dest, download=True, base_url=url, checksums=sums)
    assert ds.train.images.shape == (40, 1, 28, 28) and len(ds.test) == 10
    assert sorted(p.name for p in dest.iterdir()) == sorted(f"{s}.gz" for s in STEMS)  # no temp files left
    # second call: files are there, no server needed
    again = load_dataset("fashion-mnist", dest)
    assert torch.equal(again.train.images, ds.train.images)


def test_download_checksum_mismatch_leaves_nothing(http_root, tmp_path):
    root, url = http_root
    write_idx_set(root)  # not the published files: the published MD5s cannot match
    dest = tmp_path / "dl"
    with pytest.raises(NasInputError, match=r"checksum mismatch for http://127\.0\.0\.1:\d+/train-images-idx3-ubyte\.gz: expected md5 8d4fb7e6"):
        load_dataset("fashion-mnist", dest, download=True, base_url=url)
    assert list(dest.iterdir()) == []


def test_download_missing_file_and_no_download_by_default(http_root, tmp_path):
    root, url = http_root
    with pytest.raises(NasInputError, match="download of .*train-images-idx3-ubyte.gz failed"):
        load_dataset("fashion-mnist", tmp_path / "dl", download=True, base_url=url)
    with pytest.raises(NasInputError, match="allow the download"):
        load_dataset("fashion-mnist", root)


# --------------------------------------------------------------------------- digits, cifar10, imagefolder


def test_digits_with_our_stratified_test_split():
    ds = load_dataset("digits")
    assert ds.train.images.shape[1:] == (1, 8, 8) and len(ds.train) + len(ds.test) == 1797
    assert len(ds.test) == 359 and "no official test split" in ds.note
    assert int(ds.train.images.max()) == 255 and int(ds.train.images.min()) == 0
    counts = ds.test.class_counts()
    assert counts.min() >= 35 and counts.max() <= 37  # stratified
    again = load_dataset("digits")
    assert torch.equal(ds.test.labels, again.test.labels) and torch.equal(ds.test.images, again.test.images)


def _write_cifar(folder: Path, n: int = 10) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": list(range(n))}
        with (folder / name).open("wb") as fh:
            pickle.dump(batch, fh)


def test_cifar10_folder(tmp_path):
    _write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", tmp_path)  # parent folder works too
    assert ds.train.images.shape == (50, 3, 32, 32) and ds.test.images.shape == (10, 3, 32, 32)
    assert ds.classes[0] == "airplane" and len(ds.mean) == 3
    (tmp_path / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(NasInputError, match="data_batch_3 is corrupted"):
        load_dataset("cifar10", tmp_path)
    with (tmp_path / "cifar-10-batches-py" / "data_batch_3").open("wb") as fh:
        pickle.dump({b"data": np.zeros((4, 100), dtype=np.uint8), b"labels": [0] * 4}, fh)
    with pytest.raises(NasInputError, match=r"data_batch_3: data should be uint8 \(N, 3072\)"):
        load_dataset("cifar10", tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(NasInputError, match="missing test_batch"):
        load_dataset("cifar10", tmp_path / "cifar-10-batches-py")


def _write_images(folder: Path, classes: dict[str, int], size=(12, 10), mode="RGB") -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in classes.items():
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / name / f"{i}.png")


def test_imagefolder_train_test_and_split(tmp_path):
    _write_images(tmp_path / "a" / "train", {"cat": 4, "dog": 3})
    _write_images(tmp_path / "a" / "test", {"cat": 2, "dog": 2})
    ds = load_dataset("imagefolder", tmp_path / "a", image_size=16)
    assert ds.classes == ("cat", "dog") and ds.train.images.shape == (7, 3, 16, 16) and len(ds.test) == 4
    assert ds.note == ""

    _write_images(tmp_path / "b", {"x": 5, "y": 5, "z": 5}, mode="L")
    ds = load_dataset("imagefolder", tmp_path / "b", image_size=8)
    assert ds.in_chans == 1 and len(ds.train) == 12 and len(ds.test) == 3 and "split" in ds.note
    assert torch.equal(ds.test.class_counts(), torch.ones(3, dtype=torch.int64))


def test_imagefolder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NasInputError, match="empty has no class sub-folders"):
        load_dataset("imagefolder", tmp_path / "empty")
    (tmp_path / "c" / "cat").mkdir(parents=True)
    with pytest.raises(NasInputError, match="cat hold no images"):
        load_dataset("imagefolder", tmp_path / "c")
    _write_images(tmp_path / "d", {"cat": 3})
    (tmp_path / "d" / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(NasInputError, match=r"cannot read image .*cat/broken\.png"):
        load_dataset("imagefolder", tmp_path / "d")
    with pytest.raises(NasInputError, match="needs a data folder"):
        load_dataset("imagefolder")


# --------------------------------------------------------------------------- splits


def test_split_train_val_is_stratified_fixed_and_disjoint():
    ds = load_dataset("digits")
    train, val = split_train_val(ds, val_size=200, seed=3)
    assert len(val) == 200 and len(train) == len(ds.train) - 200
    assert val.class_counts().min() >= 19 and val.class_counts().max() <= 21
    train2, val2 = split_train_val(ds, val_size=200, seed=3)
    assert torch.equal(val.images, val2.images) and torch.equal(train.labels, train2.labels)
    _, val3 = split_train_val(ds, val_size=200, seed=4)
    assert not torch.equal(val.images, val3.images)
    # disjoint and complete: the multiset of images is the train split's
    joined = torch.cat([train.images, val.images]).flatten(1)
    assert joined.unique(dim=0).shape[0] == ds.train.images.flatten(1).unique(dim=0).shape[0]
    f_train, f_val = split_train_val(ds, val_fraction=0.25, seed=0)
    assert len(f_val) == round(0.25 * len(ds.train))
    sub = stratified_subset(train, 100, seed=0)
    assert len(sub) == 100 and torch.equal(sub.class_counts(), torch.full((10,), 10))
    assert stratified_subset(train, 10**6) is train
    with pytest.raises(NasInputError, match="exactly one of"):
        split_train_val(ds)
    with pytest.raises(NasInputError, match="val_size must be in"):
        split_train_val(ds, val_size=len(ds.train))


def _rows(split) -> set[bytes]:
    return {bytes(x.numpy().tobytes()) + bytes([int(y)]) for x, y in zip(split.images, split.labels)}


def test_the_judges_images_are_never_in_a_search_split():
    ds = load_dataset("digits")
    rest, judge = split_judge(ds)
    assert len(judge) == len(ds.train) // 6 and len(rest) + len(judge) == len(ds.train)
    again, judge_again = split_judge(ds.train)
    assert torch.equal(judge.images, judge_again.images) and torch.equal(rest.labels, again.labels)
    for seed in (0, 1, 7):
        train, val = search_split(ds, val_size=100, seed=seed)
        assert len(val) == 100 and len(train) == len(rest) - 100
        assert not _rows(val) & _rows(judge) and not _rows(train) & _rows(judge)
        assert not _rows(val) & _rows(train)
    with pytest.raises(NasInputError, match=f"once the judge's {len(judge)} are set aside"):
        search_split(ds, val_size=len(rest))


@pytest.mark.skipif(not FMNIST_DIR.is_dir(), reason="needs the real Fashion-MNIST")
def test_the_judge_of_fashion_mnist_is_the_ground_truths_validation_part():
    """The ground truth's rows were validated on split_train_val(val_size=10,000, seed=0):
    the judge's part must stay exactly those images, or the rows would stop being comparable."""
    ds = load_dataset("fashion-mnist")
    rest, judge = split_judge(ds)
    old_train, old_val = split_train_val(ds, val_size=10_000, seed=0)
    assert torch.equal(judge.images, old_val.images) and torch.equal(rest.labels, old_train.labels)
