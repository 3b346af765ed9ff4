"""ISIC 2019 (skin lesions, 8 diagnostic classes) from the challenge files.

Layout under the data root (ISIC_2019_Training_Input.zip unpacks to the folder):
    isic2019/ISIC_2019_Training_Input/<image>.jpg    (+ LICENSE.txt, ATTRIBUTION.txt: ignored)
    isic2019/ISIC_2019_Training_GroundTruth.csv      image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK
    isic2019/ISIC_2019_Training_Metadata.csv         optional: image,...,lesion_id,...
Labels: the one-hot columns (written as 1.0/0.0) named by the card's classes; UNK is empty
in the training set, so each row must have exactly one positive among them. Only the
training set has public labels, so train/val/test are all carved from it, stratified by class
and grouped by lesion_id when the metadata file is there (an image without a lesion_id is its
own group), so one lesion never sits in two splits.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from byol_bench.data.catalog import LOADERS
from byol_bench.data.card import DatasetCard, card_options, require
from byol_bench.data.dataset import LoadedDataset
from byol_bench.data.images import decode_files
from byol_bench.data.splits import carve_pool
from byol_bench.data.tables import absent_files_error, read_csv_rows
from byol_bench.errors import UserError

DEFAULTS = {
    "images": "ISIC_2019_Training_Input",
    "labels_csv": "ISIC_2019_Training_GroundTruth.csv",
    "metadata_csv": "ISIC_2019_Training_Metadata.csv",
    "extension": ".jpg",
}


def one_hot_class(card: DatasetCard, path: Path, line: int, row: dict[str, str]) -> int:
    """The index of the single positive class in a one-hot row ("1.0"/"0.0" or "1"/"0")."""
    values = []
    for c in card.classes:
        try:
            values.append(float(row[c]))
        except ValueError:
            raise UserError(f"dataset {card.name!r}: {path} line {line}: column {c} holds "
                            f"{row[c]!r}, not a number") from None
    positive = [i for i, v in enumerate(values) if v > 0.5]
    if len(positive) != 1:
        raise UserError(f"dataset {card.name!r}: {path} line {line} (image {row['image']}): "
                        f"{len(positive)} positive classes among {', '.join(card.classes)}; expected one")
    return positive[0]


def lesion_groups(card: DatasetCard, path: Path, images: list[str]) -> np.ndarray:
    """lesion_id per image from the metadata CSV; the image's own name where there is none."""
    rows = read_csv_rows(card, path, ["image", "lesion_id"])
    lesion = {r["image"]: r["lesion_id"] for r in rows}
    return np.array([lesion.get(name) or f"image:{name}" for name in images])


@LOADERS.register("isic2019")
def load_isic2019(card: DatasetCard, root: Path, image_size: int) -> LoadedDataset:
    """ISIC 2019 training set: one-hot CSV, lesion-grouped stratified train/val/test."""
    opts = card_options(card, DEFAULTS, paths=("images", "labels_csv", "metadata_csv", "extension"))
    require(card, root, "the ISIC 2019 folder")
    folder = require(card, root / opts["images"], "the image folder")
    csv_path = root / opts["labels_csv"]
    rows = read_csv_rows(card, csv_path, ["image", *card.classes])
    names = [r["image"] for r in rows]
    labels = np.array([one_hot_class(card, csv_path, i, r) for i, r in enumerate(rows, start=2)], dtype=np.int64)
    paths = [folder / f"{name}{opts['extension']}" for name in names]
    absent = [p.name for p in paths if not p.is_file()]
    if absent:
        raise absent_files_error(card, csv_path, folder, absent)

    meta_path = root / opts["metadata_csv"]
    if meta_path.exists():
        groups = lesion_groups(card, meta_path, names)
    else:
        warnings.warn(f"{card.name}: no {meta_path}; splitting by image, so images of one lesion "
                      f"may land in different splits", stacklevel=2)
        groups = np.array([f"image:{n}" for n in names])

    images, keep = decode_files(card.name, paths, image_size, card.channels)
    labels, groups = labels[keep], groups[keep]
    parts = carve_pool(labels, card.split_fractions(), card.split_seed, groups)
    return LoadedDataset.from_indices(card, list(card.classes), images, labels, parts, groups)
