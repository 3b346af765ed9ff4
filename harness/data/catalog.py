"""The two dataset registries: formats (loaders in harness/data/formats/) and datasets (cards).

Both fill themselves on first lookup: LOADERS imports every module of harness.data.formats
(each registers its loader with `@LOADERS.register`), DATASETS reads every card in datasets/.
"""
from __future__ import annotations

from pathlib import Path

from harness.data.card import DatasetCard
from harness.registry import Registry, import_submodules

REPO_ROOT = Path(__file__).resolve().parents[2]
CARDS_DIR = REPO_ROOT / "datasets"

LOADERS = Registry("dataset format", discover=lambda: import_submodules("harness.data.formats"))


def register_cards(cards_dir: Path = CARDS_DIR) -> None:
    """Read every card in `cards_dir` (default datasets/) into the DATASETS registry, once
    per name; DATASETS does this for datasets/ on its first lookup."""
    for path in sorted(cards_dir.glob("*.yaml")):
        card = DatasetCard.from_yaml(path)
        if card.name not in DATASETS:
            LOADERS.canonical(card.loader)  # a card naming an unknown format fails here, clearly
            DATASETS.add(card.name, card, description=card.description, aliases=card.aliases)


DATASETS = Registry("dataset", discover=register_cards)


def get_card(name: str) -> DatasetCard:
    """The card registered under `name` or one of its aliases (UserError listing valid names)."""
    return DATASETS.get(name)
