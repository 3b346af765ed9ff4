"""Any Hugging Face dataset: a hub id, or a folder written by `save_to_disk`.

Options (datasets/hf-example.yaml shows them):
    hub_id        hub dataset id (e.g. uoft-cs/cifar10), loaded with datasets.load_dataset into
                  Hugging Face's own cache; pin `revision` so a cached decode stays valid.
                  Without hub_id the card's `root` is a save_to_disk folder under --data-root.
    config, revision
    image_column  default: the first column with an Image feature
    label_column  default: label (a ClassLabel, an int, a string, or for multilabel a list of ints)
    split_names   our split -> the dataset's split name(s); defaults: train, validation/valid/val, test,
                  unlabeled
Splits follow the card as in the imagefolder loader: `official` splits are read from the
dataset's splits; numeric fractions are carved from its train split.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from byol_bench.data.cache import files_fingerprint, fingerprint_with
from byol_bench.data.catalog import LOADERS
from byol_bench.data.card import DatasetCard, card_options, missing_data_error
from byol_bench.data.dataset import LoadedDataset
from byol_bench.data.images import decode_images, warn_skipped
from byol_bench.data.splits import carve_pool
from byol_bench.errors import UserError

DEFAULTS = {
    "hub_id": None,
    "config": None,
    "revision": None,
    "image_column": None,
    "label_column": "label",
    "split_names": {"train": ["train"], "val": ["validation", "valid", "val"], "test": ["test"],
                    "unlabeled": ["unlabeled"]},
}


@fingerprint_with("hf")
def hf_fingerprint(card: DatasetCard, root: Path) -> str | None:
    opts = card_options(card, DEFAULTS)
    if opts["hub_id"]:
        ident = f"hub|{opts['hub_id']}|{opts['config']}|{opts['revision']}"
        return hashlib.sha256(ident.encode()).hexdigest()
    return files_fingerprint(root)


def open_hf(card: DatasetCard, root: Path, opts: dict[str, Any]) -> dict[str, Any]:
    """The dataset's splits as {name: datasets.Dataset}."""
    import datasets as hf  # Hugging Face's library (datasets/ at the repo root holds only YAML)

    if opts["hub_id"]:
        try:
            loaded = hf.load_dataset(opts["hub_id"], opts["config"], revision=opts["revision"])
        except Exception as exc:  # network, auth, unknown id, bad config: all the user's to fix
            raise UserError(f"dataset {card.name!r}: cannot load Hugging Face dataset {opts['hub_id']!r}: "
                            f"{type(exc).__name__}: {exc}") from None
    else:
        if not root.is_dir():
            raise missing_data_error(card, root, "the save_to_disk folder not found")
        try:
            loaded = hf.load_from_disk(str(root))
        except (FileNotFoundError, ValueError, OSError) as exc:
            raise UserError(f"dataset {card.name!r}: {root} is not a folder written by save_to_disk: {exc}") from None
    return dict(loaded) if isinstance(loaded, hf.DatasetDict) else {"train": loaded}


class _ImageColumn(Sequence):
    """Lazy image sources of one column: encoded bytes, a file path, or a PIL image from an array."""

    def __init__(self, ds: Any, column: str):
        self.ds, self.column = ds, column

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> Any:
        value = self.ds[int(i)][self.column]
        if isinstance(value, dict):
            return value["bytes"] if value.get("bytes") is not None else value["path"]
        if isinstance(value, Image.Image):
            return value
        return Image.fromarray(np.asarray(value, dtype=np.uint8))


def _resolve(name: str, available: list[str], wanted: Any) -> str | None:
    for candidate in [wanted] if isinstance(wanted, str) else list(wanted or [name]):
        if candidate in available:
            return candidate
    return None


@LOADERS.register("hf")
def load_hf(card: DatasetCard, root: Path, image_size: int) -> LoadedDataset:
    """A Hugging Face dataset (hub id or save_to_disk folder): image + label columns."""
    import datasets as hf

    opts = card_options(card, DEFAULTS)
    splits = open_hf(card, root, opts)
    names = opts["split_names"]
    where = opts["hub_id"] or str(root)
    official, fractions = card.official_splits(), card.split_fractions()
    wanted = (["train"] if fractions or "train" in official else []) + [s for s in official if s != "train"]
    chosen = {}
    for split in wanted:
        found = _resolve(split, list(splits), names.get(split, [split]))
        if found is None:
            raise UserError(f"dataset {card.name!r}: {where} has no split for {split!r} "
                            f"(looked for {names.get(split, [split])}); it has {', '.join(splits)}")
        chosen[split] = splits[found]

    first = chosen["train"]
    image_col = opts["image_column"] or next(
        (c for c, f in first.features.items() if isinstance(f, hf.Image)), None)
    if image_col is None or image_col not in first.column_names:
        raise UserError(f"dataset {card.name!r}: {where} has no image column {image_col!r}; "
                        f"columns: {', '.join(first.column_names)} (set options.image_column)")
    label_col = opts["label_column"]
    classes, encode = label_encoder(card, first, label_col, where)

    skipped: list[str] = []
    reasons: list[str] = []

    def decode(split: str, ds: Any, labelled: bool):
        if isinstance(ds.features[image_col], hf.Image):
            ds = ds.cast_column(image_col, hf.Image(decode=False))
        images, failed, why = decode_images(_ImageColumn(ds, image_col), image_size, card.channels,
                                            desc=f"decoding {card.name}/{split}")
        skipped.extend(f"{where}[{split}][{i}]" for i in failed)
        reasons.extend(why)
        keep = np.setdiff1d(np.arange(len(ds)), np.asarray(failed, dtype=np.int64))
        labels = encode(ds[label_col])[keep] if labelled else None
        return images[keep], labels

    x, y = decode("train", chosen["train"], True)
    parts = carve_pool(y, fractions, card.split_seed) if fractions else {"train": np.arange(len(y))}
    data = LoadedDataset.from_indices(card, classes, x, y, parts)
    for split, ds in chosen.items():
        if split != "train":
            images, labels = decode(split, ds, split != "unlabeled")
            data.add_split(split, images, labels)
    warn_skipped(card.name, skipped, reasons)  # one warning for all splits
    return data


def label_encoder(card: DatasetCard, ds: Any, column: str, where: str):
    """(classes, fn(list of raw labels) -> int64 (N,) or float32 (N, L)) for the label column."""
    import datasets as hf

    if column not in ds.column_names:
        raise UserError(f"dataset {card.name!r}: {where} has no label column {column!r}; "
                        f"columns: {', '.join(ds.column_names)} (set options.label_column)")
    feature = ds.features[column]
    inner = getattr(feature, "feature", None)  # Sequence(ClassLabel) / list of ClassLabel
    if isinstance(feature, list) and feature:
        inner = feature[0]
    label_feature = inner if card.task == "multilabel" else feature
    names = list(label_feature.names) if isinstance(label_feature, hf.ClassLabel) else None
    classes = list(card.classes) or names
    if classes is None:
        if card.task == "multilabel":
            raise UserError(f"dataset card {card.name}: list the classes (multilabel column {column!r} "
                            f"has no ClassLabel names)")
        classes = [str(v) for v in sorted(set(ds[column]))]

    position = {c: i for i, c in enumerate(classes)}

    def index(value: Any) -> int:
        if names is not None and isinstance(value, (int, np.integer)):
            value = names[int(value)]  # ClassLabel id -> its name -> the card's order
        elif names is None and not card.classes:
            value = str(value)
        if isinstance(value, str):
            if value not in position:
                raise UserError(f"dataset {card.name!r}: label {value!r} in {where} is not among the "
                                f"classes {', '.join(classes)}")
            return position[value]
        if not 0 <= value < len(classes):
            raise UserError(f"dataset {card.name!r}: label {value} in {where} is outside 0..{len(classes) - 1}")
        return int(value)

    def encode(values: list[Any]) -> np.ndarray:
        if card.task == "multilabel":
            y = np.zeros((len(values), len(classes)), dtype=np.float32)
            for i, row in enumerate(values):
                for v in row:
                    y[i, index(v)] = 1.0
            return y
        return np.array([index(v) for v in values], dtype=np.int64)

    return classes, encode
