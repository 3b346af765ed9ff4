"""MedMNIST v2 / MedMNIST+ .npz files, as the medmnist package and Zenodo record save them.

Layout: `<name>.npz` (28 px) or `<name>_{64,128,224}.npz` (MedMNIST+) directly under the data
root; the card's `root` names the file. Keys: {train,val,test}_images, uint8 (N, H, W) grey
or (N, H, W, 3) colour, and {train,val,test}_labels, (N, 1) class ids or (N, L) 0/1 for the
multi-label ChestMNIST. The official splits are used as they are. For a larger size, point
a card at the MedMNIST+ file of that size rather than upsampling 28 px images.
"""
from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from byol_bench.data.catalog import LOADERS
from byol_bench.data.card import DatasetCard, card_options, missing_data_error, require
from byol_bench.data.dataset import LoadedDataset
from byol_bench.data.images import array_to_channels, resize_array
from byol_bench.errors import UserError

SPLITS = ("train", "val", "test")


@LOADERS.register("medmnist-npz")
def load_medmnist(card: DatasetCard, root: Path, image_size: int) -> LoadedDataset:
    """A MedMNIST .npz: official train/val/test, resized to image_size if it differs."""
    card_options(card, {})
    require(card, root, "the MedMNIST .npz file")
    try:
        npz = np.load(root, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise missing_data_error(card, root, f"not a readable .npz file ({exc})") from None
    with npz:
        keys = [f"{s}_{kind}" for s in SPLITS for kind in ("images", "labels")]
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise UserError(f"dataset {card.name!r}: {root} lacks array(s) {', '.join(missing)}; "
                            f"it holds {', '.join(npz.files)}")
        images, labels = {}, {}
        for split in SPLITS:
            x = npz[f"{split}_images"]
            x = x[:, None] if x.ndim == 3 else x.transpose(0, 3, 1, 2)
            images[split] = resize_array(array_to_channels(np.ascontiguousarray(x, dtype=np.uint8), card.channels),
                                         image_size)
            labels[split] = medmnist_labels(card, root, split, npz[f"{split}_labels"], len(x))
    return LoadedDataset(card=card, images=images, labels=labels, classes=list(card.classes))


def medmnist_labels(card: DatasetCard, path: Path, split: str, y: np.ndarray, n: int) -> np.ndarray:
    y = y.reshape(len(y), -1)
    if len(y) != n:
        raise UserError(f"dataset {card.name!r}: {path}: {len(y)} {split} labels for {n} images")
    if card.task == "multilabel":
        if y.shape[1] != len(card.classes):
            raise UserError(f"dataset {card.name!r}: {path}: {y.shape[1]} labels per image, "
                            f"the card has {len(card.classes)} classes")
        return y.astype(np.float32)
    y = y[:, 0].astype(np.int64)
    if len(y) and (y.min() < 0 or y.max() >= len(card.classes)):
        raise UserError(f"dataset {card.name!r}: {path}: {split} labels span {y.min()}..{y.max()}, "
                        f"the card has {len(card.classes)} classes")
    return y
