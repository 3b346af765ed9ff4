"""Any class-per-folder image tree (torchvision ImageFolder style), with or without split folders.

Two layouts, chosen by the card's `splits`:
- flat (every split a fraction):   <root>/<class>/**/<image>
  all images form one pool, carved into the card's fractions (stratified, seeded).
- split folders (some split `official`):   <root>/<split folder>/<class>/**/<image>
  each `official` split is read from its folder(s); the `train` pool (all folders listed for
  train in the `split_folders` option) is carved into the numeric fractions. The pediatric
  pneumonia card uses this to replace the shipped 16-image val with a patient-grouped one.
Files are matched by extension (`extensions`), so stray LICENSE/README files are ignored, as
are hidden files and __MACOSX folders. Classes are the card's `classes` (a folder outside them
is an error) or, when the card lists none, the sorted folder names. Option `group_pattern`: a
regular expression matched at the start of each file name; the matched text is the group
(e.g. the patient) that splits keep together; names it does not match are their own group.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from byol_bench.data.catalog import LOADERS
from byol_bench.data.card import DatasetCard, card_options, missing_data_error, require
from byol_bench.data.dataset import LoadedDataset
from byol_bench.data.images import IMAGE_EXTENSIONS, decode_files
from byol_bench.data.splits import carve_pool
from byol_bench.errors import UserError

DEFAULTS = {
    "extensions": list(IMAGE_EXTENSIONS),
    "split_folders": {"train": ["train"], "val": ["val", "valid", "validation"], "test": ["test"]},
    "group_pattern": None,
}


def _visible(name: str) -> bool:
    return not name.startswith(".") and name != "__MACOSX"


def class_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p.name))


def image_files(folder: Path, extensions: set[str]) -> list[Path]:
    """Image files under `folder` (recursive, sorted), skipping hidden files and __MACOSX."""
    return sorted(p for p in folder.rglob("*")
                  if p.suffix.lower() in extensions and p.is_file()
                  and all(_visible(part) for part in p.relative_to(folder).parts))


def scan(folders: list[Path], extensions: set[str]) -> list[tuple[Path, str]]:
    """(image path, class folder name) for every image under the class folders of `folders`."""
    items = []
    for folder in folders:
        for cls_dir in class_folders(folder):
            items.extend((p, cls_dir.name) for p in image_files(cls_dir, extensions))
    return items


@LOADERS.register("imagefolder")
def load_imagefolder(card: DatasetCard, root: Path, image_size: int) -> LoadedDataset:
    """Class-per-folder images; splits carved by fraction and/or read from split folders."""
    opts = card_options(card, DEFAULTS, paths=("split_folders",))
    if card.task != "multiclass":
        raise UserError(f"dataset card {card.name}: the imagefolder loader is multiclass only")
    require(card, root, "the image folder")
    extensions = {e.lower() if e.startswith(".") else f".{e.lower()}" for e in opts["extensions"]}
    official, fractions = card.official_splits(), card.split_fractions()
    split_folders = {k: [v] if isinstance(v, str) else list(v) for k, v in opts["split_folders"].items()}

    if not official:
        names = {p.name for p in class_folders(root)}
        if names and names <= {f for fs in split_folders.values() for f in fs}:
            raise UserError(f"dataset {card.name!r}: {root} holds split folders ({', '.join(sorted(names))}); "
                            f"mark those splits 'official' in the card's splits")
        pool_folders, official_folders = [root], {}
    else:
        if "train" in official and fractions:
            raise UserError(f"dataset card {card.name}: train is 'official' but {sorted(fractions)} are "
                            f"fractions: carve fractions from the train pool, or make every split official")

        def folders_of(split: str) -> list[Path]:
            found = [root / f for f in split_folders.get(split, [split]) if (root / f).is_dir()]
            if not found:
                raise missing_data_error(card, root / split_folders.get(split, [split])[0],
                                         f"the {split} split folder not found")
            return found
        pool_folders = folders_of("train")
        official_folders = {s: folders_of(s) for s in official if s != "train"}

    pool = scan(pool_folders, extensions)
    others = {s: scan(f, extensions) for s, f in official_folders.items()}
    if not pool:
        raise missing_data_error(card, pool_folders[0], f"no images ({', '.join(sorted(extensions))}) "
                                                         f"in class folders")
    found = sorted({c for items in [pool, *others.values()] for _, c in items})
    classes = list(card.classes) or found
    stray = [c for c in found if c not in classes]
    if stray:
        raise UserError(f"dataset {card.name!r}: class folder(s) {', '.join(stray)} under {root} are not "
                        f"among the card's classes ({', '.join(classes)})")
    try:
        pattern = re.compile(opts["group_pattern"]) if opts["group_pattern"] else None
    except re.error as exc:
        raise UserError(f"dataset card {card.name}: group_pattern {opts['group_pattern']!r} is not a "
                        f"regular expression: {exc}") from None

    # One decode for every split (one progress bar, one warning for any unreadable files).
    items = pool + [item for split_items in others.values() for item in split_items]
    source = np.array(["train"] * len(pool) + [s for s, split_items in others.items() for _ in split_items])
    images, keep = decode_files(card.name, [p for p, _ in items], image_size, card.channels)
    kept = [items[i] for i in keep]
    source = source[keep]
    labels = np.array([classes.index(c) for _, c in kept], dtype=np.int64)
    groups = None
    if pattern is not None:
        groups = np.array([m.group(0) if (m := pattern.match(p.name)) else str(p.relative_to(root))
                           for p, _ in kept])
    pool_idx = np.flatnonzero(source == "train")
    if fractions:
        carved = carve_pool(labels[pool_idx], fractions, card.split_seed,
                            None if groups is None else groups[pool_idx])
        parts = {k: pool_idx[idx] for k, idx in carved.items()}
    else:
        parts = {"train": pool_idx}
    parts.update({s: np.flatnonzero(source == s) for s in others})
    return LoadedDataset.from_indices(card, classes, images, labels, parts, groups)
