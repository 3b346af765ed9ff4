"""Dataset cards (datasets/*.yaml), the loader registry, and the one door `load_dataset`.

A card says what a dataset is (classes, task, metric, image size, channels, mean/std, splits,
grouping key, where to get it); a loader, registered under a format name, knows how to read
that format from disk. Adding a dataset in an existing format is a new card only.

Card conventions shared by every loader:
- `root` is the dataset's path relative to --data-root (a folder, or a file for MedMNIST).
- `splits` maps split name -> a fraction (carved, stratified, from the labelled training
  pool with `split_seed`; the numeric entries sum to 1) or the word `official` (taken as
  the archive ships it).
- images are resized so the shorter side equals `image_size`, then center-cropped square
  (square sources are plainly resized); colour is converted to `channels` (1: ITU-R 601
  luma as PIL's "L"; 3: RGB, grey replicated, alpha dropped, CMYK converted by PIL).
- `download` holds `source` (the official page), `instructions` (how to fetch and unpack,
  shown when the data is missing) and optionally `files` (url + md5/sha256 [+ unpack]) for
  `--download`.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness.data.views import ConcatImages
from harness.errors import UserError
from harness.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[2]
CARDS_DIR = REPO_ROOT / "datasets"
SPLIT_NAMES = ("train", "val", "test", "unlabeled")
OFFICIAL = "official"
# data.pretrain_splits -> the splits SSL pretraining reads, in order (never val or test).
PRETRAIN_SPLITS = {"train+unlabeled": ("train", "unlabeled"), "unlabeled": ("unlabeled",), "train": ("train",)}

LOADERS = Registry("dataset format")
DATASETS = Registry("dataset")

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DatasetCard:
    """What a datasets/<name>.yaml says. `options` holds loader-specific settings."""
    name: str
    loader: str
    task: str = "multiclass"                 # multiclass | multilabel
    primary_metric: str = "accuracy"
    image_size: int = 32
    channels: int = 3
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)
    std: tuple[float, ...] = (0.25, 0.25, 0.25)
    classes: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()
    root: str = ""
    splits: dict[str, Any] = field(default_factory=dict)
    split_seed: int = 0
    group_by: str | None = None
    description: str = ""
    citation: str = ""
    download: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    # Where the images come from (e.g. HAM10000): two cards naming a common source hold the same
    # images, so a transfer pair between them is refused (harness.evaluation.transfer.parse_pair).
    sources: tuple[str, ...] = ()

    @classmethod
    def from_yaml(cls, path: Path) -> "DatasetCard":
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"cannot read dataset card {path}: {exc}") from None
        if not isinstance(raw, dict):
            raise UserError(f"dataset card {path}: expected a mapping of keys, got {type(raw).__name__}")
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - valid)
        if unknown:
            raise UserError(f"dataset card {path}: unknown key(s) {', '.join(unknown)}; "
                            f"valid keys: {', '.join(sorted(valid))}")
        for key in ("mean", "std", "classes", "aliases", "sources"):
            if key in raw:
                raw[key] = tuple(raw[key] or ())
        for key in ("splits", "download", "options"):
            if raw.get(key) is None and key in raw:
                raw[key] = {}
        try:
            card = cls(**raw)
        except TypeError as exc:
            raise UserError(f"dataset card {path}: {exc}") from None
        card.check(str(path))
        return card

    def check(self, where: str) -> None:
        """Validate the fields every loader relies on; UserError naming `where` otherwise."""
        if self.task not in ("multiclass", "multilabel"):
            raise UserError(f"dataset card {where}: task must be multiclass or multilabel, got {self.task!r}")
        if self.channels not in (1, 3):
            raise UserError(f"dataset card {where}: channels must be 1 or 3, got {self.channels!r}")
        if len(self.mean) != self.channels or len(self.std) != self.channels:
            raise UserError(f"dataset card {where}: mean and std need {self.channels} values (channels)")
        if not all(isinstance(s, str) and s.strip() for s in self.sources):
            raise UserError(f"dataset card {where}: sources must be a list of names (e.g. [HAM10000]), "
                            f"got {list(self.sources)!r}")
        if not isinstance(self.image_size, int) or self.image_size < 1:
            raise UserError(f"dataset card {where}: image_size must be a positive integer")
        bad = sorted(set(self.splits) - set(SPLIT_NAMES))
        if bad:
            raise UserError(f"dataset card {where}: unknown split(s) {', '.join(bad)}; "
                            f"valid splits: {', '.join(SPLIT_NAMES)}")
        if self.splits and not {"train", "val", "test"} <= set(self.splits):
            raise UserError(f"dataset card {where}: splits must name train, val and test "
                            f"(as fractions or '{OFFICIAL}'), got {', '.join(self.splits)}")
        fractions = {}
        for name, value in self.splits.items():
            if value == OFFICIAL:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
                raise UserError(f"dataset card {where}: split {name} must be a fraction in [0, 1] "
                                f"or '{OFFICIAL}', got {value!r}")
            fractions[name] = float(value)
        if fractions and not np.isclose(sum(fractions.values()), 1.0):
            raise UserError(f"dataset card {where}: the split fractions {fractions} must sum to 1")

    def shared_sources(self, other: "DatasetCard") -> list[str]:
        """The image sources this card has in common with `other` (case-insensitive), in this
        card's order. Empty when either card names none: then nothing can be checked."""
        theirs = {s.strip().casefold() for s in other.sources}
        return [s for s in self.sources if s.strip().casefold() in theirs]

    def split_fractions(self) -> dict[str, float]:
        """The carved splits: name -> fraction of the labelled training pool."""
        return {k: float(v) for k, v in self.splits.items() if v != OFFICIAL}

    def official_splits(self) -> list[str]:
        return [k for k, v in self.splits.items() if v == OFFICIAL]


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
        from harness.data.splits import carve_pool

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


def missing_data_error(card: DatasetCard, path: Path, problem: str = "not found") -> UserError:
    """The one message for absent data: the exact path, the official source, how to unpack."""
    lines = [f"dataset {card.name!r}: {problem}: {path}"]
    source = card.download.get("source")
    if source:
        lines.append(f"  official source: {source}")
    if card.download.get("instructions"):
        lines.append(f"  how to get it: {' '.join(str(card.download['instructions']).split())}")
    if card.download.get("files"):
        lines.append("  or fetch and check it automatically with --download")
    return UserError("\n".join(lines))


def require(card: DatasetCard, path: Path, what: str = "") -> Path:
    """`path` if it exists, else the missing-data UserError for `card`."""
    if not path.exists():
        raise missing_data_error(card, path, f"{what} not found" if what else "not found")
    return path


def card_options(card: DatasetCard, defaults: dict[str, Any]) -> dict[str, Any]:
    """The card's loader options over `defaults`; an unknown option is a UserError."""
    unknown = sorted(set(card.options) - set(defaults))
    if unknown:
        raise UserError(f"dataset card {card.name}: unknown option(s) {', '.join(unknown)} for "
                        f"loader {card.loader}; valid options: {', '.join(sorted(defaults)) or '(none)'}")
    return {**defaults, **card.options}


def _import_loaders() -> None:
    """Loaders register themselves on import: import every module of harness.data."""
    import harness.data as pkg
    for info in pkgutil.iter_modules(pkg.__path__):
        importlib.import_module(f"harness.data.{info.name}")


def register_cards(cards_dir: Path = CARDS_DIR) -> None:
    """Read every card in datasets/ into the DATASETS registry (once)."""
    _import_loaders()
    for path in sorted(cards_dir.glob("*.yaml")):
        card = DatasetCard.from_yaml(path)
        if card.name not in DATASETS:
            LOADERS.canonical(card.loader)  # a card naming an unknown format fails here, clearly
            DATASETS.add(card.name, card, description=card.description, aliases=card.aliases)


def get_card(name: str) -> DatasetCard:
    """The card registered under `name` or one of its aliases (UserError listing valid names)."""
    register_cards()
    return DATASETS.get(name)


def load_dataset(name: str, data_root: Path, image_size: int | None = None,
                 cache_dir: Path | None = None, *, mmap: bool = False) -> LoadedDataset:
    """Load a dataset by card name (or alias) at `image_size` (default: the card's).

    With `cache_dir`, the decoded arrays are kept there (see harness.data.cache) and reused
    until the card, the size or the source files change; `mmap` then maps them read-only
    instead of reading them into memory.
    """
    return load_from_card(get_card(name), data_root, image_size, cache_dir, mmap=mmap)


def load_from_card(card: DatasetCard, data_root: Path, image_size: int | None = None,
                   cache_dir: Path | None = None, *, mmap: bool = False) -> LoadedDataset:
    """`load_dataset` for a card object (one not in datasets/, e.g. built by a benchmark)."""
    from harness.data.cache import cached_load  # cache imports this module

    _import_loaders()
    card.check(card.name)
    size = int(image_size or card.image_size)
    root = Path(data_root) / card.root
    loader = LOADERS.get(card.loader)
    if cache_dir is None:
        data = loader(card, root, size)
    else:
        data = cached_load(card, root, size, Path(cache_dir), loader, mmap=mmap)
    data.check(size)
    return data
