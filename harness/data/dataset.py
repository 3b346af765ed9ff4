"""The dataset contract: what every loader returns and all of training and evaluation read."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from byol_bench.data.card import DatasetCard, PRETRAIN_SPLITS, SPLIT_NAMES
from byol_bench.data.views import ConcatImages
from byol_bench.errors import UserError


@dataclass
class LoadedDataset:
    """Decoded images and labels per split.

    images[split]: uint8 array (N, C, H, W). labels[split]: int64 (N,) for multiclass or
    float32 (N, L) of 0/1 for multilabel. The 'unlabeled' split, where present, has no labels.
    `groups[split]`, when the data has them, holds the grouping key (patient, lesion) per image.
    """
    card: DatasetCard
    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    classes: list[str]
    groups: dict[str, np.ndarray] = field(default_factory=dict)

    def pretrain_images(self, splits: str = "train+unlabeled") -> np.ndarray | ConcatImages:
        """Images pretraining may see (never val or test), `data.pretrain_splits`: train plus
        unlabeled (the default; train alone where there is no unlabeled split), unlabeled only
        (Garg & Jain's code pretrained on STL10's unlabeled_X.bin alone) or train only. Several
        splits come as a view that indexes them without copying (np.concatenate would copy
        2.9 GB of STL10 in every run); `images[idx]` gives numpy rows."""
        parts = [self.images[name] for name in self.pretrain_split_names(splits)]
        return parts[0] if len(parts) == 1 else ConcatImages(parts)

    def pretrain_split_names(self, splits: str = "train+unlabeled") -> list[str]:
        """The splits `pretrain_images(splits)` reads, in order; UserError when `splits` asks for
        an unlabeled split the data does not have."""
        if splits not in PRETRAIN_SPLITS:
            raise UserError(f"data.pretrain_splits must be one of {', '.join(PRETRAIN_SPLITS)}, got {splits!r}")
        if splits == "unlabeled" and "unlabeled" not in self.images:
            raise UserError(f"data.pretrain_splits is 'unlabeled' but dataset {self.card.name!r} has no "
                            "unlabeled split loaded")
        return [name for name in PRETRAIN_SPLITS[splits] if name in self.images]

    def train_subset(self, n: int) -> "LoadedDataset":
        """This dataset with its labelled train split cut to about `n` images (stratified, drawn
        with the card's split seed, so every run and method gets the same subset; val, test and
        unlabeled untouched). `data.train_subsample`, ours: it sizes CPU benchmarks."""
        from byol_bench.data.splits import carve_pool

        total = len(self.images["train"])
        if n <= 0 or n >= total:
            return self
        keep = carve_pool(self.labels["train"], {"keep": n / total, "rest": 1 - n / total},
                          self.card.split_seed)["keep"]
        return dataclasses.replace(
            self, images={**self.images, "train": self.images["train"][keep]},
            labels={**self.labels, "train": self.labels["train"][keep]},
            groups={**self.groups, **({"train": self.groups["train"][keep]} if "train" in self.groups else {})})

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def from_indices(cls, card: DatasetCard, classes: list[str], images: np.ndarray, labels: np.ndarray,
                     parts: dict[str, np.ndarray], groups: np.ndarray | None = None) -> "LoadedDataset":
        """Index one pool of images/labels(/groups) into named splits."""
        return cls(card=card, classes=list(classes),
                   images={k: images[idx] for k, idx in parts.items()},
                   labels={k: labels[idx] for k, idx in parts.items()},
                   groups={} if groups is None else {k: np.asarray(groups)[idx] for k, idx in parts.items()})

    def add_split(self, split: str, images: np.ndarray, labels: np.ndarray | None = None,
                  groups: np.ndarray | None = None) -> None:
        """Add an official split (test, unlabeled) next to the carved ones."""
        self.images[split] = images
        if labels is not None:
            self.labels[split] = labels
        if groups is not None:
            self.groups[split] = np.asarray(groups)

    def check(self, image_size: int) -> None:
        """Raise ValueError where a loader broke the contract above (a bug, not a user error)."""
        card = self.card
        for split in ("train", "val", "test"):
            if split not in self.images:
                raise ValueError(f"{card.name}: loader returned no {split!r} split")
        for split, x in self.images.items():
            if split not in SPLIT_NAMES:
                raise ValueError(f"{card.name}: unknown split {split!r}")
            want = (card.channels, image_size, image_size)
            if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != want:
                raise ValueError(f"{card.name}/{split}: images {x.dtype} {x.shape}, want uint8 (N, {want})")
            if split == "unlabeled":
                continue
            y = self.labels[split]
            if card.task == "multiclass":
                ok = y.dtype == np.int64 and y.shape == (len(x),)
            else:
                ok = y.dtype == np.float32 and y.shape == (len(x), len(self.classes))
            if not ok:
                raise ValueError(f"{card.name}/{split}: labels {y.dtype} {y.shape} break the contract")
            if split in self.groups and len(self.groups[split]) != len(x):
                raise ValueError(f"{card.name}/{split}: {len(self.groups[split])} groups for {len(x)} images")
