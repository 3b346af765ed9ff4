"""Dataset cards (datasets/*.yaml), the loader registry, and the one door `load_dataset`."""
from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from harness.errors import UserError
from harness.registry import Registry

REPO_ROOT = Path(__file__).resolve().parents[2]
CARDS_DIR = REPO_ROOT / "datasets"

LOADERS = Registry("dataset format")
DATASETS = Registry("dataset")


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

    @classmethod
    def from_yaml(cls, path: Path) -> "DatasetCard":
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise UserError(f"cannot read dataset card {path}: {exc}") from None
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - valid)
        if unknown:
            raise UserError(f"dataset card {path}: unknown key(s) {', '.join(unknown)}; "
                            f"valid keys: {', '.join(sorted(valid))}")
        for key in ("mean", "std", "classes", "aliases"):
            if key in raw:
                raw[key] = tuple(raw[key])
        card = cls(**raw)
        if card.task not in ("multiclass", "multilabel"):
            raise UserError(f"dataset card {path}: task must be multiclass or multilabel, got {card.task!r}")
        if len(card.mean) != card.channels or len(card.std) != card.channels:
            raise UserError(f"dataset card {path}: mean and std need {card.channels} values (channels)")
        return card


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

    def pretrain_images(self) -> np.ndarray:
        """Images pretraining may see: train plus unlabeled (never val or test)."""
        parts = [self.images["train"]] + ([self.images["unlabeled"]] if "unlabeled" in self.images else [])
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    @property
    def num_classes(self) -> int:
        return len(self.classes)


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


def load_dataset(name: str, data_root: Path, image_size: int | None = None,
                 cache_dir: Path | None = None) -> LoadedDataset:
    """Load a dataset by card name at `image_size` (default: the card's)."""
    register_cards()
    card: DatasetCard = DATASETS.get(name)
    size = image_size or card.image_size
    loader = LOADERS.get(card.loader)
    return loader(card, Path(data_root) / card.root, size)
