"""NIH ChestX-ray14: 112,120 frontal chest X-rays, 14 text-mined findings, multi-label.

Layout under the data root, as the NIH release unpacks (the 12 images_001..012.tar.gz archives
all unpack into images/; Kaggle's copy with images_001/images/ ... folders is read too):
    chestxray14/Data_Entry_2017.csv   (or Data_Entry_2017_v2020.csv, preferred when both exist)
    chestxray14/images/*.png          (a few are RGBA; converted to one grey channel)
    chestxray14/train_val_list.txt, chestxray14/test_list.txt   (the official, patient-wise split)
Labels: "Finding Labels" is "A|B|..." or "No Finding" (all zeros). Test = test_list.txt;
train/val are carved from train_val_list.txt grouped by "Patient ID" (no patient in both).
The CSV's bracketed headers ("OriginalImage[Width,Height]") span two fields unquoted; only
the "Image Index", "Finding Labels" and "Patient ID" columns are read.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from byol_bench.data.catalog import LOADERS
from byol_bench.data.card import DatasetCard, card_options, missing_data_error, require
from byol_bench.data.dataset import LoadedDataset
from byol_bench.data.images import decode_files
from byol_bench.data.splits import carve_pool
from byol_bench.data.tables import absent_files_error, read_csv_rows, read_name_list
from byol_bench.errors import UserError

DEFAULTS = {
    "csv": ["Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv"],  # first that exists
    "train_list": "train_val_list.txt",
    "test_list": "test_list.txt",
    "no_finding": "No Finding",
    # false: images the CSV lists but that are not on disk are dropped with a warning
    # (a partial download); true: that is an error.
    "require_all_images": True,
}


def index_images(root: Path) -> dict[str, Path]:
    """File name -> path for images/*.png and images_*/images/*.png (Kaggle's layout)."""
    found: dict[str, Path] = {}
    for folder in [root / "images", *sorted(root.glob("images_*/images"))]:
        if folder.is_dir():
            for p in folder.iterdir():
                if p.suffix.lower() == ".png":
                    found.setdefault(p.name, p)
    return found


def multi_hot(card: DatasetCard, path: Path, line: int, text: str, no_finding: str) -> np.ndarray:
    y = np.zeros(len(card.classes), dtype=np.float32)
    if text == no_finding:
        return y
    for finding in text.split("|"):
        try:
            y[card.classes.index(finding.strip())] = 1.0
        except ValueError:
            raise UserError(f"dataset {card.name!r}: {path} line {line}: unknown finding {finding!r}; "
                            f"the card's classes are {', '.join(card.classes)} (or {no_finding!r})") from None
    return y


@LOADERS.register("chestxray14")
def load_chestxray14(card: DatasetCard, root: Path, image_size: int) -> LoadedDataset:
    """ChestX-ray14: official test list, patient-grouped val from train_val, multi-hot labels."""
    opts = card_options(card, DEFAULTS, paths=("csv", "train_list", "test_list"))
    require(card, root, "the ChestX-ray14 folder")
    candidates = [opts["csv"]] if isinstance(opts["csv"], str) else list(opts["csv"])
    csv_path = next((root / c for c in candidates if (root / c).is_file()), None)
    if csv_path is None:
        raise missing_data_error(card, root / candidates[-1], f"label CSV ({' or '.join(candidates)}) not found")
    rows = read_csv_rows(card, csv_path, ["Image Index", "Finding Labels", "Patient ID"])
    entry = {r["Image Index"]: (line, r) for line, r in enumerate(rows, start=2)}

    on_disk = index_images(root)
    if not on_disk:
        raise missing_data_error(card, root / "images", "no PNG images found in the image folder")
    splits: dict[str, list[str]] = {}
    for split, key in (("train", "train_list"), ("test", "test_list")):
        list_path = root / opts[key]
        names = read_name_list(card, list_path)
        unknown = [n for n in names if n not in entry]
        if unknown:
            raise UserError(f"dataset {card.name!r}: {len(unknown)} image(s) in {list_path} have no row in "
                            f"{csv_path}: {', '.join(unknown[:5])}")
        absent = [n for n in names if n not in on_disk]
        if absent and opts["require_all_images"]:
            raise absent_files_error(card, list_path, root / "images", absent)
        if absent:
            warnings.warn(f"{card.name}: {len(absent)} image(s) of {list_path.name} are not on disk and are "
                          f"left out (require_all_images: false)", stacklevel=2)
        splits[split] = [n for n in names if n in on_disk]

    # Parse every label before decoding anything: a bad CSV fails in seconds, not after an hour.
    label_of = {n: multi_hot(card, csv_path, entry[n][0], entry[n][1]["Finding Labels"], opts["no_finding"])
                for names in splits.values() for n in names}

    # One decode for both lists (one progress bar, one warning for any unreadable files).
    names = splits["train"] + splits["test"]
    images, keep = decode_files(card.name, [on_disk[n] for n in names], image_size, card.channels)
    kept = [names[i] for i in keep]
    labels = np.stack([label_of[n] for n in kept]) if kept else np.zeros((0, len(card.classes)), np.float32)
    groups = np.array([entry[n][1]["Patient ID"] for n in kept])
    in_test = keep >= len(splits["train"])
    pool, test = np.flatnonzero(~in_test), np.flatnonzero(in_test)
    parts = carve_pool(labels[pool], card.split_fractions(), card.split_seed, groups[pool])
    parts = {k: pool[idx] for k, idx in parts.items()}
    parts["test"] = test
    return LoadedDataset.from_indices(card, list(card.classes), images, labels, parts, groups)
