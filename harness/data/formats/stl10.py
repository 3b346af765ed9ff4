"""STL-10 from its binary release, read directly (torchvision's class md5-checks every file,
so tiny test fixtures could never pass it).

Layout under the data root, as stl10_binary.tar.gz unpacks:
    stl10_binary/{train_X,train_y,test_X,test_y,unlabeled_X}.bin (+ class_names.txt, fold_indices.txt)
X files: uint8 96x96x3 images, each stored channel by channel in column-major order, so
reshape(-1, 3, 96, 96) then swap the two spatial axes. y files: one uint8 label 1..10 per image.
Splits: train/val carved (stratified) from the 5,000 labelled training images by the card's
fractions; test = the official 8,000; unlabeled = the 100,000 for pretraining (option
`unlabeled: false` skips reading them).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from byol_bench.data.catalog import LOADERS
from byol_bench.data.card import DatasetCard, card_options, missing_data_error, require
from byol_bench.data.dataset import LoadedDataset
from byol_bench.data.images import array_to_channels, resize_array
from byol_bench.data.splits import carve_pool

SIDE = 96
IMAGE_BYTES = 3 * SIDE * SIDE


def read_stl10_images(card: DatasetCard, path: Path, size: int, chunk: int = 4096) -> np.ndarray:
    """One X.bin file as uint8 (N, card.channels, size, size), read in chunks (unlabeled is 2.7 GB)."""
    require(card, path)
    nbytes = path.stat().st_size
    if nbytes == 0 or nbytes % IMAGE_BYTES:
        raise missing_data_error(card, path, f"truncated or not an STL-10 image file ({nbytes} bytes, "
                                             f"not a multiple of {IMAGE_BYTES})")
    raw = np.memmap(path, dtype=np.uint8, mode="r").reshape(-1, 3, SIDE, SIDE)
    out = np.empty((len(raw), card.channels, size, size), dtype=np.uint8)
    for i in range(0, len(raw), chunk):
        x = np.ascontiguousarray(raw[i:i + chunk].transpose(0, 1, 3, 2))  # column-major -> row-major
        out[i:i + chunk] = resize_array(array_to_channels(x, card.channels), size)
    del raw
    return out


def read_stl10_labels(card: DatasetCard, path: Path, n: int) -> np.ndarray:
    """One y.bin file: labels 1..10 as int64 0..9, checked against the image count."""
    y = np.fromfile(require(card, path), dtype=np.uint8).astype(np.int64)
    if len(y) != n:
        raise missing_data_error(card, path, f"{len(y)} labels for {n} images in the matching X file")
    if len(y) and (y.min() < 1 or y.max() > 10):
        raise missing_data_error(card, path, f"labels outside 1..10 ({y.min()}..{y.max()})")
    return y - 1


@LOADERS.register("stl10-binary")
def load_stl10(card: DatasetCard, root: Path, image_size: int) -> LoadedDataset:
    """STL-10 binary release: train/val carved from train, official test, unlabeled."""
    opts = card_options(card, {"unlabeled": True})
    require(card, root, "the stl10_binary folder")
    train_x = read_stl10_images(card, root / "train_X.bin", image_size)
    train_y = read_stl10_labels(card, root / "train_y.bin", len(train_x))
    test_x = read_stl10_images(card, root / "test_X.bin", image_size)
    test_y = read_stl10_labels(card, root / "test_y.bin", len(test_x))
    parts = carve_pool(train_y, card.split_fractions(), card.split_seed)
    data = LoadedDataset.from_indices(card, list(card.classes), train_x, train_y, parts)
    data.add_split("test", test_x, test_y)
    if opts["unlabeled"]:
        data.add_split("unlabeled", read_stl10_images(card, root / "unlabeled_X.bin", image_size))
    return data
