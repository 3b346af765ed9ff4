"""The MNIST-family IDX loader on tiny files it writes itself (gzip and plain), its refusals,
and, where Debian's dataset-fashion-mnist is installed, the real files against a few-line
decoder of the format written independently here."""
import gzip
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures_data import make_idx, write_idx
from byol_bench.data import load_dataset
from byol_bench.data.catalog import get_card
from byol_bench.data.formats.idx import IMAGES_MAGIC, LABELS_MAGIC
from byol_bench.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("gz", [True, False])
def test_reads_gzip_and_plain_files_exactly(tmp_path: Path, gz):
    files = make_idx(tmp_path / "mnist", n_train=100, n_test=10, gz=gz)
    assert files["train_images"].name == ("train-images-idx3-ubyte.gz" if gz else "train-images-idx3-ubyte")
    data = load_dataset("mnist", tmp_path)
    assert {k: v.shape for k, v in data.images.items()} == {
        "train": (90, 1, 28, 28), "val": (10, 1, 28, 28), "test": (10, 1, 28, 28)}
    np.testing.assert_array_equal(data.images["test"][:, 0], files["t10k_x"])
    np.testing.assert_array_equal(data.labels["test"], files["t10k_y"])
    # train + val are the official training file, split without loss or duplication
    pooled = np.concatenate([data.images["train"], data.images["val"]])[:, 0]
    order = np.lexsort(pooled.reshape(len(pooled), -1).T)
    truth = files["train_x"][np.lexsort(files["train_x"].reshape(100, -1).T)]
    np.testing.assert_array_equal(pooled[order], truth)
    assert np.bincount(data.labels["val"]).tolist() == [1] * 10      # stratified: one per class
    assert data.labels["train"].dtype == np.int64


def test_resizes_to_another_size(tmp_path: Path):
    make_idx(tmp_path / "kmnist", n_train=20, n_test=10)
    data = load_dataset("kmnist", tmp_path, image_size=16)
    assert data.images["test"].shape == (10, 1, 16, 16)


def test_magic_numbers():
    assert IMAGES_MAGIC == 0x0803 and LABELS_MAGIC == 0x0801


def corrupt(path: Path, transform) -> None:
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(transform(raw)))


@pytest.mark.parametrize("file, transform, message", [
    ("train_images", lambda raw: raw[:-10], r"train-images-idx3-ubyte\.gz: truncated: 31366 bytes, the header 40x28x28 needs 31376"),
    ("t10k_labels", lambda raw: raw + b"\0", r"t10k-labels-idx1-ubyte\.gz: has trailing bytes"),
    ("train_labels", lambda raw: b"\0\0\x08\x03" + raw[4:], r"train-labels-idx1-ubyte\.gz: magic number 2051, expected 2049"),
    ("train_images", lambda raw: b"\0\0\x08\x01" + raw[4:], r"magic number 2049, expected 2051"),
    ("train_images", lambda raw: raw[:6], r"truncated IDX file \(6 bytes, header needs 16\)"),
])
def test_truncated_or_mismatched_files_are_refused(tmp_path: Path, file, transform, message):
    files = make_idx(tmp_path / "mnist")
    corrupt(files[file], transform)
    with pytest.raises(UserError, match=message):
        load_dataset("mnist", tmp_path)


def test_label_count_must_match_image_count(tmp_path: Path):
    make_idx(tmp_path / "mnist", n_test=10)
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte", np.zeros(9, np.uint8))
    with pytest.raises(UserError, match=r"t10k-labels-idx1-ubyte\.gz: 9 labels for the 10 images"):
        load_dataset("mnist", tmp_path)


def test_cut_gzip_stream_is_refused(tmp_path: Path):
    files = make_idx(tmp_path / "mnist")
    path = files["train_images"]
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(UserError, match="truncated or corrupt gzip"):
        load_dataset("mnist", tmp_path)


def test_missing_files_name_the_folder_and_the_source(tmp_path: Path):
    with pytest.raises(UserError) as err:
        load_dataset("mnist", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "mnist") in message and "yann.lecun.com" in message and "--download" in message


def test_cli_exits_2_with_one_line_on_a_truncated_file(tmp_path: Path):
    files = make_idx(tmp_path / "data" / "mnist")
    corrupt(files["train_images"], lambda raw: raw[:-10])
    out = subprocess.run(
        [sys.executable, str(ROOT / "run_bench.py"), "--config", str(ROOT / "configs/smoke.yaml"),
         "--datasets", "mnist", "--data-root", str(tmp_path / "data"), "--results-dir", str(tmp_path / "r")],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "truncated" in lines[0] and "Traceback" not in out.stderr
    assert not (tmp_path / "r" / "runs").exists()


def test_fashion_card_falls_back_to_the_debian_folder():
    card = get_card("fashion-mnist")
    assert card.options["fallback_dirs"] == [str(DEBIAN_FASHION)]
    assert card.loader == "idx" and len(card.classes) == 10 and len(card.download["files"]) == 4
    for name in ("mnist", "kmnist"):
        assert all(f["md5"] and f["dest"] == name for f in get_card(name).download["files"])


def decode_idx_independently(path: Path) -> np.ndarray:
    """The IDX format in a few lines, without the loader: big-endian magic, dims, bytes."""
    with gzip.open(path, "rb") as f:
        zero, dtype, ndim = struct.unpack(">HBB", f.read(4))
        dims = struct.unpack(">" + "I" * ndim, f.read(4 * ndim))
        return np.frombuffer(f.read(), dtype=np.uint8).reshape(dims)


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(),
                    reason="Debian's dataset-fashion-mnist is not installed (/usr/share/datasets/fashion-mnist); "
                           "`apt-get install dataset-fashion-mnist` to run this check")
def test_fashion_mnist_through_the_loader_equals_the_official_files(tmp_path: Path):
    data = load_dataset("fashion-mnist", tmp_path / "empty-data-root")   # falls back to Debian's folder
    test_x = decode_idx_independently(DEBIAN_FASHION / "t10k-images-idx3-ubyte.gz")
    test_y = decode_idx_independently(DEBIAN_FASHION / "t10k-labels-idx1-ubyte.gz")
    train_x = decode_idx_independently(DEBIAN_FASHION / "train-images-idx3-ubyte.gz")
    train_y = decode_idx_independently(DEBIAN_FASHION / "train-labels-idx1-ubyte.gz")
    assert test_x.shape == (10000, 28, 28) and train_x.shape == (60000, 28, 28)
    np.testing.assert_array_equal(data.images["test"][:, 0], test_x)
    np.testing.assert_array_equal(data.labels["test"], test_y.astype(np.int64))
    # train + val partition the 60,000 official training images: compare as multisets of (image, label)
    pooled_x = np.concatenate([data.images["train"], data.images["val"]])[:, 0]
    pooled_y = np.concatenate([data.labels["train"], data.labels["val"]])
    assert len(pooled_x) == 60000 and np.bincount(pooled_y).tolist() == np.bincount(train_y).tolist()
    key = lambda x, y: sorted(zip(map(bytes, x.reshape(len(x), -1)), y.tolist()))  # noqa: E731
    assert key(pooled_x, pooled_y) == key(train_x, train_y)
