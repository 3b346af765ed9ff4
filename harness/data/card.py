"""The dataset card (datasets/*.yaml): what a dataset is, and the helpers loaders use with it.

A card says what a dataset is (classes, task, metric, image size, channels, mean/std, splits,
grouping key, where to get it); a loader (harness/data/formats/), registered under a format
name, knows how to read that format from disk. Adding a dataset in an existing format is a new
card only.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness.errors import UserError

SPLIT_NAMES = ("train", "val", "test", "unlabeled")
OFFICIAL = "official"
# data.pretrain_splits -> the splits SSL pretraining reads, in order (never val or test).
PRETRAIN_SPLITS = {"train+unlabeled": ("train", "unlabeled"), "unlabeled": ("unlabeled",), "train": ("train",)}

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
